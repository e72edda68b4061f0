/*
 * test_gateway_subs.c — the gateway's socket-free data structures: the id
 * map, refcounted local subscriptions with per-connection channel arrays,
 * the resume replay/dedupe logic and the per-connection token bucket.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "services/gateway/gateway_bucket.h"
#include "services/gateway/gateway_map.h"
#include "services/gateway/gateway_replay.h"
#include "services/gateway/gateway_subs.h"

/* ---- map ---- */

static void test_map_basic(void **state) {
  gw_map_t m = {0};
  int a, b;
  assert_null(gw_map_get(&m, 1));
  assert_null(gw_map_del(&m, 1));
  assert_int_equal(gw_map_put(&m, 0, &a), -EINVAL);
  assert_int_equal(gw_map_put(&m, 1, NULL), -EINVAL);
  assert_int_equal(gw_map_put(&m, 1, &a), 0);
  assert_int_equal(gw_map_put(&m, 1, &b), -EEXIST);
  assert_ptr_equal(gw_map_get(&m, 1), &a);
  assert_null(gw_map_get(&m, 0));
  assert_int_equal(gw_map_put(&m, UINT64_MAX, &b), 0);
  assert_ptr_equal(gw_map_get(&m, UINT64_MAX), &b);
  assert_ptr_equal(gw_map_del(&m, 1), &a);
  assert_null(gw_map_get(&m, 1));
  assert_ptr_equal(gw_map_del(&m, UINT64_MAX), &b);
  /* Empty again: the table is freed. */
  assert_int_equal(m.n, 0);
  assert_null(m.slots);
  gw_map_free(&m);
}

/* Random puts and deletes against a plain array: every lookup agrees,
 * including after backward-shift deletions in long probe runs, growth and
 * shrinking. */
static void test_map_matches_reference(void **state) {
  enum { KEYS = 3000 };
  static char present[KEYS];
  memset(present, 0, sizeof present);
  gw_map_t m = {0};
  srand(7);
  size_t n = 0;
  for (int step = 0; step < 60000; step++) {
    uint64_t k = (uint64_t)(rand() % (KEYS - 1)) + 1;
    if (rand() % 3) {
      int rc = gw_map_put(&m, k, &present[k]);
      assert_int_equal(rc, present[k] ? -EEXIST : 0);
      if (!present[k]) n++;
      present[k] = 1;
    } else {
      void *v = gw_map_del(&m, k);
      assert_ptr_equal(v, present[k] ? &present[k] : NULL);
      if (present[k]) n--;
      present[k] = 0;
    }
    assert_int_equal(m.n, n);
    if (step % 997 == 0) {
      for (uint64_t j = 1; j < KEYS; j++)
        assert_ptr_equal(gw_map_get(&m, j), present[j] ? &present[j] : NULL);
    }
  }
  /* Shrinks back as entries go. */
  for (uint64_t j = 1; j < KEYS; j++) gw_map_del(&m, j);
  assert_int_equal(m.n, 0);
  assert_int_equal(m.cap, 0);
  gw_map_free(&m);
}

/* ---- subscriptions ---- */

typedef struct {
  int subs, unsubs;
  int fail_next; /* error the next subscribe returns */
  int64_t last_id;
  int last_kind;
} hooks_log_t;

static int h_sub(void *arg, gw_topic_t *t) {
  hooks_log_t *l = arg;
  if (l->fail_next) {
    int rc = l->fail_next;
    l->fail_next = 0;
    return rc;
  }
  l->subs++;
  l->last_id = t->id;
  l->last_kind = t->kind;
  t->handle = l;
  return 0;
}

static void h_unsub(void *arg, gw_topic_t *t) {
  hooks_log_t *l = arg;
  assert_ptr_equal(t->handle, l);
  l->unsubs++;
  l->last_id = t->id;
  l->last_kind = t->kind;
}

static void subs_setup(gw_subs_t *s, hooks_log_t *l, uint32_t max) {
  memset(l, 0, sizeof *l);
  gw_subs_hooks_t h = {h_sub, h_unsub, l};
  gw_subs_init(s, &h, max);
}

