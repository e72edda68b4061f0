/* test_msg_nonces.c — store/msg_nonces: lookups through growth, equal
 * hashes, the two generations (by count and by age), the keyed hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "store/msg_nonces.h"

static int64_t find(const msg_nonces_t *t, uint64_t h, int64_t id) {
  msg_nonces_iter_t it = {0};
  int64_t got;
  while ((got = msg_nonces_next(t, h, &it)) != 0)
    if (got == id) return got;
  return 0;
}

static void put(msg_nonces_t *t, uint64_t h, int64_t id, int64_t now) {
  assert_int_equal(msg_nonces_reserve(t, now), 0);
  msg_nonces_add(t, h, id);
}

/* 20,000 entries grow the table from 1,024 slots many times over: every
 * one is still found with its id, and hashes never added are not. */
static void test_find_through_growth(void **state) {
  (void)state;
  msg_nonces_t t;
  assert_int_equal(msg_nonces_init(&t, 0, 0), 0);
  enum { N = 20000 };
  for (int64_t i = 1; i <= N; i++) put(&t, msg_nonces_hash(&t, i % 7, 1, &i, sizeof i), i, 0);
  assert_int_equal(msg_nonces_count(&t), N);
  for (int64_t i = 1; i <= N; i++) {
    uint64_t h = msg_nonces_hash(&t, i % 7, 1, &i, sizeof i);
    msg_nonces_iter_t it = {0};
    assert_int_equal(msg_nonces_next(&t, h, &it), i);
    assert_int_equal(msg_nonces_next(&t, h, &it), 0);
  }
  for (int64_t i = N + 1; i <= N + 1000; i++) {
    msg_nonces_iter_t it = {0};
    assert_int_equal(msg_nonces_next(&t, msg_nonces_hash(&t, i % 7, 1, &i, sizeof i), &it), 0);
  }
  msg_nonces_free(&t);
}

/* A hash is not proof: every id stored under one hash comes back, in both
 * generations, and the caller decides. Neighbours in the probe chain with
 * other hashes are skipped. */
static void test_equal_hashes_all_returned(void **state) {
  (void)state;
  msg_nonces_t t;
  assert_int_equal(msg_nonces_init(&t, 0, 3), 0);
  put(&t, 42, 1, 0);
  put(&t, 42 + 1024, 2, 0); /* same first slot in a 1,024-slot table */
  put(&t, 42, 3, 0);
  put(&t, 42, 4, 0); /* turns: 1..3 are the previous generation now */
  put(&t, 43, 5, 0);
  bool seen[6] = {0};
  msg_nonces_iter_t it = {0};
  int64_t id;
  int n = 0;
  while ((id = msg_nonces_next(&t, 42, &it)) != 0) {
    assert_true(id >= 1 && id <= 5);
    assert_false(seen[id]);
    seen[id] = true;
    n++;
  }
  assert_int_equal(n, 3);
  assert_true(seen[1] && seen[3] && seen[4]);
  assert_int_equal(msg_nonces_next(&t, 42, &it), 0); /* stays done */
  assert_int_equal(find(&t, 42 + 1024, 2), 2);
  msg_nonces_free(&t);
}

/* gen_max 4: the last 4 added are always found, the 4 before them too
 * until the current generation fills; memory holds at most 2 × gen_max. */
static void test_generations_by_count(void **state) {
  (void)state;
  msg_nonces_t t;
  assert_int_equal(msg_nonces_init(&t, 0, 4), 0);
  for (int64_t i = 1; i <= 8; i++) put(&t, (uint64_t)i * 1000, i, 0);
  for (int64_t i = 1; i <= 8; i++) assert_int_equal(find(&t, (uint64_t)i * 1000, i), i);
  put(&t, 9000, 9, 0); /* 5..8 become the previous; 1..4 are dropped */
  assert_int_equal(msg_nonces_count(&t), 5);
  for (int64_t i = 1; i <= 4; i++) assert_int_equal(find(&t, (uint64_t)i * 1000, i), 0);
  for (int64_t i = 5; i <= 9; i++) assert_int_equal(find(&t, (uint64_t)i * 1000, i), i);
  for (int64_t i = 10; i <= 100; i++) {
    put(&t, (uint64_t)i * 1000, i, 0);
    assert_true(msg_nonces_count(&t) <= 8);
    for (int64_t k = i - 3; k <= i; k++) assert_int_equal(find(&t, (uint64_t)k * 1000, k), k);
  }
  msg_nonces_free(&t);
}

