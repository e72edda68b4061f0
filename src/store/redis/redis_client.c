/* redis_client.c — see redis_client.h. */
#include "store/redis/redis_client.h"

#include <errno.h>
#include <hiredis.h>
#include <async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The adapter is a header of static functions; some of its parameters are
 * unused, which our warning flags would turn into errors. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#include <adapters/libuv.h>
#pragma GCC diagnostic pop

#include "core/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

enum state { RC_DOWN, RC_CONNECTING, RC_AUTHING, RC_READY };

typedef struct rcmd rcmd_t;
struct rcmd {
  rcmd_t *prev, *next; /* in send order: replies come back in that order */
  redis_client_t *rc;
  redis_reply_fn fn;
  void *arg;
  uint64_t sent_ms;
};

struct redis_client {
  uv_loop_t *loop;
  char host[256];
  int port;
  char *password;
  char name[32];
  uint64_t timeout_ms;
  redisAsyncContext *ac; /* NULL while down */
  enum state state;
  bool closing, failing; /* failing: the last attempt failed (log once per outage) */
  uv_timer_t retry, watchdog;
  int handles;
  uint64_t backoff_ms, connects, attempt_ms;
  rcmd_t *head, *tail;
  unsigned pending;
  void (*on_closed)(void *);
  void *closed_arg;
};

static void start_connect(redis_client_t *rc);

static void on_retry(uv_timer_t *t) { start_connect(t->data); }

static void schedule_retry(redis_client_t *rc) {
  if (rc->closing) return;
  /* ±25% jitter: replicas that lost Redis together do not come back together. */
  uint64_t d = rc->backoff_ms;
  uint64_t jitter = d / 2 ? (uint64_t)rand() % (d / 2) : 0;
  d = d - d / 4 + jitter;
  rc->backoff_ms = rc->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rc->backoff_ms * 2;
  uv_timer_start(&rc->retry, on_retry, d, 0);
}

/* Forgets the context and frees it: hiredis fails every pending command
 * (their callbacks run now, with NULL) and may call on_disconnect, which
 * sees rc->ac != ac and ignores it. */
static void drop(redis_client_t *rc, const char *why) {
  redisAsyncContext *ac = rc->ac;
  if (!ac) return;
  if (why) log_warn(rc->name, "dropping the connection to %s:%d: %s", rc->host, rc->port, why);
  rc->ac = NULL;
  rc->state = RC_DOWN;
  redisAsyncFree(ac);
  schedule_retry(rc);
}

static void on_auth(redisAsyncContext *ac, void *r, void *priv) {
  (void)priv;
  redis_client_t *rc = ac->data;
  redisReply *reply = r;
  if (rc->ac != ac || !reply) return; /* dropped meanwhile: on_disconnect/drop handled it */
  if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0) {
    rc->state = RC_READY;
    rc->backoff_ms = BACKOFF_MIN_MS;
    rc->failing = false;
    log_info(rc->name, "connected to %s:%d", rc->host, rc->port);
    return;
  }
  if (!rc->failing)
    log_error(rc->name, "AUTH refused by %s:%d: %s", rc->host, rc->port,
              reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
  rc->failing = true;
  /* Inside a hiredis callback: redisAsyncDisconnect is the call hiredis
   * defers safely; on_disconnect then schedules the retry. */
  rc->state = RC_DOWN;
  redisAsyncDisconnect(ac);
}

static void on_connect(const redisAsyncContext *cac, int status) {
  redis_client_t *rc = cac->data;
  redisAsyncContext *ac = (redisAsyncContext *)cac;
  if (rc->ac != ac) return;
  if (status != REDIS_OK) {
    /* hiredis frees the context after this callback. */
    if (!rc->failing)
      log_warn(rc->name, "cannot connect to %s:%d: %s (retrying in the background)", rc->host,
               rc->port, ac->errstr[0] ? ac->errstr : "error");
    rc->failing = true;
    rc->ac = NULL;
    rc->state = RC_DOWN;
    schedule_retry(rc);
    return;
  }
  rc->connects++;
  rc->attempt_ms = uv_now(rc->loop);
  if (rc->password) {
    const char *argv[] = {"AUTH", rc->password};
    rc->state = RC_AUTHING;
    if (redisAsyncCommandArgv(ac, on_auth, NULL, 2, argv, NULL) != REDIS_OK) drop(rc, "AUTH not sent");
    return;
  }
  rc->state = RC_READY;
  rc->backoff_ms = BACKOFF_MIN_MS;
  rc->failing = false;
  log_info(rc->name, "connected to %s:%d", rc->host, rc->port);
}

static void on_disconnect(const redisAsyncContext *cac, int status) {
  redis_client_t *rc = cac->data;
  if (rc->ac != cac) return; /* our own drop/close */
  rc->ac = NULL;
  rc->state = RC_DOWN;
  (void)status;
  if (!rc->failing)
    log_warn(rc->name, "connection to %s:%d lost: %s", rc->host, rc->port,
             cac->errstr[0] ? cac->errstr : "closed");
  rc->failing = true;
  schedule_retry(rc);
}

