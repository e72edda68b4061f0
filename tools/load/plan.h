/*
 * plan.h — the sending plan of a fanout or rooms run: a list of steps, each
 * a rate per room (messages/s) held for a number of seconds.
 *
 * Contract:
 * - Pure data, no allocation. Every step sends exactly round(rate x secs)
 *   messages per room, spread evenly over the step (the first one at the
 *   step's start); plan_due says how many of them are due at a time.
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
/* Messages of step k (k < p->n) due `since` seconds after the plan's start:
 * 0 before the step, all of them once it is over. */
uint64_t plan_due(const plan_t *p, unsigned k, double since);

#endif
