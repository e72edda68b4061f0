/*
 * notifications_store_suite.h — the backend-independent test-suite of the
 * notifications store (store/notifications_store.h), shared by
 * test_notifications_store.c (SQLite) and test_notifications_store_redis.c
 * (a real redis-server): the same tests decide whether a backend meets the
 * contract.
 *
 * Include it in one test file (it defines static functions). Set
 * nsuite_make / nsuite_destroy first: make(loop, clock) returns a fresh
 * store on loop whose clock reads *clock (NULL on failure); destroy
 * closes it. Put NOTIF_STORE_SUITE_TESTS in the cmocka test array. User ids
 * are fresh per test (random base), so a shared Redis holding other runs'
 * keys does not matter.
 */
#ifndef STORM_TEST_NOTIFICATIONS_STORE_SUITE_H
#define STORM_TEST_NOTIFICATIONS_STORE_SUITE_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "store/notifications_store.h"

static notif_store_t *(*nsuite_make)(uv_loop_t *loop, int64_t *clock);
static void (*nsuite_destroy)(notif_store_t *s);

typedef struct {
  uv_loop_t loop;
  int64_t clock;
  int64_t uid; /* a fresh user id per test; uid + 1, + 2 are free too */
  notif_store_t *s;
} nctx_t;

static int64_t nsuite_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int nsuite_setup(void **state) {
  nctx_t *c = calloc(1, sizeof *c);
  if (!c) return -1;
  uv_loop_init(&c->loop);
  c->clock = nsuite_now();
  static int64_t seq;
  if (!seq) {
    srand((unsigned)(nsuite_now() ^ getpid()));
    seq = ((int64_t)rand() % 1000000) * 1000 + 1000000000;
  }
  c->uid = (seq += 10);
  c->s = nsuite_make(&c->loop, &c->clock);
  *state = c;
  return c->s ? 0 : -1;
}

static int nsuite_teardown(void **state) {
  nctx_t *c = *state;
  if (c->s) nsuite_destroy(c->s);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&c->loop);
  free(c);
  return rc == 0 ? 0 : -1;
}

#define NC(state) ((nctx_t *)*(state))

/* ---- synchronous wrappers: issue, check no synchronous callback, run the loop ---- */

typedef struct {
  int calls, status;
  int64_t n;
  size_t nitems;
  int64_t ids[NOTIF_CAP + 1];
  int64_t created[NOTIF_CAP + 1];
  char types[NOTIF_CAP + 1][NOTIF_TYPE_MAX + 1];
  char payloads[4][NOTIF_PAYLOAD_MAX + 1]; /* the first four */
} nres_t;

static void nres_status(void *arg, int status) {
  nres_t *r = arg;
  r->calls++;
  r->status = status;
}

static void nres_count(void *arg, int status, int64_t n) {
  nres_t *r = arg;
  r->calls++;
  r->status = status;
  r->n = n;
}

static void nres_list(void *arg, int status, const notif_t *items, size_t n) {
  nres_t *r = arg;
  r->calls++;
  r->status = status;
  r->nitems = n;
  for (size_t i = 0; i < n && i <= NOTIF_CAP; i++) {
    r->ids[i] = items[i].id;
    r->created[i] = items[i].created_at;
    snprintf(r->types[i], sizeof r->types[i], "%s", items[i].type);
    assert_int_equal(strlen(items[i].payload), items[i].payload_len);
    if (i < 4) snprintf(r->payloads[i], sizeof r->payloads[i], "%s", items[i].payload);
  }
}

static void nwait(nctx_t *c, nres_t *r, int want_calls) {
  for (int i = 0; i < 100000 && r->calls < want_calls; i++) uv_run(&c->loop, UV_RUN_ONCE);
  assert_int_equal(r->calls, want_calls);
}

static int n_add_full(nctx_t *c, int64_t uid, int64_t id, int64_t created, const char *type,
                      const char *payload, int64_t mute_ch) {
  nres_t r = {0};
  notif_t n = {.id = id, .user_id = uid, .created_at = created, .type = type,
               .payload = payload, .payload_len = strlen(payload), .mute_channel = mute_ch};
  int rc = c->s->ops->add(c->s, &n, nres_status, &r);
  if (rc < 0) return rc;
  assert_int_equal(r.calls, 0); /* never from inside the call */
  nwait(c, &r, 1);
  return r.status;
}

static int n_add(nctx_t *c, int64_t uid, int64_t id) {
  return n_add_full(c, uid, id, c->clock, "dm", "{\"k\":1}", 0);
}

