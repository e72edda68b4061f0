/*
 * dayplan.h — the phases of a storm-day run, read from a JSON file
 * (`--plan FILE`).
 *
 * Format: {"description"?: string, "phases": [{"name": string,
 * "duration_s": number, "conns": integer, "msgs_per_s": number,
 * "ramp_s"?: number}, ...]}. Each phase moves the number of open
 * connections linearly from the previous phase's target (0 before the
 * first) to `conns` over its first `ramp_s` seconds (default: the whole
 * phase), and sends `msgs_per_s` messages per second in all.
 *
 * Contract:
 * - Pure: dayplan_parse reads `len` bytes (need not be NUL-terminated) and
 *   fills *p; dayplan_load reads a file of at most DAY_MAX_FILE bytes first.
 * - Bounds: 1..DAY_MAX_PHASES phases; names of 1..DAY_MAX_NAME-1 bytes;
 *   duration_s in (0, LOAD_MAX_DURATION_S] and a total of at most
 *   LOAD_MAX_DURATION_S; conns an integer in [0, LOAD_MAX_TOTAL_CONNS];
 *   msgs_per_s in [0, LOAD_MAX_RATE]; ramp_s in [0, duration_s]; a ramp of
 *   at most LOAD_MAX_RATE connections per second; the largest `conns` is
 *   at least 1. Unknown keys are refused (a typo must not be ignored).
 * - Errors: -EINVAL (malformed or out of bounds), -E2BIG (too many phases,
 *   file too big), or -errno from reading the file; `err` (size errlen)
 *   then holds a message naming the phase and field. *p is unusable.
 */
#ifndef STORM_LOAD_DAYPLAN_H
#define STORM_LOAD_DAYPLAN_H

#include <stddef.h>

#include "load/plan.h"

#define DAY_MAX_PHASES 32
#define DAY_MAX_NAME 64
#define DAY_MAX_FILE (64 * 1024)

typedef struct {
  char name[DAY_MAX_NAME];
  double secs, ramp_s, start; /* start: seconds from the run's start */
  unsigned conns;             /* target at the end of the ramp */
  double rate;                /* messages/s, all rooms together */
} day_phase_t;

typedef struct {
  unsigned n;
  double total;     /* seconds */
  unsigned max_conns;
  day_phase_t ph[DAY_MAX_PHASES];
} day_plan_t;

int dayplan_parse(const char *text, size_t len, day_plan_t *p, char *err, size_t errlen);
int dayplan_load(const char *path, day_plan_t *p, char *err, size_t errlen);
/* The connection target `since` seconds after the start (linear ramps). */
double dayplan_target(const day_plan_t *p, double since);
/* The phase running `since` seconds after the start (the last one after the end). */
unsigned dayplan_phase_at(const day_plan_t *p, double since);
/* A sending plan with one step per phase (rate = msgs_per_s, may be 0). */
void dayplan_to_plan(const day_plan_t *p, plan_t *out);

#endif
