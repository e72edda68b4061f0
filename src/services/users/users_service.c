/*
 * users_service.c — subscriptions, jobs, the hash queue, and the work done
 * on the thread pool.
 *
 * A request's life: the bus callback (loop) copies the reply subject and
 * parses the payload into a job (users_validate.c); invalid input is
 * answered at once. A valid job goes to a pool: hashing jobs (register,
 * login) to the service's idle pool (core/idle_pool.h: max_concurrent_hashes
 * threads under SCHED_IDLE), only while fewer than that many are there,
 * otherwise into a FIFO of at most max_queued_hashes, beyond which the
 * answer is 503 overloaded; the others (refresh, logout, get: store calls
 * only) to libuv's pool at normal priority. The work callback (pool
 * thread) does every store call and every hash and writes the reply bytes
 * into the job; the after-work callback (loop) sends them, counts metrics,
 * frees the job and moves the next waiting hash job onto the idle pool.
 *
 * Only the loop touches the service struct, the lists and the metrics; a
 * pool thread touches only its job and the read-only parts of the service
 * (options, password parameters), plus the store, which is thread-safe.
 */
#include "services/users/users_service.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "auth/password.h"
#include "core/idle_pool.h"
#include "core/log.h"
#include "services/users/users_internal.h"

#define COMPONENT "users"
#define QUEUE_GROUP "users"
#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

/* The answer when even an error reply cannot be allocated. */
static const char OOM_REPLY[] =
    "{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\",\"status\":503}}";

/* Upper bounds that keep now_ms + ttl * 1000 far from overflow. */
#define MAX_TTL_S ((int64_t)10 * 366 * 86400)

static const char *const subjects[USERS_OP_COUNT] = {
    [USERS_OP_REGISTER] = "users.register", [USERS_OP_LOGIN] = "users.login",
    [USERS_OP_REFRESH] = "users.refresh",   [USERS_OP_LOGOUT] = "users.logout",
    [USERS_OP_GET] = "users.get",
};

/* Hash durations in seconds: argon2id at OWASP's parameters takes tens of
 * milliseconds; the upper buckets show a starved or oversubscribed host. */
static const double hash_buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25,  0.5,   1,    2.5,   5,    10};

typedef struct users_job {
  uv_work_t work;    /* non-hashing jobs: libuv's pool */
  idle_work_t iwork; /* hashing jobs: the idle pool */
  users_service_t *svc;
  struct users_job *prev, *next; /* in svc->waiting or svc->running */
  bool hashing;                  /* counts against max_concurrent_hashes */
  users_req_t req;
  /* written by the pool thread, read by the loop after the work is done */
  users_err_t err;
  const char *detail;
  buf_t out; /* the success reply */
  double hash_s[2];
  int nhash;
  char reply[]; /* copy of the request's reply subject */
} users_job_t;

typedef struct {
  users_job_t *head, *tail;
  int n;
} job_list_t;

typedef struct {
  users_service_t *svc;
  users_op_t op;
} route_t;

struct users_service {
  users_service_opts_t o;
  password_params_t pw;
  route_t routes[USERS_OP_COUNT];
  bus_sub_t *subs[USERS_OP_COUNT];
  job_list_t waiting; /* hash jobs not yet on the pool, oldest first */
  job_list_t running; /* jobs handed to a pool */
  int hashing;        /* hash jobs among running */
  idle_pool_t *hash_pool;
  /* Never started: it exists so that stop can finish through uv_close's
   * callback, i.e. from the loop and never inside users_service_stop. */
  uv_idle_t done_handle;
  /* Housekeeping: expired refresh tokens are deleted on the pool, one
   * purge at a time, every purge_interval_ms. */
  uv_timer_t purge_timer;
  uv_work_t purge_work;
  int purged;
  bool purging;
  bool stopping, closing;
  void (*done)(void *arg);
  void *done_arg;
  metrics_family_t *requests;
  metrics_series_t *hash_seconds;
  metrics_series_t *hash_queue;
};

/* ---- lists ---- */

static void list_push(job_list_t *l, users_job_t *j) {
  j->next = NULL;
  j->prev = l->tail;
  if (l->tail)
    l->tail->next = j;
  else
    l->head = j;
  l->tail = j;
  l->n++;
}

