/* Unit tests for services/users: every behaviour of the users.* subjects,
 * driven through a real bus_local on a real uv loop (requests go over the
 * bus, work goes to libuv's thread pool), against an in-memory users_store_t
 * defined here so the tests do not depend on a storage backend. argon2id
 * runs at libsodium's minimum limits for speed. Each test stops the service,
 * closes the bus and closes the loop: ASan checks that nothing leaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <fcntl.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "auth/jwt.h"
#include "auth/password.h"
#include "bus/bus.h"
#include "bus/bus_local.h"
#include "core/log.h"
#include "core/metrics.h"
#include "services/users/users_service.h"

/* ---- an in-memory store (thread-safe: the service calls it from the pool) ---- */

enum {
  F_USER_CREATE = 1 << 0,
  F_USER_BY_NAME = 1 << 1,
  F_USER_BY_ID = 1 << 2,
  F_SET_HASH = 1 << 3,
  F_REFRESH_INSERT = 1 << 4,
  F_REFRESH_GET = 1 << 5,
  F_REFRESH_ROTATE = 1 << 6,
  F_REFRESH_REVOKE = 1 << 7,
  F_REVOKE_FAMILY = 1 << 8,
};

#define FS_USERS 64
#define FS_TOKENS 256

typedef struct {
  users_store_t base;
  pthread_mutex_t mu;
  user_rec_t users[FS_USERS];
  int nusers;
  refresh_rec_t tokens[FS_TOKENS];
  int ntokens;
  unsigned fail;           /* F_* bits: those calls return -EIO */
  bool stale_get;          /* refresh_get reports used = false (a lost race) */
  int rotate_rc;           /* non-zero: refresh_rotate returns it, changing nothing */
  int insert_rc;           /* likewise for refresh_insert */
  /* While gate is set, every call blocks (counting itself in entered)
   * until the test opens it: pins jobs on the pool threads. */
  pthread_cond_t cv;
  bool gate;
  int entered;
  int set_hash_calls;
  int revoke_family_calls;
  _Atomic int purge_calls;
  _Atomic long long purge_now; /* now_ms of the last purge */
} fake_store_t;

static fake_store_t *fs(users_store_t *s) { return (fake_store_t *)s; }

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define LOCKED(f, fail_bit, body)                                   \
  do {                                                              \
    pthread_mutex_lock(&(f)->mu);                                   \
    if ((f)->gate) {                                                \
      (f)->entered++;                                               \
      pthread_cond_broadcast(&(f)->cv);                             \
      while ((f)->gate) pthread_cond_wait(&(f)->cv, &(f)->mu);      \
    }                                                               \
    int rc_;                                                        \
    if ((f)->fail & (fail_bit)) {                                   \
      rc_ = -EIO;                                                   \
    } else {                                                        \
      body                                                          \
    }                                                               \
    pthread_mutex_unlock(&(f)->mu);                                 \
    return rc_;                                                     \
  } while (0)

static int fs_user_create(users_store_t *s, const char *username, const char *display_name,
                          const char *password_hash, int64_t now_ms, user_rec_t *out) {
  fake_store_t *f = fs(s);
  LOCKED(f, F_USER_CREATE, {
    rc_ = 0;
    for (int i = 0; i < f->nusers; i++)
      if (strcmp(f->users[i].username, username) == 0) rc_ = -EEXIST;
    if (rc_ == 0 && f->nusers == FS_USERS) rc_ = -EIO;
    if (rc_ == 0) {
      user_rec_t *u = &f->users[f->nusers];
      memset(u, 0, sizeof *u);
      u->id = f->nusers + 1;
      snprintf(u->username, sizeof u->username, "%s", username);
      snprintf(u->display_name, sizeof u->display_name, "%s", display_name);
      snprintf(u->password_hash, sizeof u->password_hash, "%s", password_hash);
      u->created_at = now_ms;
      f->nusers++;
      *out = *u;
    }
  });
}

static int fs_user_by_name(users_store_t *s, const char *username, user_rec_t *out) {
  fake_store_t *f = fs(s);
  LOCKED(f, F_USER_BY_NAME, {
    rc_ = -ENOENT;
    for (int i = 0; i < f->nusers; i++)
      if (strcmp(f->users[i].username, username) == 0) {
        *out = f->users[i];
        rc_ = 0;
      }
  });
}

static int fs_user_by_id(users_store_t *s, int64_t id, user_rec_t *out) {
  fake_store_t *f = fs(s);
  LOCKED(f, F_USER_BY_ID, {
    rc_ = -ENOENT;
    if (id >= 1 && id <= f->nusers) {
      *out = f->users[id - 1];
      rc_ = 0;
    }
  });
}

static int fs_set_hash(users_store_t *s, int64_t id, const char *password_hash) {
  fake_store_t *f = fs(s);
  LOCKED(f, F_SET_HASH, {
    f->set_hash_calls++;
    rc_ = -ENOENT;
    if (id >= 1 && id <= f->nusers) {
      snprintf(f->users[id - 1].password_hash, USER_HASH_MAX, "%s", password_hash);
      rc_ = 0;
    }
  });
}

static refresh_rec_t *fs_find(fake_store_t *f, const uint8_t h[32]) {
  for (int i = 0; i < f->ntokens; i++)
    if (memcmp(f->tokens[i].token_hash, h, 32) == 0) return &f->tokens[i];
  return NULL;
}

static int fs_add(fake_store_t *f, const refresh_rec_t *r) {
  if (f->ntokens == FS_TOKENS || fs_find(f, r->token_hash)) return -EIO;
  f->tokens[f->ntokens++] = *r;
  return 0;
}

static int fs_refresh_insert(users_store_t *s, const refresh_rec_t *r) {
  fake_store_t *f = fs(s);
  LOCKED(f, F_REFRESH_INSERT, { rc_ = f->insert_rc ? f->insert_rc : fs_add(f, r); });
}

static int fs_refresh_get(users_store_t *s, const uint8_t h[32], refresh_rec_t *out) {
  fake_store_t *f = fs(s);
  LOCKED(f, F_REFRESH_GET, {
    refresh_rec_t *r = fs_find(f, h);
    rc_ = r ? 0 : -ENOENT;
    if (r) {
      *out = *r;
      if (f->stale_get) out->used = false;
    }
  });
}

static int fs_refresh_rotate(users_store_t *s, const uint8_t old[32], const refresh_rec_t *next) {
  fake_store_t *f = fs(s);
  LOCKED(f, F_REFRESH_ROTATE, {
    refresh_rec_t *r = fs_find(f, old);
    if (f->rotate_rc)
      rc_ = f->rotate_rc;
    else if (!r)
      rc_ = -ENOENT;
    else if (r->used)
      rc_ = -EALREADY;
    else if (r->revoked)
      rc_ = -EACCES;
    else {
      r->used = true;
      rc_ = fs_add(f, next);
    }
  });
}

