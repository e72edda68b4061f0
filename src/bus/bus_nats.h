/*
 * bus_nats.h — the NATS bus engine (distributed mode), on libnats 3.4.
 *
 * The contract is bus.h's; callers use only bus_* functions. What this
 * engine adds or decides (details and reasons in docs/bus.md):
 * - Socket I/O runs on the bus's loop (bus_nats_ev.h). libnats delivers
 *   messages on its own delivery thread (the global pool): each message is
 *   copied (subject, reply, payload) into a bounded queue and handed to the
 *   loop by a uv_async_t; callbacks then run on the loop, in batches of
 *   BUS_NATS_DRAIN_BATCH per wakeup. When the queue is full, messages are
 *   dropped and counted (stats.dropped_full), like a NATS slow consumer.
 * - Order: per subscription, the server's order (so per publisher, publish
 *   order). No order is promised between different subscriptions.
 * - Subscriptions are made at the server: a message published before the
 *   server saw the SUB does not reach it, and a message already queued for a
 *   subscription that is then unsubscribed is dropped, never delivered.
 * - Requests use one wildcard inbox subscription per bus
 *   (`_INBOX.<nuid>.*`), a table keyed by the last token and one uv timer for
 *   timeouts. The server's "no responders" status (503) maps to
 *   BUS_ENORESPONDERS; status messages never reach plain subscriptions.
 * - Disconnects: libnats reconnects forever (capped exponential backoff with
 *   jitter). While disconnected bus_is_connected is false, subscriptions are
 *   kept (replayed by libnats on reconnect), and publishes are buffered up to
 *   reconnect_buf_bytes; past it bus_publish/bus_request/bus_respond return
 *   -ENOBUFS (the bound is checked before each append, so the last accepted
 *   message may overshoot it). Buffered data is lost if the bus is closed
 *   before it reconnects.
 * - bus_max_payload is the server's max_payload once connected
 *   (BUS_DEFAULT_MAX_PAYLOAD before).
 * - Extra errors: -ENOBUFS (see above), -EIO (any other libnats failure).
 * - A NATS bus keeps its loop alive (uv handles) until closed. bus_close
 *   unsubscribes everything, cancels requests (-ECANCELED), then closes the
 *   connection on a libuv worker thread (it flushes for up to 500 ms and
 *   joins libnats threads) and runs on_closed once libnats has released
 *   every callback into the bus.
 * - libnats keeps process-wide state (threads, NUID); nats_Close() is the
 *   program's job at exit, after every bus is closed.
 */
#ifndef STORM_BUS_BUS_NATS_H
#define STORM_BUS_BUS_NATS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "bus/bus.h"

/* Messages dispatched per loop wakeup before yielding to other I/O. */
#define BUS_NATS_DRAIN_BATCH 1024

typedef struct {
  const char *servers;       /* required: "nats://h:p[,nats://h2:p2...]" (NATS_URL) */
  const char *name;          /* connection name seen by the server; NULL: "storm" */
  int connect_timeout_ms;    /* per attempt; 0: 2000 */
  int reconnect_wait_ms;     /* first backoff step; 0: 100 */
  int reconnect_wait_max_ms; /* backoff cap; 0: 5000 */
  int reconnect_buf_bytes;   /* publishes kept while disconnected; 0: 8 MiB */
  int ping_interval_ms;      /* dead-server detection: 2 missed pongs; 0: 10000 */
  size_t inbound_max_msgs;   /* inbound queue bound; 0: 65536 */
  size_t inbound_max_bytes;  /* inbound queue bound; 0: 64 MiB */
  /* false (default): if no server answers, open succeeds and libnats keeps
   * trying in the background (bus_is_connected false until it connects).
   * true: open fails with -ECONNREFUSED instead. */
  bool fail_if_down;
} bus_nats_opts_t;

/* Connects (at most one attempt per server synchronously, each bounded by
 * connect_timeout_ms) and creates the bus on `loop`; must be called on the
 * loop's thread, which must outlive the bus (see bus_close). Returns 0 and
 * sets *out, or -EINVAL (no servers, bad URL, bad option), -ECONNREFUSED
 * (fail_if_down and no server), -ENOMEM, -EIO. On failure, handles already
 * made are closed from the loop: run it before uv_loop_close. */
int bus_nats_open(uv_loop_t *loop, const bus_nats_opts_t *opts, bus_t **out);

typedef struct {
  uint64_t received;         /* messages handed over by libnats */
  uint64_t dropped_full;     /* ... and dropped: inbound queue full */
  uint64_t dropped_unsub;    /* ... and dropped: subscription gone */
  uint64_t delivered;        /* subscription and reply callbacks run */
  uint64_t reconnects;
  size_t queued;             /* waiting for the loop now */
  size_t pending_requests;
} bus_nats_stats_t;

/* Fills *st. Returns 0, or -EINVAL if `bus` is not a NATS bus. Loop thread. */
int bus_nats_stats(const bus_t *bus, bus_nats_stats_t *st);

#endif
