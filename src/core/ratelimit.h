/*
 * ratelimit.h — token buckets keyed by a short string (a client IP).
 *
 * rate tokens per second refill each bucket up to burst; a request takes
 * one token. Memory is fixed at creation: a table of `slots` buckets with
 * open addressing over a short probe window; when the window is full, the
 * bucket that has been idle longest is evicted (a bucket idle for
 * burst/rate seconds is full anyway, so evicting it forgets nothing).
 * An attacker cycling through many addresses can therefore not grow memory.
 *
 * Single-threaded (the loop). The distributed-mode issue adds a Redis
 * backend so limits hold across gateway replicas.
 */
#ifndef STORM_CORE_RATELIMIT_H
#define STORM_CORE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_KEY_MAX 63

typedef struct ratelimit ratelimit_t;

/* Returns NULL on OOM or invalid arguments (rate, burst, slots must be > 0). */
ratelimit_t *ratelimit_new(double rate, double burst, size_t slots);
void ratelimit_free(ratelimit_t *rl);

/* Takes one token for key at now_ms. Returns true if allowed; otherwise
 * false and *retry_after_ms is when the next token arrives. Keys longer
 * than RATELIMIT_KEY_MAX are cut (an IP never is). */
bool ratelimit_take(ratelimit_t *rl, const char *key, uint64_t now_ms, uint64_t *retry_after_ms);

#endif
