/*
 * report.h — storm-load's reports: the JSON report of a WebSocket run (and
 * its pieces), the verdict, and the self-contained HTML report.
 *
 * Contract:
 * - report_hist / report_build return new jansson references (NULL on
 *   allocation failure). report_build only reads its input.
 * - report_verdict: 0 for a clean run, 1 when the run saw errors (failed or
 *   dropped connections, error ops, members not ready, and for a fixed-rate
 *   fanout/rooms missing acks or deliveries; a rooms ramp reports losses
 *   per step instead; for chat and storm-day acks != sent, deliveries !=
 *   the deliveries the acks call for, or an unanswered history/read).
 * - chat adds its layout, per-action counts and latencies; storm-day adds
 *   its rooms and a "phases" array (one entry per phase of the plan).
 * - report_emit prints the JSON on stdout, writes o->report and o->html if
 *   set, and returns the verdict, or 2 when a file could not be written.
 * - report_write writes JSON to `path` (write then rename) and
 *   report_write_html the HTML; both return 0 or -errno.
 * - report_html renders a report object (any scenario) as one HTML page:
 *   a summary table, the per-step table when there is one, and inline SVG
 *   charts of the "series" array (latency percentiles, throughput,
 *   connections). No script, no external resource. Returns 0 or -ENOMEM.
 */
#ifndef STORM_LOAD_REPORT_H
#define STORM_LOAD_REPORT_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"
#include "load/hist.h"
#include "load/procstat.h"
#include "load/run.h"
#include "load/series.h"
#include "load/stats.h"

typedef struct {
  bool ok; /* every read worked */
  unsigned npids;
  procstat_t base[LOAD_MAX_PIDS], start[LOAD_MAX_PIDS], end[LOAD_MAX_PIDS];
} report_server_t;

typedef struct {
  const load_opts_t *o;
  const load_shape_t *sh;
  const load_result_t *res;
  const series_t *series;    /* may be NULL */
  const report_server_t *srv; /* may be NULL */
  double run_s;              /* the run phase as measured */
  bool not_ready;
} report_in_t;

/* {"count","min","p50","p90","p95","p99","p999","max","mean"} in milliseconds (floats). */
json_t *report_hist(const lhist_t *h);
json_t *report_build(const report_in_t *in);
int report_verdict(const report_in_t *in);
int report_emit(const report_in_t *in);
int report_write(const char *path, json_t *report);
int report_html(buf_t *out, json_t *report);
int report_write_html(const char *path, json_t *report);
/* Prints to stdout, writes --report and --html; 0 or 2 (a file failed). */
int report_output(const load_opts_t *o, json_t *report);

#endif
