/*
 * bus.h — the message bus every STORM service talks through (NATS semantics).
 *
 * One interface, several engines behind a vtable: bus_local (in-process, on a
 * libuv loop, embedded mode) and bus_nats (libnats, distributed mode). Callers
 * only ever use the functions below, so switching engines changes no caller.
 *
 * Semantics (those of NATS core):
 * - Subjects are tokens separated by '.'. A subscription pattern may use '*'
 *   (exactly one token) and '>' (one or more trailing tokens, last only).
 *   Published subjects and reply subjects are literal (no wildcards).
 * - A publish reaches every plain subscription whose pattern matches, plus
 *   exactly one member of each matching queue group (chosen at random).
 * - Messages from one publisher are delivered in publish order.
 * - Request/reply: bus_request publishes with a private inbox as reply
 *   subject; the first reply completes the request, later ones are dropped.
 *   If nobody is subscribed, the request fails with BUS_ENORESPONDERS (NATS
 *   status 503).
 *
 * Threads and re-entrancy: a bus lives on one libuv loop and every function
 * must be called on that loop's thread. Every callback runs on that thread,
 * from the loop, never from inside the bus_* call that caused it (publish,
 * request and close return before any callback they cause runs). Callbacks may
 * call any bus_* function, including bus_unsubscribe and bus_close.
 *
 * Ownership: bus_publish/bus_request/bus_respond copy the payload and the
 * subjects before returning. A bus_msg_t and everything it points to is
 * borrowed for the duration of the callback only. A bus_sub_t is owned by the
 * bus; it stays valid until bus_unsubscribe returns or, if never
 * unsubscribed, until bus_close's on_closed runs.
 *
 * Errors: negative errno values. A call that fails never fires its callback.
 *   -EINVAL     bad argument (invalid subject, wildcard where not allowed,
 *               NULL callback, NULL data with len > 0, zero timeout)
 *   -EMSGSIZE   payload larger than bus_max_payload()
 *   -ENOTCONN   the bus is closed (after bus_close)
 *   -ENOMEM     out of memory
 *   -ENOBUFS    (NATS engine) disconnected and the reconnect buffer is full
 *   -EIO        (NATS engine) any other client-library failure
 * Reply callback statuses add BUS_ETIMEDOUT, BUS_ENORESPONDERS, -ECANCELED.
 */
#ifndef STORM_BUS_BUS_H
#define STORM_BUS_BUS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest subject or queue name accepted, in bytes. NATS itself has no fixed
 * limit (only its 4 KiB control line); STORM's subjects are short, and a bound
 * keeps validation and hashing cheap and predictable. */
#define BUS_SUBJECT_MAX 1024

/* Default maximum payload, NATS's default max_payload. */
#define BUS_DEFAULT_MAX_PAYLOAD ((size_t)1 << 20)

/* Reply callback statuses (besides 0 and -ECANCELED). No responders maps to
 * "no route to host": nobody was there to route the request to. */
#define BUS_ETIMEDOUT (-ETIMEDOUT)
#define BUS_ENORESPONDERS (-EHOSTUNREACH)

typedef struct bus bus_t;
typedef struct bus_sub bus_sub_t;

typedef struct {
  const char *subject;
  const char *reply; /* NULL when no reply is expected */
  const void *data;  /* valid only during the callback; NULL or anything when len == 0 */
  size_t len;
} bus_msg_t;

typedef void (*bus_msg_cb)(bus_t *bus, const bus_msg_t *msg, void *arg);

/* status: 0 with msg (the reply), or BUS_ETIMEDOUT, BUS_ENORESPONDERS, or
 * -ECANCELED (bus closed with the request pending), each with msg == NULL.
 * Called exactly once per successful bus_request, unless the request is
 * cancelled with bus_request_cancel first. */
typedef void (*bus_reply_cb)(bus_t *bus, int status, const bus_msg_t *msg, void *arg);

/* Publishes `len` bytes of `data` to `subject` (literal). `reply` is NULL or
 * a literal subject the receivers should answer to. Returns 0 or -EINVAL,
 * -EMSGSIZE, -ENOTCONN, -ENOMEM. */
int bus_publish(bus_t *bus, const char *subject, const char *reply, const void *data, size_t len);

/* Subscribes `cb` to `subject` (wildcards allowed). `queue` NULL for a plain
 * subscription, else the queue group name (non-empty, no spaces or control
 * characters). `*out` (may be NULL when the caller never unsubscribes) gets
 * the handle. Returns 0 or -EINVAL, -ENOTCONN, -ENOMEM. */
