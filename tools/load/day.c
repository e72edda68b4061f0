/* day.c — scenario `storm-day`: the phases of --plan (dayplan.h) over rooms
 * of --room-users accounts x --devices connections (worker_day.c). */
#include <stdio.h>

#include "load/ctl.h"
#include "load/setup.h"

int load_run_day(const load_opts_t *o) {
  const day_plan_t *dp = &o->day;
  unsigned S = o->room_users * o->devices, R = (dp->max_conns + S - 1) / S;
  load_shape_t sh = {.conns = R * S, .rooms = R, .room_size = S, .kind = LOAD_KIND_DAY, .day = dp,
                     .room_users = o->room_users, .devices = o->devices};
  dayplan_to_plan(dp, &sh.plan);
  int rc = 2;
  if (setup_day(o, &sh) == 0) rc = ctl_run(o, &sh);
  setup_free(&sh);
  return rc;
}
