/* plan.c — see plan.h. */
#include "load/plan.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "load/run.h"

static int add_step(plan_t *p, double rate, double secs) {
  if (p->n >= PLAN_MAX_STEPS) return -E2BIG;
  if (!(rate > 0 && rate <= LOAD_MAX_RATE) || !(secs >= 0) || p->total + secs > LOAD_MAX_DURATION_S)
    return -EINVAL;
  plan_step_t *s = &p->s[p->n++];
  s->rate = rate;
  s->secs = secs;
  s->start = p->total;
  s->msgs = (uint64_t)llround(rate * secs);
  p->total += secs;
  return 0;
}

int plan_fixed(plan_t *p, double rate, double secs) {
  memset(p, 0, sizeof *p);
  return add_step(p, rate, secs);
}

int plan_ramp(plan_t *p, double start, double step, double max, double step_secs) {
  memset(p, 0, sizeof *p);
  if (!(step >= 0) || !(max >= start) || !(step_secs > 0)) return -EINVAL;
  for (unsigned k = 0;; k++) {
    double rate = start + step * k;
    if (rate > max * (1 + 1e-9)) break;
    int rc = add_step(p, rate, step_secs);
    if (rc < 0) return rc;
    if (step == 0) break;
  }
  return 0;
}

uint64_t plan_due(const plan_t *p, unsigned k, double since, double phase) {
  if (k >= p->n) return 0;
  const plan_step_t *s = &p->s[k];
  double in = since - s->start;
  if (in < 0) return 0;
  if (in >= s->secs) return s->msgs;
  double x = in * s->rate - phase;
  if (x < 0) return 0;
  uint64_t due = (uint64_t)x + 1;
  return due > s->msgs ? s->msgs : due;
}
