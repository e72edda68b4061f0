/* Unit tests for storm-load's latency histogram (tools/load/hist.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "load/hist.h"

static lhist_t h1, h2, h3;

/* Every reported percentile must be >= the true value and within 1/128 above. */
static void assert_close(uint64_t got, uint64_t truth) {
  assert_true(got >= truth);
  assert_true((double)(got - truth) <= (double)truth / 128.0 + 1e-9);
}

static void test_empty(void **state) {
  lhist_init(&h1);
  assert_int_equal(lhist_percentile(&h1, 50), 0);
  assert_int_equal(h1.total, 0);
  assert_true(lhist_mean(&h1) == 0.0);
}

static void test_exact_small(void **state) {
  lhist_init(&h1);
  for (uint64_t v = 1; v <= 100; v++) lhist_record(&h1, v);
  assert_int_equal(lhist_percentile(&h1, 50), 50);
  assert_int_equal(lhist_percentile(&h1, 90), 90);
  assert_int_equal(lhist_percentile(&h1, 99), 99);
  assert_int_equal(lhist_percentile(&h1, 100), 100);
  assert_int_equal(h1.min, 1);
  assert_int_equal(h1.max, 100);
  assert_true(lhist_mean(&h1) == 50.5);
}

static void test_uniform_large(void **state) {
  /* 1..1,000,000 µs: the true p-th percentile is p * 10,000. */
  lhist_init(&h1);
  for (uint64_t v = 1; v <= 1000000; v++) lhist_record(&h1, v);
  assert_close(lhist_percentile(&h1, 50), 500000);
  assert_close(lhist_percentile(&h1, 90), 900000);
  assert_close(lhist_percentile(&h1, 99), 990000);
  assert_close(lhist_percentile(&h1, 99.9), 999000);
  assert_int_equal(lhist_percentile(&h1, 100), 1000000);
}

static void test_bimodal(void **state) {
  /* 99% at 2 ms, 1% at 3 s: p99 is 2 ms, p99.9 is 3 s. */
  lhist_init(&h1);
  for (int i = 0; i < 9900; i++) lhist_record(&h1, 2000);
  for (int i = 0; i < 100; i++) lhist_record(&h1, 3000000);
  assert_close(lhist_percentile(&h1, 50), 2000);
  assert_close(lhist_percentile(&h1, 99), 2000);
  assert_close(lhist_percentile(&h1, 99.9), 3000000);
  assert_int_equal(lhist_percentile(&h1, 100), 3000000);
}

static void test_mapping_monotonic_and_bounded(void **state) {
  /* Buckets are contiguous: every value maps into a bucket whose upper
   * bound is >= it, and the bucket before ends below it. */
  uint64_t vals[] = {0, 1, 255, 256, 257, 511, 512, 1000, 65535, 65536, 123456789,
                     LHIST_MAX_VALUE - 1, LHIST_MAX_VALUE};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    unsigned idx = lhist_index(vals[i]);
    assert_true(idx < LHIST_BUCKETS);
    assert_true(lhist_bucket_high(idx) >= vals[i]);
    if (idx > 0) assert_true(lhist_bucket_high(idx - 1) < vals[i]);
  }
  assert_int_equal(lhist_index(LHIST_MAX_VALUE), LHIST_BUCKETS - 1);
  assert_int_equal(lhist_bucket_high(LHIST_BUCKETS - 1), LHIST_MAX_VALUE);
}

static void test_edge_values(void **state) {
  lhist_init(&h1);
  lhist_record(&h1, 0);
  assert_int_equal(lhist_percentile(&h1, 50), 0);
  lhist_record(&h1, UINT64_MAX); /* clamped */
  assert_int_equal(h1.clamped, 1);
  assert_int_equal(h1.max, LHIST_MAX_VALUE);
  assert_int_equal(lhist_percentile(&h1, 100), LHIST_MAX_VALUE);
  assert_true(lhist_mean(&h1) > 0);
  /* Out-of-range percentiles. */
  assert_int_equal(lhist_percentile(&h1, 0), 0);
  assert_int_equal(lhist_percentile(&h1, -1), 0);
  assert_int_equal(lhist_percentile(&h1, 100.5), 0);
}

static void test_merge_equals_combined(void **state) {
  lhist_init(&h1);
  lhist_init(&h2);
  lhist_init(&h3);
  srand(7);
  for (int i = 0; i < 50000; i++) {
    uint64_t v = (uint64_t)rand() % 5000000u;
    lhist_record(i % 3 ? &h1 : &h2, v);
    lhist_record(&h3, v);
  }
  lhist_merge(&h1, &h2);
  assert_int_equal(h1.total, h3.total);
  assert_int_equal(h1.min, h3.min);
  assert_int_equal(h1.max, h3.max);
  assert_int_equal(h1.sum, h3.sum);
  double ps[] = {50, 90, 99, 99.9, 100};
  for (size_t i = 0; i < 5; i++) assert_int_equal(lhist_percentile(&h1, ps[i]), lhist_percentile(&h3, ps[i]));
  /* Merging an empty histogram changes nothing (min stays exact). */
  lhist_init(&h2);
  lhist_merge(&h1, &h2);
  assert_int_equal(h1.min, h3.min);
  assert_int_equal(h1.total, h3.total);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_exact_small),
      cmocka_unit_test(test_uniform_large),
      cmocka_unit_test(test_bimodal),
      cmocka_unit_test(test_mapping_monotonic_and_bounded),
      cmocka_unit_test(test_edge_values),
      cmocka_unit_test(test_merge_equals_combined),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
