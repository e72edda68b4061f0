/*
 * procstat.h — CPU time and resident memory of a server process, read
 * from /proc (Linux), for --server-pid.
 *
 * Contract: procstat_read fills *out with utime+stime in seconds and VmRSS
 * in KiB; returns 0 or -errno (-ESRCH-like errors from open, -EPROTO when
 * a file does not parse). procstat_parse_* are the parsers, exposed for
 * the tests; they take NUL-terminated file contents.
 */
#ifndef STORM_LOAD_PROCSTAT_H
#define STORM_LOAD_PROCSTAT_H

#include <stdint.h>

typedef struct {
  double cpu_s;
  uint64_t rss_kb;
} procstat_t;

int procstat_read(int pid, procstat_t *out);
int procstat_parse_stat(const char *text, long ticks_per_s, double *cpu_s);
int procstat_parse_status(const char *text, uint64_t *rss_kb);

#endif
