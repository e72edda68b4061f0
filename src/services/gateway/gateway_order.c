/*
 * gateway_order.c — see gateway_order.h.
 *
 * A hold is a sorted array ev[start, start + n) (ascending seq, no two
 * equal): arrivals are mostly just behind the end (a small reordering), so
 * an insertion moves few entries, and delivery pops from the front by
 * advancing start. Holds are on an intrusive list (next/pprev, unlinkable
 * without knowing the head) so that the sweep can set due ones aside while
 * deliveries tear other holds down.
 */
#include "services/gateway/gateway_order.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "services/gateway/gateway_replay.h"

#define HOLD_MIN_CAP 8

typedef struct {
  int64_t seq;
  net_chunk_t *frame;
  uint32_t at_ms; /* when it was held */
} held_ev_t;

struct gw_order_hold {
  gw_order_hold_t *next, **pprev;
  gw_order_t *owner;
  held_ev_t *ev;
  uint32_t start, n, cap; /* up to GW_ORDER_HOLD_MAX + 1: the one that triggers a flush */
  uint32_t oldest_ms;     /* at_ms of the event held longest */
};

static void hold_link(gw_order_hold_t **head, gw_order_hold_t *h) {
  h->next = *head;
  if (*head) (*head)->pprev = &h->next;
  *head = h;
  h->pprev = head;
}

static void hold_unlink(gw_order_hold_t *h) {
  *h->pprev = h->next;
  if (h->next) h->next->pprev = h->pprev;
  h->next = NULL;
  h->pprev = NULL;
}

/* Frees o's hold (empty or not: what is left is released undelivered). */
static void hold_free(gw_order_set_t *set, gw_order_t *o) {
  gw_order_hold_t *h = o->hold;
  for (uint32_t i = 0; i < h->n; i++) net_chunk_unref(h->ev[h->start + i].frame);
  hold_unlink(h);
  set->holding--;
  free(h->ev);
  free(h);
  o->hold = NULL;
}

void gw_order_join(gw_order_t *o, int64_t last_seq) {
  if (o->live) return;
  if (last_seq < 0) {
    o->blind = true;
    o->known = false;
  }
  if (o->blind) return;
  if (!o->known || last_seq < o->last) o->last = last_seq;
  o->known = true;
}

uint32_t gw_order_held(const gw_order_t *o) { return o->hold ? o->hold->n : 0; }

/* Takes the first held event off o's hold, freeing the hold when it empties.
 * The caller owns the returned frame reference. */
static held_ev_t pop_first(gw_order_set_t *set, gw_order_t *o) {
  gw_order_hold_t *h = o->hold;
  held_ev_t e = h->ev[h->start];
  h->start++;
  h->n--;
  if (h->n == 0) {
    hold_free(set, o);
  } else if (e.at_ms == h->oldest_ms) {
    /* Every remaining event was held at or after the old oldest: the
     * smallest distance from it is the new oldest (wrap-safe). */
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < h->n; i++) {
      uint32_t d = h->ev[h->start + i].at_ms - h->oldest_ms;
      if (d < best) best = d;
    }
    h->oldest_ms += best;
  }
  return e;
}

/* Delivers the held events that follow `last` without a gap. Each one is
 * popped before it is delivered: deliver may clear o. */
static void drain(gw_order_set_t *set, gw_order_t *o, const gw_order_cb_t *cb, void *arg) {
  while (o->hold && o->hold->ev[o->hold->start].seq == o->last + 1) {
    held_ev_t e = pop_first(set, o);
    o->last = e.seq;
    cb->deliver(arg, e.seq, e.frame);
    net_chunk_unref(e.frame);
  }
}

void gw_order_flush(gw_order_set_t *set, gw_order_t *o, gw_order_gap_reason_t why,
                    const gw_order_cb_t *cb, void *arg) {
  gw_order_hold_t *h = o->hold;
  if (!h) return;
  int64_t prev = o->last;
  uint64_t skipped = 0;
  for (uint32_t i = 0; i < h->n; i++) {
    int64_t s = h->ev[h->start + i].seq;
    skipped += (uint64_t)(s - prev - 1);
    prev = s;
  }
  if (skipped > 0) {
    set->stats.gaps++;
    set->stats.skipped += skipped;
    if (cb->gap) cb->gap(arg, o->last + 1, h->ev[h->start].seq - 1, skipped, why);
  }
  /* cb->gap may have cleared o as well. */
  while (o->hold) {
    held_ev_t e = pop_first(set, o);
    o->last = e.seq;
    cb->deliver(arg, e.seq, e.frame);
    net_chunk_unref(e.frame);
  }
}

