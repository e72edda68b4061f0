/*
 * users_service.h — the users service: accounts, passwords, tokens.
 *
 * Owns users and refresh tokens (through users_store_t) and is reached only
 * over the bus (subjects and payloads in docs/subjects.md):
 *   users.register  {username, password, display_name?}   -> {user}
 *   users.login     {username, password}                  -> {access_token, refresh_token, token_type, expires_in, user}
 *   users.refresh   {refresh_token}                        -> same as login (rotation)
 *   users.logout    {refresh_token}                        -> {ok:true}
 *   users.get       {id} | {username}                      -> {user}
 * Failures reply {"error":{"code","message","status"}}; status is the HTTP
 * status the gateway should answer with.
 *
 * Work that blocks runs off the loop, which only parses, dispatches and
 * replies: argon2id hashing (register, login) on max_concurrent_hashes
 * threads of its own at idle priority (core/idle_pool.h), store calls of
 * the other requests on libuv's thread pool. Further hash jobs wait in a
 * FIFO of at most max_queued_hashes, beyond which the reply is 503
 * overloaded.
 */
#ifndef STORM_SERVICES_USERS_SERVICE_H
#define STORM_SERVICES_USERS_SERVICE_H

#include <stdint.h>
#include <uv.h>

#include "auth/jwt.h"
#include "bus/bus.h"
#include "core/metrics.h"
#include "store/users_store.h"

typedef struct users_service users_service_t;

typedef struct {
  uv_loop_t *loop;
  bus_t *bus;
  users_store_t *store;
  const jwt_keys_t *keys;          /* must outlive the service */
  int64_t access_ttl_s;            /* default 900 */
  int64_t refresh_ttl_s;           /* default 30 days */
  unsigned long long pw_opslimit;  /* argon2id t (libsodium opslimit) */
  size_t pw_memlimit;              /* argon2id m in bytes */
  int max_concurrent_hashes;       /* default 1 */
  int max_queued_hashes;           /* default 256 */
  uint64_t purge_interval_ms;      /* expired refresh tokens deleted this often; 0 = 1 hour */
  metrics_registry_t *metrics;
} users_service_opts_t;

/* Defaults: access 900 s, refresh 30 days, argon2id t=2 m=19 MiB (see
 * auth/password.h), 1 concurrent hash, 256 queued; pointers NULL. */
void users_service_opts_default(users_service_opts_t *o);

/* Checks the options, computes the dummy password hash (one full hash: it
 * blocks the loop once, at start-up) and subscribes to users.* in queue
 * group "users". metrics NULL means metrics_default(). Starts
 * max_concurrent_hashes (1..64) hashing threads. Must be called on
 * the loop thread, like everything here. Returns 0 and *out, or -EINVAL
 * (missing pointer, ttl <= 0 or above 10 years, max_concurrent_hashes outside 1..64,
 * max_queued_hashes < 0, argon2id limits outside libsodium's bounds),
 * -ENOMEM, or a bus_subscribe error. */
int users_service_start(const users_service_opts_t *o, users_service_t **out);

/* Unsubscribes (no new request is taken), answers the jobs still waiting
 * for a hash slot with 503 "unavailable", cancels pool jobs that have not
 * started (also answered 503), lets running ones finish and sends their
 * replies (if the bus is closed by then the reply is dropped), then calls
 * done(arg) from the loop — never inside this call. The bus, store, keys
 * and loop must stay alive until done runs; close the bus after it. A
 * second call is ignored. */
void users_service_stop(users_service_t *s, void (*done)(void *arg), void *arg);

/* Frees the service: after stop's done has run (or from inside done). */
void users_service_free(users_service_t *s);

#endif