static void list_remove(job_list_t *l, users_job_t *j) {
  if (j->prev)
    j->prev->next = j->next;
  else
    l->head = j->next;
  if (j->next)
    j->next->prev = j->prev;
  else
    l->tail = j->prev;
  j->prev = j->next = NULL;
  l->n--;
}

/* ---- the pool side ---- */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hash_timed(users_job_t *j, uint64_t t0) {
  if (j->nhash < 2) j->hash_s[j->nhash++] = (double)(uv_hrtime() - t0) / 1e9;
}

/* A store result that is not one of the expected outcomes: the store has
 * logged the detail; the client may retry. */
static void store_failed(users_job_t *j, const char *what, int rc) {
  log_debug(COMPONENT, "%s: store error %d", what, rc);
  j->err = USERS_E_UNAVAILABLE;
}

static void reply_user(users_job_t *j, const user_rec_t *u) {
  buf_append_str(&j->out, "{\"user\":");
  users_user_json(u, &j->out);
  buf_append_char(&j->out, '}');
}

static void work_register(users_job_t *j) {
  users_service_t *s = j->svc;
  users_store_t *st = s->o.store;
  user_rec_t u;
  /* A taken name is answered without spending a hash on it; user_create's
   * -EEXIST still decides races between two registrations. */
  int rc = st->ops->user_by_name(st, j->req.username, &u);
  if (rc == 0) {
    j->err = USERS_E_USERNAME_TAKEN;
    return;
  }
  if (rc != -ENOENT) {
    store_failed(j, "user_by_name", rc);
    return;
  }
  char hash[PASSWORD_HASH_MAX];
  uint64_t t0 = uv_hrtime();
  rc = password_hash(&s->pw, j->req.password, j->req.password_len, hash);
  hash_timed(j, t0);
  if (rc < 0) {
    log_error(COMPONENT, "password hashing failed: out of memory");
    j->err = USERS_E_UNAVAILABLE;
    return;
  }
  rc = st->ops->user_create(st, j->req.username, j->req.display_name, hash, now_ms(), &u);
  if (rc == -EEXIST) {
    j->err = USERS_E_USERNAME_TAKEN;
    return;
  }
  if (rc < 0) {
    store_failed(j, "user_create", rc);
    return;
  }
  reply_user(j, &u);
}

/* Issues a new pair for u and stores its refresh token: inserted as a new
 * family (login) or rotated from old_hash within `family` (refresh). */
static void issue(users_job_t *j, const user_rec_t *u, const uint8_t *family,
                  const uint8_t *old_hash);

static void reuse_detected(users_job_t *j, const refresh_rec_t *r) {
  users_store_t *st = j->svc->o.store;
  int rc = st->ops->refresh_revoke_family(st, r->family);
  if (rc < 0 && rc != -ENOENT) {
    /* The family is still alive: say "retry" rather than pretend. */
    log_error(COMPONENT, "refresh token reuse for user %" PRId64 ": revoking family failed (%d)",
              r->user_id, rc);
    j->err = USERS_E_UNAVAILABLE;
    return;
  }
  log_warn(COMPONENT, "refresh token reuse for user %" PRId64 ": session family revoked",
           r->user_id);
  j->err = USERS_E_REFRESH_REUSED;
}

static void work_login(users_job_t *j) {
  users_service_t *s = j->svc;
  users_store_t *st = s->o.store;
  user_rec_t u;
  int rc = st->ops->user_by_name(st, j->req.username, &u);
  if (rc == -ENOENT) {
    /* Same work, same reply as a wrong password: no user enumeration. */
    uint64_t t0 = uv_hrtime();
    password_verify_dummy(&s->pw, j->req.password, j->req.password_len);
    hash_timed(j, t0);
    j->err = USERS_E_INVALID_CREDENTIALS;
    return;
  }
  if (rc < 0) {
    store_failed(j, "user_by_name", rc);
    return;
  }
  uint64_t t0 = uv_hrtime();
  rc = password_verify(u.password_hash, j->req.password, j->req.password_len);
  hash_timed(j, t0);
  if (rc < 0) {
    j->err = USERS_E_INVALID_CREDENTIALS;
    return;
  }
  if (password_needs_rehash(&s->pw, u.password_hash) == 1) {
    /* Parameters changed since this hash was made (or it predates
     * argon2id): the password is at hand now, so upgrade it. Failure only
     * postpones the upgrade to the next login. */
    char hash[PASSWORD_HASH_MAX];
    t0 = uv_hrtime();
    rc = password_hash(&s->pw, j->req.password, j->req.password_len, hash);
    hash_timed(j, t0);
    if (rc == 0) rc = st->ops->user_set_password_hash(st, u.id, hash);
    if (rc < 0)
      log_warn(COMPONENT, "rehash of user %" PRId64 " failed (%d); kept the old hash", u.id, rc);
  }
  issue(j, &u, NULL, NULL);
}

