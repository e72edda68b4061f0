/* redis_shared.c — see redis_shared.h. */
#include "store/redis/redis_shared.h"

#include <errno.h>
#include <hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* ARGV[2] >= 0 sets this instance's count (0 deletes it); -1 only counts.
 * Dead instances' fields are dropped on the way. A week's expiry bounds
 * what a user who never comes back leaves behind; any change renews it. */
static const char PRESENCE_LUA[] =
    "local n = tonumber(ARGV[2])\n"
    "if n > 0 then redis.call('HSET', KEYS[1], ARGV[1], n)\n"
    "elseif n == 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end\n"
    "local total = 0\n"
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #h, 2 do\n"
    "  if h[i] == ARGV[1] or redis.call('EXISTS', 'storm:gw:' .. h[i]) == 1 then\n"
    "    total = total + tonumber(h[i + 1])\n"
    "  else redis.call('HDEL', KEYS[1], h[i]) end\n"
    "end\n"
    "if n >= 0 and total > 0 then redis.call('PEXPIRE', KEYS[1], 604800000) end\n"
    "return total\n";

/* A token bucket on Redis's clock; the key expires once it would be full. */
static const char RATELIMIT_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens = tonumber(v[1])\n"
    "local ts = tonumber(v[2])\n"
    "if not tokens or not ts then tokens = burst; ts = now end\n"
    "if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end\n"
    "local allowed = 0\n"
    "local retry = 0\n"
    "if tokens >= 1 then tokens = tokens - 1; allowed = 1\n"
    "else retry = math.ceil((1 - tokens) * 1000 / rate) end\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)\n"
    "return {allowed, retry}\n";

typedef struct {
  redis_presence_fn fn;
  void *arg;
} presence_call_t;

typedef struct {
  redis_ratelimit_fn fn;
  void *arg;
} ratelimit_call_t;

static bool reply_failed(const redisReply *r, const char *what) {
  if (!r) return true; /* connection failure: the client logged it */
  if (r->type == REDIS_REPLY_ERROR) {
    log_error("redis", "%s script failed: %s", what, r->str);
    return true;
  }
  return false;
}

static void on_presence(redis_client_t *rc, const redisReply *r, void *arg) {
  (void)rc;
  presence_call_t c = *(presence_call_t *)arg;
  free(arg);
  if (reply_failed(r, "presence") || r->type != REDIS_REPLY_INTEGER) {
    c.fn(-EIO, 0, c.arg);
    return;
  }
  c.fn(0, (int64_t)r->integer, c.arg);
}

static int presence_eval(redis_client_t *rc, const char *instance, int64_t user_id, int64_t devices,
                         redis_presence_fn fn, void *arg) {
  if (!fn || user_id <= 0 || devices < -1 || strlen(instance) > REDIS_SHARED_INSTANCE_MAX)
    return -EINVAL;
  char key[48], n[24];
  snprintf(key, sizeof key, "storm:presence:%" PRId64, user_id);
  snprintf(n, sizeof n, "%" PRId64, devices);
  const char *argv[] = {"EVAL", PRESENCE_LUA, "1", key, instance, n};
  presence_call_t *c = malloc(sizeof *c);
  if (!c) return -ENOMEM;
  c->fn = fn;
  c->arg = arg;
  int rc_ = redis_client_command(rc, on_presence, c, 6, argv, NULL);
  if (rc_ < 0) free(c);
  return rc_;
}

int redis_presence_set(redis_client_t *rc, const char *instance, int64_t user_id, int64_t devices,
                       redis_presence_fn fn, void *arg) {
  if (!instance || !instance[0] || devices < 0) return -EINVAL;
  return presence_eval(rc, instance, user_id, devices, fn, arg);
}

int redis_presence_get(redis_client_t *rc, int64_t user_id, redis_presence_fn fn, void *arg) {
  return presence_eval(rc, "", user_id, -1, fn, arg);
}

static void on_ignored(redis_client_t *rc, const redisReply *r, void *arg) {
  (void)rc, (void)r, (void)arg;
}

int redis_presence_heartbeat(redis_client_t *rc, const char *instance) {
  if (!instance || !instance[0] || strlen(instance) > REDIS_SHARED_INSTANCE_MAX) return -EINVAL;
  char key[16 + REDIS_SHARED_INSTANCE_MAX], ttl[24];
  snprintf(key, sizeof key, "storm:gw:%s", instance);
  snprintf(ttl, sizeof ttl, "%d", REDIS_SHARED_GW_TTL_MS);
  const char *argv[] = {"SET", key, "1", "PX", ttl};
  return redis_client_command(rc, on_ignored, NULL, 5, argv, NULL);
}

int redis_presence_forget(redis_client_t *rc, const char *instance) {
  if (!instance || !instance[0] || strlen(instance) > REDIS_SHARED_INSTANCE_MAX) return -EINVAL;
  char key[16 + REDIS_SHARED_INSTANCE_MAX];
  snprintf(key, sizeof key, "storm:gw:%s", instance);
  const char *argv[] = {"DEL", key};
  return redis_client_command(rc, on_ignored, NULL, 2, argv, NULL);
}

static void on_ratelimit(redis_client_t *rc, const redisReply *r, void *arg) {
  (void)rc;
  ratelimit_call_t c = *(ratelimit_call_t *)arg;
  free(arg);
  if (reply_failed(r, "rate-limit") || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
      r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
    c.fn(-EIO, false, 0, c.arg);
    return;
  }
  long long retry = r->element[1]->integer;
  c.fn(0, r->element[0]->integer == 1, retry > 0 ? (uint64_t)retry : 0, c.arg);
}

int redis_ratelimit_take(redis_client_t *rc, const char *key, double rate, double burst,
                         redis_ratelimit_fn fn, void *arg) {
  if (!key || !fn || !(rate > 0) || !(burst >= 1) || strlen(key) > 128) return -EINVAL;
  char k[144], r[32], b[32];
  snprintf(k, sizeof k, "storm:rl:%s", key);
  snprintf(r, sizeof r, "%.6g", rate);
  snprintf(b, sizeof b, "%.6g", burst);
  const char *argv[] = {"EVAL", RATELIMIT_LUA, "1", k, r, b};
  ratelimit_call_t *c = malloc(sizeof *c);
  if (!c) return -ENOMEM;
  c->fn = fn;
  c->arg = arg;
  int rc_ = redis_client_command(rc, on_ratelimit, c, 6, argv, NULL);
  if (rc_ < 0) free(c);
  return rc_;
}
