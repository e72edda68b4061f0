/*
 * bus_nats_ev.h — runs libnats's socket I/O on a libuv loop (the four
 * natsOptions_SetEventLoop callbacks), for bus_nats only.
 *
 * Why not Debian's <nats/adapters/libuv.h>: its first attach must happen on
 * the loop thread (else NATS_ILLEGAL_STATE), but with
 * natsOptions_SetRetryOnFailedConnect the first attach comes from libnats's
 * reconnect thread, so a bus could never start while NATS is down. (The
 * header also defines non-static functions without prototypes, which our
 * -Wmissing-prototypes rejects.) This file does the same job with two
 * differences:
 * - any callback may come from any thread: on the loop thread it is applied
 *   at once, otherwise recorded under a mutex and applied by a uv_async_t.
 *   Only the latest wanted state is kept (socket generation, read/write
 *   interest, detach), never a list of events;
 * - the loop polls a dup() of libnats's socket. libnats closes its socket
 *   from other threads (reconnect, ping timer, close) right after dropping
 *   interest; polling a descriptor we own means a late uv_poll change can
 *   never hit a closed or reused descriptor (epoll_ctl EBADF makes libuv
 *   abort).
 *
 * Thread rules: bus_nats_ev_init and bus_nats_ev_close on the loop thread;
 * the four callbacks from anywhere (libnats holds the connection lock while
 * it calls them, so they never run concurrently for one connection).
 *
 * Lifetime: `on_detached(arg)` runs on the loop once libnats detached (the
 * connection is closed); only then, or if libnats never attached, may
 * bus_nats_ev_close be called; its callback runs when the uv handles are
 * closed, and the struct may be freed after it.
 */
#ifndef STORM_BUS_BUS_NATS_EV_H
#define STORM_BUS_BUS_NATS_EV_H

#include <nats/nats.h>
#include <stdbool.h>
#include <uv.h>

typedef struct bus_nats_ev {
  uv_loop_t *loop;
  uv_thread_t loop_thread;
  uv_async_t async;
  uv_mutex_t mu;

  /* wanted state, written by libnats under mu */
  natsConnection *nc;
  int want_fd;      /* libnats's socket of the latest attach */
  unsigned gen;     /* bumped by every attach */
  int want_events;  /* UV_READABLE | UV_WRITABLE */
  bool attached;    /* ever attached: then a detach will come */
  bool detach_req;

  /* applied state, loop thread only */
  unsigned applied_gen;
  uv_poll_t *poll; /* polls a dup of want_fd; NULL when none */
  int poll_events;
  bool detached;
  int open_handles;
  void (*on_detached)(void *arg);
  void (*on_closed)(void *arg);
  void *arg;
} bus_nats_ev_t;

/* Returns 0 or a negative errno (then nothing needs closing). */
int bus_nats_ev_init(bus_nats_ev_t *ev, uv_loop_t *loop, void (*on_detached)(void *arg),
                     void *arg);

/* True once libnats attached and has not detached yet: close must wait. */
bool bus_nats_ev_must_wait(bus_nats_ev_t *ev);

/* Closes the handles; `on_closed(arg)` (the init arg) runs from the loop. */
void bus_nats_ev_close(bus_nats_ev_t *ev, void (*on_closed)(void *arg));

/* natsOptions_SetEventLoop callbacks; pass `ev` as the loop pointer. */
natsStatus bus_nats_ev_attach(void **user, void *loop, natsConnection *nc, natsSock fd);
natsStatus bus_nats_ev_read(void *user, bool add);
natsStatus bus_nats_ev_write(void *user, bool add);
natsStatus bus_nats_ev_detach(void *user);

#endif