/* Both directions of every membership agree. */
static void check_links(const gw_subs_t *s, gw_cstate_t *const *conns, size_t nconns) {
  size_t total = 0;
  for (size_t i = 0; i < nconns; i++) {
    const gw_cstate_t *cs = conns[i];
    for (uint16_t j = 0; j < cs->nchans; j++) {
      const gw_centry_t *e = &cs->chans[j];
      assert_true(e->slot < e->topic->n);
      assert_ptr_equal(e->topic->slots[e->slot].cs, cs);
      assert_int_equal(e->topic->slots[e->slot].idx, j);
      assert_ptr_equal(gw_subs_chan(s, e->topic->id), e->topic);
      total++;
    }
    if (cs->user) assert_ptr_equal(cs->user->slots[cs->user_slot].cs, cs);
  }
  size_t slots = 0;
  for (size_t i = 0; i < s->chans.cap; i++) {
    const gw_topic_t *t = s->chans.slots[i].val;
    if (!t) continue;
    assert_true(t->n > 0); /* an empty topic is never kept */
    slots += t->n;
    uint32_t replaying = 0;
    for (uint32_t k = 0; k < t->n; k++) {
      const gw_slot_t *sl = &t->slots[k];
      assert_ptr_equal(sl->cs->chans[sl->idx].topic, t);
      assert_int_equal(sl->cs->chans[sl->idx].slot, k);
      replaying += sl->cs->chans[sl->idx].replaying;
    }
    assert_int_equal(t->replaying, replaying);
  }
  assert_int_equal(slots, total);
}

static void test_subs_refcount(void **state) {
  gw_subs_t s;
  hooks_log_t l;
  subs_setup(&s, &l, 100);
  gw_cstate_t a = {0}, b = {0};
  assert_int_equal(gw_subs_join(&s, &a, 5), 0);
  assert_int_equal(l.subs, 1); /* first local member: one bus subscription */
  assert_int_equal(l.last_id, 5);
  assert_int_equal(l.last_kind, GW_TOPIC_CHAN);
  assert_int_equal(gw_subs_join(&s, &a, 5), 1); /* already in */
  assert_int_equal(gw_subs_join(&s, &b, 5), 0);
  assert_int_equal(l.subs, 1); /* second member: none more */
  gw_topic_t *t = gw_subs_chan(&s, 5);
  assert_non_null(t);
  assert_int_equal(t->n, 2);
  assert_int_equal(gw_subs_leave(&s, &a, 5), 0);
  assert_int_equal(l.unsubs, 0);
  assert_int_equal(gw_subs_leave(&s, &a, 5), -ENOENT);
  assert_int_equal(gw_subs_leave(&s, &b, 5), 0);
  assert_int_equal(l.unsubs, 1); /* last member gone: unsubscribed */
  assert_null(gw_subs_chan(&s, 5));
  assert_null(a.chans); /* a connection in nothing holds no array */
  /* A new member subscribes again. */
  assert_int_equal(gw_subs_join(&s, &b, 5), 0);
  assert_int_equal(l.subs, 2);
  gw_subs_conn_drop(&s, &b);
  assert_int_equal(l.unsubs, 2);
  gw_subs_destroy(&s);
}

static void test_subs_errors(void **state) {
  gw_subs_t s;
  hooks_log_t l;
  subs_setup(&s, &l, 3);
  gw_cstate_t a = {0};
  assert_int_equal(gw_subs_join(&s, &a, 0), -EINVAL);
  assert_int_equal(gw_subs_join(&s, &a, -4), -EINVAL);
  assert_int_equal(gw_subs_user_attach(&s, &a, 0), -EINVAL);
  /* A failing bus subscription fails the join and leaves nothing behind. */
  l.fail_next = -ENOMEM;
  assert_int_equal(gw_subs_join(&s, &a, 9), -ENOMEM);
  assert_null(gw_subs_chan(&s, 9));
  assert_int_equal(a.nchans, 0);
  assert_int_equal(l.unsubs, 0);
  l.fail_next = -ENOTCONN;
  assert_int_equal(gw_subs_user_attach(&s, &a, 9), -ENOTCONN);
  assert_null(gw_subs_user(&s, 9));
  assert_null(a.user);
  /* The per-connection cap. */
  assert_int_equal(gw_subs_join(&s, &a, 1), 0);
  assert_int_equal(gw_subs_join(&s, &a, 2), 0);
  assert_int_equal(gw_subs_join(&s, &a, 3), 0);
  assert_int_equal(gw_subs_join(&s, &a, 4), -ENOSPC);
  assert_null(gw_subs_chan(&s, 4));
  assert_int_equal(gw_subs_join(&s, &a, 3), 1); /* a member at the cap still "is in" */
  assert_int_equal(gw_subs_user_attach(&s, &a, 1), 0);
  assert_int_equal(gw_subs_user_attach(&s, &a, 2), -EEXIST);
  assert_null(gw_subs_entry(&s, &a, 4));
  assert_non_null(gw_subs_entry(&s, &a, 2));
  gw_subs_conn_drop(&s, &a);
  gw_subs_conn_drop(&s, &a); /* idempotent */
  assert_int_equal(l.subs, 4);
  assert_int_equal(l.unsubs, 4);
  gw_subs_destroy(&s);
}

