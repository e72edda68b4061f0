/*
 * series.h — the per-second time series of a run, assembled by the parent
 * from its workers' W_SEC records.
 *
 * Contract:
 * - Seconds count from the run's t0; SERIES_MAX_SECS bounds the series
 *   (later seconds are dropped and counted in `dropped`).
 * - Counts of a second are summed over workers as they arrive; the delivery
 *   percentiles of a second come from the merged histogram of that second,
 *   kept in a small window: a record more than SERIES_WINDOW seconds late
 *   still adds its counts but not its latencies.
 * - series_finish computes the percentiles still pending; call it once,
 *   before reading pts. series_free releases everything.
 */
#ifndef STORM_LOAD_SERIES_H
#define STORM_LOAD_SERIES_H

#include <stdbool.h>
#include <stdint.h>

#include "load/hist.h"
#include "load/stats.h"

#define SERIES_MAX_SECS 4000
#define SERIES_WINDOW 8

typedef struct {
  uint64_t open, sends, acks, deliveries, errors;
  uint64_t p50_us, p99_us; /* delivery latency of this second's deliveries */
} series_pt_t;

typedef struct {
  series_pt_t *pts; /* SERIES_MAX_SECS entries */
  unsigned n;       /* seconds seen: 0 .. n-1 */
  uint64_t dropped;
  struct {
    bool used;
    uint64_t sec;
    lhist_t h;
  } *ring; /* SERIES_WINDOW entries */
} series_t;

int series_init(series_t *s); /* 0 or -ENOMEM */
void series_add(series_t *s, const load_sec_t *sec, const lhist_t *h);
void series_finish(series_t *s);
void series_free(series_t *s);

#endif
