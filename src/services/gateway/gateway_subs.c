/*
 * gateway_subs.c — see gateway_subs.h.
 */
#include "services/gateway/gateway_subs.h"

#include <errno.h>
#include <stdlib.h>

#define TOPIC_MIN_SLOTS 4
#define CONN_MIN_CHANS 4

void gw_subs_init(gw_subs_t *s, const gw_subs_hooks_t *hooks, uint32_t max_chans) {
  *s = (gw_subs_t){.hooks = *hooks, .max_chans = max_chans};
  if (s->max_chans == 0) s->max_chans = 1;
  if (s->max_chans > 32767) s->max_chans = 32767;
}

static void destroy_map(gw_subs_t *s, gw_map_t *m) {
  for (size_t i = 0; i < m->cap; i++) {
    gw_topic_t *t = m->slots[i].val;
    if (!t) continue;
    gw_order_clear(&s->order, &t->order);
    free(t->slots);
    free(t);
  }
  gw_map_free(m);
}

void gw_subs_destroy(gw_subs_t *s) {
  destroy_map(s, &s->chans);
  destroy_map(s, &s->users);
}

gw_topic_t *gw_subs_chan(const gw_subs_t *s, int64_t chan_id) {
  return chan_id > 0 ? gw_map_get(&s->chans, (uint64_t)chan_id) : NULL;
}

gw_topic_t *gw_subs_user(const gw_subs_t *s, int64_t user_id) {
  return user_id > 0 ? gw_map_get(&s->users, (uint64_t)user_id) : NULL;
}

static gw_map_t *map_of(gw_subs_t *s, int kind) {
  return kind == GW_TOPIC_CHAN ? &s->chans : &s->users;
}

/* The existing topic, or a new one (subscribed, linked, with no member). */
static int topic_get(gw_subs_t *s, int kind, int64_t id, gw_topic_t **out) {
  gw_map_t *m = map_of(s, kind);
  gw_topic_t *t = gw_map_get(m, (uint64_t)id);
  if (t) {
    *out = t;
    return 0;
  }
  t = calloc(1, sizeof *t);
  if (!t) return -ENOMEM;
  t->id = id;
  t->kind = (uint8_t)kind;
  t->ctx = s->hooks.arg;
  int rc = gw_map_put(m, (uint64_t)id, t);
  if (rc == 0) {
    rc = s->hooks.subscribe(s->hooks.arg, t);
    if (rc < 0) gw_map_del(m, (uint64_t)id);
  }
  if (rc < 0) {
    free(t);
    return rc;
  }
  *out = t;
  return 0;
}

/* The topic lost its last member (or never got one). */
static void topic_release(gw_subs_t *s, gw_topic_t *t) {
  if (t->n > 0 || t->dead) return;
  s->hooks.unsubscribe(s->hooks.arg, t);
  gw_map_del(map_of(s, t->kind), (uint64_t)t->id);
  /* Nobody left to deliver to; a flush running under a pin stops here. */
  gw_order_clear(&s->order, &t->order);
  t->dead = true;
  if (t->pins == 0) {
    free(t->slots);
    free(t);
  }
}

void gw_topic_unpin(gw_topic_t *t) {
  if (--t->pins == 0 && t->dead) {
    free(t->slots);
    free(t);
  }
}

/* Appends a member slot; returns its index or -ENOMEM. */
static int64_t slot_add(gw_topic_t *t, gw_cstate_t *cs, uint32_t idx) {
  if (t->n == t->cap) {
    uint32_t cap = t->cap ? t->cap * 2 : TOPIC_MIN_SLOTS;
    gw_slot_t *v = realloc(t->slots, (size_t)cap * sizeof *v);
    if (!v) return -ENOMEM;
    t->slots = v;
    t->cap = cap;
  }
  t->slots[t->n] = (gw_slot_t){cs, idx};
  return t->n++;
}

/* Removes slot i by moving the last slot into it and fixing the moved
 * member's back index. */
static void slot_remove(gw_topic_t *t, uint32_t i) {
  uint32_t last = --t->n;
  if (i == last) return;
  gw_slot_t moved = t->slots[last];
  t->slots[i] = moved;
  if (t->kind == GW_TOPIC_CHAN)
    moved.cs->chans[moved.idx].slot = i;
  else
    moved.cs->user_slot = i;
}

