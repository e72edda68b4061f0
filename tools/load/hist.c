/* hist.c — see hist.h. The mapping is HDR's: the top 8 significant bits of
 * a value pick the bucket, so the width of a bucket is at most 1/128 of
 * its lowest value. */
#include "load/hist.h"

#include <string.h>

void lhist_init(lhist_t *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

unsigned lhist_index(uint64_t v) {
  if (v > LHIST_MAX_VALUE) v = LHIST_MAX_VALUE;
  if (v < 256) return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* >= 8 */
  unsigned e = msb - LHIST_SUB_BITS;                  /* >= 1: v >> e in [128, 256) */
  return 256u + (e - 1u) * 128u + (unsigned)((v >> e) - 128u);
}

uint64_t lhist_bucket_high(unsigned idx) {
  if (idx < 256) return idx;
  unsigned e = (idx - 256u) / 128u + 1u;
  uint64_t sub = (idx - 256u) % 128u + 128u;
  return ((sub + 1u) << e) - 1u;
}

void lhist_record(lhist_t *h, uint64_t us) {
  if (us > LHIST_MAX_VALUE) {
    us = LHIST_MAX_VALUE;
    h->clamped++;
  }
  h->counts[lhist_index(us)]++;
  h->total++;
  if (us < h->min) h->min = us;
  if (us > h->max) h->max = us;
  h->sum = (h->sum + us < h->sum) ? UINT64_MAX : h->sum + us;
}

void lhist_merge(lhist_t *dst, const lhist_t *src) {
  for (unsigned i = 0; i < LHIST_BUCKETS; i++) dst->counts[i] += src->counts[i];
  dst->total += src->total;
  dst->clamped += src->clamped;
  if (src->min < dst->min) dst->min = src->min;
  if (src->max > dst->max) dst->max = src->max;
  dst->sum = (dst->sum + src->sum < dst->sum) ? UINT64_MAX : dst->sum + src->sum;
}

uint64_t lhist_percentile(const lhist_t *h, double p) {
  if (h->total == 0 || !(p > 0.0) || p > 100.0) return 0;
  /* The rank of the value: ceil(p% of total), at least 1. */
  double r = p / 100.0 * (double)h->total;
  uint64_t rank = (uint64_t)r;
  if ((double)rank < r) rank++;
  if (rank < 1) rank = 1;
  if (rank > h->total) rank = h->total;
  uint64_t seen = 0;
  for (unsigned i = 0; i < LHIST_BUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      uint64_t v = lhist_bucket_high(i);
      if (v > h->max) v = h->max;
      if (v < h->min) v = h->min;
      return v;
    }
  }
  return h->max;
}

double lhist_mean(const lhist_t *h) {
  return h->total ? (double)h->sum / (double)h->total : 0.0;
}
