/*
 * gateway_replay.c — see gateway_replay.h.
 */
#include "services/gateway/gateway_replay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"

gw_replay_t *gw_resume_add(gw_resume_t *rs, int64_t chan_id, int64_t last_seq, json_t *ref) {
  gw_replay_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->chan_id = chan_id;
  r->cursor = last_seq;
  r->ref = ref ? json_incref(ref) : NULL;
  r->id = ++rs->next_id;
  gw_replay_t **p = &rs->head;
  while (*p) p = &(*p)->next;
  *p = r;
  rs->count++;
  return r;
}

gw_replay_t *gw_resume_find(const gw_resume_t *rs, int64_t chan_id) {
  for (gw_replay_t *r = rs->head; r; r = r->next)
    if (r->chan_id == chan_id) return r;
  return NULL;
}

gw_replay_t *gw_resume_next_unstarted(const gw_resume_t *rs) {
  for (gw_replay_t *r = rs->head; r; r = r->next)
    if (!r->started) return r;
  return NULL;
}

void gw_resume_mark_started(gw_resume_t *rs, gw_replay_t *r) {
  if (r->started) return;
  r->started = true;
  rs->started++;
}

int gw_resume_hold(gw_resume_t *rs, gw_replay_t *r, int64_t seq, net_chunk_t *frame,
                   uint32_t max_total) {
  if (rs->held >= max_total) return -ENOBUFS;
  if (r->nheld == r->capheld) {
    uint32_t cap = r->capheld ? r->capheld * 2 : 8;
    gw_held_t *v = realloc(r->held, cap * sizeof *v);
    if (!v) return -ENOMEM;
    r->held = v;
    r->capheld = cap;
  }
  r->held[r->nheld++] = (gw_held_t){seq, net_chunk_ref(frame)};
  rs->held++;
  return 0;
}

bool gw_replay_accept(gw_replay_t *r, int64_t seq) {
  if (seq <= r->cursor) return false;
  r->cursor = seq;
  r->replayed++;
  return true;
}

gw_replay_step_t gw_replay_next(const gw_replay_t *r, bool more, uint32_t limit,
                                uint32_t *page_limit) {
  if (!more) return GW_REPLAY_DONE;
  if (r->replayed >= limit) return GW_REPLAY_TRUNCATED;
  uint32_t left = limit - r->replayed;
  *page_limit = left < GW_REPLAY_PAGE ? left : GW_REPLAY_PAGE;
  return GW_REPLAY_FETCH;
}

int64_t gw_resume_finish(gw_resume_t *rs, gw_replay_t *r, gw_deliver_fn deliver, void *arg) {
  for (gw_replay_t **p = &rs->head; *p; p = &(*p)->next) {
    if (*p == r) {
      *p = r->next;
      break;
    }
  }
  rs->count--;
  if (r->started) rs->started--;
  rs->held -= r->nheld;
  gw_held_t *held = r->held;
  uint32_t n = r->nheld;
  int64_t top = r->cursor;
  json_decref(r->ref);
  free(r);
  /* From here on rs and r may be gone (deliver may close the connection). */
  bool stop = deliver == NULL;
  for (uint32_t i = 0; i < n; i++) {
    if (!stop && (held[i].seq == 0 || held[i].seq > top)) {
      if (held[i].seq > top) top = held[i].seq;
      stop = deliver(arg, held[i].frame) != 0;
    }
    net_chunk_unref(held[i].frame);
  }
  free(held);
  return top;
}

void gw_resume_clear(gw_resume_t *rs) {
  while (rs->head) gw_resume_finish(rs, rs->head, NULL, NULL);
  free(rs->trails);
  rs->trails = NULL;
  rs->ntrails = rs->captrails = 0;
}

static gw_trail_t *trail_find(const gw_resume_t *rs, int64_t chan_id) {
  for (uint32_t i = 0; i < rs->ntrails; i++)
    if (rs->trails[i].chan_id == chan_id) return &rs->trails[i];
  return NULL;
}

int gw_resume_trail(gw_resume_t *rs, int64_t chan_id, int64_t top) {
  gw_trail_t *t = trail_find(rs, chan_id);
  if (!t) {
    if (rs->ntrails == rs->captrails) {
      uint32_t cap = rs->captrails ? rs->captrails * 2 : 4;
      gw_trail_t *v = realloc(rs->trails, cap * sizeof *v);
      if (!v) return -ENOMEM;
      rs->trails = v;
      rs->captrails = cap;
    }
    t = &rs->trails[rs->ntrails++];
    t->chan_id = chan_id;
  }
  t->top = top;
  return 0;
}

bool gw_resume_trailing(gw_resume_t *rs, int64_t chan_id, int64_t seq, bool *retired) {
  gw_trail_t *t = rs ? trail_find(rs, chan_id) : NULL;
  *retired = t == NULL;
  if (!t || seq <= 0) return false;
  if (seq <= t->top) return true;
  *t = rs->trails[--rs->ntrails];
  *retired = true;
  return false;
}

bool gw_resume_idle(const gw_resume_t *rs) { return rs->count == 0 && rs->ntrails == 0; }

int64_t gw_event_message_seq(const void *data, size_t len) {
  jscan_val_t ev, op, m, seq;
  int64_t n;
  if (!jscan_parse(data, len, &ev) || !jscan_member(ev, "op", &op) ||
      !jscan_str_eq(op, "message") || !jscan_member(ev, "message", &m) ||
      !jscan_member(m, "seq", &seq) || !jscan_int64(seq, &n) || n <= 0)
    return 0;
  return n;
}