static int fs_refresh_revoke(users_store_t *s, const uint8_t h[32]) {
  fake_store_t *f = fs(s);
  LOCKED(f, F_REFRESH_REVOKE, {
    refresh_rec_t *r = fs_find(f, h);
    rc_ = r ? 0 : -ENOENT;
    if (r) r->revoked = true;
  });
}

static int fs_revoke_family(users_store_t *s, const uint8_t family[16]) {
  fake_store_t *f = fs(s);
  LOCKED(f, F_REVOKE_FAMILY, {
    f->revoke_family_calls++;
    rc_ = 0;
    for (int i = 0; i < f->ntokens; i++)
      if (memcmp(f->tokens[i].family, family, 16) == 0) f->tokens[i].revoked = true;
  });
}

static int fs_purge(users_store_t *s, int64_t now_ms) {
  atomic_store(&fs(s)->purge_now, (long long)now_ms);
  atomic_fetch_add(&fs(s)->purge_calls, 1);
  return 0;
}
static bool fs_healthy(users_store_t *s) { return true; }
static void fs_close(users_store_t *s) {}

static const users_store_ops_t fake_ops = {
    .user_create = fs_user_create,
    .user_by_name = fs_user_by_name,
    .user_by_id = fs_user_by_id,
    .user_set_password_hash = fs_set_hash,
    .refresh_insert = fs_refresh_insert,
    .refresh_get = fs_refresh_get,
    .refresh_rotate = fs_refresh_rotate,
    .refresh_revoke = fs_refresh_revoke,
    .refresh_revoke_family = fs_revoke_family,
    .refresh_purge_expired = fs_purge,
    .healthy = fs_healthy,
    .close = fs_close,
};

/* ---- fixture: loop + bus + store + keys + metrics + service ---- */

typedef struct {
  uv_loop_t loop;
  bus_t *bus;
  fake_store_t store;
  jwt_keys_t keys;
  metrics_registry_t *reg;
  users_service_opts_t opts;
  users_service_t *svc;
  int stopped;
} fx_t;

static const char SECRET[] = "0123456789abcdef0123456789abcdef-test-secret";

static void fx_init(fx_t *f) {
  memset(f, 0, sizeof *f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->bus = bus_local_new(&f->loop, 0);
  assert_non_null(f->bus);
  f->store.base.ops = &fake_ops;
  pthread_mutex_init(&f->store.mu, NULL);
  pthread_cond_init(&f->store.cv, NULL);
  assert_int_equal(jwt_keys_init(&f->keys, SECRET, sizeof SECRET - 1, NULL, 0, "storm-test"), 0);
  f->reg = metrics_registry_new();
  assert_non_null(f->reg);
  users_service_opts_default(&f->opts);
  f->opts.loop = &f->loop;
  f->opts.bus = f->bus;
  f->opts.store = &f->store.base;
  f->opts.keys = &f->keys;
  f->opts.metrics = f->reg;
  f->opts.pw_opslimit = crypto_pwhash_OPSLIMIT_MIN;
  f->opts.pw_memlimit = crypto_pwhash_MEMLIMIT_MIN;
}

static void fx_start(fx_t *f) {
  assert_int_equal(users_service_start(&f->opts, &f->svc), 0);
  assert_non_null(f->svc);
}

static void on_stopped(void *arg) { (*(int *)arg)++; }
static void on_bus_closed(void *arg) { (*(int *)arg)++; }

static void fx_done(fx_t *f) {
  if (f->svc) {
    users_service_stop(f->svc, on_stopped, &f->stopped);
    assert_int_equal(f->stopped, 0); /* never inside stop */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->stopped, 1);
    users_service_free(f->svc);
    f->svc = NULL;
  }
  int closed = 0;
  bus_close(f->bus, on_bus_closed, &closed);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  metrics_registry_free(f->reg);
  pthread_mutex_destroy(&f->store.mu);
  pthread_cond_destroy(&f->store.cv);
}

static void gate_close(fx_t *f) {
  pthread_mutex_lock(&f->store.mu);
  f->store.gate = true;
  f->store.entered = 0;
  pthread_mutex_unlock(&f->store.mu);
}

/* Waits until n store calls are blocked at the gate. */
static void gate_wait(fx_t *f, int n) {
  pthread_mutex_lock(&f->store.mu);
  while (f->store.entered < n) pthread_cond_wait(&f->store.cv, &f->store.mu);
  pthread_mutex_unlock(&f->store.mu);
}

static void gate_open(fx_t *f) {
  pthread_mutex_lock(&f->store.mu);
  f->store.gate = false;
  pthread_cond_broadcast(&f->store.cv);
  pthread_mutex_unlock(&f->store.mu);
}

/* ---- requests ---- */

typedef struct {
  int n;
  int status;
  char *data;
  size_t len;
} reply_t;

static void on_reply(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  reply_t *r = arg;
  r->n++;
  r->status = status;
  if (msg) {
    r->data = malloc(msg->len + 1);
    assert_non_null(r->data);
    memcpy(r->data, msg->data, msg->len);
    r->data[msg->len] = '\0';
    r->len = msg->len;
  }
}

static void send_req(fx_t *f, const char *subject, const void *data, size_t len, reply_t *r) {
  memset(r, 0, sizeof *r);
  assert_int_equal(bus_request(f->bus, subject, data, len, 20000, on_reply, r, NULL), 0);
}

/* Sends raw bytes, runs the loop until the reply, returns it (malloc'd). */
static char *call_raw(fx_t *f, const char *subject, const void *data, size_t len) {
  reply_t r;
  send_req(f, subject, data, len, &r);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.status, 0);
  assert_non_null(r.data);
  return r.data;
}

static json_t *parse(const char *s) {
  json_error_t e;
  json_t *j = json_loads(s, 0, &e);
  if (!j) fail_msg("reply is not JSON: %s", s);
  return j;
}

static json_t *call_str(fx_t *f, const char *subject, const char *payload) {
  char *raw = call_raw(f, subject, payload, strlen(payload));
  json_t *j = parse(raw);
  free(raw);
  return j;
}

/* Takes the payload reference. */
static json_t *call(fx_t *f, const char *subject, json_t *payload) {
  assert_non_null(payload);
  char *p = json_dumps(payload, JSON_COMPACT);
  json_decref(payload);
  json_t *j = call_str(f, subject, p);
  free(p);
  return j;
}

