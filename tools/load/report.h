/*
 * report.h — JSON pieces of the storm-load report.
 *
 * Contract: functions return new jansson references (NULL on allocation
 * failure); report_write writes the object to `path` atomically enough for
 * a test (write then rename) and returns 0 or -errno.
 */
#ifndef STORM_LOAD_REPORT_H
#define STORM_LOAD_REPORT_H

#include <jansson.h>

#include "load/hist.h"

/* {"count","min","p50","p90","p99","p999","max","mean"} in milliseconds (floats). */
json_t *report_hist(const lhist_t *h);
int report_write(const char *path, json_t *report);

#endif
