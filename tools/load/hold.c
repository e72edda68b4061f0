/* hold.c — scenario `hold`: N connections opened at a rate and held. All
 * connections share one user (registered here unless --token is given);
 * against a peer they all join room 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/ctl.h"
#include "load/setup.h"

int load_run_hold(const load_opts_t *o) {
  load_shape_t sh = {.conns = o->conns};
  char *tok = NULL;
  if (!o->peer) {
    char name[40];
    snprintf(name, sizeof name, "%sh", o->prefix);
    tok = o->token ? strdup(o->token) : setup_user(&o->target, name);
    if (!tok) return 2;
    sh.tokens = &tok;
    sh.ntokens = 1;
  }
  int rc = ctl_run(o, &sh);
  free(tok);
  return rc;
}
