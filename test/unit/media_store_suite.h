/*
 * media_store_suite.h — the backend-independent tests of the media
 * metadata store (store/media_store.h), shared by test_media_service.c
 * (SQLite) and test_media_store_pg.c (PostgreSQL): the same tests decide
 * whether a backend meets the contract.
 *
 * Include it in one test file (it defines static functions). Call
 * media_store_suite_use(make, destroy) first: every test of
 * MEDIA_STORE_SUITE_TESTS runs on a fresh, empty store from make();
 * destroy closes it and removes its data.
 */
#ifndef STORM_TEST_MEDIA_STORE_SUITE_H
#define STORM_TEST_MEDIA_STORE_SUITE_H

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/media_store.h"

static media_store_t *(*mss_make)(void);
static void (*mss_destroy)(media_store_t *);

static int mss_setup(void **state) {
  *state = mss_make();
  return *state ? 0 : -1;
}

static int mss_teardown(void **state) {
  mss_destroy(*state);
  return 0;
}

static media_rec_t mss_rec(const char *key, int64_t owner, const char *mime, int64_t size) {
  media_rec_t r;
  memset(&r, 0, sizeof r);
  snprintf(r.key, sizeof r.key, "%s", key);
  r.owner_id = owner;
  snprintf(r.mime, sizeof r.mime, "%s", mime);
  r.size = size;
  for (int i = 0; i < 32; i++) r.sha256[i] = (uint8_t)(i * 7 + 1);
  r.created_at = 1700000000123;
  return r;
}

/* Every field comes back as written; remove is the owner's only. */
static void mss_round_trip(void **state) {
  media_store_t *s = *state;
  media_rec_t r = mss_rec("0123456789abcdef0123456789abcdef-a.png", 7, "image/png", 12345);
  r.sha256[0] = 0; /* a NUL byte inside the digest survives */
  assert_int_equal(s->ops->insert(s, &r), 0);
  assert_int_equal(s->ops->insert(s, &r), -EEXIST);
  media_rec_t got;
  memset(&got, 0xAA, sizeof got);
  assert_int_equal(s->ops->get(s, r.key, &got), 0);
  assert_string_equal(got.key, r.key);
  assert_int_equal(got.owner_id, 7);
  assert_string_equal(got.mime, "image/png");
  assert_int_equal(got.size, 12345);
  assert_memory_equal(got.sha256, r.sha256, 32);
  assert_int_equal(got.created_at, 1700000000123);
  assert_int_equal(s->ops->get(s, r.key, NULL), 0); /* out may be NULL */
  assert_int_equal(s->ops->get(s, "0123456789abcdef0123456789abcdef-b.png", &got), -ENOENT);
  assert_int_equal(s->ops->remove(s, r.key, 8), -ENOENT); /* not the owner's */
  assert_int_equal(s->ops->get(s, r.key, &got), 0);
  assert_int_equal(s->ops->remove(s, r.key, 7), 0);
  assert_int_equal(s->ops->get(s, r.key, &got), -ENOENT);
  assert_int_equal(s->ops->remove(s, r.key, 7), -ENOENT);
  /* a removed key may be recorded again (ids are random: only in tests) */
  assert_int_equal(s->ops->insert(s, &r), 0);
  assert_true(s->ops->healthy(s));
}

/* Limits are refused, never truncated: exactly the limit passes. */
static void mss_limits(void **state) {
  media_store_t *s = *state;
  media_rec_t r = mss_rec("k", 1, "image/png", 1);
  memset(r.key, 'k', MEDIA_REC_KEY_MAX);
  r.key[MEDIA_REC_KEY_MAX] = '\0';
  memset(r.mime, 'm', MEDIA_REC_MIME_MAX);
  r.mime[MEDIA_REC_MIME_MAX] = '\0';
  assert_int_equal(s->ops->insert(s, &r), 0);
  media_rec_t got;
  assert_int_equal(s->ops->get(s, r.key, &got), 0);
  assert_string_equal(got.key, r.key);
  assert_string_equal(got.mime, r.mime);
  char long_key[MEDIA_REC_KEY_MAX + 2];
  memset(long_key, 'k', MEDIA_REC_KEY_MAX + 1);
  long_key[MEDIA_REC_KEY_MAX + 1] = '\0';
  assert_int_equal(s->ops->get(s, long_key, &got), -EINVAL);
  assert_int_equal(s->ops->remove(s, long_key, 1), -EINVAL);
  assert_int_equal(s->ops->get(s, "", &got), -EINVAL);
  assert_int_equal(s->ops->get(s, NULL, &got), -EINVAL);
  assert_int_equal(s->ops->remove(s, NULL, 1), -EINVAL);
  media_rec_t bad = mss_rec("k2", 1, "image/png", -1);
  assert_int_equal(s->ops->insert(s, &bad), -EINVAL);
  bad = mss_rec("k2", 1, "", 1);
  assert_int_equal(s->ops->insert(s, &bad), -EINVAL);
  bad = mss_rec("", 1, "image/png", 1);
  assert_int_equal(s->ops->insert(s, &bad), -EINVAL);
  memset(bad.key, 'k', sizeof bad.key); /* no NUL within the field */
  assert_int_equal(s->ops->insert(s, &bad), -EINVAL);
  assert_int_equal(s->ops->insert(s, NULL), -EINVAL);
  bad = mss_rec("k2", 1, "image/png", 0); /* an empty file is fine */
  assert_int_equal(s->ops->insert(s, &bad), 0);
  assert_true(s->ops->healthy(s));
}

/* Threads inserting the same keys: each key recorded exactly once. */
#define MSS_THREADS 4
#define MSS_KEYS 50
typedef struct {
  media_store_t *s;
  int won;
  int other;
} mss_worker_t;

static void *mss_worker(void *arg) {
  mss_worker_t *w = arg;
  for (int i = 0; i < MSS_KEYS; i++) {
    char key[32];
    snprintf(key, sizeof key, "key-%d", i);
    media_rec_t r = mss_rec(key, i + 1, "video/mp4", i);
    int rc = w->s->ops->insert(w->s, &r);
    if (rc == 0) w->won++;
    else if (rc != -EEXIST) w->other++;
  }
  return NULL;
}

static void mss_concurrent(void **state) {
  media_store_t *s = *state;
  pthread_t t[MSS_THREADS];
  mss_worker_t w[MSS_THREADS];
  for (int i = 0; i < MSS_THREADS; i++) {
    w[i] = (mss_worker_t){.s = s};
    assert_int_equal(pthread_create(&t[i], NULL, mss_worker, &w[i]), 0);
  }
  int won = 0;
  for (int i = 0; i < MSS_THREADS; i++) {
    pthread_join(t[i], NULL);
    won += w[i].won;
    assert_int_equal(w[i].other, 0);
  }
  assert_int_equal(won, MSS_KEYS);
  media_rec_t got;
  assert_int_equal(s->ops->get(s, "key-49", &got), 0);
  assert_int_equal(got.owner_id, 50);
}

#define MSS_TEST(f) cmocka_unit_test_setup_teardown(f, mss_setup, mss_teardown)
#define MEDIA_STORE_SUITE_TESTS MSS_TEST(mss_round_trip), MSS_TEST(mss_limits), MSS_TEST(mss_concurrent)

static void media_store_suite_use(media_store_t *(*make)(void), void (*destroy)(media_store_t *)) {
  mss_make = make;
  mss_destroy = destroy;
}

#endif