static void test_subs_user_topic(void **state) {
  gw_subs_t s;
  hooks_log_t l;
  subs_setup(&s, &l, 10);
  gw_cstate_t d1 = {0}, d2 = {0}, d3 = {0}, other = {0};
  assert_int_equal(gw_subs_user_attach(&s, &d1, 42), 0);
  assert_int_equal(l.last_kind, GW_TOPIC_USER);
  assert_int_equal(gw_subs_user_attach(&s, &d2, 42), 0);
  assert_int_equal(gw_subs_user_attach(&s, &d3, 42), 0);
  assert_int_equal(gw_subs_user_attach(&s, &other, 43), 0);
  assert_int_equal(l.subs, 2);
  gw_topic_t *u = gw_subs_user(&s, 42);
  assert_int_equal(u->n, 3);
  /* Channel and user ids are separate spaces. */
  assert_null(gw_subs_chan(&s, 42));
  /* Removing the first device moves the last one into its slot. */
  gw_subs_conn_drop(&s, &d1);
  assert_int_equal(u->n, 2);
  gw_cstate_t *conns[] = {&d2, &d3, &other};
  check_links(&s, conns, 3);
  assert_int_equal(l.unsubs, 0);
  gw_subs_conn_drop(&s, &d3);
  gw_subs_conn_drop(&s, &d2);
  assert_int_equal(l.unsubs, 1);
  assert_int_equal(l.last_id, 42);
  assert_null(gw_subs_user(&s, 42));
  gw_subs_conn_drop(&s, &other);
  gw_subs_destroy(&s);
}

/* Many connections joining and leaving at random keep both sides' indices
 * consistent and the bus subscription count equal to the live topics. */
static void test_subs_random_churn(void **state) {
  enum { CONNS = 40, CHANS = 25 };
  gw_subs_t s;
  hooks_log_t l;
  subs_setup(&s, &l, 12);
  gw_cstate_t cs[CONNS];
  gw_cstate_t *ptrs[CONNS];
  memset(cs, 0, sizeof cs);
  for (int i = 0; i < CONNS; i++) ptrs[i] = &cs[i];
  srand(11);
  for (int step = 0; step < 20000; step++) {
    gw_cstate_t *c = &cs[rand() % CONNS];
    int64_t ch = rand() % CHANS + 1;
    int op = rand() % 10;
    if (op < 5) {
      int rc = gw_subs_join(&s, c, ch);
      assert_true(rc == 0 || rc == 1 || rc == -ENOSPC);
    } else if (op < 8) {
      bool member = gw_subs_entry(&s, c, ch) != NULL;
      assert_int_equal(gw_subs_leave(&s, c, ch), member ? 0 : -ENOENT);
    } else if (op < 9) {
      gw_centry_t *e = gw_subs_entry(&s, c, ch);
      if (e) gw_subs_set_replaying(e, rand() % 2);
    } else if (rand() % 20 == 0) {
      gw_subs_conn_drop(&s, c);
    }
    assert_int_equal(l.subs - l.unsubs, (int)s.chans.n);
    if (step % 500 == 0) check_links(&s, ptrs, CONNS);
  }
  check_links(&s, ptrs, CONNS);
  for (int i = 0; i < CONNS; i++) gw_subs_conn_drop(&s, &cs[i]);
  assert_int_equal(l.subs, l.unsubs);
  assert_int_equal(s.chans.n, 0);
  gw_subs_destroy(&s);
}