static void n_list(nctx_t *c, int64_t uid, nres_t *r) {
  memset(r, 0, sizeof *r);
  assert_int_equal(c->s->ops->list(c->s, uid, nres_list, r), 0);
  assert_int_equal(r->calls, 0);
  nwait(c, r, 1);
  assert_int_equal(r->status, 0);
}

static int64_t n_read(nctx_t *c, int64_t uid, const int64_t *ids, size_t nids) {
  nres_t r = {0};
  assert_int_equal(c->s->ops->mark_read(c->s, uid, ids, nids, nres_count, &r), 0);
  assert_int_equal(r.calls, 0);
  nwait(c, &r, 1);
  assert_int_equal(r.status, 0);
  return r.n;
}

static void n_mute(nctx_t *c, int64_t uid, int64_t ch, bool muted) {
  nres_t r = {0};
  assert_int_equal(c->s->ops->mute_set(c->s, uid, ch, muted, nres_status, &r), 0);
  assert_int_equal(r.calls, 0);
  nwait(c, &r, 1);
  assert_int_equal(r.status, 0);
}

static int64_t n_muted(nctx_t *c, int64_t uid, int64_t ch) {
  nres_t r = {0};
  assert_int_equal(c->s->ops->mute_get(c->s, uid, ch, nres_count, &r), 0);
  assert_int_equal(r.calls, 0);
  nwait(c, &r, 1);
  assert_int_equal(r.status, 0);
  return r.n;
}

/* ---- the tests ---- */

static void nt_add_list_newest_first(void **state) {
  nctx_t *c = NC(state);
  assert_int_equal(n_add_full(c, c->uid, 11, c->clock - 3, "dm", "{\"a\":1}", 0), 0);
  assert_int_equal(n_add_full(c, c->uid, 12, c->clock - 2, "mention", "{\"b\":\"x:y:z\"}", 0), 0);
  assert_int_equal(n_add_full(c, c->uid, 13, c->clock - 1, "custom.kind-1",
                              "{\"u\":\"\xc3\xa9\",\"n\":[1,2]}", 0), 0);
  nres_t r;
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, 3);
  assert_int_equal(r.ids[0], 13);
  assert_int_equal(r.ids[1], 12);
  assert_int_equal(r.ids[2], 11);
  assert_string_equal(r.types[0], "custom.kind-1");
  assert_string_equal(r.types[1], "mention");
  assert_string_equal(r.types[2], "dm");
  assert_string_equal(r.payloads[0], "{\"u\":\"\xc3\xa9\",\"n\":[1,2]}");
  assert_string_equal(r.payloads[1], "{\"b\":\"x:y:z\"}");
  assert_string_equal(r.payloads[2], "{\"a\":1}");
  assert_int_equal(r.created[0], c->clock - 1);
  assert_int_equal(r.created[2], c->clock - 3);
}

static void nt_empty_and_isolated(void **state) {
  nctx_t *c = NC(state);
  nres_t r;
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, 0);
  assert_int_equal(n_add(c, c->uid, 5), 0);
  n_list(c, c->uid + 1, &r);
  assert_int_equal(r.nitems, 0);
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, 1);
}

static void nt_cap_keeps_newest(void **state) {
  nctx_t *c = NC(state);
  for (int64_t i = 1; i <= 150; i++) assert_int_equal(n_add(c, c->uid, i), 0);
  nres_t r;
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, NOTIF_CAP);
  for (size_t i = 0; i < NOTIF_CAP; i++) assert_int_equal(r.ids[i], 150 - (int64_t)i);
}

/* Adds issued back to back without waiting (a burst): every callback
 * comes, once, and the cap still holds. */
static void nt_burst_pipelined(void **state) {
  nctx_t *c = NC(state);
  enum { N = 2000 };
  static nres_t rs[N];
  memset(rs, 0, sizeof rs);
  for (int i = 0; i < N; i++) {
    notif_t n = {.id = i + 1, .user_id = c->uid + (i % 2), .created_at = c->clock, .type = "dm",
                 .payload = "{}", .payload_len = 2};
    assert_int_equal(c->s->ops->add(c->s, &n, nres_status, &rs[i]), 0);
  }
  for (int k = 0; k < 200000; k++) {
    int done = 0;
    for (int i = 0; i < N; i++) done += rs[i].calls;
    if (done == N) break;
    uv_run(&c->loop, UV_RUN_ONCE);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(rs[i].calls, 1);
    assert_int_equal(rs[i].status, 0);
  }
  nres_t r;
  n_list(c, c->uid + 1, &r);
  assert_int_equal(r.nitems, NOTIF_CAP);
  assert_int_equal(r.ids[0], N);
  assert_int_equal(r.ids[NOTIF_CAP - 1], N - 2 * (NOTIF_CAP - 1));
}

