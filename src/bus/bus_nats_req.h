/*
 * bus_nats_req.h — pending requests of a NATS bus: found by id when a reply
 * arrives on the bus's inbox, and ordered by deadline so one uv timer can
 * serve them all.
 *
 * Loop thread only, no callbacks: the table stores requests and hands them
 * back; the caller allocates them, runs their callbacks and frees them.
 * Insertion never fails once reqtab_reserve succeeded.
 */
#ifndef STORM_BUS_BUS_NATS_REQ_H
#define STORM_BUS_BUS_NATS_REQ_H

#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"

typedef struct nreq {
  struct nreq *hnext;
  uint64_t id; /* non-zero */
  uint64_t deadline;
  size_t heap_idx;
  bus_reply_cb cb;
  void *arg;
} nreq_t;

typedef struct {
  nreq_t **b; /* buckets, chained on id */
  size_t mask;
  nreq_t **heap; /* min-heap on (deadline, id) */
  size_t n, cap;
} reqtab_t;

/* Returns 0 or -ENOMEM. */
int reqtab_init(reqtab_t *t);
/* Frees the table, not the requests still in it. */
void reqtab_free(reqtab_t *t);
/* Makes room for one more request. Returns 0 or -ENOMEM. */
int reqtab_reserve(reqtab_t *t);
/* Adds `r` (id, deadline set); call reqtab_reserve first. */
void reqtab_add(reqtab_t *t, nreq_t *r);
/* Removes and returns the request with this id, or NULL. */
nreq_t *reqtab_take(reqtab_t *t, uint64_t id);
/* The request with the earliest deadline (still in the table), or NULL. */
nreq_t *reqtab_first(const reqtab_t *t);

#endif