static void start_connect(redis_client_t *rc) {
  if (rc->closing || rc->ac) return;
  redisAsyncContext *ac = redisAsyncConnect(rc->host, rc->port);
  if (!ac || ac->err) {
    if (!rc->failing)
      log_warn(rc->name, "cannot connect to %s:%d: %s", rc->host, rc->port,
               ac ? ac->errstr : "out of memory");
    rc->failing = true;
    if (ac) redisAsyncFree(ac);
    schedule_retry(rc);
    return;
  }
  ac->data = rc;
  if (redisLibuvAttach(ac, rc->loop) != REDIS_OK) {
    redisAsyncFree(ac);
    schedule_retry(rc);
    return;
  }
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  rc->ac = ac;
  rc->state = RC_CONNECTING;
  rc->attempt_ms = uv_now(rc->loop);
}

/* Replies come back in send order, so the head is the oldest command. */
static void on_watchdog(uv_timer_t *t) {
  redis_client_t *rc = t->data;
  uint64_t now = uv_now(rc->loop);
  if (rc->state == RC_READY && rc->head && now - rc->head->sent_ms > rc->timeout_ms)
    drop(rc, "a command got no reply in time");
  else if ((rc->state == RC_CONNECTING || rc->state == RC_AUTHING) &&
           now - rc->attempt_ms > rc->timeout_ms)
    drop(rc, "connecting took too long");
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  rcmd_t *c = priv;
  redis_client_t *rc = c->rc;
  if (c->prev) c->prev->next = c->next; else rc->head = c->next;
  if (c->next) c->next->prev = c->prev; else rc->tail = c->prev;
  rc->pending--;
  c->fn(rc, r, c->arg);
  free(c);
}

int redis_client_command(redis_client_t *rc, redis_reply_fn fn, void *arg, int argc,
                         const char **argv, const size_t *lens) {
  if (!rc || !fn || argc < 1 || !argv) return -EINVAL;
  if (rc->closing || rc->state != RC_READY || !rc->ac) return -ENOTCONN;
  if (rc->pending >= REDIS_CLIENT_MAX_PENDING) return -ENOBUFS;
  rcmd_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->rc = rc;
  c->fn = fn;
  c->arg = arg;
  c->sent_ms = uv_now(rc->loop);
  if (redisAsyncCommandArgv(rc->ac, on_reply, c, argc, argv, lens) != REDIS_OK) {
    free(c);
    return -ENOTCONN;
  }
  c->prev = rc->tail;
  if (rc->tail) rc->tail->next = c; else rc->head = c;
  rc->tail = c;
  rc->pending++;
  return 0;
}

int redis_client_open(uv_loop_t *loop, const redis_client_opts_t *o, redis_client_t **out) {
  if (!loop || !o || !o->addr || !out) return -EINVAL;
  const char *a = o->addr;
  if (strncmp(a, "redis://", 8) == 0) a += 8;
  const char *colon = strrchr(a, ':');
  size_t hlen = colon ? (size_t)(colon - a) : strlen(a);
  long port = 6379;
  if (colon) {
    char *end;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 1 || port > 65535) return -EINVAL;
  }
  redis_client_t *rc = calloc(1, sizeof *rc);
  if (!rc) return -ENOMEM;
  if (hlen == 0 || hlen >= sizeof rc->host) {
    free(rc);
    return -EINVAL;
  }
  memcpy(rc->host, a, hlen);
  rc->port = (int)port;
  if (o->password && o->password[0] && !(rc->password = strdup(o->password))) {
    free(rc);
    return -ENOMEM;
  }
  snprintf(rc->name, sizeof rc->name, "%s", o->name ? o->name : "redis");
  rc->loop = loop;
  rc->timeout_ms = o->timeout_ms ? o->timeout_ms : REDIS_CLIENT_DEFAULT_TIMEOUT_MS;
  rc->backoff_ms = BACKOFF_MIN_MS;
  uv_timer_init(loop, &rc->retry);
  uv_timer_init(loop, &rc->watchdog);
  rc->retry.data = rc->watchdog.data = rc;
  rc->handles = 2;
  /* Background work only: the client never keeps the loop alive. */
  uv_unref((uv_handle_t *)&rc->retry);
  uv_unref((uv_handle_t *)&rc->watchdog);
  uint64_t tick = rc->timeout_ms / 4 ? rc->timeout_ms / 4 : 1;
  uv_timer_start(&rc->watchdog, on_watchdog, tick, tick);
  start_connect(rc);
  *out = rc;
  return 0;
}

bool redis_client_ready(const redis_client_t *rc) { return rc && rc->state == RC_READY; }

uint64_t redis_client_connects(const redis_client_t *rc) { return rc ? rc->connects : 0; }

static void on_handle_closed(uv_handle_t *h) {
  redis_client_t *rc = h->data;
  if (--rc->handles > 0) return;
  void (*cb)(void *) = rc->on_closed;
  void *arg = rc->closed_arg;
  free(rc->password);
  free(rc);
  if (cb) cb(arg);
}

void redis_client_close(redis_client_t *rc, void (*on_closed)(void *arg), void *arg) {
  if (!rc || rc->closing) return;
  rc->closing = true;
  rc->on_closed = on_closed;
  rc->closed_arg = arg;
  drop(rc, NULL);
  uv_close((uv_handle_t *)&rc->retry, on_handle_closed);
  uv_close((uv_handle_t *)&rc->watchdog, on_handle_closed);
}
