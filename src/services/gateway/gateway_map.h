/*
 * gateway_map.h — a hash map from non-zero 64-bit keys to pointers.
 *
 * The gateway finds its local subscriptions by channel or user id with it.
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones, so a long-running process with constant join/leave churn
 * never degrades). Grows at 3/4 load, shrinks below 1/8, so memory follows
 * the number of live entries.
 *
 * Ownership: the map stores the pointers, never what they point to.
 * Key 0 is reserved (it marks an empty slot). Not thread-safe (the loop).
 * An all-zero gw_map_t is a valid empty map; gw_map_free returns it to that.
 */
#ifndef STORM_SERVICES_GATEWAY_MAP_H
#define STORM_SERVICES_GATEWAY_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t key; /* 0: empty */
  void *val;
} gw_map_slot_t;

typedef struct {
  gw_map_slot_t *slots;
  size_t cap; /* 0 or a power of two */
  size_t n;
} gw_map_t;

/* The value of key, or NULL. */
void *gw_map_get(const gw_map_t *m, uint64_t key);
/* Inserts key -> val (val non-NULL). Returns 0, -EEXIST (key present: the
 * map is unchanged), -EINVAL (key 0 or val NULL), -ENOMEM. */
int gw_map_put(gw_map_t *m, uint64_t key, void *val);
/* Removes key and returns its value, or NULL if absent. */
void *gw_map_del(gw_map_t *m, uint64_t key);
void gw_map_free(gw_map_t *m);

#endif
