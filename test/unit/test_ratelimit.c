#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "core/ratelimit.h"

static void test_burst_then_refill(void **state) {
  ratelimit_t *rl = ratelimit_new(10, 20, 64);
  uint64_t retry = 0;
  for (int i = 0; i < 20; i++) assert_true(ratelimit_take(rl, "1.2.3.4", 1000, &retry));
  assert_false(ratelimit_take(rl, "1.2.3.4", 1000, &retry));
  assert_in_range(retry, 90, 101); /* one token every 100 ms */
  assert_false(ratelimit_take(rl, "1.2.3.4", 1050, &retry));
  assert_true(ratelimit_take(rl, "1.2.3.4", 1101, &retry));
  /* Two seconds idle refill the whole burst, not more. */
  for (int i = 0; i < 20; i++) assert_true(ratelimit_take(rl, "1.2.3.4", 4000, &retry));
  assert_false(ratelimit_take(rl, "1.2.3.4", 4000, &retry));
  ratelimit_free(rl);
}

static void test_keys_are_independent(void **state) {
  ratelimit_t *rl = ratelimit_new(1, 2, 64);
  uint64_t retry;
  assert_true(ratelimit_take(rl, "a", 0, &retry));
  assert_true(ratelimit_take(rl, "a", 0, &retry));
  assert_false(ratelimit_take(rl, "a", 0, &retry));
  assert_true(ratelimit_take(rl, "b", 0, &retry));
  ratelimit_free(rl);
}

static void test_bounded_memory_evicts_idle(void **state) {
  /* 4 slots, 1000 distinct keys: must not crash or grow; an active key
   * touched recently survives eviction by older idle ones. */
  ratelimit_t *rl = ratelimit_new(1, 1, 4);
  uint64_t retry;
  char key[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
    assert_true(ratelimit_take(rl, key, (uint64_t)i, &retry));
  }
  assert_true(ratelimit_take(rl, "hot", 5000, &retry));
  assert_false(ratelimit_take(rl, "hot", 5000, &retry)); /* still remembered */
  ratelimit_free(rl);
}

static void test_invalid_arguments(void **state) {
  assert_null(ratelimit_new(0, 1, 4));
  assert_null(ratelimit_new(1, 0, 4));
  assert_null(ratelimit_new(1, 1, 0));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_then_refill),
      cmocka_unit_test(test_keys_are_independent),
      cmocka_unit_test(test_bounded_memory_evicts_idle),
      cmocka_unit_test(test_invalid_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
