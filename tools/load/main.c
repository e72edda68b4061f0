/* main.c — storm-load's command line: parses and bounds the options, then
 * runs one scenario (run.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load/run.h"

static void usage(void) {
  fprintf(stderr,
          "usage: storm-load hold   --url http://127.0.0.1:PORT --conns N --rate CONNS_PER_S --duration S\n"
          "                         [--token T] [--report FILE]\n"
          "       storm-load fanout --url http://127.0.0.1:PORT --members N --rate MSGS_PER_S --duration S\n"
          "                         [--conn-rate CONNS_PER_S] [--prefix P] [--report FILE]\n"
          "Loopback targets only (127.x.x.x); at most %d connections and %d s per run.\n",
          LOAD_MAX_CONNS, LOAD_MAX_DURATION_S);
}

static int num(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "hold") && strcmp(argv[1], "fanout"))) {
    usage();
    return 2;
  }
  bool fanout = strcmp(argv[1], "fanout") == 0;
  load_opts_t o = {.conn_rate = 2000};
  snprintf(o.prefix, sizeof o.prefix, "ld%d_", (int)(getpid() % 10000000));
  const char *url = NULL;
  double conns = 0, rate = 0, duration = 0;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) { fprintf(stderr, "storm-load: %s needs a value\n", a); return 2; }
    int bad = 0;
    if (!strcmp(a, "--url")) url = v;
    else if (!strcmp(a, fanout ? "--members" : "--conns")) bad = num(v, 1, LOAD_MAX_CONNS - (fanout ? 1 : 0), &conns);
    else if (!strcmp(a, "--rate")) bad = num(v, 0.1, LOAD_MAX_RATE, &rate);
    else if (!strcmp(a, "--duration")) bad = num(v, 0, LOAD_MAX_DURATION_S, &duration);
    else if (fanout && !strcmp(a, "--conn-rate")) bad = num(v, 1, LOAD_MAX_RATE, &o.conn_rate);
    else if (!fanout && !strcmp(a, "--token")) o.token = v;
    else if (!strcmp(a, "--report")) o.report = v;
    else if (fanout && !strcmp(a, "--prefix")) {
      bad = strlen(v) < 1 || strlen(v) >= sizeof o.prefix || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(v);
      if (!bad) snprintf(o.prefix, sizeof o.prefix, "%s", v);
    } else { fprintf(stderr, "storm-load: unknown option %s\n", a); usage(); return 2; }
    if (bad) {
      fprintf(stderr, "storm-load: bad value for %s: %s (limits: %d connections, %d s, %d per s)\n", a, v,
              LOAD_MAX_CONNS, LOAD_MAX_DURATION_S, LOAD_MAX_RATE);
      return 2;
    }
    i++;
  }
  if (!url || conns < 1 || rate <= 0) {
    fprintf(stderr, "storm-load: --url, --%s and --rate are required\n", fanout ? "members" : "conns");
    usage();
    return 2;
  }
  const char *err = NULL;
  if (target_parse(url, &o.target, &err) < 0) {
    fprintf(stderr, "storm-load: %s: %s\n", url, err);
    return 2;
  }
  o.conns = (unsigned)conns;
  o.rate = rate;
  o.duration = duration;
  return fanout ? load_run_fanout(&o) : load_run_hold(&o);
}