static void nt_expiry(void **state) {
  nctx_t *c = NC(state);
  int64_t t0 = c->clock;
  assert_int_equal(n_add_full(c, c->uid, 1, t0, "dm", "{}", 0), 0);
  assert_int_equal(n_add_full(c, c->uid, 2, t0 + 1000, "dm", "{}", 0), 0);
  /* Created long ago: never listed, even right after the add. */
  assert_int_equal(n_add_full(c, c->uid, 3, t0 - NOTIF_TTL_MS - 1, "dm", "{}", 0), 0);
  nres_t r;
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, 2);
  c->clock = t0 + NOTIF_TTL_MS - 1;
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, 2);
  c->clock = t0 + NOTIF_TTL_MS; /* the first is exactly 7 days old */
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, 1);
  assert_int_equal(r.ids[0], 2);
  c->clock = t0 + NOTIF_TTL_MS + 1000;
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, 0);
}

static void nt_read_all(void **state) {
  nctx_t *c = NC(state);
  for (int64_t i = 1; i <= 3; i++) assert_int_equal(n_add(c, c->uid, i), 0);
  assert_int_equal(n_add(c, c->uid + 1, 9), 0);
  assert_int_equal(n_read(c, c->uid, NULL, 0), 3);
  nres_t r;
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, 0);
  assert_int_equal(n_read(c, c->uid, NULL, 0), 0);
  n_list(c, c->uid + 1, &r); /* another user's are untouched */
  assert_int_equal(r.nitems, 1);
}

static void nt_read_ids(void **state) {
  nctx_t *c = NC(state);
  for (int64_t i = 1; i <= 4; i++) assert_int_equal(n_add(c, c->uid, i), 0);
  int64_t some[] = {2, 4, 77};
  assert_int_equal(n_read(c, c->uid, some, 3), 2);
  nres_t r;
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, 2);
  assert_int_equal(r.ids[0], 3);
  assert_int_equal(r.ids[1], 1);
  assert_int_equal(n_read(c, c->uid, some, 2), 0); /* already read */
  int64_t dup[] = {3, 3};
  assert_int_equal(n_read(c, c->uid, dup, 2), 1);
}

static void nt_read_other_users_ids(void **state) {
  nctx_t *c = NC(state);
  assert_int_equal(n_add(c, c->uid, 100), 0);
  assert_int_equal(n_add(c, c->uid, 101), 0);
  int64_t theirs[] = {100, 101};
  assert_int_equal(n_read(c, c->uid + 1, theirs, 2), 0);
  nres_t r;
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, 2);
}

static void nt_mute(void **state) {
  nctx_t *c = NC(state);
  assert_int_equal(n_muted(c, c->uid, 7), 0);
  n_mute(c, c->uid, 7, true);
  n_mute(c, c->uid, 7, true); /* idempotent */
  assert_int_equal(n_muted(c, c->uid, 7), 1);
  assert_int_equal(n_muted(c, c->uid, 8), 0);
  assert_int_equal(n_muted(c, c->uid + 1, 7), 0); /* per user */
  assert_int_equal(n_add_full(c, c->uid, 1, c->clock, "dm", "{}", 7), NOTIF_MUTED);
  assert_int_equal(n_add_full(c, c->uid, 2, c->clock, "dm", "{}", 8), 0);
  assert_int_equal(n_add_full(c, c->uid, 3, c->clock, "dm", "{}", 0), 0); /* no check */
  assert_int_equal(n_add_full(c, c->uid + 1, 4, c->clock, "dm", "{}", 7), 0);
  nres_t r;
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, 2);
  assert_int_equal(r.ids[0], 3);
  assert_int_equal(r.ids[1], 2);
  n_mute(c, c->uid, 7, false);
  n_mute(c, c->uid, 7, false);
  assert_int_equal(n_muted(c, c->uid, 7), 0);
  assert_int_equal(n_add_full(c, c->uid, 5, c->clock, "dm", "{}", 7), 0);
}