int bus_subscribe(bus_t *bus, const char *subject, const char *queue, bus_msg_cb cb, void *arg,
                  bus_sub_t **out);

/* Removes the subscription and frees the handle. Safe inside any callback,
 * including the subscription's own; no callback for this subscription runs
 * after it returns, even for messages already queued. Also valid between
 * bus_close and its on_closed. Returns 0 (or -EINVAL for NULL). */
int bus_unsubscribe(bus_sub_t *sub);

/* Publishes a request to `subject` (literal) and calls `cb` once with the
 * first reply, or a failure status after `timeout_ms` (> 0). `*req_id` (may be
 * NULL) gets a non-zero id, unique on this bus, for bus_request_cancel.
 * Returns 0 or -EINVAL, -EMSGSIZE, -ENOTCONN, -ENOMEM (then cb never runs). */
int bus_request(bus_t *bus, const char *subject, const void *data, size_t len, uint64_t timeout_ms,
                bus_reply_cb cb, void *arg, uint64_t *req_id);

/* Forgets a pending request: its callback will not be called. Returns 0, or
 * -ENOENT if the id is unknown or the request already completed (including
 * from inside its own callback). */
int bus_request_cancel(bus_t *bus, uint64_t req_id);

/* Publishes `data` to msg->reply. Returns as bus_publish, or -EINVAL when the
 * message carries no reply subject. */
int bus_respond(bus_t *bus, const bus_msg_t *msg, const void *data, size_t len);

/* True while the bus can carry messages (for /readyz). False after close; the
 * NATS engine also reports false while disconnected. */
bool bus_is_connected(const bus_t *bus);

/* "local" or "nats". */
const char *bus_kind(const bus_t *bus);

/* Largest payload bus_publish accepts. */
size_t bus_max_payload(const bus_t *bus);

/* Closes the bus. From the moment it is called, publish/subscribe/request
 * return -ENOTCONN and no subscription callback runs; queued messages are
 * dropped. Then, from the loop: every pending request's callback gets
 * -ECANCELED, subscriptions are freed, the engine's libuv handles are closed,
 * and finally `on_closed(arg)` (may be NULL) runs, after which the bus and
 * every bus_sub_t of it are freed and the caller may close the loop. Call it
 * once; later calls are ignored. */
void bus_close(bus_t *bus, void (*on_closed)(void *arg), void *arg);

/* NATS subject rules: non-empty tokens separated by '.', no spaces, control
 * characters or DEL (bytes >= 0x80 are allowed), at most BUS_SUBJECT_MAX
 * bytes; with allow_wildcards, '*' and '>' are allowed as whole tokens only
 * and '>' only as the last token; without, they may not appear at all. NULL
 * is invalid. */
bool bus_subject_valid(const char *subject, bool allow_wildcards);

/* True if the literal `subject` matches `pattern`. False if either is invalid
 * (pattern per bus_subject_valid(.., true), subject per (.., false)). */
bool bus_subject_match(const char *pattern, const char *subject);

/* ---- For engine implementations only; callers never touch these. ----
 *
 * An engine embeds `bus_t` as the first member of its own struct and
 * `bus_sub_t` as the first member of its subscription struct. bus.c checks
 * arguments (subjects, sizes, callbacks) and the closed state before calling
 * the engine, so engines receive only valid input on an open bus, with one
 * exception: unsubscribe is also forwarded after close (until on_closed). */
typedef struct bus_ops {
  const char *kind;
  int (*publish)(bus_t *bus, const char *subject, const char *reply, const void *data, size_t len);
  int (*subscribe)(bus_t *bus, const char *subject, const char *queue, bus_msg_cb cb, void *arg,
                   bus_sub_t **out);
  int (*unsubscribe)(bus_sub_t *sub);
  int (*request)(bus_t *bus, const char *subject, const void *data, size_t len,
                 uint64_t timeout_ms, bus_reply_cb cb, void *arg, uint64_t *req_id);
  int (*request_cancel)(bus_t *bus, uint64_t req_id);
  bool (*is_connected)(const bus_t *bus);
  /* Called once; `closed` is already set. Must honour bus_close's contract. */
  void (*close)(bus_t *bus, void (*on_closed)(void *arg), void *arg);
} bus_ops_t;

struct bus {
  const bus_ops_t *ops;
  size_t max_payload; /* the engine keeps it current (NATS learns it from the server) */
  bool closed;        /* set by bus_close before ops->close */
};

struct bus_sub {
  bus_t *bus;
};

/* bus_subject_match without validation: both arguments must already be
 * valid. The engines' hot path. */
bool bus__subject_match(const char *pattern, const char *subject);

#endif