static void test_subs_replaying_counter(void **state) {
  gw_subs_t s;
  hooks_log_t l;
  subs_setup(&s, &l, 10);
  gw_cstate_t a = {0}, b = {0};
  gw_subs_join(&s, &a, 1);
  gw_subs_join(&s, &b, 1);
  gw_topic_t *t = gw_subs_chan(&s, 1);
  gw_subs_set_replaying(gw_subs_entry(&s, &a, 1), true);
  gw_subs_set_replaying(gw_subs_entry(&s, &a, 1), true); /* no double count */
  gw_subs_set_replaying(gw_subs_entry(&s, &b, 1), true);
  assert_int_equal(t->replaying, 2);
  gw_subs_set_replaying(gw_subs_entry(&s, &b, 1), false);
  assert_int_equal(t->replaying, 1);
  /* Leaving (or closing) while replaying gives the count back. */
  gw_subs_leave(&s, &a, 1);
  assert_int_equal(t->replaying, 0);
  gw_subs_conn_drop(&s, &a);
  gw_subs_conn_drop(&s, &b);
  gw_subs_destroy(&s);
}

/* The fan-out walk: from the end, with a member removed mid-walk (a slow
 * consumer closed by its send), every other member is visited once, and the
 * pinned topic outlives its last member until unpinned. */
static void test_subs_walk_with_removal(void **state) {
  enum { N = 8 };
  gw_subs_t s;
  hooks_log_t l;
  subs_setup(&s, &l, 10);
  gw_cstate_t cs[N];
  memset(cs, 0, sizeof cs);
  for (int i = 0; i < N; i++) assert_int_equal(gw_subs_join(&s, &cs[i], 77), 0);
  gw_topic_t *t = gw_subs_chan(&s, 77);
  int visits[N] = {0};
  gw_topic_pin(t);
  for (uint32_t i = t->n; i-- > 0;) {
    if (i >= t->n) continue;
    gw_cstate_t *c = t->slots[i].cs;
    visits[c - cs]++;
    if (c == &cs[5] || c == &cs[2]) gw_subs_conn_drop(&s, c); /* "closed" by the send */
  }
  for (int i = 0; i < N; i++) assert_int_equal(visits[i], 1);
  assert_int_equal(t->n, N - 2);
  /* Everyone leaves while pinned: unsubscribed and unlinked at once, freed
   * at unpin (ASan would flag a use after free or a leak). */
  for (int i = 0; i < N; i++) gw_subs_conn_drop(&s, &cs[i]);
  assert_int_equal(l.unsubs, 1);
  assert_true(t->dead);
  assert_null(gw_subs_chan(&s, 77));
  /* A new join makes a new topic, not the dead one. */
  assert_int_equal(gw_subs_join(&s, &cs[0], 77), 0);
  assert_ptr_not_equal(gw_subs_chan(&s, 77), t);
  assert_int_equal(l.subs, 2);
  gw_topic_unpin(t);
  gw_subs_conn_drop(&s, &cs[0]);
  gw_subs_destroy(&s);
}

/* Ordering state lives in the channel topic: joins seed it, and the
 * topic's teardown releases what it holds, pinned or not. */
static void order_sink(void *arg, int64_t seq, net_chunk_t *f) { (*(int *)arg)++; }