gw_centry_t *gw_subs_entry(const gw_subs_t *s, const gw_cstate_t *cs, int64_t chan_id) {
  gw_topic_t *t = gw_subs_chan(s, chan_id);
  if (!t) return NULL;
  for (uint16_t i = 0; i < cs->nchans; i++)
    if (cs->chans[i].topic == t) return &cs->chans[i];
  return NULL;
}

int gw_subs_join(gw_subs_t *s, gw_cstate_t *cs, int64_t chan_id) {
  return gw_subs_join_at(s, cs, chan_id, -1);
}

int gw_subs_join_at(gw_subs_t *s, gw_cstate_t *cs, int64_t chan_id, int64_t last_seq) {
  if (chan_id <= 0) return -EINVAL;
  if (gw_subs_entry(s, cs, chan_id)) return 1;
  if (cs->nchans >= s->max_chans) return -ENOSPC;
  if (cs->nchans == cs->capchans) {
    uint32_t cap = cs->capchans ? (uint32_t)cs->capchans * 2 : CONN_MIN_CHANS;
    if (cap > s->max_chans) cap = s->max_chans;
    gw_centry_t *v = realloc(cs->chans, cap * sizeof *v);
    if (!v) return -ENOMEM;
    cs->chans = v;
    cs->capchans = (uint16_t)cap;
  }
  gw_topic_t *t;
  int rc = topic_get(s, GW_TOPIC_CHAN, chan_id, &t);
  if (rc < 0) return rc;
  int64_t slot = slot_add(t, cs, cs->nchans);
  if (slot < 0) {
    topic_release(s, t);
    return (int)slot;
  }
  cs->chans[cs->nchans++] = (gw_centry_t){.topic = t, .slot = (uint32_t)slot};
  gw_order_join(&t->order, last_seq);
  return 0;
}

void gw_subs_set_replaying(gw_centry_t *e, bool on) {
  if (e->replaying == on) return;
  e->replaying = on;
  if (on)
    e->topic->replaying++;
  else
    e->topic->replaying--;
}

/* Removes entry i of cs (the membership) from both arrays. */
static void entry_remove(gw_subs_t *s, gw_cstate_t *cs, uint16_t i) {
  gw_centry_t *e = &cs->chans[i];
  gw_subs_set_replaying(e, false);
  gw_topic_t *t = e->topic;
  slot_remove(t, e->slot);
  uint16_t last = --cs->nchans;
  if (i != last) {
    cs->chans[i] = cs->chans[last];
    cs->chans[i].topic->slots[cs->chans[i].slot].idx = i;
  }
  if (cs->nchans == 0) {
    free(cs->chans);
    cs->chans = NULL;
    cs->capchans = 0;
  }
  topic_release(s, t);
}

int gw_subs_leave(gw_subs_t *s, gw_cstate_t *cs, int64_t chan_id) {
  gw_centry_t *e = gw_subs_entry(s, cs, chan_id);
  if (!e) return -ENOENT;
  entry_remove(s, cs, (uint16_t)(e - cs->chans));
  return 0;
}

int gw_subs_user_attach(gw_subs_t *s, gw_cstate_t *cs, int64_t user_id) {
  if (user_id <= 0) return -EINVAL;
  if (cs->user) return -EEXIST;
  gw_topic_t *t;
  int rc = topic_get(s, GW_TOPIC_USER, user_id, &t);
  if (rc < 0) return rc;
  int64_t slot = slot_add(t, cs, 0);
  if (slot < 0) {
    topic_release(s, t);
    return (int)slot;
  }
  cs->user = t;
  cs->user_slot = (uint32_t)slot;
  return 0;
}

void gw_subs_conn_drop(gw_subs_t *s, gw_cstate_t *cs) {
  while (cs->nchans) entry_remove(s, cs, (uint16_t)(cs->nchans - 1));
  if (cs->user) {
    gw_topic_t *t = cs->user;
    cs->user = NULL;
    slot_remove(t, cs->user_slot);
    topic_release(s, t);
  }
}
