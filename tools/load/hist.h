/*
 * hist.h — a log-linear latency histogram (HDR-style) for storm-load.
 *
 * Contract:
 * - Values are unsigned integers in microseconds, 0 .. LHIST_MAX_VALUE
 *   (2^36 - 1 µs, about 19 hours); larger values are clamped to it and
 *   counted in `clamped`.
 * - Precision: two significant decimal digits. Values below 256 are kept
 *   exactly; above, each power-of-two range is split into 128 equal
 *   buckets, so a reported percentile is never below the true value and at
 *   most 1/128 (0.79%) above it. max and min are exact.
 * - Fixed size (no allocation): a histogram is a plain struct that can be
 *   copied, written to a pipe by a worker process and merged by a parent
 *   (lhist_merge is exact: merging equals recording both streams).
 * - Not thread-safe; one owner at a time.
 */
#ifndef STORM_LOAD_HIST_H
#define STORM_LOAD_HIST_H

#include <stdint.h>

#define LHIST_SUB_BITS 7 /* 128 sub-buckets per power of two */
#define LHIST_MAX_BITS 36
#define LHIST_MAX_VALUE ((UINT64_C(1) << LHIST_MAX_BITS) - 1)
/* 256 exact buckets, then 128 per exponent 1 .. LHIST_MAX_BITS-8. */
#define LHIST_BUCKETS (256 + (LHIST_MAX_BITS - 8) * 128)

typedef struct {
  uint64_t counts[LHIST_BUCKETS];
  uint64_t total;   /* values recorded */
  uint64_t clamped; /* values above LHIST_MAX_VALUE (recorded as it) */
  uint64_t min;     /* exact; UINT64_MAX while empty */
  uint64_t max;     /* exact; 0 while empty */
  uint64_t sum;     /* for the mean (saturating) */
} lhist_t;

void lhist_init(lhist_t *h);
void lhist_record(lhist_t *h, uint64_t us);
/* dst += src. */
void lhist_merge(lhist_t *dst, const lhist_t *src);
/* The value at percentile p (0 < p <= 100): the smallest bucket upper bound
 * at or below which at least p% of the values lie, capped at max. 0 when
 * empty or p is out of range. */
uint64_t lhist_percentile(const lhist_t *h, double p);
double lhist_mean(const lhist_t *h);

/* Bucket mapping, exposed for the tests. */
unsigned lhist_index(uint64_t v);
uint64_t lhist_bucket_high(unsigned idx); /* the largest value of the bucket */

#endif
