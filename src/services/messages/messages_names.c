/*
 * messages_names.c — a bounded id <-> username cache.
 *
 * Usernames never change and ids are never reused (the users service has
 * no rename and no delete), so an entry never goes stale and needs no
 * expiry: the cache only bounds memory. Entries live in one array used as
 * a ring (the oldest insertion is evicted: simpler than LRU, and a name
 * evicted while still in use costs one users.get); two chained hash
 * indexes (by id, by name) hold array indexes, so there is no allocation
 * after msg_names_new.
 */
#include "services/messages/messages_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

typedef struct {
  int64_t id; /* 0: free slot */
  char name[USER_NAME_MAX + 1];
  uint32_t next_id, next_name; /* chains */
} entry_t;

struct msg_names {
  entry_t *e;
  uint32_t cap, used, ring; /* ring: the slot the next insertion takes once full */
  uint32_t *by_id, *by_name;
  uint32_t mask; /* buckets - 1 */
};

static uint32_t hash_id(int64_t id) {
  uint64_t x = (uint64_t)id * UINT64_C(0x9E3779B97F4A7C15);
  return (uint32_t)(x >> 32);
}

/* FNV-1a: names are short and not attacker-chosen in bulk (they are
 * registered accounts), so a keyed hash is not needed. */
static uint32_t hash_name(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

msg_names_t *msg_names_new(size_t cap) {
  if (cap < 1 || cap > (1u << 24)) return NULL;
  msg_names_t *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  uint32_t buckets = 1;
  while (buckets < cap) buckets <<= 1;
  n->e = calloc(cap, sizeof *n->e);
  n->by_id = malloc(buckets * sizeof *n->by_id);
  n->by_name = malloc(buckets * sizeof *n->by_name);
  if (!n->e || !n->by_id || !n->by_name) {
    msg_names_free(n);
    return NULL;
  }
  memset(n->by_id, 0xff, buckets * sizeof *n->by_id);
  memset(n->by_name, 0xff, buckets * sizeof *n->by_name);
  n->cap = (uint32_t)cap;
  n->mask = buckets - 1;
  return n;
}

void msg_names_free(msg_names_t *n) {
  if (!n) return;
  free(n->e);
  free(n->by_id);
  free(n->by_name);
  free(n);
}

static uint32_t find_id(const msg_names_t *n, int64_t id) {
  for (uint32_t i = n->by_id[hash_id(id) & n->mask]; i != NIL; i = n->e[i].next_id)
    if (n->e[i].id == id) return i;
  return NIL;
}

static uint32_t find_name(const msg_names_t *n, const char *name) {
  for (uint32_t i = n->by_name[hash_name(name) & n->mask]; i != NIL; i = n->e[i].next_name)
    if (strcmp(n->e[i].name, name) == 0) return i;
  return NIL;
}

static void unlink_entry(msg_names_t *n, uint32_t x) {
  uint32_t *p = &n->by_id[hash_id(n->e[x].id) & n->mask];
  while (*p != x) p = &n->e[*p].next_id;
  *p = n->e[x].next_id;
  p = &n->by_name[hash_name(n->e[x].name) & n->mask];
  while (*p != x) p = &n->e[*p].next_name;
  *p = n->e[x].next_name;
  n->e[x].id = 0;
}

void msg_names_put(msg_names_t *n, int64_t id, const char *name) {
  if (!n || id <= 0 || !name || strlen(name) > USER_NAME_MAX) return;
  uint32_t x = find_id(n, id);
  if (x != NIL && strcmp(n->e[x].name, name) == 0) return;
  if (x != NIL) unlink_entry(n, x); /* cannot happen (names are immutable): keep the newest */
  uint32_t y = find_name(n, name);
  if (y != NIL) unlink_entry(n, y);
  if (x == NIL) x = y;
  if (x == NIL) {
    if (n->used < n->cap) {
      x = n->used++;
    } else {
      x = n->ring;
      n->ring = (n->ring + 1) % n->cap;
      if (n->e[x].id) unlink_entry(n, x);
    }
  }
  entry_t *e = &n->e[x];
  e->id = id;
  snprintf(e->name, sizeof e->name, "%s", name);
  uint32_t hi = hash_id(id) & n->mask, hn = hash_name(name) & n->mask;
  e->next_id = n->by_id[hi];
  n->by_id[hi] = x;
  e->next_name = n->by_name[hn];
  n->by_name[hn] = x;
}

const char *msg_names_by_id(const msg_names_t *n, int64_t id) {
  if (!n) return NULL;
  uint32_t x = find_id(n, id);
  return x == NIL ? NULL : n->e[x].name;
}

int64_t msg_names_by_name(const msg_names_t *n, const char *name) {
  if (!n || !name) return 0;
  uint32_t x = find_name(n, name);
  return x == NIL ? 0 : n->e[x].id;
}
