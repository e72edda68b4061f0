/* notifications_redis.c — see notifications_redis.h. */
#include "store/redis/notifications_redis.h"

#include <errno.h>
#include <hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"

/* KEYS: list, mutes. ARGV: element, channel to check ("0": none). The cap
 * and the TTL are constants of the store: spelled in the script. */
static const char ADD_LUA[] =
    "if ARGV[2] ~= '0' and redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then return 0 end\n"
    "redis.call('LPUSH', KEYS[1], ARGV[1])\n"
    "redis.call('LTRIM', KEYS[1], 0, 99)\n"
    "redis.call('PEXPIRE', KEYS[1], 604800000)\n"
    "return 1\n";
_Static_assert(NOTIF_CAP == 100 && NOTIF_TTL_MS == 604800000, "ADD_LUA spells the limits out");

/* KEYS: list. ARGV: ids. Removes the elements whose id is listed; LREM by
 * the exact element (ids are unique) wherever it sits now. */
static const char READ_LUA[] =
    "local want = {}\n"
    "for i = 1, #ARGV do want[ARGV[i]] = true end\n"
    "local n = 0\n"
    "for _, e in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do\n"
    "  local id = string.match(e, '^(%d+):')\n"
    "  if id and want[id] then n = n + redis.call('LREM', KEYS[1], 1, e) end\n"
    "end\n"
    "return n\n";

static const char READ_ALL_LUA[] =
    "local n = redis.call('LLEN', KEYS[1])\n"
    "redis.call('DEL', KEYS[1])\n"
    "return n\n";

enum op_kind { OP_ADD, OP_LIST, OP_READ, OP_MUTE_SET, OP_MUTE_GET };

typedef struct {
  notif_store_t base; /* first */
  notif_redis_opts_t o;
} notif_redis_t;

typedef struct {
  enum op_kind kind;
  notif_redis_t *m;
  int64_t user_id, now;
  union {
    notif_status_fn status;
    notif_count_fn count;
    notif_list_fn list;
  } fn;
  void *arg;
} op_t;

static notif_redis_t *self(notif_store_t *s) { return (notif_redis_t *)s; }