static void work_refresh(users_job_t *j) {
  users_service_t *s = j->svc;
  users_store_t *st = s->o.store;
  uint8_t h[32];
  users_refresh_hash(j->req.refresh, h);
  refresh_rec_t r;
  int rc = st->ops->refresh_get(st, h, &r);
  if (rc == -ENOENT) {
    j->err = USERS_E_INVALID_REFRESH;
    return;
  }
  if (rc < 0) {
    store_failed(j, "refresh_get", rc);
    return;
  }
  /* Used before revoked: a replayed rotated token is theft whatever else
   * happened to its family since. */
  if (r.used) {
    reuse_detected(j, &r);
    return;
  }
  if (r.revoked || r.expires_at <= now_ms()) {
    j->err = USERS_E_INVALID_REFRESH;
    return;
  }
  user_rec_t u;
  rc = st->ops->user_by_id(st, r.user_id, &u);
  if (rc == -ENOENT) {
    j->err = USERS_E_INVALID_REFRESH;
    return;
  }
  if (rc < 0) {
    store_failed(j, "user_by_id", rc);
    return;
  }
  issue(j, &u, r.family, h);
  /* Two refreshes with one token race inside refresh_rotate, which is
   * atomic: the loser gets -EALREADY and revokes the family, the safe
   * outcome (a legitimate client never sends one token twice). */
  if (j->err == USERS_E_REFRESH_REUSED) reuse_detected(j, &r);
}

static void issue(users_job_t *j, const user_rec_t *u, const uint8_t *family,
                  const uint8_t *old_hash) {
  users_service_t *s = j->svc;
  users_store_t *st = s->o.store;
  users_session_t sess;
  int rc = users_session_issue(s->o.keys, u, family, now_ms(), s->o.access_ttl_s,
                               s->o.refresh_ttl_s, &sess);
  if (rc < 0) {
    log_error(COMPONENT, "issuing tokens failed: %s", jwt_strerror(rc));
    j->err = USERS_E_UNAVAILABLE;
    goto out;
  }
  rc = old_hash ? st->ops->refresh_rotate(st, old_hash, &sess.rec)
                : st->ops->refresh_insert(st, &sess.rec);
  if (rc == -ENOENT && !old_hash) {
    j->err = USERS_E_INVALID_CREDENTIALS; /* the user was deleted since the lookup */
  } else if (old_hash && rc == -EALREADY) {
    j->err = USERS_E_REFRESH_REUSED;
  } else if (old_hash && (rc == -ENOENT || rc == -EACCES)) {
    j->err = USERS_E_INVALID_REFRESH; /* revoked, purged or user deleted since refresh_get */
  } else if (rc < 0) {
    store_failed(j, old_hash ? "refresh_rotate" : "refresh_insert", rc);
  } else {
    users_session_json(&sess, s->o.access_ttl_s, u, &j->out);
  }
out:
  sodium_memzero(&sess, sizeof sess);
}

static void work_logout(users_job_t *j) {
  users_store_t *st = j->svc->o.store;
  uint8_t h[32];
  users_refresh_hash(j->req.refresh, h);
  int rc = st->ops->refresh_revoke(st, h);
  /* Unknown is fine: logging out twice, or after expiry, is still out. */
  if (rc < 0 && rc != -ENOENT) {
    store_failed(j, "refresh_revoke", rc);
    return;
  }
  buf_append_str(&j->out, "{\"ok\":true}");
}

static void work_get(users_job_t *j) {
  users_store_t *st = j->svc->o.store;
  user_rec_t u;
  int rc = j->req.by_id ? st->ops->user_by_id(st, j->req.id, &u)
                        : st->ops->user_by_name(st, j->req.username, &u);
  if (rc == -ENOENT) {
    j->err = USERS_E_NOT_FOUND;
    return;
  }
  if (rc < 0) {
    store_failed(j, "user_get", rc);
    return;
  }
  reply_user(j, &u);
}

