/* fanout.c — scenario `fanout` (S1): one sender, N members in one channel
 * (or peer room 1); exactly round(rate x duration) messages. */
#include "load/ctl.h"
#include "load/setup.h"

int load_run_fanout(const load_opts_t *o) {
  load_shape_t sh = {.conns = o->conns + 1, .rooms = 1, .room_size = o->conns + 1};
  int rc = 2;
  if (plan_fixed(&sh.plan, o->rate, o->duration) == 0 && setup_rooms(o, &sh) == 0) rc = ctl_run(o, &sh);
  setup_free(&sh);
  return rc;
}