static void nt_invalid_arguments(void **state) {
  nctx_t *c = NC(state);
  nres_t r = {0};
  notif_store_t *s = c->s;
  notif_t ok = {.id = 1, .user_id = c->uid, .created_at = c->clock, .type = "dm",
                .payload = "{}", .payload_len = 2};
  notif_t n;
  const char *bad_types[] = {"", "Dm", "a:b", "a b", "x\xc3\xa9", "abcdefghijklmnopqrstuvwxyz0123456"};
  for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
    n = ok;
    n.type = bad_types[i];
    assert_int_equal(s->ops->add(s, &n, nres_status, &r), -EINVAL);
  }
  n = ok; n.type = NULL;
  assert_int_equal(s->ops->add(s, &n, nres_status, &r), -EINVAL);
  n = ok; n.payload = "[]";
  assert_int_equal(s->ops->add(s, &n, nres_status, &r), -EINVAL);
  n = ok; n.payload = "{"; n.payload_len = 1;
  assert_int_equal(s->ops->add(s, &n, nres_status, &r), -EINVAL);
  static char big[NOTIF_PAYLOAD_MAX + 2];
  memset(big, ' ', sizeof big - 1);
  big[0] = '{';
  big[NOTIF_PAYLOAD_MAX] = '}';
  n = ok; n.payload = big; n.payload_len = NOTIF_PAYLOAD_MAX + 1;
  assert_int_equal(s->ops->add(s, &n, nres_status, &r), -EINVAL);
  n = ok; n.id = 0;
  assert_int_equal(s->ops->add(s, &n, nres_status, &r), -EINVAL);
  n = ok; n.user_id = -1;
  assert_int_equal(s->ops->add(s, &n, nres_status, &r), -EINVAL);
  n = ok; n.mute_channel = -1;
  assert_int_equal(s->ops->add(s, &n, nres_status, &r), -EINVAL);
  assert_int_equal(s->ops->add(s, &ok, NULL, &r), -EINVAL);
  assert_int_equal(s->ops->add(s, NULL, nres_status, &r), -EINVAL);
  assert_int_equal(s->ops->list(s, 0, nres_list, &r), -EINVAL);
  assert_int_equal(s->ops->list(s, c->uid, NULL, &r), -EINVAL);
  int64_t ids[NOTIF_READ_IDS_MAX + 1] = {1};
  assert_int_equal(s->ops->mark_read(s, c->uid, ids, 0, nres_count, &r), -EINVAL);
  assert_int_equal(s->ops->mark_read(s, c->uid, ids, NOTIF_READ_IDS_MAX + 1, nres_count, &r), -EINVAL);
  assert_int_equal(s->ops->mark_read(s, c->uid, NULL, 1, nres_count, &r), -EINVAL);
  assert_int_equal(s->ops->mark_read(s, 0, NULL, 0, nres_count, &r), -EINVAL);
  assert_int_equal(s->ops->mute_set(s, c->uid, 0, true, nres_status, &r), -EINVAL);
  assert_int_equal(s->ops->mute_set(s, 0, 1, true, nres_status, &r), -EINVAL);
  assert_int_equal(s->ops->mute_get(s, c->uid, -3, nres_count, &r), -EINVAL);
  assert_int_equal(s->ops->mute_get(s, c->uid, 1, NULL, &r), -EINVAL);
  uv_run(&c->loop, UV_RUN_NOWAIT);
  assert_int_equal(r.calls, 0); /* a failed call never calls back */
  /* The exact limits are accepted. */
  static char max[NOTIF_PAYLOAD_MAX + 1];
  memset(max, ' ', NOTIF_PAYLOAD_MAX);
  max[0] = '{';
  max[NOTIF_PAYLOAD_MAX - 1] = '}';
  assert_int_equal(n_add_full(c, c->uid, 1, c->clock, "abcdefghijklmnopqrstuvwxyz012345", max, 0), 0);
  assert_int_equal(n_read(c, c->uid, ids, NOTIF_READ_IDS_MAX), 1);
  assert_true(s->ops->ready(s));
}

#define NSUITE_TEST(f) cmocka_unit_test_setup_teardown(f, nsuite_setup, nsuite_teardown)
#define NOTIF_STORE_SUITE_TESTS                                                              \
  NSUITE_TEST(nt_add_list_newest_first), NSUITE_TEST(nt_empty_and_isolated),                 \
      NSUITE_TEST(nt_cap_keeps_newest), NSUITE_TEST(nt_burst_pipelined),                     \
      NSUITE_TEST(nt_expiry), NSUITE_TEST(nt_read_all), NSUITE_TEST(nt_read_ids),            \
      NSUITE_TEST(nt_read_other_users_ids), NSUITE_TEST(nt_mute),                            \
      NSUITE_TEST(nt_invalid_arguments)

#endif