/* Checks an error reply's shape and code, and frees it. */
static void expect_error(json_t *r, const char *code, int status) {
  json_t *e = json_object_get(r, "error");
  if (!json_is_object(e)) {
    char *s = json_dumps(r, 0);
    fail_msg("expected error %s, got %s", code, s);
  }
  if (strcmp(json_string_value(json_object_get(e, "code")), code) != 0) {
    char *s = json_dumps(r, 0);
    fail_msg("expected error %s, got %s", code, s);
  }
  assert_int_equal(json_integer_value(json_object_get(e, "status")), status);
  assert_true(json_is_string(json_object_get(e, "message")));
  assert_int_equal(json_object_size(e), 3);
  json_decref(r);
}

static json_t *reg_user(fx_t *f, const char *name, const char *pw) {
  return call(f, "users.register", json_pack("{s:s,s:s}", "username", name, "password", pw));
}

static json_t *login(fx_t *f, const char *name, const char *pw) {
  return call(f, "users.login", json_pack("{s:s,s:s}", "username", name, "password", pw));
}

static json_t *refresh(fx_t *f, const char *token) {
  return call(f, "users.refresh", json_pack("{s:s}", "refresh_token", token));
}

static const char *sget(json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  if (!s) fail_msg("missing string %s", k);
  return s;
}

static int count_users(fx_t *f) {
  pthread_mutex_lock(&f->store.mu);
  int n = f->store.nusers;
  pthread_mutex_unlock(&f->store.mu);
  return n;
}

static double metric(fx_t *f, const char *op, const char *result) {
  static const char *const labels[] = {"op", "result"};
  metrics_family_t *fam = metrics_counter_new(f->reg, "storm_users_requests_total",
                                              "Users service requests by operation and result code.",
                                              2, labels);
  assert_non_null(fam);
  const char *v[2] = {op, result};
  return metrics_value(metrics_series(fam, v));
}

static void assert_user(json_t *u, int64_t id, const char *username, const char *display) {
  assert_true(json_is_object(u));
  assert_int_equal(json_integer_value(json_object_get(u, "id")), id);
  assert_string_equal(sget(u, "username"), username);
  assert_string_equal(sget(u, "display_name"), display);
  json_t *c = json_object_get(u, "created_at");
  assert_true(json_is_integer(c));
  int64_t now = wall_ms();
  assert_true(json_integer_value(c) > now - 60000 && json_integer_value(c) <= now);
  assert_null(json_object_get(u, "password_hash"));
  assert_int_equal(json_object_size(u), 4);
}

/* ---- register ---- */

static void test_register_ok(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  json_t *r = reg_user(&f, "alice", "correct horse");
  assert_int_equal(json_object_size(r), 1);
  assert_user(json_object_get(r, "user"), 1, "alice", "alice"); /* display defaults to name */
  json_decref(r);

  /* display_name kept as given (UTF-8, 64 characters of 2 bytes is allowed) */
  char disp[64 * 2 + 1] = "";
  for (int i = 0; i < 64; i++) strcat(disp, "\xc3\xa9");
  r = call(&f, "users.register",
           json_pack("{s:s,s:s,s:s}", "username", "b.o_b-9", "password", "12345678",
                     "display_name", disp));
  assert_user(json_object_get(r, "user"), 2, "b.o_b-9", disp);
  json_decref(r);

  /* null display_name means absent; 256-byte password and 32-char name accepted */
  char pw[257];
  memset(pw, 'p', 256);
  pw[256] = '\0';
  const char *name32 = "abcdefghijklmnopqrstuvwxyz012345";
  r = call(&f, "users.register",
           json_pack("{s:s,s:s,s:n}", "username", name32, "password", pw, "display_name"));
  assert_user(json_object_get(r, "user"), 3, name32, name32);
  json_decref(r);

  /* the store holds an argon2id hash with the configured parameters, never the password */
  assert_int_equal(count_users(&f), 3);
  assert_true(strncmp(f.store.users[0].password_hash, "$argon2id$", 10) == 0);
  assert_null(strstr(f.store.users[0].password_hash, "correct horse"));
  assert_int_equal(crypto_pwhash_str_verify(f.store.users[0].password_hash, "correct horse", 13), 0);
  assert_int_equal(metric(&f, "register", "ok"), 3);
  fx_done(&f);
}