/* gen_ms 1,000: a generation takes adds until its first is 1 s old; a
 * clock that goes back turns nothing. */
static void test_generations_by_age(void **state) {
  (void)state;
  msg_nonces_t t;
  assert_int_equal(msg_nonces_init(&t, 1000, 0), 0);
  put(&t, 1, 1, 5000);
  put(&t, 2, 2, 5999);
  put(&t, 3, 3, 4000); /* clock went back: same generation */
  assert_int_equal(t.cur, 0);
  put(&t, 4, 4, 6000); /* first is 1 s old: turns */
  assert_int_equal(t.cur, 1);
  for (int64_t i = 1; i <= 4; i++) assert_int_equal(find(&t, (uint64_t)i, i), i);
  put(&t, 5, 5, 6999);
  assert_int_equal(t.cur, 1);
  put(&t, 6, 6, 7000); /* drops 1..3 */
  for (int64_t i = 1; i <= 3; i++) assert_int_equal(find(&t, (uint64_t)i, i), 0);
  for (int64_t i = 4; i <= 6; i++) assert_int_equal(find(&t, (uint64_t)i, i), i);
  /* a quiet spell: nothing turns without adds, so old entries stay found */
  for (int64_t i = 4; i <= 6; i++) assert_int_equal(find(&t, (uint64_t)i, i), i);
  msg_nonces_free(&t);
}

/* The hash covers author, channel and nonce (with fixed-width ids), and
 * its key differs per table, so a client cannot aim nonces at one slot of
 * every server. */
static void test_hash(void **state) {
  (void)state;
  msg_nonces_t a, b;
  assert_int_equal(msg_nonces_init(&a, 0, 0), 0);
  assert_int_equal(msg_nonces_init(&b, 0, 0), 0);
  uint64_t h = msg_nonces_hash(&a, 1, 23, "x", 1);
  assert_true(h == msg_nonces_hash(&a, 1, 23, "x", 1));
  assert_true(h != msg_nonces_hash(&a, 12, 3, "x", 1));
  assert_true(h != msg_nonces_hash(&a, 2, 23, "x", 1));
  assert_true(h != msg_nonces_hash(&a, 1, 24, "x", 1));
  assert_true(h != msg_nonces_hash(&a, 1, 23, "y", 1));
  assert_true(h != msg_nonces_hash(&a, 1, 23, "x\0", 2));
  assert_true(h != msg_nonces_hash(&b, 1, 23, "x", 1));
  /* bytes past the hashed prefix do not change the hash (callers compare) */
  char longer[MSG_NONCES_HASHED + 10];
  memset(longer, 'n', sizeof longer);
  uint64_t p = msg_nonces_hash(&a, 1, 1, longer, MSG_NONCES_HASHED);
  assert_true(p == msg_nonces_hash(&a, 1, 1, longer, sizeof longer));
  /* weakened (for tests of callers): only the low bits are left */
  msg_nonces_weaken(&a, 2);
  for (int64_t i = 0; i < 100; i++) assert_true(msg_nonces_hash(&a, i, 1, "x", 1) < 4);
  msg_nonces_free(&a);
  msg_nonces_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_find_through_growth),
      cmocka_unit_test(test_equal_hashes_all_returned),
      cmocka_unit_test(test_generations_by_count),
      cmocka_unit_test(test_generations_by_age),
      cmocka_unit_test(test_hash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
