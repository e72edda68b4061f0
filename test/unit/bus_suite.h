/*
 * bus_suite.h — the engine-independent contract tests of bus.h, included by
 * one test binary per engine (test_bus.c: local, test_bus_nats.c: NATS).
 *
 * The binary sets `g_engine` before running BUS_SUITE_TESTS. Tests never
 * assume how long delivery takes: they wait with settle() (the engine's
 * "nothing more is coming": loop dry for local, quiet for NATS) or
 * RUN_UNTIL(f, condition), and they only assert what NATS core semantics
 * guarantee. Behaviour specific to one engine is tested in its own file.
 *
 * Every helper here is used by some suite test: each binary that includes
 * this header compiles all of them (-Wunused-function).
 */
#ifndef STORM_TEST_BUS_SUITE_H
#define STORM_TEST_BUS_SUITE_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "bus/bus.h"

/* ---- fixture ---- */

typedef struct fx fx_t;

typedef struct {
  const char *kind;
  bus_t *(*open)(uv_loop_t *loop); /* fails the test itself on error */
  void (*settle)(fx_t *f);         /* run until nothing more is coming */
} suite_engine_t;

static const suite_engine_t *g_engine;

struct fx {
  uv_loop_t loop;
  bus_t *bus;
  int closed;
  uv_timer_t tick; /* wakes uv_run(ONCE) while waiting for a condition */
};

static void tick_cb(uv_timer_t *t) {}

static void fx_init(fx_t *f) {
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->bus = g_engine->open(&f->loop);
  assert_non_null(f->bus);
  f->closed = 0;
  uv_timer_init(&f->loop, &f->tick);
}

static void count_closed(void *arg) { (*(int *)arg)++; }

static void settle(fx_t *f) { g_engine->settle(f); }

/* Runs the loop in steps of at most 5 ms until `cond` holds; fails after
 * 20 s (far beyond anything a loopback server needs). */
