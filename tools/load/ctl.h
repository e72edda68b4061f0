/*
 * ctl.h — the parent side of a WebSocket run (hold, fanout, rooms): forks
 * the workers, decides the phases, merges what they send, writes the
 * report.
 *
 * Contract:
 * - ctl_run takes a shape whose setup is done (tokens, channels, plan) and
 *   forks max(1, o->procs) workers (worker.h); worker k gets connections
 *   [k*N/P, (k+1)*N/P) and, with P > 1, source address 127.0.0.(2+k).
 * - Phases: connect (every connection resolved, or the ready timeout) ->
 *   run (C_GO at a common start time; the plan, or o->duration for hold)
 *   -> drain (until every ack and delivery is in, at most 10 s) -> stop.
 *   A fanout/rooms run whose connections are not all ready stops before
 *   sending. The server's /proc figures (--server-pid) are read before
 *   connecting (baseline), at the start and at the end of the run phase.
 * - A worker that dies (its pipe closes before its W_FINAL) fails the run
 *   with a message naming it; the others are stopped. Returns as run.h.
 */
#ifndef STORM_LOAD_CTL_H
#define STORM_LOAD_CTL_H

#include "load/run.h"

int ctl_run(const load_opts_t *o, const load_shape_t *sh);

#endif