/* Argon2id keeps a core busy for tens of milliseconds per hash: it runs on
 * the idle pool, so a burst of logins slows logins, not every socket. */
static void job_work(users_job_t *j) {
  switch (j->req.op) {
  case USERS_OP_REGISTER: work_register(j); break;
  case USERS_OP_LOGIN: work_login(j); break;
  case USERS_OP_REFRESH: work_refresh(j); break;
  case USERS_OP_LOGOUT: work_logout(j); break;
  case USERS_OP_GET: work_get(j); break;
  default: j->err = USERS_E_UNAVAILABLE; break;
  }
  if (j->err == USERS_OK && j->out.oom) j->err = USERS_E_UNAVAILABLE;
}

static void on_work(uv_work_t *w) { job_work(container_of(w, users_job_t, work)); }

static void on_idle_work(idle_work_t *w) { job_work(container_of(w, users_job_t, iwork)); }

/* ---- the loop side ---- */

static void job_free(users_job_t *j) {
  sodium_memzero(&j->req, sizeof j->req);
  if (j->out.data) sodium_memzero(j->out.data, j->out.cap); /* may hold tokens */
  buf_free(&j->out);
  free(j);
}

static void count(users_service_t *s, users_op_t op, users_err_t e) {
  const char *labels[2] = {users_op_name(op), users_err_code(e)};
  metrics_inc(metrics_series(s->requests, labels));
}

static void send_reply(users_service_t *s, const char *reply, const char *data, size_t len) {
  bus_msg_t m = {.subject = reply, .reply = reply, .data = NULL, .len = 0};
  int rc = bus_respond(s->o.bus, &m, data, len);
  if (rc < 0) log_debug(COMPONENT, "reply to %s not sent: %d", reply, rc);
}

/* Answers the job (its error, or the reply built on the pool), counts it
 * and frees it. */
static void job_finish(users_service_t *s, users_job_t *j) {
  count(s, j->req.op, j->err);
  if (j->err == USERS_OK) {
    send_reply(s, j->reply, j->out.data, j->out.len);
  } else {
    buf_t b = BUF_INIT;
    users_err_json(j->err, j->detail, &b);
    if (b.oom)
      send_reply(s, j->reply, OOM_REPLY, sizeof OOM_REPLY - 1);
    else
      send_reply(s, j->reply, b.data, b.len);
    buf_free(&b);
  }
  job_free(j);
}

static void on_after_work(uv_work_t *w, int status);
static void on_idle_after(idle_work_t *w, int status);

static void submit(users_service_t *s, users_job_t *j) {
  int rc = j->hashing ? idle_pool_queue(s->hash_pool, &j->iwork, on_idle_work, on_idle_after)
                      : uv_queue_work(s->o.loop, &j->work, on_work, on_after_work);
  if (rc < 0) { /* only for invalid arguments: defended all the same */
    log_error(COMPONENT, "queueing a job failed: %s", uv_strerror(rc));
    j->err = USERS_E_UNAVAILABLE;
    job_finish(s, j);
    return;
  }
  list_push(&s->running, j);
  if (j->hashing) s->hashing++;
}

/* Moves waiting hash jobs onto the pool while slots are free. */
static void pump(users_service_t *s) {
  while (!s->stopping && s->hashing < s->o.max_concurrent_hashes && s->waiting.head) {
    users_job_t *j = s->waiting.head;
    list_remove(&s->waiting, j);
    submit(s, j);
  }
  metrics_set(s->hash_queue, s->waiting.n);
}

static void on_done_closed(uv_handle_t *h) {
  users_service_t *s = h->data;
  if (s->done) s->done(s->done_arg); /* may free s: touch nothing after */
}

static void on_hash_pool_closed(void *arg) {
  users_service_t *s = arg;
  s->hash_pool = NULL;
  uv_close((uv_handle_t *)&s->done_handle, on_done_closed);
}

/* Handles close one after the other (libuv runs close callbacks in no
 * promised order): done runs after the timer, the pool and the handle. */
static void on_purge_timer_closed(uv_handle_t *h) {
  users_service_t *s = h->data;
  idle_pool_close(s->hash_pool, on_hash_pool_closed, s);
}

static void maybe_done(users_service_t *s) {
  if (!s->stopping || s->closing || s->running.n > 0 || s->purging) return;
  s->closing = true;
  uv_close((uv_handle_t *)&s->purge_timer, on_purge_timer_closed);
}