#define RUN_UNTIL(f, cond)                                                         \
  do {                                                                             \
    uv_timer_start(&(f)->tick, tick_cb, 5, 5);                                     \
    uint64_t t0_ = uv_hrtime();                                                    \
    while (!(cond)) {                                                              \
      if (uv_hrtime() - t0_ > 20000000000ULL) fail_msg("timed out waiting: %s", #cond); \
      uv_run(&(f)->loop, UV_RUN_ONCE);                                             \
    }                                                                              \
    uv_timer_stop(&(f)->tick);                                                     \
  } while (0)

/* Closes the bus, runs the loop dry and checks that nothing leaked. */
static void fx_done(fx_t *f) {
  uv_close((uv_handle_t *)&f->tick, NULL);
  bus_close(f->bus, count_closed, &f->closed);
  assert_int_equal(f->closed, 0); /* on_closed never runs inside bus_close */
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(f->closed, 1);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void count_cb(bus_t *bus, const bus_msg_t *msg, void *arg) { (*(int *)arg)++; }

typedef struct {
  int n;
  char subject[128];
  char reply[128];
  bool has_reply;
  char data[256];
  size_t len;
} rec_t;

static void rec_cb(bus_t *bus, const bus_msg_t *msg, void *arg) {
  rec_t *r = arg;
  r->n++;
  snprintf(r->subject, sizeof r->subject, "%s", msg->subject);
  r->has_reply = msg->reply != NULL;
  snprintf(r->reply, sizeof r->reply, "%s", msg->reply ? msg->reply : "");
  if (msg->len <= sizeof r->data) memcpy(r->data, msg->data, msg->len);
  r->len = msg->len;
}

static void noreply_cb(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  fail_msg("reply callback of a failed or cancelled request ran");
}

/* ---- argument checks ---- */

static void suite_invalid_args(void **state) {
  fx_t f;
  fx_init(&f);
  bus_t *b = f.bus;
  int n = 0;
  assert_string_equal(bus_kind(b), g_engine->kind);
  assert_true(bus_is_connected(b));
  assert_int_equal(bus_max_payload(b), BUS_DEFAULT_MAX_PAYLOAD);

  assert_int_equal(bus_publish(b, "a.*", NULL, "x", 1), -EINVAL);
  assert_int_equal(bus_publish(b, "a.>", NULL, "x", 1), -EINVAL);
  assert_int_equal(bus_publish(b, "a..b", NULL, "x", 1), -EINVAL);
  assert_int_equal(bus_publish(b, NULL, NULL, "x", 1), -EINVAL);
  assert_int_equal(bus_publish(NULL, "a", NULL, "x", 1), -EINVAL);
  assert_int_equal(bus_publish(b, "a", "bad reply", "x", 1), -EINVAL);
  assert_int_equal(bus_publish(b, "a", "", "x", 1), -EINVAL);
  assert_int_equal(bus_publish(b, "a", "r.*", "x", 1), -EINVAL);
  assert_int_equal(bus_publish(b, "a", NULL, NULL, 5), -EINVAL);
  assert_int_equal(bus_publish(b, "a", NULL, NULL, 0), 0); /* empty message is fine */

  bus_sub_t *sub = (bus_sub_t *)&n; /* must be reset to NULL on failure */
  assert_int_equal(bus_subscribe(b, "a", NULL, NULL, NULL, &sub), -EINVAL);
  assert_null(sub);
  assert_int_equal(bus_subscribe(b, "a.>.b", NULL, count_cb, &n, &sub), -EINVAL);
  assert_int_equal(bus_subscribe(b, "", NULL, count_cb, &n, &sub), -EINVAL);
  assert_int_equal(bus_subscribe(NULL, "a", NULL, count_cb, &n, &sub), -EINVAL);
  assert_int_equal(bus_subscribe(b, "a", "", count_cb, &n, &sub), -EINVAL);
  assert_int_equal(bus_subscribe(b, "a", "a b", count_cb, &n, &sub), -EINVAL);
  assert_int_equal(bus_subscribe(b, "a", "q\n", count_cb, &n, &sub), -EINVAL);
  char longq[BUS_SUBJECT_MAX + 2];
  memset(longq, 'q', sizeof longq - 1);
  longq[sizeof longq - 1] = '\0';
  assert_int_equal(bus_subscribe(b, "a", longq, count_cb, &n, &sub), -EINVAL);
  longq[BUS_SUBJECT_MAX] = '\0'; /* exactly the limit is fine */
  assert_int_equal(bus_subscribe(b, "a", longq, count_cb, &n, &sub), 0);
  assert_int_equal(bus_unsubscribe(sub), 0);
  assert_int_equal(bus_unsubscribe(NULL), -EINVAL);

  uint64_t id = 99;
  assert_int_equal(bus_request(b, "svc", "x", 1, 0, noreply_cb, NULL, &id), -EINVAL);
  assert_int_equal(id, 0);
  assert_int_equal(bus_request(b, "svc", "x", 1, 100, NULL, NULL, &id), -EINVAL);
  assert_int_equal(bus_request(b, "svc.*", "x", 1, 100, noreply_cb, NULL, &id), -EINVAL);
  assert_int_equal(bus_request(b, NULL, "x", 1, 100, noreply_cb, NULL, &id), -EINVAL);
  assert_int_equal(bus_request(NULL, "svc", "x", 1, 100, noreply_cb, NULL, &id), -EINVAL);
  assert_int_equal(bus_request(b, "svc", NULL, 1, 100, noreply_cb, NULL, &id), -EINVAL);

  bus_msg_t noreply = {"a", NULL, "x", 1};
  assert_int_equal(bus_respond(b, &noreply, "y", 1), -EINVAL);
  assert_int_equal(bus_respond(b, NULL, "y", 1), -EINVAL);
  bus_msg_t badreply = {"a", "r.>", "x", 1};
  assert_int_equal(bus_respond(b, &badreply, "y", 1), -EINVAL);

  assert_int_equal(bus_request_cancel(b, 0), -ENOENT);
  assert_int_equal(bus_request_cancel(b, 12345), -ENOENT);
  assert_int_equal(bus_request_cancel(NULL, 1), -ENOENT);
  settle(&f);
  assert_int_equal(n, 0);
  fx_done(&f);
}

/* The payload bound, at the default 1 MiB (NATS's default max_payload). */
static void suite_max_payload(void **state) {
  fx_t f;
  fx_init(&f);
  size_t max = bus_max_payload(f.bus);
  char *buf = calloc(1, max + 1);
  assert_non_null(buf);
  rec_t r = {0};
  assert_int_equal(bus_subscribe(f.bus, "big", NULL, rec_cb, &r, NULL), 0);
  assert_int_equal(bus_publish(f.bus, "big", NULL, buf, max + 1), -EMSGSIZE);
  assert_int_equal(bus_request(f.bus, "big", buf, max + 1, 100, noreply_cb, NULL, NULL), -EMSGSIZE);
  bus_msg_t m = {"x", "big", NULL, 0};
  assert_int_equal(bus_respond(f.bus, &m, buf, max + 1), -EMSGSIZE);
  assert_int_equal(bus_publish(f.bus, "big", NULL, buf, max), 0);
  free(buf);
  RUN_UNTIL(&f, r.n == 1);
  assert_int_equal(r.len, max);
  fx_done(&f);
}

/* ---- delivery ---- */

static void suite_fanout_and_async(void **state) {
  fx_t f;
  fx_init(&f);
  static const char *pats[] = {"a.b.c", "a.b.c", "a.*.c", "a.>",     ">",   "a.b.>",
                               "a.b",   "a.b.c.d", "a.bb.c", "a.b.c.>", "*.b", "ab.>"};
  static const int want[] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0};
  rec_t r[12];
  memset(r, 0, sizeof r);
  for (int i = 0; i < 12; i++)
    assert_int_equal(bus_subscribe(f.bus, pats[i], NULL, rec_cb, &r[i], NULL), 0);
  assert_int_equal(bus_publish(f.bus, "a.b.c", NULL, "hi", 2), 0);
  for (int i = 0; i < 12; i++) assert_int_equal(r[i].n, 0); /* never inside publish */
  settle(&f);
  for (int i = 0; i < 12; i++) {
    if (r[i].n != want[i]) fail_msg("pattern %s got %d", pats[i], r[i].n);
    if (!want[i]) continue;
    assert_string_equal(r[i].subject, "a.b.c");
    assert_false(r[i].has_reply);
    assert_int_equal(r[i].len, 2);
    assert_memory_equal(r[i].data, "hi", 2);
  }
  /* with a reply subject */
  assert_int_equal(bus_publish(f.bus, "a.b.c", "my.inbox", "", 0), 0);
  settle(&f);
  assert_int_equal(r[0].n, 2);
  assert_true(r[0].has_reply);
  assert_string_equal(r[0].reply, "my.inbox");
  assert_int_equal(r[0].len, 0);
  fx_done(&f);
}

static void suite_queue_groups(void **state) {
  fx_t f;
  fx_init(&f);
  int g1[3] = {0}, g2[2] = {0}, plain = 0, other = 0;
  for (int i = 0; i < 3; i++)
    assert_int_equal(bus_subscribe(f.bus, "svc.x", "g1", count_cb, &g1[i], NULL), 0);
  for (int i = 0; i < 2; i++)
    assert_int_equal(bus_subscribe(f.bus, "svc.*", "g2", count_cb, &g2[i], NULL), 0);
  assert_int_equal(bus_subscribe(f.bus, "svc.x", NULL, count_cb, &plain, NULL), 0);
  assert_int_equal(bus_subscribe(f.bus, "svc.y", "g1", count_cb, &other, NULL), 0);
  enum { N = 900 };
  for (int i = 0; i < N; i++) assert_int_equal(bus_publish(f.bus, "svc.x", NULL, "m", 1), 0);
  settle(&f);
  assert_int_equal(g1[0] + g1[1] + g1[2], N); /* exactly one member per message */
  assert_int_equal(g2[0] + g2[1], N);
  assert_int_equal(plain, N);
  assert_int_equal(other, 0); /* same group name, pattern not matching */
  /* load is spread (expected 300 and 450; these bounds are ~7 sigma away) */
  for (int i = 0; i < 3; i++) assert_true(g1[i] > 200);
  for (int i = 0; i < 2; i++) assert_true(g2[i] > 350);
  fx_done(&f);
}

/* A group is the set of queue subscriptions with one name whose pattern
 * matches, whatever the patterns: one delivery per group, as in NATS. */
static void suite_queue_group_across_patterns(void **state) {
  fx_t f;
  fx_init(&f);
  int a = 0, w = 0, tail = 0;
  assert_int_equal(bus_subscribe(f.bus, "job.a", "w", count_cb, &a, NULL), 0);
  assert_int_equal(bus_subscribe(f.bus, "job.*", "w", count_cb, &w, NULL), 0);
  assert_int_equal(bus_subscribe(f.bus, ">", "w", count_cb, &tail, NULL), 0);
  for (int i = 0; i < 300; i++) assert_int_equal(bus_publish(f.bus, "job.a", NULL, NULL, 0), 0);
  settle(&f);
  assert_int_equal(a + w + tail, 300);
  assert_true(a > 0 && w > 0 && tail > 0);
  fx_done(&f);
}

typedef struct {
  bus_sub_t *self;
  bus_sub_t *victim;
  int n;
} unsub_t;

static void unsub_self_cb(bus_t *bus, const bus_msg_t *msg, void *arg) {
  unsub_t *u = arg;
  u->n++;
  assert_int_equal(bus_unsubscribe(u->self), 0);
}

static void suite_unsubscribe_in_own_callback(void **state) {
  fx_t f;
  fx_init(&f);
  unsub_t u = {0};
  int other = 0;
  assert_int_equal(bus_subscribe(f.bus, "x", NULL, unsub_self_cb, &u, &u.self), 0);
  assert_int_equal(bus_subscribe(f.bus, "x", NULL, count_cb, &other, NULL), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(bus_publish(f.bus, "x", NULL, NULL, 0), 0);
  settle(&f);
  assert_int_equal(u.n, 1);
  assert_int_equal(other, 3);
  unsub_t w = {0};
  assert_int_equal(bus_subscribe(f.bus, "x.>", NULL, unsub_self_cb, &w, &w.self), 0);
  assert_int_equal(bus_publish(f.bus, "x.y", NULL, NULL, 0), 0);
  assert_int_equal(bus_publish(f.bus, "x.y", NULL, NULL, 0), 0);
  settle(&f);
  assert_int_equal(w.n, 1);
  fx_done(&f);
}

static void unsub_other_cb(bus_t *bus, const bus_msg_t *msg, void *arg) {
  unsub_t *u = arg;
  u->n++;
  if (u->victim) {
    assert_int_equal(bus_unsubscribe(u->victim), 0);
    u->victim = NULL;
  }
}

static void suite_unsubscribe_other_during_delivery(void **state) {
  fx_t f;
  fx_init(&f);
  /* a literal and a wildcard subscription kill each other: whichever runs
   * first, the other never runs, not even for messages already queued */
  unsub_t a = {0}, b = {0};
  assert_int_equal(bus_subscribe(f.bus, "w.1", NULL, unsub_other_cb, &a, &a.self), 0);
  assert_int_equal(bus_subscribe(f.bus, "w.*", NULL, unsub_other_cb, &b, &b.self), 0);
  a.victim = b.self;
  b.victim = a.self;
  assert_int_equal(bus_publish(f.bus, "w.1", NULL, NULL, 0), 0);
  assert_int_equal(bus_publish(f.bus, "w.1", NULL, NULL, 0), 0);
  settle(&f);
  assert_int_equal(a.n + b.n, 2);
  assert_true(a.n == 2 || b.n == 2);

  unsub_t c = {0}, d = {0};
  assert_int_equal(bus_subscribe(f.bus, "y", NULL, unsub_other_cb, &c, &c.self), 0);
  assert_int_equal(bus_subscribe(f.bus, "y", NULL, unsub_other_cb, &d, &d.self), 0);
  c.victim = d.self;
  d.victim = c.self;
  assert_int_equal(bus_publish(f.bus, "y", NULL, NULL, 0), 0);
  assert_int_equal(bus_publish(f.bus, "y", NULL, NULL, 0), 0);
  settle(&f);
  assert_int_equal(c.n + d.n, 2);
  assert_true(c.n == 2 || d.n == 2);
  fx_done(&f);
}

static void suite_unsubscribe_with_queued_messages(void **state) {
  fx_t f;
  fx_init(&f);
  int n = 0;
  bus_sub_t *s;
  assert_int_equal(bus_subscribe(f.bus, "q", NULL, count_cb, &n, &s), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(bus_publish(f.bus, "q", NULL, NULL, 0), 0);
  assert_int_equal(bus_unsubscribe(s), 0);
  settle(&f);
  assert_int_equal(n, 0);
  fx_done(&f);
}

typedef struct {
  int pings;
  rec_t pong;
} chain_t;

static void ping_cb(bus_t *bus, const bus_msg_t *msg, void *arg) {
  chain_t *c = arg;
  c->pings++;
  int before = c->pong.n;
  assert_int_equal(bus_publish(bus, "pong", NULL, msg->data, msg->len), 0);
  assert_int_equal(c->pong.n, before); /* not re-entrant */
}

static void suite_publish_from_callback(void **state) {
  fx_t f;
  fx_init(&f);
  chain_t c;
  memset(&c, 0, sizeof c);
  assert_int_equal(bus_subscribe(f.bus, "ping", NULL, ping_cb, &c, NULL), 0);
  assert_int_equal(bus_subscribe(f.bus, "pong", NULL, rec_cb, &c.pong, NULL), 0);
  assert_int_equal(bus_publish(f.bus, "ping", NULL, "abc", 3), 0);
  settle(&f);
  assert_int_equal(c.pings, 1);
  assert_int_equal(c.pong.n, 1);
  assert_memory_equal(c.pong.data, "abc", 3);
  fx_done(&f);
}

static int g_order_bad;

/* arg: the next sequence number expected; each literal subject gets every
 * other number, the wildcard subscriber all of them. */
static void order_cb(const bus_msg_t *msg, void *arg, int step) {
  int seq;
  memcpy(&seq, msg->data, sizeof seq);
  int *expect = arg;
  if (seq != *expect) g_order_bad++;
  *expect = seq + step;
}
static void order_lit_cb(bus_t *bus, const bus_msg_t *msg, void *arg) { order_cb(msg, arg, 2); }
static void order_all_cb(bus_t *bus, const bus_msg_t *msg, void *arg) { order_cb(msg, arg, 1); }

/* Per-subscription publish order, across several delivery batches. */
static void suite_ordering(void **state) {
  fx_t f;
  fx_init(&f);
  g_order_bad = 0;
  int e1 = 0, e2 = 1, eall = 0;
  assert_int_equal(bus_subscribe(f.bus, "o.1", NULL, order_lit_cb, &e1, NULL), 0);
  assert_int_equal(bus_subscribe(f.bus, "o.2", NULL, order_lit_cb, &e2, NULL), 0);
  assert_int_equal(bus_subscribe(f.bus, "o.*", NULL, order_all_cb, &eall, NULL), 0);
  enum { N = 5 * 1024 + 7 };
  for (int i = 0; i < N; i++)
    assert_int_equal(bus_publish(f.bus, i % 2 ? "o.2" : "o.1", NULL, &i, sizeof i), 0);
  settle(&f);
  assert_int_equal(g_order_bad, 0);
  assert_int_equal(eall, N);
  assert_int_equal(e1, N + (N % 2 ? 1 : 0));
  fx_done(&f);
}

static void suite_data_copied(void **state) {
  fx_t f;
  fx_init(&f);
  rec_t r = {0};
  assert_int_equal(bus_subscribe(f.bus, "copy", NULL, rec_cb, &r, NULL), 0);
  char buf[] = "original";
  char subj[] = "copy";
  char reply[] = "re.ply";
  assert_int_equal(bus_publish(f.bus, subj, reply, buf, sizeof buf), 0);
  memset(buf, 'X', sizeof buf - 1);
  memcpy(subj, "nope", 4);
  memcpy(reply, "XXXXXX", 6);
  settle(&f);
  assert_int_equal(r.n, 1);
  assert_string_equal(r.data, "original");
  assert_string_equal(r.subject, "copy");
  assert_string_equal(r.reply, "re.ply");
  fx_done(&f);
}

static void many_cb(bus_t *bus, const bus_msg_t *msg, void *arg) {
  int *counts = arg;
  counts[atoi(msg->subject + 5)]++;
}

static void suite_many_subjects(void **state) {
  fx_t f;
  fx_init(&f);
  enum { N = 5000 };
  static int counts[N];
  static bus_sub_t *subs[N];
  memset(counts, 0, sizeof counts);
  char s[64];
  for (int i = 0; i < N; i++) {
    snprintf(s, sizeof s, "chan.%d.events", i);
    assert_int_equal(bus_subscribe(f.bus, s, NULL, many_cb, counts, &subs[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    snprintf(s, sizeof s, "chan.%d.events", i);
    assert_int_equal(bus_publish(f.bus, s, NULL, NULL, 0), 0);
  }
  settle(&f);
  for (int i = 0; i < N; i++) assert_int_equal(counts[i], 1);
  for (int i = 0; i < N; i += 2) assert_int_equal(bus_unsubscribe(subs[i]), 0);
  for (int i = 0; i < N; i++) {
    snprintf(s, sizeof s, "chan.%d.events", i);
    assert_int_equal(bus_publish(f.bus, s, NULL, NULL, 0), 0);
  }
  settle(&f);
  for (int i = 0; i < N; i++) assert_int_equal(counts[i], i % 2 ? 2 : 1);
  fx_done(&f); /* frees the odd half */
}

/* ---- request/reply ---- */

typedef struct {
  int calls;
  int status;
  char data[128];
  size_t len;
  bool had_msg;
  uint64_t at; /* uv_now when called */
  uv_loop_t *loop;
  int closed_seen; /* copy of the fixture's closed counter at call time */
  int *closed;
} reply_t;

static void reply_cb(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  reply_t *r = arg;
  r->calls++;
  r->status = status;
  r->had_msg = msg != NULL;
  if (msg) {
    assert_true(msg->len <= sizeof r->data);
    memcpy(r->data, msg->data, msg->len);
    r->len = msg->len;
  }
  if (r->loop) r->at = uv_now(r->loop);
  if (r->closed) r->closed_seen = *r->closed;
}

typedef struct {
  int n;
  int replies; /* how many replies to send per request */
  char reply_to[128];
} echo_t;

static void echo_cb(bus_t *bus, const bus_msg_t *msg, void *arg) {
  echo_t *e = arg;
  e->n++;
  assert_non_null(msg->reply);
  assert_int_equal(strncmp(msg->reply, "_INBOX.", 7), 0);
  snprintf(e->reply_to, sizeof e->reply_to, "%s", msg->reply);
  char out[128];
  int k = snprintf(out, sizeof out, "echo:%.*s", (int)msg->len, (const char *)msg->data);
  for (int i = 0; i < e->replies; i++) assert_int_equal(bus_respond(bus, msg, out, (size_t)k), 0);
}

static void suite_request_reply(void **state) {
  fx_t f;
  fx_init(&f);
  echo_t e = {.replies = 2}; /* the second reply must be dropped */
  int inbox_spy = 0;
  assert_int_equal(bus_subscribe(f.bus, "svc.echo", "workers", echo_cb, &e, NULL), 0);
  assert_int_equal(bus_subscribe(f.bus, "_INBOX.>", NULL, count_cb, &inbox_spy, NULL), 0);
  reply_t r = {0};
  uint64_t id = 0, id2 = 0;
  assert_int_equal(bus_request(f.bus, "svc.echo", "hello", 5, 5000, reply_cb, &r, &id), 0);
  assert_true(id != 0);
  assert_int_equal(r.calls, 0); /* never inside bus_request */
  settle(&f);
  assert_int_equal(e.n, 1);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, 0);
  assert_true(r.had_msg);
  assert_int_equal(r.len, 10);
  assert_memory_equal(r.data, "echo:hello", 10);
  assert_int_equal(inbox_spy, 2); /* replies are ordinary messages too */
  assert_int_equal(bus_request_cancel(f.bus, id), -ENOENT); /* already completed */

  /* a wildcard responder counts as a responder; ids are unique */
  echo_t e2 = {.replies = 1};
  assert_int_equal(bus_subscribe(f.bus, "wild.>", NULL, echo_cb, &e2, NULL), 0);
  reply_t r2 = {0};
  assert_int_equal(bus_request(f.bus, "wild.card", "", 0, 5000, reply_cb, &r2, &id2), 0);
  assert_true(id2 != 0 && id2 != id);
  settle(&f);
  assert_int_equal(r2.calls, 1);
  assert_int_equal(r2.status, 0);
  assert_memory_equal(r2.data, "echo:", 5);
  fx_done(&f);
}

typedef struct {
  echo_t e;
  bus_t *bus;
} late_t;

static void late_reply_timer_cb(uv_timer_t *t) {
  late_t *l = t->data;
  assert_int_equal(bus_publish(l->bus, l->e.reply_to, NULL, "late", 4), 0);
  uv_close((uv_handle_t *)t, NULL);
}

static void suite_request_timeout(void **state) {
  fx_t f;
  fx_init(&f);
  late_t l = {.e = {.replies = 0}, .bus = f.bus}; /* a subscriber that does not answer */
  assert_int_equal(bus_subscribe(f.bus, "slow", NULL, echo_cb, &l.e, NULL), 0);
  reply_t r = {.loop = &f.loop};
  uv_update_time(&f.loop);
  uint64_t t0 = uv_now(&f.loop);
  assert_int_equal(bus_request(f.bus, "slow", "x", 1, 30, reply_cb, &r, NULL), 0);
  /* then answer after the deadline: the late reply must be dropped */
  uv_timer_t late;
  uv_timer_init(&f.loop, &late);
  late.data = &l;
  uv_timer_start(&late, late_reply_timer_cb, 80, 0);
  RUN_UNTIL(&f, r.calls == 1 && uv_is_closing((uv_handle_t *)&late));
  settle(&f);
  assert_int_equal(l.e.n, 1);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, BUS_ETIMEDOUT);
  assert_false(r.had_msg);
  assert_true(r.at - t0 >= 30);
  fx_done(&f);
}

typedef struct {
  int order[3];
  int n;
} tmo_order_t;

static tmo_order_t g_tmo;
static void tmo_cb(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  assert_int_equal(status, BUS_ETIMEDOUT);
  g_tmo.order[g_tmo.n++] = (int)(intptr_t)arg;
}

static void suite_request_timeouts_in_deadline_order(void **state) {
  fx_t f;
  fx_init(&f);
  int sink = 0;
  assert_int_equal(bus_subscribe(f.bus, "mute", NULL, count_cb, &sink, NULL), 0);
  memset(&g_tmo, 0, sizeof g_tmo);
  assert_int_equal(bus_request(f.bus, "mute", NULL, 0, 60, tmo_cb, (void *)(intptr_t)60, NULL), 0);
  assert_int_equal(bus_request(f.bus, "mute", NULL, 0, 10, tmo_cb, (void *)(intptr_t)10, NULL), 0);
  assert_int_equal(bus_request(f.bus, "mute", NULL, 0, 35, tmo_cb, (void *)(intptr_t)35, NULL), 0);
  settle(&f);
  assert_int_equal(sink, 3);
  assert_int_equal(g_tmo.n, 3);
  assert_int_equal(g_tmo.order[0], 10);
  assert_int_equal(g_tmo.order[1], 35);
  assert_int_equal(g_tmo.order[2], 60);
  fx_done(&f);
}

static void suite_request_no_responders(void **state) {
  fx_t f;
  fx_init(&f);
  reply_t r = {.loop = &f.loop};
  uv_update_time(&f.loop);
  uint64_t t0 = uv_now(&f.loop);
  assert_int_equal(bus_request(f.bus, "nobody.home", "x", 1, 10000, reply_cb, &r, NULL), 0);
  assert_int_equal(r.calls, 0); /* reported from the loop, not from bus_request */
  RUN_UNTIL(&f, r.calls == 1);
  assert_int_equal(r.status, BUS_ENORESPONDERS);
  assert_false(r.had_msg);
  assert_true(r.at - t0 < 5000); /* did not wait for the timeout */
  settle(&f);
  assert_int_equal(r.calls, 1);
  fx_done(&f);
}

typedef struct {
  uint64_t other;
  int calls;
  int cancel_rc;
  int self_cancel_rc;
  uint64_t self;
} canceller_t;

static void cancel_other_cb(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  canceller_t *c = arg;
  c->calls++;
  c->cancel_rc = bus_request_cancel(bus, c->other);
  c->self_cancel_rc = bus_request_cancel(bus, c->self);
}

static void suite_request_cancel(void **state) {
  fx_t f;
  fx_init(&f);
  echo_t e = {.replies = 1};
  assert_int_equal(bus_subscribe(f.bus, "svc", NULL, echo_cb, &e, NULL), 0);
  uint64_t id;
  assert_int_equal(bus_request(f.bus, "svc", "a", 1, 5000, noreply_cb, NULL, &id), 0);
  assert_int_equal(bus_request_cancel(f.bus, id), 0);
  assert_int_equal(bus_request_cancel(f.bus, id), -ENOENT);
  settle(&f);
  assert_int_equal(e.n, 1); /* the request still went out; its answer is dropped */

  /* cancelling from inside another request's callback; and oneself */
  int sink = 0;
  assert_int_equal(bus_subscribe(f.bus, "mute", NULL, count_cb, &sink, NULL), 0);
  canceller_t c = {0};
  assert_int_equal(bus_request(f.bus, "mute", NULL, 0, 10, cancel_other_cb, &c, &c.self), 0);
  assert_int_equal(bus_request(f.bus, "mute", NULL, 0, 60000, noreply_cb, NULL, &c.other), 0);
  uint64_t t0 = uv_hrtime();
  settle(&f); /* returns once the long request is cancelled */
  assert_true(uv_hrtime() - t0 < 30000000000ULL);
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.cancel_rc, 0);
  assert_int_equal(c.self_cancel_rc, -ENOENT);
  fx_done(&f);
}

/* ---- close ---- */

typedef struct {
  reply_t r;
  bus_sub_t *sub;
  int req_rc;
  int unsub_rc;
} cancelled_t;

static void cancelled_cb(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  cancelled_t *c = arg;
  reply_cb(bus, status, msg, &c->r);
  c->req_rc = bus_request(bus, "svc", NULL, 0, 100, noreply_cb, NULL, NULL);
  if (c->sub) c->unsub_rc = bus_unsubscribe(c->sub);
  c->sub = NULL;
}

static void suite_close_with_pending_requests(void **state) {
  fx_t f;
  fx_init(&f);
  int sink = 0;
  cancelled_t c1 = {.r.closed = &f.closed}, c2 = {.r.closed = &f.closed};
  assert_int_equal(bus_subscribe(f.bus, "svc", NULL, count_cb, &sink, &c1.sub), 0);
  assert_int_equal(bus_request(f.bus, "svc", NULL, 0, 60000, cancelled_cb, &c1, NULL), 0);
  assert_int_equal(bus_request(f.bus, "svc", NULL, 0, 60000, cancelled_cb, &c2, NULL), 0);
  RUN_UNTIL(&f, sink == 2); /* the requests are delivered, now pending */
  uint64_t t0 = uv_hrtime();
  uv_close((uv_handle_t *)&f.tick, NULL);
  bus_close(f.bus, count_closed, &f.closed);
  assert_int_equal(c1.r.calls + c2.r.calls, 0); /* not from inside bus_close */
  assert_false(bus_is_connected(f.bus));
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_true(uv_hrtime() - t0 < 30000000000ULL);
  assert_int_equal(c1.r.calls, 1);
  assert_int_equal(c2.r.calls, 1);
  assert_int_equal(c1.r.status, -ECANCELED);
  assert_int_equal(c2.r.status, -ECANCELED);
  assert_int_equal(c1.r.closed_seen, 0); /* before on_closed */
  assert_int_equal(c1.req_rc, -ENOTCONN);
  assert_int_equal(c1.unsub_rc, 0); /* still valid until on_closed */
  assert_int_equal(f.closed, 1);
  assert_int_equal(uv_loop_close(&f.loop), 0);
}

/* A request whose deadline passed while the loop was busy elsewhere is still
 * reported as cancelled, not timed out, once bus_close was called. */
static void suite_close_after_deadline(void **state) {
  fx_t f;
  fx_init(&f);
  int sink = 0;
  assert_int_equal(bus_subscribe(f.bus, "svc", NULL, count_cb, &sink, NULL), 0);
  reply_t r = {0};
  assert_int_equal(bus_request(f.bus, "svc", NULL, 0, 5, reply_cb, &r, NULL), 0);
  if (strcmp(g_engine->kind, "local") == 0)
    uv_run(&f.loop, UV_RUN_NOWAIT); /* delivered at once, before the deadline */
  uv_sleep(20);
  fx_done(&f);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, -ECANCELED);
}

static void close_in_cb(bus_t *bus, const bus_msg_t *msg, void *arg) {
  fx_t *f = arg;
  f->closed += 10; /* count calls in the tens */
  bus_close(bus, count_closed, &f->closed);
  bus_close(bus, count_closed, &f->closed); /* ignored */
  assert_int_equal(bus_publish(bus, "x", NULL, NULL, 0), -ENOTCONN);
}

static void suite_close_from_callback(void **state) {
  fx_t f;
  fx_init(&f);
  int after = 0;
  assert_int_equal(bus_subscribe(f.bus, "x", NULL, close_in_cb, &f, NULL), 0);
  assert_int_equal(bus_subscribe(f.bus, "x", NULL, count_cb, &after, NULL), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(bus_publish(f.bus, "x", NULL, NULL, 0), 0);
  uv_close((uv_handle_t *)&f.tick, NULL);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(f.closed, 11); /* one delivery, one on_closed */
  /* nothing delivered after close; NATS does not order the two subscriptions
   * of one message, local does */
  assert_true(after <= (strcmp(g_engine->kind, "local") == 0 ? 0 : 1));
  assert_int_equal(uv_loop_close(&f.loop), 0);
}

static void suite_after_close(void **state) {
  fx_t f;
  fx_init(&f);
  int n = 0;
  bus_sub_t *s;
  assert_int_equal(bus_subscribe(f.bus, "x", NULL, count_cb, &n, &s), 0);
  assert_int_equal(bus_subscribe(f.bus, "y.*", "q", count_cb, &n, NULL), 0); /* freed by close */
  assert_int_equal(bus_publish(f.bus, "x", NULL, NULL, 0), 0); /* dropped by close */
  uv_close((uv_handle_t *)&f.tick, NULL);
  bus_close(f.bus, count_closed, &f.closed);
  assert_false(bus_is_connected(f.bus));
  assert_string_equal(bus_kind(f.bus), g_engine->kind);
  assert_int_equal(bus_publish(f.bus, "x", NULL, NULL, 0), -ENOTCONN);
  assert_int_equal(bus_subscribe(f.bus, "x", NULL, count_cb, &n, NULL), -ENOTCONN);
  assert_int_equal(bus_request(f.bus, "x", NULL, 0, 10, noreply_cb, NULL, NULL), -ENOTCONN);
  bus_msg_t m = {"a", "b", NULL, 0};
  assert_int_equal(bus_respond(f.bus, &m, NULL, 0), -ENOTCONN);
  assert_int_equal(bus_unsubscribe(s), 0);
  bus_close(f.bus, count_closed, &f.closed); /* ignored */
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(n, 0);
  assert_int_equal(f.closed, 1);
  assert_int_equal(uv_loop_close(&f.loop), 0);
}

/* Closing before the loop ever ran, with nothing else: on_closed may be NULL. */
static void suite_close_unused(void **state) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  bus_t *b = g_engine->open(&loop);
  assert_non_null(b);
  bus_close(b, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

#define BUS_SUITE_TESTS                                        \
  cmocka_unit_test(suite_invalid_args),                        \
      cmocka_unit_test(suite_max_payload),                     \
      cmocka_unit_test(suite_fanout_and_async),                \
      cmocka_unit_test(suite_queue_groups),                    \
      cmocka_unit_test(suite_queue_group_across_patterns),     \
      cmocka_unit_test(suite_unsubscribe_in_own_callback),     \
      cmocka_unit_test(suite_unsubscribe_other_during_delivery), \
      cmocka_unit_test(suite_unsubscribe_with_queued_messages), \
      cmocka_unit_test(suite_publish_from_callback),           \
      cmocka_unit_test(suite_ordering),                        \
      cmocka_unit_test(suite_data_copied),                     \
      cmocka_unit_test(suite_many_subjects),                   \
      cmocka_unit_test(suite_request_reply),                   \
      cmocka_unit_test(suite_request_timeout),                 \
      cmocka_unit_test(suite_request_timeouts_in_deadline_order), \
      cmocka_unit_test(suite_request_no_responders),           \
      cmocka_unit_test(suite_request_cancel),                  \
      cmocka_unit_test(suite_close_with_pending_requests),     \
      cmocka_unit_test(suite_close_after_deadline),            \
      cmocka_unit_test(suite_close_from_callback),             \
      cmocka_unit_test(suite_after_close),                     \
      cmocka_unit_test(suite_close_unused)

#endif
