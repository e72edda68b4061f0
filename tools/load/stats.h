/*
 * stats.h — what a storm-load run counts, in one worker or merged.
 *
 * Contract:
 * - load_result_t is big (about 70 latency histograms): allocate it on the
 *   heap (load_result_new / free()). It holds no pointers, so a worker can
 *   send it field by field (wire.h) and a parent merge it exactly.
 * - Counters are cumulative over the run; `open_now` is a gauge.
 * - Close codes: up to LOAD_MAX_CODES distinct codes are kept; later new
 *   codes are added to `codes_other` (per step: LOAD_STEP_CODES).
 * - `expected` is the number of deliveries the acks received so far call
 *   for (chat, storm-day: each ack adds the members that must receive that
 *   message); the rooms scenarios compute it from sent x members instead.
 * - Steps are the rate steps of rooms and the phases of storm-day. A
 *   message counts in the step it was sent in (its stamp); connections,
 *   errors and closes count in the step during which they happened
 *   (storm-day only).
 */
#ifndef STORM_LOAD_STATS_H
#define STORM_LOAD_STATS_H

#include <stdint.h>

#include "load/hist.h"
#include "load/plan.h"

#define LOAD_MAX_CODES 16
#define LOAD_STEP_CODES 8

typedef struct {
  int32_t code;
  uint32_t n;
} load_code_t;

typedef struct {
  uint64_t started, opened, helloed, failed, dropped, open_now;
  uint64_t sent, acks, deliveries, errors;
  uint64_t expected;            /* chat, storm-day: deliveries the acks call for */
  uint64_t skipped;             /* storm-day: messages due while their room was not live */
  uint64_t typing, typing_rx;   /* chat: typing sent / typing events received */
  uint64_t history, history_rx; /* chat: history requests / answers */
  uint64_t reads, reads_rx;     /* chat: read requests / read_acks */
} load_counts_t;

typedef struct {
  uint64_t sent, acks, deliveries;
  lhist_t delivery; /* deliveries of the messages sent in this step */
  /* storm-day phases (zero elsewhere) */
  uint64_t skipped, errors, started, opened, failed, dropped;
  uint64_t conns_end, conns_peak; /* open at the phase's end / at most (summed over workers) */
  lhist_t connect;                /* connections started in this phase */
  load_code_t codes[LOAD_STEP_CODES];
  uint32_t ncodes, codes_other;
} load_step_t;

typedef struct {
  load_counts_t n;
  lhist_t connect, hello, ack, delivery;
  lhist_t history, read; /* chat: request -> answer */
  load_code_t codes[LOAD_MAX_CODES];
  uint32_t ncodes, codes_other;
  uint32_t nsteps;
  uint64_t first_send_us, last_delivery_us; /* uv_hrtime µs; 0 when none */
  load_step_t steps[PLAN_MAX_STEPS];
} load_result_t;

/* One second of a worker's run (deltas, except open_now). */
typedef struct {
  uint64_t sec; /* whole seconds since the run's t0 */
  uint64_t open_now, sends, acks, deliveries, errors;
} load_sec_t;

load_result_t *load_result_new(unsigned nsteps);
void load_counts_add(load_counts_t *dst, const load_counts_t *src);
void load_code_count(load_result_t *r, int code, uint32_t n);
/* The same for one step's codes (storm-day). */
void load_step_code_count(load_step_t *s, int code, uint32_t n);
void load_result_merge(load_result_t *dst, const load_result_t *src);

#endif
