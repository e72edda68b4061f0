/*
 * redis_shared.h — the state every gateway shares through Redis: presence
 * (devices online per user, across gateways) and the per-IP auth rate
 * limit (so a limit holds however many gateways a client spreads over).
 *
 * Each operation is one Lua script (EVAL): atomic on the server, one round
 * trip, no read-modify-write race between gateways.
 *
 * Presence keys: storm:presence:<user_id> is a hash, field = gateway
 * instance id, value = that gateway's connected devices of the user.
 * storm:gw:<instance> exists (with a TTL) while the instance is alive: the
 * instance refreshes it with redis_shared_heartbeat well within the TTL.
 * A gateway that dies stops refreshing; its fields are ignored (and
 * deleted) by the next script that counts the user, so a crash cannot
 * leave anyone online for longer than the TTL. The scripts touch keys they
 * compute (storm:gw:*), which a single Redis (or one with all keys on one
 * node) allows; Redis Cluster would need hash tags.
 *
 * Rate-limit keys: storm:rl:<key>, a hash {tokens, ts}, expiring once the
 * bucket would be full again. Time is Redis's (TIME), not the gateways':
 * their clocks may disagree.
 *
 * Callbacks: as redis_client_command (exactly once after a 0 return, on
 * the loop, never inside the call). status 0 with the result, or a
 * negative errno: -EIO (connection failed, or Redis answered an error:
 * logged) — callers fall back to local state. A call that returns an
 * error never calls back.
 */
#ifndef STORM_STORE_REDIS_SHARED_H
#define STORM_STORE_REDIS_SHARED_H

#include <stdbool.h>
#include <stdint.h>

#include "store/redis/redis_client.h"

#define REDIS_SHARED_INSTANCE_MAX 64
#define REDIS_SHARED_GW_TTL_MS 15000 /* refresh every ~5 s */

/* total: the user's devices on every live gateway, after the change. */
typedef void (*redis_presence_fn)(int status, int64_t total, void *arg);

/* Sets this instance's device count of user_id to `devices` (0 removes the
 * field) and answers the total over live instances. 0 or -ENOTCONN,
 * -ENOBUFS, -ENOMEM, -EINVAL. */
int redis_presence_set(redis_client_t *rc, const char *instance, int64_t user_id, int64_t devices,
                       redis_presence_fn fn, void *arg);

/* Marks `instance` alive for REDIS_SHARED_GW_TTL_MS (fire and forget;
 * failures are logged by nobody: the next heartbeat retries). */
int redis_presence_heartbeat(redis_client_t *rc, const char *instance);

/* Removes the instance's alive mark at once (a gateway shutting down):
 * its devices stop counting for everyone. Fire and forget. */
int redis_presence_forget(redis_client_t *rc, const char *instance);

/* Answers the devices of user_id on live instances (no change). */
int redis_presence_get(redis_client_t *rc, int64_t user_id, redis_presence_fn fn, void *arg);

/* allowed, and when not, the milliseconds until the next token. */
typedef void (*redis_ratelimit_fn)(int status, bool allowed, uint64_t retry_after_ms, void *arg);

/* Takes one token from the bucket `key` (rate tokens/s, up to burst).
 * 0 or -ENOTCONN, -ENOBUFS, -ENOMEM, -EINVAL. */
int redis_ratelimit_take(redis_client_t *rc, const char *key, double rate, double burst,
                         redis_ratelimit_fn fn, void *arg);

#endif
