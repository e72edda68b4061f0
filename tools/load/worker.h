/*
 * worker.h — one storm-load worker process: an engine (wsc.h) with its
 * share of a WebSocket run's connections, driven by the parent over pipes
 * (wire.h).
 *
 * Contract:
 * - worker_main runs in a forked child. It connects peers [lo, hi) of the
 *   shape at conn_rate, reports W_COUNTS (at most every 100 ms, when they
 *   changed) and W_SEC (each whole second since t0_us), starts its rooms'
 *   senders at C_GO's time, and on C_STOP (or when the parent's pipe
 *   closes) closes everything, writes W_FINAL and returns the exit status
 *   (0, or 2 when it could not start or write).
 * - Peer i belongs to room i / room_size; the room's first peer is its
 *   sender. Deliveries are counted at the other members; the sender's own
 *   copy (broadcast mode) or ack (durable) is its "ack".
 */
#ifndef STORM_LOAD_WORKER_H
#define STORM_LOAD_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "load/run.h"

typedef struct {
  const load_opts_t *o;
  const load_shape_t *sh;
  unsigned index;   /* worker k */
  unsigned lo, hi;  /* its peers */
  double conn_rate; /* its share of the connection rate */
  bool bind_src;    /* connect from 127.0.0.(2 + index) */
  uint64_t t0_us;   /* the run's time origin (uv_hrtime µs) */
  int res_fd, cmd_fd;
} worker_cfg_t;

int worker_main(const worker_cfg_t *cfg);

#endif
