/* report.c — see report.h. Latencies are recorded in µs and reported in
 * ms because that is the unit people compare. */
#include "load/report.h"

#include <errno.h>
#include <stdio.h>

static double ms(uint64_t us) { return (double)us / 1000.0; }

json_t *report_hist(const lhist_t *h) {
  return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)h->total, "min",
                   h->total ? ms(h->min) : 0.0, "p50", ms(lhist_percentile(h, 50)), "p90",
                   ms(lhist_percentile(h, 90)), "p99", ms(lhist_percentile(h, 99)), "p999",
                   ms(lhist_percentile(h, 99.9)), "max", ms(h->max), "mean", lhist_mean(h) / 1000.0);
}

int report_write(const char *path, json_t *report) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -ENAMETOOLONG;
  if (json_dump_file(report, tmp, JSON_INDENT(2)) < 0) return -EIO;
  if (rename(tmp, path) < 0) return -errno;
  return 0;
}