/* Inserts (seq, frame) in o's hold. 0, 1 if seq is already held (nothing
 * done), or -ENOMEM. */
static int hold_insert(gw_order_set_t *set, gw_order_t *o, int64_t seq, net_chunk_t *frame,
                       uint32_t now_ms) {
  gw_order_hold_t *h = o->hold;
  if (!h) {
    h = calloc(1, sizeof *h);
    if (!h) return -ENOMEM;
    h->owner = o;
    h->oldest_ms = now_ms;
    hold_link(&set->holds, h);
    set->holding++;
    o->hold = h;
  }
  /* First position with a seq >= the new one. */
  uint32_t lo = 0, hi = h->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (h->ev[h->start + mid].seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < h->n && h->ev[h->start + lo].seq == seq) return 1;
  if (h->start + h->n == h->cap) {
    if (h->start > 0) {
      memmove(h->ev, h->ev + h->start, h->n * sizeof *h->ev);
      h->start = 0;
    } else {
      uint32_t cap = h->cap ? h->cap * 2 : HOLD_MIN_CAP;
      if (cap > GW_ORDER_HOLD_MAX + 1) cap = GW_ORDER_HOLD_MAX + 1;
      held_ev_t *v = realloc(h->ev, cap * sizeof *v);
      if (!v) {
        if (h->n == 0) hold_free(set, o);
        return -ENOMEM;
      }
      h->ev = v;
      h->cap = cap;
    }
  }
  held_ev_t *at = h->ev + h->start + lo;
  memmove(at + 1, at, (h->n - lo) * sizeof *at);
  *at = (held_ev_t){seq, net_chunk_ref(frame), now_ms};
  if (h->n == 0) h->oldest_ms = now_ms;
  h->n++;
  return 0;
}

gw_order_result_t gw_order_push(gw_order_set_t *set, gw_order_t *o, int64_t seq,
                                net_chunk_t *frame, uint32_t now_ms, const gw_order_cb_t *cb,
                                void *arg) {
  if (seq <= 0) {
    cb->deliver(arg, 0, frame);
    return GW_ORDER_PASSED;
  }
  if (!o->known) {
    o->known = true;
    o->last = seq - 1;
  }
  o->live = true;
  if (seq <= o->last) {
    set->stats.dropped++;
    return GW_ORDER_DROPPED;
  }
  if (seq == o->last + 1) {
    o->last = seq;
    cb->deliver(arg, seq, frame);
    drain(set, o, cb, arg);
    return GW_ORDER_DELIVERED;
  }
  int rc = hold_insert(set, o, seq, frame, now_ms);
  if (rc == 1) {
    set->stats.dropped++;
    return GW_ORDER_DROPPED;
  }
  if (rc < 0) {
    /* No memory to wait: give the gap up now rather than lose the event. */
    gw_order_flush(set, o, GW_ORDER_GAP_FULL, cb, arg);
    if (seq <= o->last) { /* held ones above it went first: it is behind now */
      set->stats.dropped++;
      return GW_ORDER_DROPPED;
    }
    if (seq > o->last + 1) {
      set->stats.gaps++;
      set->stats.skipped += (uint64_t)(seq - o->last - 1);
      if (cb->gap) cb->gap(arg, o->last + 1, seq - 1, (uint64_t)(seq - o->last - 1),
                           GW_ORDER_GAP_FULL);
    }
    o->last = seq;
    cb->deliver(arg, seq, frame);
    return GW_ORDER_DELIVERED;
  }
  set->stats.held++;
  if (o->hold->n > GW_ORDER_HOLD_MAX) gw_order_flush(set, o, GW_ORDER_GAP_FULL, cb, arg);
  return GW_ORDER_HELD;
}

void gw_order_sweep(gw_order_set_t *set, uint32_t now_ms, uint32_t hold_ms,
                    void (*due)(void *arg, gw_order_t *o), void *arg) {
  /* Set the due holds aside first: flushing one may free others. */
  gw_order_hold_t *list = NULL;
  for (gw_order_hold_t *h = set->holds, *next; h; h = next) {
    next = h->next;
    if ((uint32_t)(now_ms - h->oldest_ms) >= hold_ms) {
      hold_unlink(h);
      hold_link(&list, h);
    }
  }
  while (list) {
    gw_order_hold_t *h = list;
    hold_unlink(h);
    hold_link(&set->holds, h);
    due(arg, h->owner);
  }
}

void gw_order_clear(gw_order_set_t *set, gw_order_t *o) {
  if (o->hold) hold_free(set, o);
}