static int64_t now_of(notif_redis_t *m) {
  if (m->o.clock) return m->o.clock(m->o.clock_arg);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void list_key(char *out, size_t len, int64_t uid) {
  snprintf(out, len, "storm:notif:{%" PRId64 "}", uid);
}

static void mute_key(char *out, size_t len, int64_t uid) {
  snprintf(out, len, "storm:notif:mute:{%" PRId64 "}", uid);
}

/* "<id>:<created_at>:<type>:<payload>" into it; false if malformed. */
static bool parse_element(const char *s, size_t len, notif_t *it) {
  const char *end = s + len, *p = s;
  int64_t v[2];
  for (int k = 0; k < 2; k++) {
    int64_t x = 0;
    const char *d = p;
    while (p < end && *p >= '0' && *p <= '9' && p - d < 18) x = x * 10 + (*p++ - '0');
    if (p == d || p >= end || *p != ':') return false;
    v[k] = x;
    p++;
  }
  const char *t = p;
  while (p < end && *p != ':') p++;
  if (p >= end || p == t || (size_t)(p - t) > NOTIF_TYPE_MAX) return false;
  it->id = v[0];
  it->created_at = v[1];
  it->type = t; /* NUL-terminated by the caller's copy */
  it->payload = p + 1;
  it->payload_len = (size_t)(end - p - 1);
  return it->id > 0 && it->payload_len >= 2;
}

static void on_list(op_t *op, const redisReply *r) {
  if (r->type != REDIS_REPLY_ARRAY) {
    op->fn.list(op->arg, -EIO, NULL, 0);
    return;
  }
  size_t n = r->elements < NOTIF_CAP ? r->elements : NOTIF_CAP;
  notif_t items[NOTIF_CAP];
  char *copies[NOTIF_CAP];
  size_t k = 0;
  int status = 0;
  for (size_t i = 0; i < n; i++) {
    const redisReply *e = r->element[i];
    notif_t it = {.user_id = op->user_id};
    if (e->type != REDIS_REPLY_STRING || !parse_element(e->str, e->len, &it)) {
      log_warn("store", "notifications: skipping a malformed element of user %" PRId64,
               op->user_id);
      continue;
    }
    if (it.created_at <= op->now - NOTIF_TTL_MS) continue; /* expired */
    /* A NUL after the type and after the payload: copy the element. */
    char *c = malloc(e->len + 2);
    if (!c) {
      status = -ENOMEM;
      break;
    }
    size_t tlen = (size_t)(it.payload - 1 - it.type);
    memcpy(c, it.type, tlen);
    c[tlen] = '\0';
    memcpy(c + tlen + 1, it.payload, it.payload_len);
    c[tlen + 1 + it.payload_len] = '\0';
    it.type = c;
    it.payload = c + tlen + 1;
    copies[k] = c;
    items[k++] = it;
  }
  op->fn.list(op->arg, status, status < 0 ? NULL : items, status < 0 ? 0 : k);
  for (size_t i = 0; i < k; i++) free(copies[i]);
}

static void on_reply(redis_client_t *rc, const struct redisReply *r, void *arg) {
  (void)rc;
  op_t *op = arg;
  int status = 0;
  if (!r) {
    status = -ENOTCONN; /* dropped: the client logged why */
  } else if (r->type == REDIS_REPLY_ERROR) {
    log_error("store", "notifications: redis error: %s", r->str);
    status = -EIO;
  }
  bool integer = r && r->type == REDIS_REPLY_INTEGER;
  if (status == 0 && op->kind != OP_LIST && !integer) {
    log_error("store", "notifications: unexpected redis reply type %d", r->type);
    status = -EIO;
  }
  switch (op->kind) {
  case OP_ADD: op->fn.status(op->arg, status < 0 ? status : r->integer == 0 ? NOTIF_MUTED : 0); break;
  case OP_MUTE_SET: op->fn.status(op->arg, status); break;
  case OP_READ:
  case OP_MUTE_GET: op->fn.count(op->arg, status, status < 0 ? 0 : (int64_t)r->integer); break;
  case OP_LIST:
    if (status < 0) op->fn.list(op->arg, status, NULL, 0);
    else on_list(op, r);
    break;
  }
  free(op);
}

static op_t *op_new(notif_redis_t *m, enum op_kind kind, int64_t uid, void *arg) {
  op_t *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->kind = kind;
  op->m = m;
  op->user_id = uid;
  op->arg = arg;
  return op;
}

static int issue(notif_redis_t *m, op_t *op, int argc, const char **argv, const size_t *lens) {
  int rc = redis_client_command(m->o.redis, on_reply, op, argc, argv, lens);
  if (rc < 0) free(op);
  return rc;
}

static int r_add(notif_store_t *s, const notif_t *n, notif_status_fn fn, void *arg) {
  notif_redis_t *m = self(s);
  if (!fn || !notif_valid(n)) return -EINVAL;
  if (!redis_client_ready(m->o.redis)) return -ENOTCONN;
  buf_t el = BUF_INIT;
  buf_printf(&el, "%" PRId64 ":%" PRId64 ":%s:", n->id, n->created_at, n->type);
  buf_append(&el, n->payload, n->payload_len);
  if (el.oom) {
    buf_free(&el);
    return -ENOMEM;
  }
  char lk[48], mk[48], ch[24];
  list_key(lk, sizeof lk, n->user_id);
  mute_key(mk, sizeof mk, n->user_id);
  snprintf(ch, sizeof ch, "%" PRId64, n->mute_channel);
  op_t *op = op_new(m, OP_ADD, n->user_id, arg);
  if (!op) {
    buf_free(&el);
    return -ENOMEM;
  }
  op->fn.status = fn;
  const char *argv[] = {"EVAL", ADD_LUA, "2", lk, mk, el.data, ch};
  size_t lens[] = {4, sizeof ADD_LUA - 1, 1, strlen(lk), strlen(mk), el.len, strlen(ch)};
  int rc = issue(m, op, 7, argv, lens);
  buf_free(&el);
  return rc;
}

static int r_list(notif_store_t *s, int64_t user_id, notif_list_fn fn, void *arg) {
  notif_redis_t *m = self(s);
  if (!fn || user_id <= 0) return -EINVAL;
  char lk[48];
  list_key(lk, sizeof lk, user_id);
  op_t *op = op_new(m, OP_LIST, user_id, arg);
  if (!op) return -ENOMEM;
  op->fn.list = fn;
  op->now = now_of(m);
  const char *argv[] = {"LRANGE", lk, "0", "99"};
  _Static_assert(NOTIF_CAP == 100, "LRANGE spells NOTIF_CAP - 1 out");
  return issue(m, op, 4, argv, NULL);
}

static int r_read(notif_store_t *s, int64_t user_id, const int64_t *ids, size_t nids,
                  notif_count_fn fn, void *arg) {
  notif_redis_t *m = self(s);
  if (!fn || user_id <= 0 || (ids && (nids == 0 || nids > NOTIF_READ_IDS_MAX)) || (!ids && nids))
    return -EINVAL;
  char lk[48];
  list_key(lk, sizeof lk, user_id);
  const char *argv[4 + NOTIF_READ_IDS_MAX];
  char idtext[NOTIF_READ_IDS_MAX][24];
  int argc = 0;
  argv[argc++] = "EVAL";
  argv[argc++] = ids ? READ_LUA : READ_ALL_LUA;
  argv[argc++] = "1";
  argv[argc++] = lk;
  for (size_t i = 0; i < nids; i++) {
    snprintf(idtext[i], sizeof idtext[i], "%" PRId64, ids[i]);
    argv[argc++] = idtext[i];
  }
  op_t *op = op_new(m, OP_READ, user_id, arg);
  if (!op) return -ENOMEM;
  op->fn.count = fn;
  return issue(m, op, argc, argv, NULL);
}

static int r_mute_set(notif_store_t *s, int64_t user_id, int64_t channel_id, bool muted,
                      notif_status_fn fn, void *arg) {
  notif_redis_t *m = self(s);
  if (!fn || user_id <= 0 || channel_id <= 0) return -EINVAL;
  char mk[48], ch[24];
  mute_key(mk, sizeof mk, user_id);
  snprintf(ch, sizeof ch, "%" PRId64, channel_id);
  op_t *op = op_new(m, OP_MUTE_SET, user_id, arg);
  if (!op) return -ENOMEM;
  op->fn.status = fn;
  const char *argv[] = {muted ? "SADD" : "SREM", mk, ch};
  return issue(m, op, 3, argv, NULL);
}

static int r_mute_get(notif_store_t *s, int64_t user_id, int64_t channel_id, notif_count_fn fn,
                      void *arg) {
  notif_redis_t *m = self(s);
  if (!fn || user_id <= 0 || channel_id <= 0) return -EINVAL;
  char mk[48], ch[24];
  mute_key(mk, sizeof mk, user_id);
  snprintf(ch, sizeof ch, "%" PRId64, channel_id);
  op_t *op = op_new(m, OP_MUTE_GET, user_id, arg);
  if (!op) return -ENOMEM;
  op->fn.count = fn;
  const char *argv[] = {"SISMEMBER", mk, ch};
  return issue(m, op, 3, argv, NULL);
}

static bool r_ready(notif_store_t *s) { return redis_client_ready(self(s)->o.redis); }

static void r_close(notif_store_t *s) { free(s); }

static const notif_store_ops_t ops = {
    .add = r_add,
    .list = r_list,
    .mark_read = r_read,
    .mute_set = r_mute_set,
    .mute_get = r_mute_get,
    .ready = r_ready,
    .close = r_close,
};

int notif_redis_open(const notif_redis_opts_t *o, notif_store_t **out) {
  if (!o || !o->redis || !out) return -EINVAL;
  notif_redis_t *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->base.ops = &ops;
  m->o = *o;
  *out = &m->base;
  return 0;
}