static void test_subs_order_seed_and_teardown(void **state) {
  gw_subs_t s;
  hooks_log_t l;
  subs_setup(&s, &l, 10);
  gw_cstate_t a = {0}, b = {0}, c = {0};
  assert_int_equal(gw_subs_join_at(&s, &a, 5, 40), 0);
  assert_int_equal(gw_subs_join_at(&s, &b, 5, 38), 0);
  assert_int_equal(gw_subs_join_at(&s, &b, 5, 10), 1); /* already in: no seed */
  gw_topic_t *t = gw_subs_chan(&s, 5);
  assert_true(t->order.known);
  assert_int_equal(t->order.last, 38);
  /* A member without a last_seq: the first event will set the start. */
  assert_int_equal(gw_subs_join(&s, &c, 5), 0);
  assert_false(t->order.known);
  gw_subs_conn_drop(&s, &c);

  int delivered = 0;
  gw_order_cb_t cb = {order_sink, NULL};
  net_chunk_t *f = net_chunk_copy("x", 1);
  assert_int_equal(gw_order_push(&s.order, &t->order, 50, f, 0, &cb, &delivered),
                   GW_ORDER_DELIVERED);
  assert_int_equal(gw_order_push(&s.order, &t->order, 52, f, 0, &cb, &delivered),
                   GW_ORDER_HELD);
  assert_int_equal(f->refs, 2);
  assert_int_equal(s.order.holding, 1);
  /* Last member leaves while the topic is pinned: released at once. */
  gw_topic_pin(t);
  gw_subs_conn_drop(&s, &a);
  gw_subs_conn_drop(&s, &b);
  assert_true(t->dead);
  assert_int_equal(f->refs, 1);
  assert_int_equal(s.order.holding, 0);
  gw_topic_unpin(t);

  /* A topic still holding at destroy is released too. */
  assert_int_equal(gw_subs_join_at(&s, &a, 6, 0), 0);
  t = gw_subs_chan(&s, 6);
  assert_int_equal(gw_order_push(&s.order, &t->order, 3, f, 0, &cb, &delivered),
                   GW_ORDER_HELD);
  assert_int_equal(f->refs, 2);
  gw_subs_destroy(&s);
  assert_int_equal(f->refs, 1);
  assert_int_equal(s.order.holding, 0);
  assert_int_equal(delivered, 1);
  net_chunk_unref(f);
  free(a.chans); /* destroy frees topics, not the connections' arrays */
}

static void test_subs_entry_is_small(void **state) {
  /* The per-connection cost per channel the design promises. */
  assert_int_equal(sizeof(gw_centry_t), 16);
  assert_int_equal(sizeof(gw_slot_t), 16);
  assert_true(sizeof(gw_cstate_t) <= 32);
}

/* ---- replay and dedupe ---- */

static net_chunk_t *frame_of(const char *s) { return net_chunk_copy(s, strlen(s)); }

typedef struct {
  net_chunk_t *got[16];
  int n;
  int stop_after; /* 0: never */
} sink_t;

static int sink(void *arg, net_chunk_t *f) {
  sink_t *k = arg;
  k->got[k->n++] = f;
  return k->stop_after && k->n >= k->stop_after;
}

static void test_replay_accept_and_steps(void **state) {
  gw_resume_t rs = {0};
  gw_replay_t *r = gw_resume_add(&rs, 3, 10, NULL);
  assert_non_null(r);
  assert_int_equal(rs.count, 1);
  uint32_t pl = 0;
  /* Before the first page: fetch min(page, limit). */
  assert_int_equal(gw_replay_next(r, true, 1000, &pl), GW_REPLAY_FETCH);
  assert_int_equal(pl, GW_REPLAY_PAGE);
  assert_int_equal(gw_replay_next(r, true, 30, &pl), GW_REPLAY_FETCH);
  assert_int_equal(pl, 30);
  /* Only messages newer than the cursor are sent. */
  assert_false(gw_replay_accept(r, 9));
  assert_false(gw_replay_accept(r, 10));
  assert_true(gw_replay_accept(r, 11));
  assert_false(gw_replay_accept(r, 11));
  assert_true(gw_replay_accept(r, 12));
  assert_int_equal(r->cursor, 12);
  assert_int_equal(r->replayed, 2);
  assert_int_equal(gw_replay_next(r, false, 1000, &pl), GW_REPLAY_DONE);
  assert_int_equal(gw_replay_next(r, true, 5, &pl), GW_REPLAY_FETCH);
  assert_int_equal(pl, 3);
  /* At the limit with more left: truncated; without more: done. */
  assert_int_equal(gw_replay_next(r, true, 2, &pl), GW_REPLAY_TRUNCATED);
  assert_int_equal(gw_replay_next(r, false, 2, &pl), GW_REPLAY_DONE);
  assert_int_equal(gw_resume_finish(&rs, r, NULL, NULL), 12);
  assert_int_equal(rs.count, 0);
  assert_null(rs.head);
}

