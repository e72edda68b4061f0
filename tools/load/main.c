/* main.c — storm-load's command line: parses and bounds the options
 * (opts.h), then runs one scenario (run.h). */
#include <string.h>

#include "load/opts.h"
#include "load/run.h"

int main(int argc, char **argv) {
  load_opts_t o = {0};
  if (opts_parse(argc, argv, &o) != 0) return 2;
  if (!strcmp(o.scenario, "hold")) return load_run_hold(&o);
  if (!strcmp(o.scenario, "fanout")) return load_run_fanout(&o);
  if (!strcmp(o.scenario, "rooms")) return load_run_rooms(&o);
  if (!strcmp(o.scenario, "chat")) return load_run_chat(&o);
  if (!strcmp(o.scenario, "storm-day")) return load_run_day(&o);
  if (!strcmp(o.scenario, "auth")) return load_run_auth(&o);
  if (!strcmp(o.scenario, "media")) return load_run_media(&o);
  return load_run_ws(&o);
}