static void on_purge_work(uv_work_t *w) {
  users_service_t *s = container_of(w, users_service_t, purge_work);
  s->purged = s->o.store->ops->refresh_purge_expired(s->o.store, now_ms());
}

static void on_purge_done(uv_work_t *w, int status) {
  users_service_t *s = container_of(w, users_service_t, purge_work);
  s->purging = false;
  if (status == 0 && s->purged > 0)
    log_info(COMPONENT, "deleted %d expired refresh tokens", s->purged);
  else if (status == 0 && s->purged < 0)
    log_warn(COMPONENT, "purging expired refresh tokens failed: %d", s->purged);
  maybe_done(s);
}

static void on_purge_timer(uv_timer_t *t) {
  users_service_t *s = t->data;
  if (s->purging || s->stopping) return;
  s->purging = uv_queue_work(s->o.loop, &s->purge_work, on_purge_work, on_purge_done) == 0;
}

static void job_after(users_job_t *j, int status) {
  users_service_t *s = j->svc;
  list_remove(&s->running, j);
  if (status == UV_ECANCELED) j->err = USERS_E_UNAVAILABLE; /* stopped before it ran */
  for (int i = 0; i < j->nhash; i++) metrics_observe(s->hash_seconds, j->hash_s[i]);
  if (j->hashing) {
    s->hashing--;
    pump(s);
  }
  job_finish(s, j);
  maybe_done(s);
}

static void on_after_work(uv_work_t *w, int status) {
  job_after(container_of(w, users_job_t, work), status);
}

static void on_idle_after(idle_work_t *w, int status) {
  job_after(container_of(w, users_job_t, iwork), status);
}

static void on_msg(bus_t *bus, const bus_msg_t *msg, void *arg) {
  route_t *rt = arg;
  users_service_t *s = rt->svc;
  if (!msg->reply) {
    /* Nobody waits for the answer; doing the work anyway would let
     * fire-and-forget publishes consume hashes for free. */
    log_debug(COMPONENT, "%s without a reply subject dropped", msg->subject);
    return;
  }
  size_t rlen = strlen(msg->reply);
  users_job_t *j = calloc(1, sizeof *j + rlen + 1);
  if (!j) {
    count(s, rt->op, USERS_E_UNAVAILABLE);
    send_reply(s, msg->reply, OOM_REPLY, sizeof OOM_REPLY - 1);
    return;
  }
  memcpy(j->reply, msg->reply, rlen + 1);
  j->svc = s;
  j->err = users_req_parse(rt->op, msg->data, msg->len, &j->req, &j->detail);
  if (j->err != USERS_OK) {
    log_debug(COMPONENT, "%s rejected: %s%s%s", msg->subject, users_err_code(j->err),
              j->detail ? ": " : "", j->detail ? j->detail : "");
    job_finish(s, j);
    return;
  }
  j->hashing = rt->op == USERS_OP_REGISTER || rt->op == USERS_OP_LOGIN;
  if (!j->hashing || s->hashing < s->o.max_concurrent_hashes) {
    submit(s, j);
  } else if (s->waiting.n < s->o.max_queued_hashes) {
    list_push(&s->waiting, j);
    metrics_set(s->hash_queue, s->waiting.n);
  } else {
    j->err = USERS_E_OVERLOADED;
    job_finish(s, j);
  }
}

/* ---- lifecycle ---- */

void users_service_opts_default(users_service_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->access_ttl_s = 900;
  o->refresh_ttl_s = 30 * 86400;
  o->pw_opslimit = PASSWORD_OPSLIMIT_DEFAULT;
  o->pw_memlimit = PASSWORD_MEMLIMIT_DEFAULT;
  o->max_concurrent_hashes = 1;
  o->max_queued_hashes = 256;
}

static bool opts_valid(const users_service_opts_t *o) {
  return o && o->loop && o->bus && o->store && o->store->ops && o->keys &&
         o->access_ttl_s > 0 && o->access_ttl_s <= MAX_TTL_S && o->refresh_ttl_s > 0 &&
         o->refresh_ttl_s <= MAX_TTL_S && o->max_concurrent_hashes >= 1 && o->max_concurrent_hashes <= 64 &&
         o->max_queued_hashes >= 0;
}