static void test_replay_held_dedupe(void **state) {
  gw_resume_t rs = {0};
  json_t *ref = json_string("r1");
  gw_replay_t *r = gw_resume_add(&rs, 3, 40, ref);
  assert_int_equal(ref->refcount, 2);
  net_chunk_t *f41 = frame_of("m41"), *f42 = frame_of("m42"), *ty = frame_of("typing");
  net_chunk_t *f43 = frame_of("m43"), *f44 = frame_of("m44"), *f42b = frame_of("m42 again");
  /* Live events arrive while the history pages are fetched. */
  assert_int_equal(gw_resume_hold(&rs, r, 41, f41, 100), 0);
  assert_int_equal(gw_resume_hold(&rs, r, 42, f42, 100), 0);
  assert_int_equal(gw_resume_hold(&rs, r, 0, ty, 100), 0);
  assert_int_equal(gw_resume_hold(&rs, r, 43, f43, 100), 0);
  assert_int_equal(gw_resume_hold(&rs, r, 42, f42b, 100), 0); /* at-least-once duplicate */
  assert_int_equal(gw_resume_hold(&rs, r, 44, f44, 100), 0);
  assert_int_equal(rs.held, 6);
  assert_int_equal(f41->refs, 2);
  /* The replay got up to 42. */
  for (int64_t s = 41; s <= 42; s++) assert_true(gw_replay_accept(r, s));
  sink_t k = {0};
  int64_t top = gw_resume_finish(&rs, r, sink, &k);
  /* 41 and 42 were replayed: their live copies are dropped; typing (not a
   * message) and 43, 44 go out in arrival order; the late duplicate of 42
   * is dropped. */
  assert_int_equal(k.n, 3);
  assert_ptr_equal(k.got[0], ty);
  assert_ptr_equal(k.got[1], f43);
  assert_ptr_equal(k.got[2], f44);
  assert_int_equal(top, 44);
  assert_int_equal(rs.held, 0);
  assert_int_equal(rs.count, 0);
  /* Every held reference was released (ours remain). */
  net_chunk_t *all[] = {f41, f42, ty, f43, f44, f42b};
  for (size_t i = 0; i < 6; i++) {
    assert_int_equal(all[i]->refs, 1);
    net_chunk_unref(all[i]);
  }
  assert_int_equal(ref->refcount, 1);
  json_decref(ref);
}

static void test_replay_nothing_held_is_cursor(void **state) {
  gw_resume_t rs = {0};
  gw_replay_t *r = gw_resume_add(&rs, 3, 7, NULL);
  sink_t k = {0};
  net_chunk_t *old = frame_of("m5");
  gw_resume_hold(&rs, r, 5, old, 10); /* older than the client's own last seq */
  assert_int_equal(gw_resume_finish(&rs, r, sink, &k), 7);
  assert_int_equal(k.n, 0);
  assert_int_equal(old->refs, 1);
  net_chunk_unref(old);
}

static void test_replay_hold_limit_and_stop(void **state) {
  gw_resume_t rs = {0};
  gw_replay_t *a = gw_resume_add(&rs, 1, 0, NULL);
  gw_replay_t *b = gw_resume_add(&rs, 2, 0, NULL);
  net_chunk_t *f = frame_of("x");
  /* The limit is per connection, over every replaying channel. */
  for (int i = 1; i <= 3; i++) assert_int_equal(gw_resume_hold(&rs, a, i, f, 5), 0);
  for (int i = 1; i <= 2; i++) assert_int_equal(gw_resume_hold(&rs, b, i, f, 5), 0);
  assert_int_equal(gw_resume_hold(&rs, b, 3, f, 5), -ENOBUFS);
  assert_int_equal(gw_resume_hold(&rs, a, 4, f, 5), -ENOBUFS);
  assert_int_equal(a->nheld, 3);
  assert_int_equal(f->refs, 6);
  /* A deliver callback that stops (the connection closed) gets no more;
   * the rest is released all the same. */
  sink_t k = {.stop_after = 1};
  assert_int_equal(gw_resume_finish(&rs, a, sink, &k), 1);
  assert_int_equal(k.n, 1);
  assert_int_equal(f->refs, 3);
  assert_int_equal(rs.held, 2);
  /* Clear (connection closing) releases everything, delivering nothing. */
  gw_resume_clear(&rs);
  assert_int_equal(f->refs, 1);
  assert_int_equal(rs.count, 0);
  assert_int_equal(rs.held, 0);
  net_chunk_unref(f);
}

