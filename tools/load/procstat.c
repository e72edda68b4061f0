/* procstat.c — see procstat.h. */
#include "load/procstat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int procstat_parse_stat(const char *text, long ticks_per_s, double *cpu_s) {
  /* The command name (field 2) may hold spaces and parentheses: fields are
   * counted from the last ')'. utime and stime are fields 14 and 15. */
  const char *p = strrchr(text, ')');
  if (!p || ticks_per_s <= 0) return -EPROTO;
  p++;
  for (int field = 3; field < 14; field++) {
    while (*p == ' ') p++;
    if (!*p) return -EPROTO;
    while (*p && *p != ' ') p++;
  }
  char *end;
  unsigned long long ut = strtoull(p, &end, 10);
  if (end == p) return -EPROTO;
  p = end;
  unsigned long long st = strtoull(p, &end, 10);
  if (end == p) return -EPROTO;
  *cpu_s = (double)(ut + st) / (double)ticks_per_s;
  return 0;
}

int procstat_parse_status(const char *text, uint64_t *rss_kb) {
  const char *p = strstr(text, "\nVmRSS:");
  if (!p) return -EPROTO;
  p += 7;
  char *end;
  unsigned long long kb = strtoull(p, &end, 10);
  if (end == p) return -EPROTO;
  *rss_kb = kb;
  return 0;
}

static int slurp(int pid, const char *file, char *out, size_t cap) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, out + n, cap - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = -errno;
      close(fd);
      return e;
    }
    if (r == 0 || (n += (size_t)r) == cap - 1) break;
  }
  close(fd);
  out[n] = '\0';
  return 0;
}

int procstat_read(int pid, procstat_t *out) {
  char text[4096];
  int rc = slurp(pid, "stat", text, sizeof text);
  if (rc == 0) rc = procstat_parse_stat(text, sysconf(_SC_CLK_TCK), &out->cpu_s);
  if (rc == 0) rc = slurp(pid, "status", text, sizeof text);
  if (rc == 0) rc = procstat_parse_status(text, &out->rss_kb);
  return rc;
}
