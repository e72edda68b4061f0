/*
 * redis_client.h — one asynchronous Redis connection on a libuv loop
 * (hiredis + its libuv adapter) that reconnects by itself.
 *
 * Redis holds state every gateway shares and can lose without losing data
 * (presence, rate-limit buckets, pending notifications), so the contract is
 * "fail fast, recover alone":
 * - While the connection is down (never connected yet, dropped, AUTH
 *   refused), redis_client_command returns -ENOTCONN at once: callers fall
 *   back to something local instead of queueing behind a dead server.
 * - Reconnects run in the background with exponential backoff (100 ms
 *   doubling to 5 s) and ±25% jitter, so a fleet of gateways does not
 *   reconnect in lock-step after a Redis restart.
 * - hiredis 0.14 has no command timeout: a watchdog drops the connection
 *   when the oldest command in flight is older than the timeout (a stopped
 *   or wedged server), which fails every pending command and reconnects.
 * - At most REDIS_CLIENT_MAX_PENDING commands are in flight; more →
 *   -ENOBUFS (bounded memory when Redis is slow).
 *
 * Callbacks: fn runs exactly once for every command that was accepted
 * (returned 0), on the loop thread, never from inside
 * redis_client_command: with the reply, or with reply == NULL when the
 * connection failed, timed out, or the client was closed. The reply is
 * borrowed for the duration of the callback. A REDIS_REPLY_ERROR reply is
 * a reply (the caller decides).
 *
 * Single-threaded: every function must be called on the loop's thread.
 * Lifetime: redis_client_close fails the pending commands, then frees the
 * client once libuv has closed its handles and calls on_closed (may be
 * NULL); the loop must keep running until then.
 */
#ifndef STORM_STORE_REDIS_CLIENT_H
#define STORM_STORE_REDIS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define REDIS_CLIENT_MAX_PENDING 65536
#define REDIS_CLIENT_DEFAULT_TIMEOUT_MS 2000

typedef struct redis_client redis_client_t;
struct redisReply;

typedef void (*redis_reply_fn)(redis_client_t *rc, const struct redisReply *reply, void *arg);

typedef struct {
  const char *addr;        /* "host:port" (port defaults to 6379); required */
  const char *password;    /* NULL or "" = no AUTH */
  uint64_t timeout_ms;     /* 0 = REDIS_CLIENT_DEFAULT_TIMEOUT_MS */
  const char *name;        /* for logs; NULL = "redis" */
} redis_client_opts_t;

/* Starts connecting (the first attempt is asynchronous too) and returns the
 * client. 0, -EINVAL (addr not "host[:port]"), -ENOMEM. */
int redis_client_open(uv_loop_t *loop, const redis_client_opts_t *o, redis_client_t **out);

/* Connected (and authenticated): commands are accepted. For /readyz. */
bool redis_client_ready(const redis_client_t *rc);

/* Sends one command (argv/lens as redisAsyncCommandArgv; lens NULL =
 * strlen). 0, -ENOTCONN (down or closing), -ENOBUFS (too many pending),
 * -ENOMEM, -EINVAL. */
int redis_client_command(redis_client_t *rc, redis_reply_fn fn, void *arg, int argc,
                         const char **argv, const size_t *lens);

/* Connections made so far (the first counts): lets tests see reconnects. */
uint64_t redis_client_connects(const redis_client_t *rc);

void redis_client_close(redis_client_t *rc, void (*on_closed)(void *arg), void *arg);

#endif
