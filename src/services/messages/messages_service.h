/*
 * messages_service.h — the messages service: channels, direct
 * conversations (DMs), memberships, read state and durable history.
 *
 * Owns the data of messages_store_t and is reached only over the bus
 * (subjects, payloads, replies and events in docs/subjects.md, section
 * "Messages"). Every request carries the caller as user_id, authenticated
 * by the gateway; this service decides authorization itself (membership,
 * ownership, authorship), because it owns the data the rules are about.
 * Usernames it does not hold: it asks `users.get` over the bus (never the
 * users store) and keeps a bounded id <-> username cache (usernames never
 * change).
 *
 * Threads: blocking store calls run on libuv's thread pool; the loop only
 * parses, dispatches, builds replies and publishes. messages.send checks
 * membership on the pool, one batch per channel at a time, then appends
 * from the loop in request order (so one channel's seqs follow the order
 * the requests arrived in) and answers only from the append callback, i.e.
 * once the message is durable. Everything here must be called on the loop
 * thread.
 *
 * Lifetimes: the loop, bus, store and metrics registry are borrowed and
 * must outlive the service (until stop's done has run).
 */
#ifndef STORM_SERVICES_MESSAGES_SERVICE_H
#define STORM_SERVICES_MESSAGES_SERVICE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus/bus.h"
#include "core/metrics.h"
#include "store/messages_store.h"

typedef struct messages_service messages_service_t;

typedef struct {
  uv_loop_t *loop;
  bus_t *bus;
  messages_store_t *store;
  metrics_registry_t *metrics;  /* NULL: metrics_default() */
  uint64_t users_timeout_ms;    /* users.get requests; default 2000 */
  size_t names_cache_max;       /* usernames kept; default 8192, at least 16 */
} messages_service_opts_t;

/* Defaults as above; pointers NULL. */
void messages_service_opts_default(messages_service_opts_t *o);

/* Subscribes to the messages.* subjects in queue group "messages".
 * Returns 0 and *out, or -EINVAL (missing pointer, timeout 0, cache below
 * 16), -ENOMEM, or a bus_subscribe error. */
int messages_service_start(const messages_service_opts_t *o, messages_service_t **out);

/* Unsubscribes (no new request is taken), answers 503 "unavailable" to the
 * requests that have not reached the store yet (waiting for a membership
 * check or a users.get answer, whose requests are cancelled), cancels pool
 * jobs that have not started (answered 503), lets running ones and
 * appends already queued in the store finish and sends their replies and
 * events (mention notifications of messages still being resolved are
 * dropped), then calls done(arg) from the loop — never inside this call.
 * The bus, store and loop must stay alive until done runs: close the store
 * and the bus after it. A second call is ignored. */
void messages_service_stop(messages_service_t *s, void (*done)(void *arg), void *arg);

/* Frees the service: after stop's done has run (or from inside done). */
void messages_service_free(messages_service_t *s);

#endif
