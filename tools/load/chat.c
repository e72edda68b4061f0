/* chat.c — scenario `chat`: U users, one connection each, in channels of
 * several sizes and DMs (chatmix.h), each acting at --rate per second for
 * --duration: send, typing, history, read by weight. Every acked message
 * must reach every other member (counts). */
#include <stdio.h>

#include "load/ctl.h"
#include "load/setup.h"

int load_run_chat(const load_opts_t *o) {
  chat_layout_t l;
  char err[256];
  if (chat_layout_build(&l, o->users, o->classes, o->nclasses, o->dms, o->seed, err, sizeof err) < 0) {
    fprintf(stderr, "storm-load: bad chat layout: %s\n", err);
    return 2;
  }
  load_shape_t sh = {.conns = o->users, .kind = LOAD_KIND_CHAT, .chat = &l};
  int rc = 2;
  /* One step: the run's messages, for the per-step counters. */
  if (plan_fixed(&sh.plan, o->rate, o->duration) == 0 && setup_chat(o, &sh, &l) == 0) rc = ctl_run(o, &sh);
  setup_free(&sh);
  chat_layout_free(&l);
  return rc;
}