static void unsubscribe_all(users_service_t *s) {
  for (int i = 0; i < USERS_OP_COUNT; i++) {
    if (s->subs[i]) bus_unsubscribe(s->subs[i]);
    s->subs[i] = NULL;
  }
}

int users_service_start(const users_service_opts_t *o, users_service_t **out) {
  *out = NULL;
  if (!opts_valid(o)) return -EINVAL;
  users_service_t *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->o = *o;
  /* One full hash at start-up (the dummy): blocks the loop once, before
   * any client is served. */
  int rc = password_params_init(&s->pw, o->pw_opslimit, o->pw_memlimit);
  if (rc < 0) {
    log_error(COMPONENT, "password parameters t=%llu m=%zu rejected: %d", o->pw_opslimit,
              o->pw_memlimit, rc);
    free(s);
    return rc;
  }
  metrics_registry_t *reg = o->metrics ? o->metrics : metrics_default();
  static const char *const req_labels[] = {"op", "result"};
  s->requests = metrics_counter_new(reg, "storm_users_requests_total",
                                    "Users service requests by operation and result code.", 2,
                                    req_labels);
  s->hash_seconds = metrics_series0(metrics_histogram_new(
      reg, "storm_users_hash_seconds", "Time of one argon2id hash or verification.",
      hash_buckets, (int)(sizeof hash_buckets / sizeof hash_buckets[0]), 0, NULL));
  s->hash_queue = metrics_series0(metrics_gauge_new(
      reg, "storm_users_hash_queue",
      "Password jobs (register, login) waiting for a hashing slot.", 0, NULL));
  metrics_set(s->hash_queue, 0);
  rc = idle_pool_open(o->loop, o->max_concurrent_hashes, &s->hash_pool);
  if (rc < 0) {
    log_error(COMPONENT, "cannot start %d hashing threads: %s", o->max_concurrent_hashes,
              uv_strerror(rc));
    sodium_memzero(&s->pw, sizeof s->pw);
    free(s);
    return rc;
  }

  for (int i = 0; i < USERS_OP_COUNT; i++) {
    s->routes[i] = (route_t){s, (users_op_t)i};
    rc = bus_subscribe(o->bus, subjects[i], QUEUE_GROUP, on_msg, &s->routes[i], &s->subs[i]);
    if (rc < 0) {
      log_error(COMPONENT, "subscribing to %s failed: %d", subjects[i], rc);
      unsubscribe_all(s);
      idle_pool_close(s->hash_pool, NULL, NULL); /* frees itself, touches not s */
      sodium_memzero(&s->pw, sizeof s->pw);
      free(s);
      return rc;
    }
  }
  uv_idle_init(o->loop, &s->done_handle);
  s->done_handle.data = s;
  uint64_t every = o->purge_interval_ms ? o->purge_interval_ms : 3600 * 1000;
  uv_timer_init(o->loop, &s->purge_timer);
  s->purge_timer.data = s;
  uv_timer_start(&s->purge_timer, on_purge_timer, every, every);
  uv_unref((uv_handle_t *)&s->purge_timer); /* housekeeping keeps no loop alive */
  *out = s;
  return 0;
}

void users_service_stop(users_service_t *s, void (*done)(void *arg), void *arg) {
  if (!s || s->stopping) return;
  s->stopping = true;
  s->done = done;
  s->done_arg = arg;
  unsubscribe_all(s);
  /* Waiting jobs never reached the pool: answer them now rather than let
   * their requesters time out. */
  while (s->waiting.head) {
    users_job_t *j = s->waiting.head;
    list_remove(&s->waiting, j);
    j->err = USERS_E_UNAVAILABLE;
    job_finish(s, j);
  }
  metrics_set(s->hash_queue, 0);
  /* Jobs the pool has not started come back with UV_ECANCELED (answered
   * 503); running ones finish and are answered normally. */
  for (users_job_t *j = s->running.head; j; j = j->next) {
    if (j->hashing)
      idle_pool_cancel(s->hash_pool, &j->iwork);
    else
      uv_cancel((uv_req_t *)&j->work);
  }
  uv_timer_stop(&s->purge_timer);
  if (s->purging) uv_cancel((uv_req_t *)&s->purge_work);
  maybe_done(s);
}

void users_service_free(users_service_t *s) {
  if (!s) return;
  sodium_memzero(&s->pw, sizeof s->pw);
  free(s);
}
