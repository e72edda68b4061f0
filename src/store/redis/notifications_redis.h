/*
 * notifications_redis.h — the notifications store (store/notifications_store.h)
 * in Redis, for distributed mode: every replica of the notifications
 * service sees the same lists.
 *
 * Keys (docs/notifications.md), {uid} a hash tag so a user's keys share a
 * Redis Cluster slot (the scripts touch both):
 *   storm:notif:{<uid>}       list, newest first, of "<id>:<created_at>:<type>:<payload>"
 *   storm:notif:mute:{<uid>}  set of muted channel ids (no expiry)
 * Every op is ONE command (a short Lua script where several steps must be
 * atomic: add = [mute check] LPUSH, LTRIM 0 99, PEXPIRE 7 days), so a
 * burst of adds is pipelined by hiredis (commands written back to back in
 * one loop turn, replies read as they come) and no op can leave a
 * half-sent MULTI on the shared connection.
 *
 * Expiry: the key's TTL is renewed to NOTIF_TTL_MS by every add; list
 * also skips elements older than NOTIF_TTL_MS by the store's clock, so an
 * old element kept alive by newer ones is never answered.
 *
 * Borrows the client (redis_client.h: fails fast with -ENOTCONN while
 * down, reconnects alone); it must outlive the store. ready() is the
 * client's. A malformed element is skipped and logged, never fatal.
 */
#ifndef STORM_STORE_REDIS_NOTIFICATIONS_REDIS_H
#define STORM_STORE_REDIS_NOTIFICATIONS_REDIS_H

#include "store/notifications_store.h"
#include "store/redis/redis_client.h"

typedef struct {
  redis_client_t *redis;
  notif_clock_fn clock; /* NULL = wall clock */
  void *clock_arg;
} notif_redis_opts_t;

/* 0 and *out, or -EINVAL, -ENOMEM. */
int notif_redis_open(const notif_redis_opts_t *o, notif_store_t **out);

#endif
