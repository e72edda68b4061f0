/*
 * plan.h — the sending plan of a fanout or rooms run: a list of steps, each
 * a rate per room (messages/s) held for a number of seconds.
 *
 * Contract:
 * - Pure data, no allocation. Every step sends exactly round(rate x secs)
 *   messages per room, spread evenly over the step; plan_due says how many
 *   of them are due at a time for one sender, given its phase.
 * - Phases: a sender's m-th message of a step (m from 0) is due at
 *   start + (m + phase) / rate, phase in [0, 1). A run gives its senders
 *   phases spread over [0, 1), so that 100 rooms at 500 msgs/s each are
 *   50,000 sends spread over every second, not 100 sends at the same
 *   instant 500 times a second (a burst that measures the server's
 *   queueing of the burst rather than its latency at that rate).
 * - Bounds: at most PLAN_MAX_STEPS steps, rates in (0, LOAD_MAX_RATE],
 *   a total of at most LOAD_MAX_DURATION_S seconds. Builders return 0 or
 *   -EINVAL (out of bounds) / -E2BIG (too many steps); the plan is then
 *   unusable.
 */
#ifndef STORM_LOAD_PLAN_H
#define STORM_LOAD_PLAN_H

#include <stdint.h>

#define PLAN_MAX_STEPS 64

typedef struct {
  double rate;   /* messages/s per room */
  double secs;   /* length of the step */
  double start;  /* seconds from the plan's start */
  uint64_t msgs; /* messages per room in this step: round(rate x secs) */
} plan_step_t;

typedef struct {
  unsigned n;
  double total; /* seconds */
  plan_step_t s[PLAN_MAX_STEPS];
} plan_t;

int plan_fixed(plan_t *p, double rate, double secs);
/* start, start+step, ... while <= max (a step of 0 means one step). */
int plan_ramp(plan_t *p, double start, double step, double max, double step_secs);
/* Messages of step k (k < p->n) due `since` seconds after the plan's start
 * for a sender of the given phase: 0 before its first, all of them once
 * the step is over. */
uint64_t plan_due(const plan_t *p, unsigned k, double since, double phase);

#endif