static void test_replay_queue(void **state) {
  gw_resume_t rs = {0};
  gw_replay_t *a = gw_resume_add(&rs, 1, 0, NULL);
  gw_replay_t *b = gw_resume_add(&rs, 2, 0, NULL);
  gw_replay_t *c = gw_resume_add(&rs, 3, 0, NULL);
  assert_true(a->id != b->id && b->id != c->id);
  assert_ptr_equal(gw_resume_find(&rs, 2), b);
  assert_null(gw_resume_find(&rs, 4));
  assert_ptr_equal(gw_resume_next_unstarted(&rs), a);
  gw_resume_mark_started(&rs, a);
  gw_resume_mark_started(&rs, a);
  assert_int_equal(rs.started, 1);
  assert_ptr_equal(gw_resume_next_unstarted(&rs), b);
  gw_resume_mark_started(&rs, b);
  gw_resume_finish(&rs, a, NULL, NULL);
  assert_int_equal(rs.started, 1);
  assert_ptr_equal(gw_resume_next_unstarted(&rs), c);
  /* A new replay of a finished channel gets a new id (late replies of the
   * old one are told apart). */
  gw_replay_t *a2 = gw_resume_add(&rs, 1, 0, NULL);
  assert_true(a2->id > c->id);
  gw_resume_clear(&rs);
  assert_int_equal(rs.started, 0);
  assert_null(rs.head);
}

/* Step 4 of gateway_replay.h: after a finish, live copies of what the
 * replay sent are dropped; the first message above the trail retires it;
 * other events always pass; trails of several channels are independent. */
static void test_replay_trails(void **state) {
  gw_resume_t rs = {0};
  bool retired = false;
  assert_false(gw_resume_trailing(&rs, 5, 3, &retired)); /* no trail: pass, retired */
  assert_true(retired);
  assert_int_equal(gw_resume_trail(&rs, 5, 68), 0);
  assert_int_equal(gw_resume_trail(&rs, 6, 10), 0);
  assert_false(gw_resume_idle(&rs));
  for (int64_t seq = 66; seq <= 68; seq++) {
    assert_true(gw_resume_trailing(&rs, 5, seq, &retired));
    assert_false(retired);
  }
  assert_false(gw_resume_trailing(&rs, 5, 0, &retired)); /* typing, edits: never dropped */
  assert_false(retired);
  assert_false(gw_resume_trailing(&rs, 5, 69, &retired)); /* above: delivered, trail gone */
  assert_true(retired);
  assert_false(gw_resume_trailing(&rs, 5, 68, &retired)); /* nothing trails any more */
  assert_true(retired);
  assert_true(gw_resume_trailing(&rs, 6, 10, &retired)); /* channel 6 still trails */
  assert_int_equal(gw_resume_trail(&rs, 6, 20), 0);     /* a later resume moves it */
  assert_true(gw_resume_trailing(&rs, 6, 15, &retired));
  assert_false(gw_resume_trailing(&rs, 6, 21, &retired));
  assert_true(retired && gw_resume_idle(&rs));
  /* Many channels, then clear (connection closing) forgets them all. */
  for (int64_t ch = 1; ch <= 40; ch++) assert_int_equal(gw_resume_trail(&rs, ch, ch), 0);
  assert_int_equal(rs.ntrails, 40);
  assert_true(gw_resume_trailing(&rs, 40, 40, &retired));
  gw_resume_clear(&rs);
  assert_true(gw_resume_idle(&rs));
  assert_null(rs.trails);
}

