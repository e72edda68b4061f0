/*
 * run.h — storm-load scenarios (hold, fanout) and their shared bookkeeping.
 *
 * Contract:
 * - A run owns its own uv loop and returns when it is over: every run is
 *   bounded by LOAD_MAX_DURATION_S of measured time plus fixed setup and
 *   drain timeouts, and by LOAD_MAX_CONNS connections (one process stays
 *   under the 20,000-file limit; more needs the future --procs workers).
 * - Return value: 0 when the run completed and the report was written
 *   (the report says how many errors there were), 1 when the run observed
 *   errors, 2 when setup failed (message on stderr).
 * - Progress goes to stderr once a second; the JSON report to opts->report
 *   (if set) and a summary to stdout.
 */
#ifndef STORM_LOAD_RUN_H
#define STORM_LOAD_RUN_H

#include "load/target.h"

#define LOAD_MAX_CONNS 19000
#define LOAD_MAX_DURATION_S 3600
#define LOAD_MAX_RATE 100000

typedef struct {
  target_t target;
  unsigned conns;    /* hold: connections; fanout: members */
  double rate;       /* hold: connections/s; fanout: messages/s */
  double conn_rate;  /* fanout: member connections/s */
  double duration;   /* seconds */
  const char *token; /* hold: use this token instead of registering */
  const char *report;
  char prefix[16];   /* username prefix of the accounts this run creates */
} load_opts_t;

int load_run_hold(const load_opts_t *o);
int load_run_fanout(const load_opts_t *o);

#endif
