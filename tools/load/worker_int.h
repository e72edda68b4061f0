/*
 * worker_int.h — the inside of a storm-load worker (worker.c), shared with
 * the scenario parts that run in it: worker_chat.c (chat) and
 * worker_day.c (storm-day). Not for the parent.
 *
 * Contract:
 * - worker.c owns the loop, the engine, the pipes, the counters and the
 *   per-second records; it handles hello, error ops and closes for every
 *   scenario. A scenario other than the rooms family (hold, fanout, rooms)
 *   supplies worker_ops_t: `setup` once before the loop runs (allocate its
 *   state, set w->npeers and the peers' idx), `tick` every 5 ms (connect
 *   and act; `go` tells whether the run phase has started), `text` for
 *   every message after hello that is not an error, `free` at the end;
 *   optionally `hello` and `closed` as a peer's session starts and ends.
 * - Counting helpers (worker_error, worker_connect) also count in the
 *   current step when w->step_counting is set (storm-day phases).
 * - Everything runs on the worker's one loop thread.
 */
#ifndef STORM_LOAD_WORKER_INT_H
#define STORM_LOAD_WORKER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "load/msg.h"
#include "load/stats.h"
#include "load/wire.h"
#include "load/worker.h"
#include "load/wsc.h"

typedef struct worker worker_t;

typedef struct {
  worker_t *w;
  wsc_client_t *c;   /* NULL when no client exists (not started, or closed) */
  uint64_t start_us;
  unsigned idx;      /* the peer's global index (chat: user; storm-day: slot) */
  unsigned room;
  bool in_room, sender, open, hello, gone;
  bool active;       /* a client exists: connecting, open or closing */
  bool closing;      /* closed on purpose (storm-day cool-down): not an error */
  bool broken;       /* storm-day: failed or dropped; never reconnected */
} wpeer_t;

typedef struct {
  int (*setup)(worker_t *w);
  void (*tick)(worker_t *w, uint64_t now);
  void (*text)(worker_t *w, wpeer_t *p, const msg_in_t *m, uint64_t now);
  void (*free)(worker_t *w);
  void (*hello)(worker_t *w, wpeer_t *p);  /* optional: p got its hello */
  void (*closed)(worker_t *w, wpeer_t *p, bool was_hello); /* optional: p's client is gone */
} worker_ops_t;

typedef struct {
  wpeer_t *p;
  unsigned room, step;
  uint64_t in_step, index;
} wsender_t;

struct worker {
  const worker_cfg_t *cfg;
  const load_shape_t *sh;
  const worker_ops_t *ops; /* NULL: the rooms family */
  void *sc;                /* the scenario's state */
  uv_loop_t loop;
  uv_timer_t tick, counts, second;
  uv_pipe_t cmd;
  wsc_engine_t *eng;
  wpeer_t *peers;
  unsigned npeers, started;
  wsender_t *senders;
  unsigned nsenders;
  bool go, done_sending, stopping, write_failed;
  bool step_counting;  /* storm-day: count connects, errors, closes in cur_step */
  unsigned cur_step;
  uint64_t go_us, cur_sec;
  load_result_t *res;
  wire_counts_t last_sent;
  load_counts_t at_sec; /* counters at the start of the current second */
  lhist_t sec_h;        /* deliveries received in the current second */
  buf_t in, out;
};

uint64_t worker_now_us(void);
/* Connects p with `token` (or the peer path); counts started/failed. */
void worker_connect(worker_t *w, wpeer_t *p, const char *token);
/* Counts one error (and in the current step); logs the first few. */
void worker_error(worker_t *w, const char *what, const char *d, size_t n);
/* Queues a text message on p; false (and an error counted) when it cannot. */
bool worker_send(worker_t *w, wpeer_t *p, const char *m, int n);
/* Counts a delivery with latency `lat` µs in step `step`. */
void worker_delivery(worker_t *w, unsigned step, uint64_t lat, uint64_t now);

extern const worker_ops_t worker_chat_ops;
extern const worker_ops_t worker_day_ops;

#endif