static void test_event_seq(void **state) {
#define SEQ(s) gw_event_message_seq(s, strlen(s))
  assert_int_equal(
      SEQ("{\"op\":\"message\",\"channel_id\":3,\"message\":{\"id\":9,\"seq\":17}}"), 17);
  /* Order of keys does not matter; "seq" inside the body text does not count. */
  assert_int_equal(
      SEQ("{\"message\":{\"body\":\"\\\"seq\\\":5\",\"seq\":8},\"op\":\"message\"}"), 8);
  assert_int_equal(SEQ("{\"op\":\"message_deleted\",\"channel_id\":3,\"id\":9,\"seq\":17}"), 0);
  assert_int_equal(SEQ("{\"op\":\"typing\",\"channel_id\":3}"), 0);
  assert_int_equal(SEQ("{\"op\":\"message\",\"message\":{\"seq\":\"17\"}}"), 0);
  assert_int_equal(SEQ("{\"op\":\"message\",\"message\":{\"seq\":-1}}"), 0);
  assert_int_equal(SEQ("{\"op\":\"message\"}"), 0);
  assert_int_equal(SEQ("{ \"op\" : \"message\", \"message\":{\"seq\":8}}"), 8);
  assert_int_equal(SEQ("{\"op\":\"message_edited\",\"message\":{\"seq\":7}}"), 0);
  assert_int_equal(SEQ("{\"op\":\"messag\",\"message\":{\"seq\":7}}"), 0);
  assert_int_equal(SEQ("{\"message\":{\"seq\":9},\"op\":\"typing\"}"), 0);
  assert_int_equal(SEQ("{\"op\":\"message\",\"message\":{\"seq\":0}}"), 0);
  /* Written with escapes: not recognised, passes through (never ours). */
  assert_int_equal(SEQ("{\"op\":\"mess\\u0061ge\",\"message\":{\"seq\":10}}"), 0);
  /* Unreadable, even with the right start. */
  assert_int_equal(SEQ("{\"op\":\"message\",\"message\":{\"seq\":7} not json"), 0);
  assert_int_equal(SEQ("{\"op\":\"message\""), 0);
  assert_int_equal(SEQ("not json"), 0);
  assert_int_equal(SEQ("[1,2]"), 0);
  assert_int_equal(gw_event_message_seq("", 0), 0);
#undef SEQ
}

/* ---- token bucket ---- */

static void test_bucket(void **state) {
  gw_bucket_t b;
  gw_bucket_init(&b, 20, 1000);
  for (int i = 0; i < 20; i++) assert_true(gw_bucket_take(&b, 1000, 10, 20));
  assert_false(gw_bucket_take(&b, 1000, 10, 20));
  assert_false(gw_bucket_take(&b, 1050, 10, 20)); /* half a token */
  assert_true(gw_bucket_take(&b, 1100, 10, 20));  /* 100 ms = one token at 10/s */
  assert_false(gw_bucket_take(&b, 1100, 10, 20));
  /* A long idle refills to the burst, not more. */
  for (int i = 0; i < 20; i++) assert_true(gw_bucket_take(&b, 60000, 10, 20));
  assert_false(gw_bucket_take(&b, 60000, 10, 20));
  /* The 32-bit clock wrapping between two calls is a normal interval. */
  gw_bucket_init(&b, 2, UINT32_MAX - 50);
  assert_true(gw_bucket_take(&b, UINT32_MAX - 50, 10, 2));
  assert_true(gw_bucket_take(&b, UINT32_MAX - 50, 10, 2));
  assert_false(gw_bucket_take(&b, UINT32_MAX - 50, 10, 2));
  assert_true(gw_bucket_take(&b, 60, 10, 2)); /* 111 ms later, across the wrap */
  assert_true(sizeof(gw_bucket_t) <= 8);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_map_basic),
      cmocka_unit_test(test_map_matches_reference),
      cmocka_unit_test(test_subs_refcount),
      cmocka_unit_test(test_subs_errors),
      cmocka_unit_test(test_subs_user_topic),
      cmocka_unit_test(test_subs_random_churn),
      cmocka_unit_test(test_subs_replaying_counter),
      cmocka_unit_test(test_subs_walk_with_removal),
      cmocka_unit_test(test_subs_order_seed_and_teardown),
      cmocka_unit_test(test_subs_entry_is_small),
      cmocka_unit_test(test_replay_accept_and_steps),
      cmocka_unit_test(test_replay_held_dedupe),
      cmocka_unit_test(test_replay_nothing_held_is_cursor),
      cmocka_unit_test(test_replay_hold_limit_and_stop),
      cmocka_unit_test(test_replay_queue),
      cmocka_unit_test(test_replay_trails),
      cmocka_unit_test(test_event_seq),
      cmocka_unit_test(test_bucket),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
