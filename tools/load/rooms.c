/* rooms.c — scenario `rooms` (S2): R rooms of S connections, one sender per
 * room, at a fixed rate or a ramp of steps; the report gives per-step
 * throughput and latency and the best step under --p99-target-ms. */
#include <stdio.h>

#include "load/ctl.h"
#include "load/setup.h"

int load_run_rooms(const load_opts_t *o) {
  load_shape_t sh = {.conns = o->rooms * o->room_size, .rooms = o->rooms, .room_size = o->room_size};
  int prc = o->ramp ? plan_ramp(&sh.plan, o->rate_start, o->rate_step, o->rate_max, o->step_seconds)
                    : plan_fixed(&sh.plan, o->rate, o->duration);
  if (prc < 0) {
    fprintf(stderr, "storm-load: the rate plan is out of bounds (at most %d steps, %d s in all)\n", PLAN_MAX_STEPS,
            LOAD_MAX_DURATION_S);
    return 2;
  }
  int rc = 2;
  if (setup_rooms(o, &sh) == 0) rc = ctl_run(o, &sh);
  setup_free(&sh);
  return rc;
}