static void test_register_validation(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  static const struct {
    const char *payload;
    const char *code;
  } t[] = {
      {"{\"username\":\"ab\",\"password\":\"12345678\"}", "invalid_username"},
      {"{\"username\":\"abcdefghijklmnopqrstuvwxyz0123456\",\"password\":\"12345678\"}",
       "invalid_username"},
      {"{\"username\":\"bad name\",\"password\":\"12345678\"}", "invalid_username"},
      {"{\"username\":\"a/b\",\"password\":\"12345678\"}", "invalid_username"},
      {"{\"username\":\"\\u00fcber\",\"password\":\"12345678\"}", "invalid_username"},
      {"{\"username\":\"\",\"password\":\"12345678\"}", "invalid_username"},
      {"{\"username\":\"alice\",\"password\":\"1234567\"}", "invalid_password"},
      {"{\"username\":\"alice\",\"password\":\"\"}", "invalid_password"},
      {"{\"username\":\"alice\",\"password\":\"12345678\",\"display_name\":\"\"}",
       "invalid_display_name"},
      {"{\"username\":\"alice\",\"password\":\"12345678\",\"display_name\":\"a\\u0001b\"}",
       "invalid_display_name"},
      {"{\"username\":\"alice\",\"password\":\"12345678\",\"display_name\":\"a\\nb\"}",
       "invalid_display_name"},
      {"{\"username\":\"alice\",\"password\":\"12345678\",\"display_name\":\"a\\u007fb\"}",
       "invalid_display_name"},
      {"{\"username\":\"alice\",\"password\":\"12345678\",\"display_name\":\"a\\u0085b\"}",
       "invalid_display_name"},
      {"not json", "bad_request"},
      {"", "bad_request"},
      {"[]", "bad_request"},
      {"\"alice\"", "bad_request"},
      {"42", "bad_request"},
      {"{\"username\":\"alice\"", "bad_request"},
      {"{\"username\":5,\"password\":\"12345678\"}", "bad_request"},
      {"{\"username\":\"alice\",\"password\":12345678}", "bad_request"},
      {"{\"password\":\"12345678\"}", "bad_request"},
      {"{\"username\":\"alice\"}", "bad_request"},
      {"{\"username\":\"alice\",\"password\":\"12345678\",\"display_name\":7}", "bad_request"},
      {"{\"username\":\"alice\",\"username\":\"bob\",\"password\":\"12345678\"}", "bad_request"},
      {"{\"username\":\"alice\",\"password\":\"1234\\u00005678\"}", "bad_request"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    json_t *r = call_str(&f, "users.register", t[i].payload);
    expect_error(r, t[i].code, 400);
  }
  /* the exact wording the issue specifies */
  json_t *r = call_str(&f, "users.register", t[0].payload);
  assert_string_equal(sget(json_object_get(r, "error"), "message"),
                      "username must be 3-32 characters of a-z, 0-9, '_', '.', '-'");
  json_decref(r);

  /* 257-byte password, 65-character display name */
  char pw[258];
  memset(pw, 'p', 257);
  pw[257] = '\0';
  expect_error(reg_user(&f, "alice", pw), "invalid_password", 400);
  char disp[66];
  memset(disp, 'd', 65);
  disp[65] = '\0';
  expect_error(call(&f, "users.register",
                    json_pack("{s:s,s:s,s:s}", "username", "alice", "password", "12345678",
                              "display_name", disp)),
               "invalid_display_name", 400);
  /* a payload beyond the parse bound, even if it were valid JSON */
  size_t big = 9000;
  char *huge = malloc(big + 1);
  assert_non_null(huge);
  memset(huge, ' ', big);
  memcpy(huge, "{\"username\":\"alice\",\"password\":\"12345678\"}",
         strlen("{\"username\":\"alice\",\"password\":\"12345678\"}"));
  char *raw = call_raw(&f, "users.register", huge, big);
  expect_error(parse(raw), "bad_request", 400);
  free(raw);
  free(huge);

  assert_int_equal(count_users(&f), 0); /* nothing reached the store */
  assert_int_equal(metric(&f, "register", "invalid_username"), 7);
  fx_done(&f);
}

static void test_register_taken_and_case_folding(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  json_t *r = reg_user(&f, "Alice", "password1");
  assert_user(json_object_get(r, "user"), 1, "alice", "alice"); /* stored lower-case */
  json_decref(r);
  expect_error(reg_user(&f, "alice", "password2"), "username_taken", 409);
  expect_error(reg_user(&f, "ALICE", "password2"), "username_taken", 409);
  assert_int_equal(count_users(&f), 1);
  fx_done(&f);
}

/* ---- login ---- */

static void test_login_ok(void **state) {
  fx_t f;
  fx_init(&f);
  f.opts.access_ttl_s = 600;
  f.opts.refresh_ttl_s = 3600;
  fx_start(&f);
  json_decref(reg_user(&f, "alice", "correct horse"));
  json_t *r = login(&f, "ALICE", "correct horse"); /* login folds case too */
  assert_string_equal(sget(r, "token_type"), "Bearer");
  assert_int_equal(json_integer_value(json_object_get(r, "expires_in")), 600);
  assert_user(json_object_get(r, "user"), 1, "alice", "alice");
  assert_int_equal(json_object_size(r), 5);

  const char *at = sget(r, "access_token");
  jwt_claims_t c;
  int64_t now = time(NULL);
  assert_int_equal(jwt_verify(&f.keys, at, strlen(at), now, &c), 0);
  assert_string_equal(c.sub, "1");
  assert_string_equal(c.name, "alice");
  assert_int_equal(c.exp - c.iat, 600);
  assert_true(c.iat >= now - 5 && c.iat <= now + 1);
  assert_int_equal(strlen(c.jti), 22); /* 16 random bytes */

  /* the refresh token: 32 bytes base64url; the store has only its SHA-256 */
  const char *rt = sget(r, "refresh_token");
  assert_int_equal(strlen(rt), 43);
  uint8_t raw[32], h[32];
  assert_int_equal(b64url_decode(rt, 43, raw, sizeof raw), 32);
  crypto_hash_sha256(h, raw, sizeof raw);
  assert_int_equal(f.store.ntokens, 1);
  refresh_rec_t *rec = &f.store.tokens[0];
  assert_memory_equal(rec->token_hash, h, 32);
  assert_int_equal(rec->user_id, 1);
  assert_false(rec->used);
  assert_false(rec->revoked);
  assert_int_equal(rec->expires_at - rec->created_at, 3600 * 1000);

  /* a second login: a new family, a different jti */
  json_t *r2 = login(&f, "alice", "correct horse");
  assert_int_equal(f.store.ntokens, 2);
  assert_memory_not_equal(f.store.tokens[0].family, f.store.tokens[1].family, 16);
  jwt_claims_t c2;
  const char *at2 = sget(r2, "access_token");
  assert_int_equal(jwt_verify(&f.keys, at2, strlen(at2), now, &c2), 0);
  assert_string_not_equal(c.jti, c2.jti);
  json_decref(r2);
  json_decref(r);
  assert_int_equal(f.store.set_hash_calls, 0); /* same parameters: no rehash */
  fx_done(&f);
}

static void test_login_failures_indistinguishable(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  json_decref(reg_user(&f, "alice", "correct horse"));
  static const char wrong_pw[] = "{\"username\":\"alice\",\"password\":\"wrong horse\"}";
  static const char no_user[] = "{\"username\":\"mallory\",\"password\":\"wrong horse\"}";
  static const char short_pw[] = "{\"username\":\"alice\",\"password\":\"short\"}";
  static const char bad_name[] = "{\"username\":\"no such user!\",\"password\":\"whatever1\"}";
  char *a = call_raw(&f, "users.login", wrong_pw, strlen(wrong_pw));
  char *b = call_raw(&f, "users.login", no_user, strlen(no_user));
  char *c = call_raw(&f, "users.login", short_pw, strlen(short_pw));
  char *d = call_raw(&f, "users.login", bad_name, strlen(bad_name));
  assert_string_equal(a, "{\"error\":{\"code\":\"invalid_credentials\",\"message\":\"invalid "
                         "username or password\",\"status\":401}}");
  assert_string_equal(a, b);
  assert_string_equal(a, c);
  assert_string_equal(a, d);
  free(a);
  free(b);
  free(c);
  free(d);
  assert_int_equal(f.store.ntokens, 0);
  /* the wrong password and the unknown user each cost one verification
   * (plus the registration's hash); impossible input costs none */
  buf_t out = BUF_INIT;
  metrics_render(f.reg, &out);
  assert_non_null(strstr(out.data, "storm_users_hash_seconds_count 3\n"));
  buf_free(&out);
  assert_int_equal(metric(&f, "login", "invalid_credentials"), 4);

  /* wrong types are a bad request, not a credential failure */
  expect_error(call_str(&f, "users.login", "{\"username\":\"alice\"}"), "bad_request", 400);
  expect_error(call_str(&f, "users.login", "{\"username\":1,\"password\":\"x\"}"), "bad_request",
               400);
  expect_error(call_str(&f, "users.login", "[1]"), "bad_request", 400);
  fx_done(&f);
}

/* A hash made with low parameters is replaced on login once the service is
 * configured with higher ones; the new hash carries the new parameters and
 * still verifies. */
static void test_login_rehash(void **state) {
  fx_t f;
  fx_init(&f);
  f.opts.pw_opslimit = crypto_pwhash_OPSLIMIT_MIN + 1;
  f.opts.pw_memlimit = crypto_pwhash_MEMLIMIT_MIN * 2;
  fx_start(&f);
  password_params_t low;
  assert_int_equal(password_params_init(&low, crypto_pwhash_OPSLIMIT_MIN,
                                        crypto_pwhash_MEMLIMIT_MIN), 0);
  char old[PASSWORD_HASH_MAX];
  assert_int_equal(password_hash(&low, "correct horse", 13, old), 0);
  user_rec_t u;
  assert_int_equal(fs_user_create(&f.store.base, "alice", "Alice", old, wall_ms(), &u), 0);

  json_t *r = login(&f, "alice", "correct horse");
  assert_non_null(json_object_get(r, "access_token"));
  json_decref(r);
  assert_int_equal(f.store.set_hash_calls, 1);
  const char *now_hash = f.store.users[0].password_hash;
  assert_string_not_equal(now_hash, old);
  assert_non_null(strstr(now_hash, "m=16,t=2,p=1")); /* 16 KiB, t = 2 */
  assert_int_equal(crypto_pwhash_str_verify(now_hash, "correct horse", 13), 0);

  /* the next login finds the parameters current and leaves the hash alone */
  char kept[USER_HASH_MAX];
  snprintf(kept, sizeof kept, "%s", now_hash);
  r = login(&f, "alice", "correct horse");
  assert_non_null(json_object_get(r, "access_token"));
  json_decref(r);
  assert_int_equal(f.store.set_hash_calls, 1);
  assert_string_equal(f.store.users[0].password_hash, kept);

  /* a failed rehash does not fail the login */
  assert_int_equal(fs_set_hash(&f.store.base, 1, old), 0);
  f.store.fail = F_SET_HASH;
  r = login(&f, "alice", "correct horse");
  assert_non_null(json_object_get(r, "access_token"));
  json_decref(r);
  assert_string_equal(f.store.users[0].password_hash, old);
  fx_done(&f);
}

/* ---- refresh and logout ---- */

static char *login_token(fx_t *f, const char *name) {
  json_t *r = login(f, name, "correct horse");
  char *t = strdup(sget(r, "refresh_token"));
  json_decref(r);
  return t;
}

static void test_refresh_rotation_and_reuse(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  json_decref(reg_user(&f, "alice", "correct horse"));
  char *t1 = login_token(&f, "alice");
  json_t *r = refresh(&f, t1);
  assert_string_equal(sget(r, "token_type"), "Bearer");
  assert_user(json_object_get(r, "user"), 1, "alice", "alice");
  const char *t2 = sget(r, "refresh_token");
  assert_int_equal(strlen(t2), 43);
  assert_string_not_equal(t1, t2);
  const char *at = sget(r, "access_token");
  jwt_claims_t c;
  assert_int_equal(jwt_verify(&f.keys, at, strlen(at), time(NULL), &c), 0);
  assert_string_equal(c.sub, "1");
  assert_int_equal(c.exp - c.iat, 900);
  char *t2c = strdup(t2);
  json_decref(r);
  /* same family, old one marked used */
  assert_int_equal(f.store.ntokens, 2);
  assert_memory_equal(f.store.tokens[0].family, f.store.tokens[1].family, 16);
  assert_true(f.store.tokens[0].used);

  /* the old token again: theft assumed, family revoked */
  expect_error(refresh(&f, t1), "refresh_token_reused", 401);
  assert_true(f.store.tokens[1].revoked);
  /* so the new token is dead too */
  expect_error(refresh(&f, t2c), "invalid_refresh_token", 401);
  assert_int_equal(metric(&f, "refresh", "refresh_token_reused"), 1);
  free(t1);
  free(t2c);
  fx_done(&f);
}

/* Two refreshes with one token at the same time: exactly one wins, the
 * other is treated as reuse and the family ends up revoked. */
static void test_refresh_concurrent(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  json_decref(reg_user(&f, "alice", "correct horse"));
  char *t = login_token(&f, "alice");
  char *p = NULL;
  assert_true(asprintf(&p, "{\"refresh_token\":\"%s\"}", t) > 0);
  reply_t a, b;
  send_req(&f, "users.refresh", p, strlen(p), &a);
  send_req(&f, "users.refresh", p, strlen(p), &b);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(a.n + b.n, 2);
  json_t *ja = parse(a.data), *jb = parse(b.data);
  int ok = (json_object_get(ja, "access_token") != NULL) + (json_object_get(jb, "access_token") != NULL);
  assert_int_equal(ok, 1);
  /* Which one lost depends on the pool's scheduling: decide before either is freed. */
  bool a_lost = json_object_get(ja, "error") != NULL;
  expect_error(a_lost ? ja : jb, "refresh_token_reused", 401);
  json_decref(a_lost ? jb : ja);
  for (int i = 0; i < f.store.ntokens; i++) assert_true(f.store.tokens[i].revoked);
  free(a.data);
  free(b.data);
  free(p);
  free(t);
  fx_done(&f);
}

/* The race of the test above, forced: refresh_get saw the token unused,
 * then refresh_rotate finds it used (-EALREADY). */
static void test_refresh_rotate_outcomes(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  json_decref(reg_user(&f, "alice", "correct horse"));
  char *t = login_token(&f, "alice");
  json_decref(refresh(&f, t));
  f.store.stale_get = true;
  expect_error(refresh(&f, t), "refresh_token_reused", 401);
  assert_int_equal(f.store.revoke_family_calls, 1);
  assert_true(f.store.tokens[1].revoked);
  f.store.stale_get = false;
  free(t);

  /* rotation finds the token revoked or gone (logout or purge since the
   * read): invalid, and no family revocation */
  t = login_token(&f, "alice");
  f.store.rotate_rc = -EACCES;
  expect_error(refresh(&f, t), "invalid_refresh_token", 401);
  f.store.rotate_rc = -ENOENT;
  expect_error(refresh(&f, t), "invalid_refresh_token", 401);
  f.store.rotate_rc = -EALREADY;
  expect_error(refresh(&f, t), "refresh_token_reused", 401);
  f.store.rotate_rc = 0;
  assert_int_equal(f.store.revoke_family_calls, 2);
  free(t);

  /* rotate and revoke_family failures */
  t = login_token(&f, "alice");
  f.store.fail = F_REFRESH_ROTATE;
  expect_error(refresh(&f, t), "unavailable", 503);
  f.store.fail = 0;
  json_decref(refresh(&f, t)); /* still valid after the failed attempt */
  f.store.fail = F_REVOKE_FAMILY;
  expect_error(refresh(&f, t), "unavailable", 503); /* reuse seen, revocation failed */
  f.store.fail = 0;
  expect_error(refresh(&f, t), "refresh_token_reused", 401);
  free(t);
  fx_done(&f);
}

static void test_refresh_invalid(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  json_decref(reg_user(&f, "alice", "correct horse"));
  /* malformed: wrong length, bad alphabet, padding, non-canonical last char */
  expect_error(refresh(&f, "abc"), "invalid_refresh_token", 401);
  expect_error(refresh(&f, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+"), "invalid_refresh_token", 401);
  expect_error(refresh(&f, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), "invalid_refresh_token", 401);
  expect_error(refresh(&f, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB"), "invalid_refresh_token", 401);
  expect_error(refresh(&f, ""), "invalid_refresh_token", 401);
  /* well-formed but unknown */
  expect_error(refresh(&f, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "invalid_refresh_token", 401);
  /* expired */
  char *t = login_token(&f, "alice");
  f.store.tokens[0].expires_at = wall_ms() - 1;
  expect_error(refresh(&f, t), "invalid_refresh_token", 401);
  free(t);
  /* revoked */
  t = login_token(&f, "alice");
  f.store.tokens[1].revoked = true;
  expect_error(refresh(&f, t), "invalid_refresh_token", 401);
  free(t);
  /* its user vanished */
  t = login_token(&f, "alice");
  f.store.tokens[2].user_id = 99;
  expect_error(refresh(&f, t), "invalid_refresh_token", 401);
  free(t);
  /* wrong types */
  expect_error(call_str(&f, "users.refresh", "{}"), "bad_request", 400);
  expect_error(call_str(&f, "users.refresh", "{\"refresh_token\":1}"), "bad_request", 400);
  expect_error(call_str(&f, "users.refresh", "nope"), "bad_request", 400);
  fx_done(&f);
}

static void test_logout(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  json_decref(reg_user(&f, "alice", "correct horse"));
  char *t = login_token(&f, "alice");
  json_t *r = call(&f, "users.logout", json_pack("{s:s}", "refresh_token", t));
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
  assert_true(f.store.tokens[0].revoked);
  expect_error(refresh(&f, t), "invalid_refresh_token", 401);
  /* idempotent, and unknown tokens are fine */
  r = call(&f, "users.logout", json_pack("{s:s}", "refresh_token", t));
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
  r = call(&f, "users.logout",
           json_pack("{s:s}", "refresh_token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
  /* malformed */
  expect_error(call(&f, "users.logout", json_pack("{s:s}", "refresh_token", "short")),
               "bad_request", 400);
  expect_error(call_str(&f, "users.logout", "{\"refresh_token\":null}"), "bad_request", 400);
  /* store failure */
  f.store.fail = F_REFRESH_REVOKE;
  expect_error(call(&f, "users.logout", json_pack("{s:s}", "refresh_token", t)), "unavailable",
               503);
  free(t);
  fx_done(&f);
}

/* ---- get ---- */

static void test_get(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  json_decref(call(&f, "users.register",
                   json_pack("{s:s,s:s,s:s}", "username", "alice", "password", "correct horse",
                             "display_name", "Alice \xe2\x9a\xa1 \"A\"")));
  json_t *r = call_str(&f, "users.get", "{\"id\":1}");
  assert_user(json_object_get(r, "user"), 1, "alice", "Alice \xe2\x9a\xa1 \"A\"");
  json_decref(r);
  r = call_str(&f, "users.get", "{\"username\":\"ALICE\"}");
  assert_user(json_object_get(r, "user"), 1, "alice", "Alice \xe2\x9a\xa1 \"A\"");
  json_decref(r);
  expect_error(call_str(&f, "users.get", "{\"id\":2}"), "user_not_found", 404);
  expect_error(call_str(&f, "users.get", "{\"id\":0}"), "user_not_found", 404);
  expect_error(call_str(&f, "users.get", "{\"id\":-5}"), "user_not_found", 404);
  expect_error(call_str(&f, "users.get", "{\"username\":\"bob\"}"), "user_not_found", 404);
  expect_error(call_str(&f, "users.get", "{\"username\":\"no way!\"}"), "user_not_found", 404);
  expect_error(call_str(&f, "users.get", "{\"id\":\"1\"}"), "bad_request", 400);
  expect_error(call_str(&f, "users.get", "{\"id\":1.0}"), "bad_request", 400);
  expect_error(call_str(&f, "users.get", "{\"username\":1}"), "bad_request", 400);
  expect_error(call_str(&f, "users.get", "{\"id\":1,\"username\":\"alice\"}"), "bad_request", 400);
  expect_error(call_str(&f, "users.get", "{}"), "bad_request", 400);
  expect_error(call_str(&f, "users.get", "{\"id\":99999999999999999999999}"), "bad_request", 400);
  assert_int_equal(metric(&f, "get", "ok"), 2);
  assert_int_equal(metric(&f, "get", "user_not_found"), 5);
  fx_done(&f);
}

/* ---- limits, failures, lifecycle ---- */

static void test_overload(void **state) {
  fx_t f;
  fx_init(&f);
  f.opts.max_concurrent_hashes = 1;
  f.opts.max_queued_hashes = 2;
  fx_start(&f);
  json_decref(reg_user(&f, "alice", "correct horse"));
  static const char p[] = "{\"username\":\"alice\",\"password\":\"correct horse\"}";
  reply_t r[10];
  for (int i = 0; i < 10; i++) send_req(&f, "users.login", p, strlen(p), &r[i]);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  int ok = 0, overloaded = 0;
  for (int i = 0; i < 10; i++) {
    assert_int_equal(r[i].n, 1);
    json_t *j = parse(r[i].data);
    if (json_object_get(j, "access_token")) {
      ok++;
      json_decref(j);
    } else {
      expect_error(j, "overloaded", 503);
      overloaded++;
    }
    free(r[i].data);
  }
  /* all ten arrive in one delivery batch: one runs, two wait, seven refused */
  assert_int_equal(ok, 3);
  assert_int_equal(overloaded, 7);
  assert_int_equal(metric(&f, "login", "overloaded"), 7);
  assert_int_equal(metric(&f, "login", "ok"), 3);
  fx_done(&f);
}

static void test_store_failures(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  json_decref(reg_user(&f, "alice", "correct horse"));
  char *t = login_token(&f, "alice");
  f.store.fail = F_USER_BY_NAME;
  expect_error(reg_user(&f, "bob", "correct horse"), "unavailable", 503);
  expect_error(login(&f, "alice", "correct horse"), "unavailable", 503);
  expect_error(call_str(&f, "users.get", "{\"username\":\"alice\"}"), "unavailable", 503);
  f.store.fail = F_USER_CREATE;
  expect_error(reg_user(&f, "bob", "correct horse"), "unavailable", 503);
  f.store.fail = F_USER_BY_ID;
  expect_error(call_str(&f, "users.get", "{\"id\":1}"), "unavailable", 503);
  expect_error(refresh(&f, t), "unavailable", 503);
  f.store.fail = F_REFRESH_INSERT;
  expect_error(login(&f, "alice", "correct horse"), "unavailable", 503);
  f.store.fail = F_REFRESH_GET;
  expect_error(refresh(&f, t), "unavailable", 503);
  /* the user deleted between lookup and token insert (a foreign key miss) */
  f.store.fail = 0;
  f.store.insert_rc = -ENOENT;
  expect_error(login(&f, "alice", "correct horse"), "invalid_credentials", 401);
  f.store.insert_rc = 0;
  f.store.fail = 0;
  json_decref(refresh(&f, t)); /* none of the failures consumed the token */
  assert_int_equal(metric(&f, "register", "unavailable"), 2);
  free(t);
  fx_done(&f);
}

/* A publish without a reply subject is ignored: no work, no crash. */
static void test_no_reply_subject(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  static const char p[] = "{\"username\":\"alice\",\"password\":\"correct horse\"}";
  assert_int_equal(bus_publish(f.bus, "users.register", NULL, p, strlen(p)), 0);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(count_users(&f), 0);
  fx_done(&f);
}

/* nice of a thread of this process, from /proc (field 19 of stat), or
 * -100 if unreadable. */
static int thread_nice(const char *tid) {
  char path[64], line[1024];
  snprintf(path, sizeof path, "/proc/self/task/%s/stat", tid);
  FILE *fp = fopen(path, "r");
  if (!fp) return -100;
  size_t n = fread(line, 1, sizeof line - 1, fp);
  fclose(fp);
  line[n] = '\0';
  char *p = strrchr(line, ')'); /* the command name may contain spaces */
  if (!p) return -100;
  int field = 2, nice = -100;
  for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " "))
    if (++field == 19) nice = atoi(tok);
  return nice;
}

/* The pool thread that hashed runs at nice 10; the loop thread keeps its own. */
static void test_hash_thread_priority(void **state) {
  char self[32];
  snprintf(self, sizeof self, "%d", (int)gettid());
  int base = thread_nice(self);
  if (base < -20 || base >= 10) skip(); /* no /proc, or already running niced */
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  json_decref(reg_user(&f, "alice", "correct horse"));
  int niced = 0;
  DIR *d = opendir("/proc/self/task");
  assert_non_null(d);
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.' || strcmp(e->d_name, self) == 0) continue;
    if (thread_nice(e->d_name) == 10) niced++;
  }
  closedir(d);
  /* at least the thread that hashed (libuv's pool outlives loops: threads
   * niced by earlier tests stay so; this test runs first to see one) */
  assert_true(niced >= 1);
  assert_int_equal(thread_nice(self), base);
  fx_done(&f);
}

/* Parses each reply, counts those with an error (which must be `code`)
 * and checks the others succeeded (carry `ok_key`). Frees the replies. */
static int count_errors(reply_t *r, int n, const char *ok_key, const char *code, int status) {
  int errors = 0;
  for (int i = 0; i < n; i++) {
    assert_int_equal(r[i].n, 1);
    assert_int_equal(r[i].status, 0);
    json_t *j = parse(r[i].data);
    if (json_object_get(j, "error")) {
      expect_error(j, code, status);
      errors++;
    } else {
      assert_non_null(json_object_get(j, ok_key));
      json_decref(j);
    }
    free(r[i].data);
  }
  return errors;
}

/* Stop with one hash job running and four waiting: the waiting ones are
 * answered 503 unavailable at once, the running one completes normally,
 * and done runs once, from the loop, after it. */
static void test_stop_with_waiting_jobs(void **state) {
  fx_t f;
  fx_init(&f);
  f.opts.max_concurrent_hashes = 1;
  f.opts.max_queued_hashes = 8;
  fx_start(&f);
  json_decref(reg_user(&f, "alice", "correct horse"));
  static const char p[] = "{\"username\":\"alice\",\"password\":\"correct horse\"}";
  reply_t r[5];
  gate_close(&f);
  for (int i = 0; i < 5; i++) send_req(&f, "users.login", p, strlen(p), &r[i]);
  uv_run(&f.loop, UV_RUN_NOWAIT); /* delivers: one job on the pool, four waiting */
  gate_wait(&f, 1);               /* the first is inside the store */
  users_service_stop(f.svc, on_stopped, &f.stopped);
  users_service_stop(f.svc, on_stopped, &f.stopped); /* ignored */
  assert_int_equal(f.stopped, 0);
  gate_open(&f);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(f.stopped, 1);
  assert_int_equal(count_errors(r, 5, "access_token", "unavailable", 503), 4);
  /* after stop nobody listens */
  reply_t late;
  send_req(&f, "users.get", "{\"id\":1}", 8, &late);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(late.n, 1);
  assert_int_equal(late.status, BUS_ENORESPONDERS);
  users_service_free(f.svc);
  f.svc = NULL;
  fx_done(&f);
}

/* Stop with a job still in libuv's queue (all four pool threads busy): it
 * is cancelled and answered 503; the running ones complete. */
static void test_stop_cancels_unstarted(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  json_decref(reg_user(&f, "alice", "correct horse"));
  reply_t r[5];
  gate_close(&f);
  for (int i = 0; i < 4; i++) send_req(&f, "users.get", "{\"id\":1}", 8, &r[i]);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  gate_wait(&f, 4); /* every pool thread (UV_THREADPOOL_SIZE=4) is blocked */
  send_req(&f, "users.get", "{\"id\":1}", 8, &r[4]);
  uv_run(&f.loop, UV_RUN_NOWAIT); /* queued behind them */
  users_service_stop(f.svc, on_stopped, &f.stopped);
  gate_open(&f);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(f.stopped, 1);
  assert_int_equal(count_errors(r, 5, "user", "unavailable", 503), 1);
  assert_true(r[4].len > 0);
  assert_int_equal(f.store.entered, 4); /* the cancelled job never ran */
  users_service_free(f.svc);
  f.svc = NULL;
  fx_done(&f);
}

/* Stop with nothing in flight still calls done from the loop. */
static void test_stop_idle(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  fx_done(&f); /* asserts done is not called inside stop */
}

static void test_start_invalid(void **state) {
  fx_t f;
  fx_init(&f);
  users_service_t *s = (users_service_t *)&f; /* must be reset to NULL */
  users_service_opts_t o;
  static const int cases = 10;
  for (int i = 0; i < cases; i++) {
    o = f.opts;
    switch (i) {
    case 0: o.loop = NULL; break;
    case 1: o.bus = NULL; break;
    case 2: o.store = NULL; break;
    case 3: o.keys = NULL; break;
    case 4: o.access_ttl_s = 0; break;
    case 5: o.refresh_ttl_s = -1; break;
    case 6: o.max_concurrent_hashes = 0; break;
    case 7: o.max_queued_hashes = -1; break;
    case 8: o.pw_opslimit = 0; break;
    case 9: o.pw_memlimit = 1024; break;
    }
    assert_int_equal(users_service_start(&o, &s), -EINVAL);
    assert_null(s);
  }
  /* defaults are the documented ones */
  users_service_opts_default(&o);
  assert_int_equal(o.access_ttl_s, 900);
  assert_int_equal(o.refresh_ttl_s, 30 * 86400);
  assert_int_equal(o.pw_opslimit, 2);
  assert_int_equal(o.pw_memlimit, 19 << 20);
  assert_int_equal(o.max_concurrent_hashes, 1);
  assert_int_equal(o.max_queued_hashes, 256);
  fx_done(&f);
}

/* Zero queue: a hash job that finds the slot busy is refused at once. */
static void test_queue_zero_and_metrics(void **state) {
  fx_t f;
  fx_init(&f);
  f.opts.max_queued_hashes = 0;
  fx_start(&f);
  static const char p1[] = "{\"username\":\"alice\",\"password\":\"correct horse\"}";
  static const char p2[] = "{\"username\":\"bobby\",\"password\":\"correct horse\"}";
  reply_t a, b, c;
  send_req(&f, "users.register", p1, strlen(p1), &a);
  send_req(&f, "users.register", p2, strlen(p2), &b);
  send_req(&f, "users.get", "{\"id\":1}", 8, &c); /* not a hash job: never refused */
  uv_run(&f.loop, UV_RUN_DEFAULT);
  json_t *ja = parse(a.data), *jb = parse(b.data), *jc = parse(c.data);
  assert_non_null(json_object_get(ja, "user"));
  expect_error(jb, "overloaded", 503);
  /* get ran concurrently with the registration: found or not, never refused */
  assert_true(json_object_get(jc, "user") || json_object_get(jc, "error"));
  if (json_object_get(jc, "error")) expect_error(jc, "user_not_found", 404);
  else json_decref(jc);
  json_decref(ja);
  free(a.data);
  free(b.data);
  free(c.data);

  buf_t out = BUF_INIT;
  metrics_render(f.reg, &out);
  assert_false(out.oom);
  assert_non_null(strstr(out.data, "storm_users_requests_total{op=\"register\",result=\"ok\"} 1"));
  assert_non_null(
      strstr(out.data, "storm_users_requests_total{op=\"register\",result=\"overloaded\"} 1"));
  assert_non_null(strstr(out.data, "storm_users_hash_seconds_count 1"));
  assert_non_null(strstr(out.data, "storm_users_hash_queue 0"));
  buf_free(&out);
  fx_done(&f);
}

/* Expired refresh tokens are purged on the pool every purge_interval_ms,
 * with the wall clock, and stop waits for nothing once the timer is gone. */
static void purge_tick(uv_timer_t *t) {
  fx_t *f = t->data;
  if (atomic_load(&f->store.purge_calls) >= 2) uv_stop(&f->loop);
}

static void test_purge_timer(void **state) {
  fx_t f;
  fx_init(&f);
  f.opts.purge_interval_ms = 20;
  fx_start(&f);
  uv_timer_t t;
  uv_timer_init(&f.loop, &t);
  t.data = &f;
  uv_timer_start(&t, purge_tick, 10, 10); /* keeps the loop alive; stops it after 2 purges */
  uint64_t t0 = uv_now(&f.loop);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_true(atomic_load(&f.store.purge_calls) >= 2);
  assert_true(uv_now(&f.loop) - t0 < 5000);
  long long now = (long long)time(NULL) * 1000;
  long long seen = atomic_load(&f.store.purge_now);
  assert_true(seen > now - 10000 && seen <= now + 1000); /* unix ms, not loop time */
  uv_close((uv_handle_t *)&t, NULL);
  fx_done(&f);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  /* test_stop_cancels_unstarted fills the pool: fix its size */
  setenv("UV_THREADPOOL_SIZE", "4", 1);
  /* every log line is formatted (so sanitizers see the debug paths) and
   * discarded (the failures logged here are the expected ones) */
  int devnull = open("/dev/null", O_WRONLY);
  if (devnull >= 0) log_set_fd(devnull);
  log_set_level(LOG_LEVEL_DEBUG);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hash_thread_priority),
      cmocka_unit_test(test_register_ok),
      cmocka_unit_test(test_register_validation),
      cmocka_unit_test(test_register_taken_and_case_folding),
      cmocka_unit_test(test_login_ok),
      cmocka_unit_test(test_login_failures_indistinguishable),
      cmocka_unit_test(test_login_rehash),
      cmocka_unit_test(test_refresh_rotation_and_reuse),
      cmocka_unit_test(test_refresh_concurrent),
      cmocka_unit_test(test_refresh_rotate_outcomes),
      cmocka_unit_test(test_refresh_invalid),
      cmocka_unit_test(test_logout),
      cmocka_unit_test(test_get),
      cmocka_unit_test(test_overload),
      cmocka_unit_test(test_store_failures),
      cmocka_unit_test(test_no_reply_subject),
      cmocka_unit_test(test_stop_with_waiting_jobs),
      cmocka_unit_test(test_stop_cancels_unstarted),
      cmocka_unit_test(test_stop_idle),
      cmocka_unit_test(test_start_invalid),
      cmocka_unit_test(test_queue_zero_and_metrics),
      cmocka_unit_test(test_purge_timer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
