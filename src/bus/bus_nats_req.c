/*
 * bus_nats_req.c — hash on id plus binary heap on deadline. Ids are
 * sequential, so `id & mask` spreads them perfectly; the bucket array
 * doubles with the heap so chains stay at about one entry.
 */
#include "bus/bus_nats_req.h"

#include <errno.h>
#include <stdlib.h>

int reqtab_init(reqtab_t *t) {
  *t = (reqtab_t){0};
  t->b = calloc(64, sizeof *t->b);
  if (!t->b) return -ENOMEM;
  t->mask = 63;
  return 0;
}

void reqtab_free(reqtab_t *t) {
  free(t->b);
  free(t->heap);
  *t = (reqtab_t){0};
}

static void rehash(reqtab_t *t) {
  size_t nb = (t->mask + 1) * 2;
  nreq_t **b = calloc(nb, sizeof *b);
  if (!b) return; /* harmless: longer chains */
  for (size_t i = 0; i <= t->mask; i++) {
    for (nreq_t *r = t->b[i], *next; r; r = next) {
      next = r->hnext;
      r->hnext = b[r->id & (nb - 1)];
      b[r->id & (nb - 1)] = r;
    }
  }
  free(t->b);
  t->b = b;
  t->mask = nb - 1;
}

int reqtab_reserve(reqtab_t *t) {
  if (t->n < t->cap) return 0;
  size_t cap = t->cap ? t->cap * 2 : 64;
  nreq_t **h = realloc(t->heap, cap * sizeof *h);
  if (!h) return -ENOMEM;
  t->heap = h;
  t->cap = cap;
  return 0;
}

static int less(const nreq_t *x, const nreq_t *y) {
  return x->deadline < y->deadline || (x->deadline == y->deadline && x->id < y->id);
}

static void put(reqtab_t *t, size_t i, nreq_t *r) {
  t->heap[i] = r;
  r->heap_idx = i;
}

static void up(reqtab_t *t, size_t i) {
  nreq_t *r = t->heap[i];
  while (i > 0 && less(r, t->heap[(i - 1) / 2])) {
    put(t, i, t->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  put(t, i, r);
}

static void down(reqtab_t *t, size_t i) {
  nreq_t *r = t->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= t->n) break;
    if (c + 1 < t->n && less(t->heap[c + 1], t->heap[c])) c++;
    if (!less(t->heap[c], r)) break;
    put(t, i, t->heap[c]);
    i = c;
  }
  put(t, i, r);
}

void reqtab_add(reqtab_t *t, nreq_t *r) {
  if (t->n > t->mask) rehash(t);
  r->hnext = t->b[r->id & t->mask];
  t->b[r->id & t->mask] = r;
  put(t, t->n++, r);
  up(t, r->heap_idx);
}

nreq_t *reqtab_take(reqtab_t *t, uint64_t id) {
  for (nreq_t **pp = &t->b[id & t->mask]; *pp; pp = &(*pp)->hnext) {
    nreq_t *r = *pp;
    if (r->id != id) continue;
    *pp = r->hnext;
    size_t i = r->heap_idx;
    nreq_t *last = t->heap[--t->n];
    if (i < t->n) {
      put(t, i, last);
      up(t, i);
      down(t, last->heap_idx);
    }
    return r;
  }
  return NULL;
}

nreq_t *reqtab_first(const reqtab_t *t) { return t->n ? t->heap[0] : NULL; }
