/* Unit tests for services/messages: the messages.* subjects driven through
 * a real bus_local on a real uv loop (work goes to libuv's thread pool),
 * against the REAL SQLite store in a temp directory (users are created in
 * the same database, as the foreign keys require), with a fake `users.get`
 * responder on the same bus. Events are captured by plain subscriptions to
 * chan.>, user.> and message.sent. Each test stops the service, closes the
 * stores and the bus and checks that the loop closes with no handle left:
 * under ASan, nothing may leak. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "bus/bus.h"
#include "bus/bus_local.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "services/messages/messages_internal.h" /* the pure parts: mentions, names cache */
#include "services/messages/messages_service.h"
#include "store/messages_store.h"
#include "store/sqlite/messages_sqlite.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/users_sqlite.h"
#include "store/users_store.h"

/* ---- fixture ---- */

#define MAX_USERS 8
#define MAX_EVENTS 1024

typedef enum { USERS_ANSWER, USERS_SILENT, USERS_FAIL } users_mode_t;

typedef struct {
  char *subject;
  json_t *body;
} event_t;

typedef struct {
  char dir[64];
  uv_loop_t loop;
  bus_t *bus;
  sqlite_db_t *db;
  users_store_t *users;
  messages_store_t *store;
  metrics_registry_t *reg;
  messages_service_opts_t opts;
  messages_service_t *svc;
  bus_sub_t *users_sub, *ev_subs[3];
  users_mode_t users_mode;
  int users_calls;
  int64_t uid[MAX_USERS];
  char uname[MAX_USERS][USER_NAME_MAX + 1];
  int nusers;
  event_t ev[MAX_EVENTS];
  int nev;
  int stopped;
  /* the fake media service (media.get with ownerOnly) */
  bus_sub_t *media_sub;
  int media_calls;
  char *held[8]; /* reply subjects of held answers ("hold" keys) */
  int nheld;
} fx_t;

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_us(long us) {
  struct timespec ts = {0, us * 1000L};
  nanosleep(&ts, NULL);
}

/* The store's uv_async_t keeps the loop alive: poll with NOWAIT until the
 * condition holds (20 s at most). */
#define RUN_UNTIL(f, cond)                                               \
  do {                                                                   \
    int64_t deadline_ = wall_ms() + 20000;                               \
    while (!(cond)) {                                                    \
      uv_run(&(f)->loop, UV_RUN_NOWAIT);                                 \
      if (cond) break;                                                   \
      if (wall_ms() > deadline_) fail_msg("timed out waiting: %s", #cond); \
      sleep_us(200);                                                     \
    }                                                                    \
  } while (0)

/* Runs the loop for ms milliseconds: lets late events (that must not
 * come) arrive. */
static void run_for(fx_t *f, int ms) {
  int64_t end = wall_ms() + ms;
  while (wall_ms() < end) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    sleep_us(500);
  }
}

static void on_event(bus_t *bus, const bus_msg_t *m, void *arg) {
  fx_t *f = arg;
  if (f->nev == MAX_EVENTS) fail_msg("too many events");
  json_error_t e;
  json_t *j = json_loadb(m->data, m->len, 0, &e);
  if (!j) fail_msg("event on %s is not JSON: %.*s", m->subject, (int)m->len, (const char *)m->data);
  f->ev[f->nev].subject = strdup(m->subject);
  f->ev[f->nev].body = j;
  f->nev++;
}

static void events_clear(fx_t *f) {
  for (int i = 0; i < f->nev; i++) {
    free(f->ev[i].subject);
    json_decref(f->ev[i].body);
  }
  f->nev = 0;
}

static int events_on(fx_t *f, const char *subject) {
  int n = 0;
  for (int i = 0; i < f->nev; i++) n += strcmp(f->ev[i].subject, subject) == 0;
  return n;
}

/* The k-th event on subject (0-based), or NULL. */
static json_t *event_on(fx_t *f, const char *subject, int k) {
  for (int i = 0; i < f->nev; i++)
    if (strcmp(f->ev[i].subject, subject) == 0 && k-- == 0) return f->ev[i].body;
  return NULL;
}

static const char *user_name(fx_t *f, int64_t id) {
  for (int i = 0; i < f->nusers; i++)
    if (f->uid[i] == id) return f->uname[i];
  return NULL;
}

/* The fake users service: answers users.get like the real one. */
static void on_users_get(bus_t *bus, const bus_msg_t *m, void *arg) {
  fx_t *f = arg;
  f->users_calls++;
  if (f->users_mode == USERS_SILENT) return;
  if (f->users_mode == USERS_FAIL) {
    const char *e = "{\"error\":{\"code\":\"unavailable\",\"message\":\"x\",\"status\":503}}";
    bus_respond(bus, m, e, strlen(e));
    return;
  }
  json_t *req = json_loadb(m->data, m->len, 0, NULL);
  assert_non_null(req);
  json_t *id = json_object_get(req, "id"), *name = json_object_get(req, "username");
  assert_true((id != NULL) != (name != NULL));
  int found = -1;
  for (int i = 0; i < f->nusers; i++) {
    if (id && json_integer_value(id) == f->uid[i]) found = i;
    if (name && strcmp(json_string_value(name), f->uname[i]) == 0) found = i;
  }
  json_decref(req);
  char out[256];
  if (found < 0)
    snprintf(out, sizeof out,
             "{\"error\":{\"code\":\"user_not_found\",\"message\":\"user not found\",\"status\":404}}");
  else
    snprintf(out, sizeof out,
             "{\"user\":{\"id\":%" PRId64 ",\"username\":\"%s\",\"display_name\":\"%s\","
             "\"created_at\":1}}",
             f->uid[found], f->uname[found], f->uname[found]);
  bus_respond(bus, m, out, strlen(out));
}

/* The fake media service: media.get {userId, key, ownerOnly: true} as the
 * messages service asks it. A key containing "notmine" is not the
 * author's (404), "broken" fails (503), "hold" is answered (owned) only
 * by media_release; any other key is the author's. */
static void on_media_get(bus_t *bus, const bus_msg_t *m, void *arg) {
  fx_t *f = arg;
  f->media_calls++;
  json_t *req = json_loadb(m->data, m->len, 0, NULL);
  assert_non_null(req);
  assert_true(json_is_true(json_object_get(req, "ownerOnly")));
  assert_true(json_integer_value(json_object_get(req, "userId")) > 0);
  const char *key = json_string_value(json_object_get(req, "key"));
  assert_non_null(key);
  char out[512];
  if (strstr(key, "notmine"))
    snprintf(out, sizeof out, "{\"error\":{\"code\":\"media_not_found\",\"message\":\"no\",\"status\":404}}");
  else if (strstr(key, "broken"))
    snprintf(out, sizeof out, "{\"error\":{\"code\":\"unavailable\",\"message\":\"x\",\"status\":503}}");
  else
    snprintf(out, sizeof out, "{\"key\":\"k\",\"mime\":\"image/png\",\"size\":1}");
  json_decref(req);
  if (strstr(out, "\"key\"") && strstr(m->data ? (const char *)m->data : "", "hold")) {
    assert_true(f->nheld < 8);
    f->held[f->nheld++] = strdup(m->reply);
    return;
  }
  bus_respond(bus, m, out, strlen(out));
}

static void media_release(fx_t *f) {
  const char *ok = "{\"key\":\"k\",\"mime\":\"image/png\",\"size\":1}";
  for (int i = 0; i < f->nheld; i++) {
    bus_msg_t m = {.subject = f->held[i], .reply = f->held[i]};
    bus_respond(f->bus, &m, ok, strlen(ok));
    free(f->held[i]);
  }
  f->nheld = 0;
}

static int64_t mkuser(fx_t *f, const char *name) {
  user_rec_t u;
  assert_int_equal(f->users->ops->user_create(f->users, name, name, "hash", 1, &u), 0);
  f->uid[f->nusers] = u.id;
  snprintf(f->uname[f->nusers], sizeof f->uname[0], "%s", name);
  f->nusers++;
  return u.id;
}

static void fx_init(fx_t *f) {
  memset(f, 0, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/storm-msvc-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->bus = bus_local_new(&f->loop, 0);
  assert_non_null(f->bus);
  char err[256];
  assert_int_equal(sqlite_db_open(f->dir, &f->db, err, sizeof err), 0);
  assert_int_equal(users_sqlite_open(f->db, &f->users), 0);
  messages_sqlite_opts_t so = {.loop = &f->loop, .node_id = 1};
  assert_int_equal(messages_sqlite_open(f->db, &so, &f->store), 0);
  f->reg = metrics_registry_new();
  assert_non_null(f->reg);
  messages_service_opts_default(&f->opts);
  f->opts.loop = &f->loop;
  f->opts.bus = f->bus;
  f->opts.store = f->store;
  f->opts.metrics = f->reg;
  f->opts.users_timeout_ms = 300;
  assert_int_equal(bus_subscribe(f->bus, "users.get", "users", on_users_get, f, &f->users_sub), 0);
  assert_int_equal(bus_subscribe(f->bus, "chan.>", NULL, on_event, f, &f->ev_subs[0]), 0);
  assert_int_equal(bus_subscribe(f->bus, "user.>", NULL, on_event, f, &f->ev_subs[1]), 0);
  assert_int_equal(bus_subscribe(f->bus, "message.sent", NULL, on_event, f, &f->ev_subs[2]), 0);
  assert_int_equal(bus_subscribe(f->bus, "media.get", "media", on_media_get, f, &f->media_sub), 0);
  mkuser(f, "alice");
  mkuser(f, "bob");
  mkuser(f, "carol");
  mkuser(f, "dave");
}

static void fx_start(fx_t *f) {
  assert_int_equal(messages_service_start(&f->opts, &f->svc), 0);
  assert_non_null(f->svc);
}

static void on_flag(void *arg) { (*(int *)arg)++; }

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  return remove(path);
}

static void fx_stop(fx_t *f) {
  if (!f->svc) return;
  messages_service_stop(f->svc, on_flag, &f->stopped);
  assert_int_equal(f->stopped, 0); /* never inside stop */
  RUN_UNTIL(f, f->stopped == 1);
  messages_service_free(f->svc);
  f->svc = NULL;
}

static void fx_done(fx_t *f) {
  fx_stop(f);
  f->store->ops->close(f->store);
  f->users->ops->close(f->users);
  int closed = 0;
  bus_close(f->bus, on_flag, &closed);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  sqlite_db_close(f->db);
  metrics_registry_free(f->reg);
  events_clear(f);
  for (int i = 0; i < f->nheld; i++) free(f->held[i]);
  f->nheld = 0;
  nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- requests ---- */

typedef struct {
  int n;
  int status;
  char *data;
} reply_t;

static void on_reply(bus_t *bus, int status, const bus_msg_t *m, void *arg) {
  reply_t *r = arg;
  r->n++;
  r->status = status;
  if (m) r->data = strndup(m->data ? m->data : "", m->len);
}

static void send_raw(fx_t *f, const char *subject, const void *data, size_t len, reply_t *r) {
  memset(r, 0, sizeof *r);
  assert_int_equal(bus_request(f->bus, subject, data, len, 15000, on_reply, r, NULL), 0);
}

static int answered(const reply_t *r, int n) {
  int k = 0;
  for (int i = 0; i < n; i++) k += r[i].n;
  return k;
}

static json_t *parse(const char *s) {
  json_error_t e;
  json_t *j = json_loads(s, 0, &e);
  if (!j) fail_msg("reply is not JSON: %s", s);
  return j;
}

static json_t *call_raw(fx_t *f, const char *subject, const void *data, size_t len) {
  reply_t r;
  send_raw(f, subject, data, len, &r);
  RUN_UNTIL(f, r.n == 1);
  assert_int_equal(r.status, 0);
  json_t *j = parse(r.data);
  free(r.data);
  return j;
}

/* Sends the payload built by json_pack-style fmt and waits for the reply. */
static json_t *call(fx_t *f, const char *subject, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  json_error_t e;
  json_t *p = json_vpack_ex(&e, 0, fmt, ap);
  va_end(ap);
  if (!p) fail_msg("bad pack %s: %s", fmt, e.text);
  char *s = json_dumps(p, JSON_COMPACT);
  json_decref(p);
  json_t *j = call_raw(f, subject, s, strlen(s));
  free(s);
  return j;
}

static json_t *call_str(fx_t *f, const char *subject, const char *payload) {
  return call_raw(f, subject, payload, strlen(payload));
}

static int64_t ival(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  if (!json_is_integer(v)) fail_msg("%s is not an integer", key);
  return (int64_t)json_integer_value(v);
}

static const char *sval(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  if (!json_is_string(v)) fail_msg("%s is not a string", key);
  return json_string_value(v);
}

static void assert_err(json_t *r, const char *code, int status) {
  json_t *e = json_object_get(r, "error");
  if (!e) {
    char *s = json_dumps(r, 0);
    fail_msg("expected error %s, got %s", code, s);
  }
  assert_string_equal(sval(e, "code"), code);
  assert_int_equal(ival(e, "status"), status);
  assert_true(json_is_string(json_object_get(e, "message")));
  json_decref(r);
}

static void assert_ok(json_t *r) {
  if (json_object_get(r, "error")) {
    char *s = json_dumps(r, 0);
    fail_msg("unexpected error: %s", s);
  }
}

/* Creates a channel as user and returns its id. */
static int64_t create(fx_t *f, int64_t user, const char *name, bool priv) {
  json_t *r = call(f, "messages.channel.create", "{s:I,s:s,s:b}", "user_id", (json_int_t)user,
                   "name", name, "private", priv);
  assert_ok(r);
  int64_t id = ival(json_object_get(r, "channel"), "id");
  json_decref(r);
  return id;
}

static void join(fx_t *f, int64_t user, int64_t ch) {
  json_t *r = call(f, "messages.channel.join", "{s:I,s:s,s:I}", "user_id", (json_int_t)user,
                   "username", user_name(f, user), "channel_id", (json_int_t)ch);
  assert_ok(r);
  json_decref(r);
}

/* Sends body as user; returns the ack (caller decrefs). */
static json_t *send_msg(fx_t *f, int64_t user, int64_t ch, const char *body) {
  return call(f, "messages.send", "{s:I,s:s,s:I,s:s}", "user_id", (json_int_t)user, "username",
              user_name(f, user), "channel_id", (json_int_t)ch, "body", body);
}

static char *subj(const char *prefix, int64_t id) {
  static char b[4][64];
  static int k;
  k = (k + 1) % 4;
  snprintf(b[k], sizeof b[k], "%s.%" PRId64, prefix, id);
  return b[k];
}

/* Waits until the bus has delivered everything published so far: bus_local
 * is one FIFO, so a message published now arrives after all of them. */
static void on_fence(bus_t *bus, const bus_msg_t *m, void *arg) { (*(int *)arg)++; }
static void fence(fx_t *f) {
  int got = 0;
  bus_sub_t *sub;
  assert_int_equal(bus_subscribe(f->bus, "test.fence", NULL, on_fence, &got, &sub), 0);
  assert_int_equal(bus_publish(f->bus, "test.fence", NULL, "x", 1), 0);
  RUN_UNTIL(f, got == 1);
  bus_unsubscribe(sub);
}

/* The value of the sample line starting with line_prefix, -1 if none. */
static double metric(fx_t *f, const char *line_prefix) {
  buf_t out = BUF_INIT;
  metrics_render(f->reg, &out);
  double v = -1;
  size_t n = strlen(line_prefix);
  for (const char *p = out.data; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncmp(p, line_prefix, n) == 0) v = strtod(p + n, NULL);
  buf_free(&out);
  return v;
}

/* ---- tests ---- */

static void test_create_list_get(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1];

  json_t *r = call(&f, "messages.channel.create", "{s:I,s:s,s:s}", "user_id", (json_int_t)alice,
                   "name", "general", "topic", "all things");
  assert_ok(r);
  json_t *c = json_object_get(r, "channel");
  int64_t ch = ival(c, "id");
  assert_true(ch > 0);
  assert_string_equal(sval(c, "kind"), "channel");
  assert_string_equal(sval(c, "name"), "general");
  assert_string_equal(sval(c, "topic"), "all things");
  assert_true(json_is_false(json_object_get(c, "private")));
  assert_int_equal(ival(c, "owner_id"), alice);
  assert_true(ival(c, "created_at") > 1700000000000);
  assert_int_equal(ival(c, "last_seq"), 0);
  json_decref(r);
  fence(&f);
  /* the creator's connections follow the channel */
  assert_int_equal(events_on(&f, subj("user", alice)), 1);
  json_t *ev = event_on(&f, subj("user", alice), 0);
  assert_string_equal(sval(ev, "op"), "channel_joined");
  assert_int_equal(ival(json_object_get(ev, "channel"), "id"), ch);
  assert_int_equal(f.nev, 1);

  /* names are unique */
  assert_err(call(&f, "messages.channel.create", "{s:I,s:s}", "user_id", (json_int_t)bob, "name",
                  "general"),
             "name_taken", 409);

  /* list: the caller's channels with read state */
  int64_t ch2 = create(&f, alice, "random", false);
  r = call(&f, "messages.channel.list", "{s:I}", "user_id", (json_int_t)alice);
  assert_ok(r);
  json_t *list = json_object_get(r, "channels");
  assert_int_equal(json_array_size(list), 2);
  assert_int_equal(ival(json_array_get(list, 0), "id"), ch);
  assert_int_equal(ival(json_array_get(list, 1), "id"), ch2);
  assert_int_equal(ival(json_array_get(list, 0), "last_read_seq"), 0);
  assert_int_equal(ival(json_array_get(list, 0), "unread"), 0);
  assert_true(json_is_false(json_object_get(r, "more")));
  json_decref(r);
  /* paged */
  r = call(&f, "messages.channel.list", "{s:I,s:i}", "user_id", (json_int_t)alice, "limit", 1);
  assert_int_equal(json_array_size(json_object_get(r, "channels")), 1);
  assert_true(json_is_true(json_object_get(r, "more")));
  json_decref(r);
  r = call(&f, "messages.channel.list", "{s:I,s:I}", "user_id", (json_int_t)alice, "after",
           (json_int_t)ch);
  assert_int_equal(json_array_size(json_object_get(r, "channels")), 1);
  assert_int_equal(ival(json_array_get(json_object_get(r, "channels"), 0), "id"), ch2);
  json_decref(r);
  r = call(&f, "messages.channel.list", "{s:I}", "user_id", (json_int_t)bob);
  assert_int_equal(json_array_size(json_object_get(r, "channels")), 0);
  json_decref(r);

  /* get: a public channel is visible to anyone */
  r = call(&f, "messages.channel.get", "{s:I,s:I}", "user_id", (json_int_t)bob, "channel_id",
           (json_int_t)ch);
  assert_ok(r);
  assert_string_equal(sval(json_object_get(r, "channel"), "name"), "general");
  json_decref(r);
  assert_err(call(&f, "messages.channel.get", "{s:I,s:I}", "user_id", (json_int_t)bob,
                  "channel_id", (json_int_t)9999),
             "not_found", 404);
  assert_err(call(&f, "messages.channel.get", "{s:I,s:I}", "user_id", (json_int_t)bob,
                  "channel_id", (json_int_t)0),
             "not_found", 404);

  /* public directory */
  create(&f, bob, "secret", true);
  r = call(&f, "messages.channel.public", "{s:I}", "user_id", (json_int_t)bob);
  assert_int_equal(json_array_size(json_object_get(r, "channels")), 2);
  json_decref(r);
  r = call(&f, "messages.channel.public", "{s:I,s:i}", "user_id", (json_int_t)bob, "limit", 1);
  assert_int_equal(json_array_size(json_object_get(r, "channels")), 1);
  assert_true(json_is_true(json_object_get(r, "more")));
  json_decref(r);

  /* a caller whose account is gone */
  assert_err(call(&f, "messages.channel.create", "{s:I,s:s}", "user_id", (json_int_t)777,
                  "name", "ghost"),
             "user_not_found", 404);
  fx_done(&f);
}

static void test_join_leave(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1];
  int64_t ch = create(&f, alice, "general", false);
  fence(&f);
  events_clear(&f);

  json_t *r = call(&f, "messages.channel.join", "{s:I,s:s,s:I}", "user_id", (json_int_t)bob,
                   "username", "bob", "channel_id", (json_int_t)ch);
  assert_ok(r);
  assert_int_equal(ival(json_object_get(r, "channel"), "id"), ch);
  json_decref(r);
  fence(&f);
  assert_int_equal(f.nev, 2);
  json_t *ev = event_on(&f, subj("chan", ch), 0);
  assert_non_null(ev);
  assert_string_equal(sval(ev, "op"), "member_joined");
  assert_int_equal(ival(ev, "channel_id"), ch);
  assert_int_equal(ival(ev, "user_id"), bob);
  assert_string_equal(sval(ev, "username"), "bob");
  ev = event_on(&f, subj("user", bob), 0);
  assert_string_equal(sval(ev, "op"), "channel_joined");
  assert_int_equal(ival(json_object_get(ev, "channel"), "id"), ch);

  /* joining again changes nothing and announces nothing */
  events_clear(&f);
  join(&f, bob, ch);
  fence(&f);
  assert_int_equal(f.nev, 0);

  r = call(&f, "messages.channel.leave", "{s:I,s:s,s:I}", "user_id", (json_int_t)bob, "username",
           "bob", "channel_id", (json_int_t)ch);
  assert_ok(r);
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
  fence(&f);
  assert_int_equal(f.nev, 2);
  ev = event_on(&f, subj("chan", ch), 0);
  assert_string_equal(sval(ev, "op"), "member_left");
  assert_int_equal(ival(ev, "user_id"), bob);
  assert_string_equal(sval(ev, "username"), "bob");
  ev = event_on(&f, subj("user", bob), 0);
  assert_string_equal(sval(ev, "op"), "channel_left");
  assert_int_equal(ival(ev, "channel_id"), ch);

  /* leaving again: already out, nothing announced */
  events_clear(&f);
  r = call(&f, "messages.channel.leave", "{s:I,s:s,s:I}", "user_id", (json_int_t)bob, "username",
           "bob", "channel_id", (json_int_t)ch);
  assert_ok(r);
  json_decref(r);
  fence(&f);
  assert_int_equal(f.nev, 0);

  /* a removed member cannot post (public: visible, so 403) */
  assert_err(send_msg(&f, bob, ch, "still here?"), "forbidden", 403);
  assert_err(call(&f, "messages.channel.join", "{s:I,s:s,s:I}", "user_id", (json_int_t)bob,
                  "username", "bob", "channel_id", (json_int_t)4242),
             "not_found", 404);
  assert_err(call(&f, "messages.channel.leave", "{s:I,s:s,s:I}", "user_id", (json_int_t)bob,
                  "username", "bob", "channel_id", (json_int_t)4242),
             "not_found", 404);
  fx_done(&f);
}

static void test_private_invisible(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1], carol = f.uid[2];
  int64_t ch = create(&f, alice, "secret", true);
  json_t *r = send_msg(&f, alice, ch, "hidden");
  assert_ok(r);
  json_decref(r);

  /* every op of a non-member: 404, never 403 */
  assert_err(call(&f, "messages.channel.get", "{s:I,s:I}", "user_id", (json_int_t)bob,
                  "channel_id", (json_int_t)ch),
             "not_found", 404);
  assert_err(call(&f, "messages.channel.join", "{s:I,s:s,s:I}", "user_id", (json_int_t)bob,
                  "username", "bob", "channel_id", (json_int_t)ch),
             "not_found", 404);
  assert_err(call(&f, "messages.channel.leave", "{s:I,s:s,s:I}", "user_id", (json_int_t)bob,
                  "username", "bob", "channel_id", (json_int_t)ch),
             "not_found", 404);
  assert_err(call(&f, "messages.history", "{s:I,s:I}", "user_id", (json_int_t)bob, "channel_id",
                  (json_int_t)ch),
             "not_found", 404);
  assert_err(send_msg(&f, bob, ch, "let me in"), "not_found", 404);
  assert_err(call(&f, "messages.members.list", "{s:I,s:I}", "user_id", (json_int_t)bob,
                  "channel_id", (json_int_t)ch),
             "not_found", 404);
  assert_err(call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id", (json_int_t)bob,
                  "channel_id", (json_int_t)ch, "username", "carol"),
             "not_found", 404);
  assert_err(call(&f, "messages.read", "{s:I,s:I,s:i}", "user_id", (json_int_t)bob, "channel_id",
                  (json_int_t)ch, "seq", 1),
             "not_found", 404);
  assert_err(call(&f, "messages.edit", "{s:I,s:I,s:s,s:s}", "user_id", (json_int_t)bob,
                  "channel_id", (json_int_t)ch, "message_id", "1", "body", "x"),
             "not_found", 404);
  /* not in the public directory */
  r = call(&f, "messages.channel.public", "{s:I}", "user_id", (json_int_t)bob);
  assert_int_equal(json_array_size(json_object_get(r, "channels")), 0);
  json_decref(r);

  /* the owner adds bob: a member now, with events for him */
  fence(&f);
  events_clear(&f);
  r = call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id", (json_int_t)alice,
           "channel_id", (json_int_t)ch, "username", "Bob");
  assert_ok(r);
  json_t *m = json_object_get(r, "member");
  assert_int_equal(ival(m, "user_id"), bob);
  assert_string_equal(sval(m, "username"), "bob");
  assert_true(ival(m, "joined_at") > 0);
  json_decref(r);
  fence(&f);
  assert_int_equal(f.nev, 2);
  json_t *ev = event_on(&f, subj("chan", ch), 0);
  assert_string_equal(sval(ev, "op"), "member_joined");
  assert_int_equal(ival(ev, "user_id"), bob);
  assert_string_equal(sval(ev, "username"), "bob");
  ev = event_on(&f, subj("user", bob), 0);
  assert_string_equal(sval(ev, "op"), "channel_joined");
  assert_int_equal(ival(json_object_get(ev, "channel"), "id"), ch);
  assert_true(json_is_true(json_object_get(json_object_get(ev, "channel"), "private")));

  /* adding again: the member as is, no events */
  events_clear(&f);
  r = call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id", (json_int_t)alice,
           "channel_id", (json_int_t)ch, "username", "bob");
  assert_ok(r);
  json_decref(r);
  fence(&f);
  assert_int_equal(f.nev, 0);

  /* bob sees it now; a member who is not the owner cannot add */
  r = call(&f, "messages.channel.get", "{s:I,s:I}", "user_id", (json_int_t)bob, "channel_id",
           (json_int_t)ch);
  assert_ok(r);
  json_decref(r);
  r = call(&f, "messages.history", "{s:I,s:I}", "user_id", (json_int_t)bob, "channel_id",
           (json_int_t)ch);
  assert_ok(r);
  assert_int_equal(json_array_size(json_object_get(r, "messages")), 1);
  json_decref(r);
  assert_err(call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id", (json_int_t)bob,
                  "channel_id", (json_int_t)ch, "username", "carol"),
             "forbidden", 403);
  assert_err(call(&f, "messages.channel.get", "{s:I,s:I}", "user_id", (json_int_t)carol,
                  "channel_id", (json_int_t)ch),
             "not_found", 404);
  /* unknown users, and names no account can have */
  assert_err(call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id", (json_int_t)alice,
                  "channel_id", (json_int_t)ch, "username", "zed"),
             "user_not_found", 404);
  assert_err(call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id", (json_int_t)alice,
                  "channel_id", (json_int_t)ch, "username", "no spaces"),
             "user_not_found", 404);

  /* public channels: members add, non-members get 403 (the channel is visible) */
  int64_t pub = create(&f, alice, "open", false);
  assert_err(call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id", (json_int_t)carol,
                  "channel_id", (json_int_t)pub, "username", "bob"),
             "forbidden", 403);
  join(&f, carol, pub);
  r = call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id", (json_int_t)carol,
           "channel_id", (json_int_t)pub, "username", "bob");
  assert_ok(r);
  json_decref(r);
  /* history and members of a public channel: members only, 403 */
  int64_t dave = f.uid[3];
  assert_err(call(&f, "messages.history", "{s:I,s:I}", "user_id", (json_int_t)dave,
                  "channel_id", (json_int_t)pub),
             "forbidden", 403);
  assert_err(call(&f, "messages.members.list", "{s:I,s:I}", "user_id", (json_int_t)dave,
                  "channel_id", (json_int_t)pub),
             "forbidden", 403);
  fx_done(&f);
}

static void test_members_list_names(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1], dave = f.uid[3];
  /* dave never told the service his name: it must ask users.get {id} */
  int64_t ch = create(&f, dave, "daves", false);
  join(&f, alice, ch);
  join(&f, bob, ch);
  int calls = f.users_calls;
  json_t *r = call(&f, "messages.members.list", "{s:I,s:I}", "user_id", (json_int_t)alice,
                   "channel_id", (json_int_t)ch);
  assert_ok(r);
  json_t *ms = json_object_get(r, "members");
  assert_int_equal(json_array_size(ms), 3);
  assert_int_equal(ival(json_array_get(ms, 0), "user_id"), alice);
  assert_string_equal(sval(json_array_get(ms, 0), "username"), "alice");
  assert_string_equal(sval(json_array_get(ms, 1), "username"), "bob");
  assert_int_equal(ival(json_array_get(ms, 2), "user_id"), dave);
  assert_string_equal(sval(json_array_get(ms, 2), "username"), "dave");
  assert_true(ival(json_array_get(ms, 2), "joined_at") > 0);
  assert_true(json_is_false(json_object_get(r, "more")));
  json_decref(r);
  assert_int_equal(f.users_calls, calls + 1); /* dave only: the others are cached */
  /* cached now */
  r = call(&f, "messages.members.list", "{s:I,s:I,s:i}", "user_id", (json_int_t)alice,
           "channel_id", (json_int_t)ch, "limit", 2);
  assert_int_equal(json_array_size(json_object_get(r, "members")), 2);
  assert_true(json_is_true(json_object_get(r, "more")));
  json_decref(r);
  r = call(&f, "messages.members.list", "{s:I,s:I,s:I}", "user_id", (json_int_t)alice,
           "channel_id", (json_int_t)ch, "after", (json_int_t)bob);
  assert_int_equal(json_array_size(json_object_get(r, "members")), 1);
  assert_string_equal(sval(json_array_get(json_object_get(r, "members"), 0), "username"), "dave");
  json_decref(r);
  assert_int_equal(f.users_calls, calls + 1);
  fx_done(&f);
}

static void test_users_unavailable(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], dave = f.uid[3];
  int64_t ch = create(&f, alice, "general", false);

  /* timeout -> 503 */
  f.users_mode = USERS_SILENT;
  assert_err(call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id", (json_int_t)alice,
                  "channel_id", (json_int_t)ch, "username", "bob"),
             "unavailable", 503);
  assert_err(call(&f, "messages.dm.open", "{s:I,s:s,s:s}", "user_id", (json_int_t)alice,
                  "username", "alice", "peer", "carol"),
             "unavailable", 503);
  /* an error answer -> 503 */
  f.users_mode = USERS_FAIL;
  assert_err(call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id", (json_int_t)alice,
                  "channel_id", (json_int_t)ch, "username", "bob"),
             "unavailable", 503);
  /* names that cannot be resolved are left out, the request still works */
  json_t *r = call(&f, "messages.channel.create", "{s:I,s:s}", "user_id", (json_int_t)dave,
                   "name", "daves");
  int64_t ch2 = ival(json_object_get(r, "channel"), "id");
  json_decref(r);
  r = call(&f, "messages.members.list", "{s:I,s:I}", "user_id", (json_int_t)dave, "channel_id",
           (json_int_t)ch2);
  assert_ok(r);
  json_t *m0 = json_array_get(json_object_get(r, "members"), 0);
  assert_int_equal(ival(m0, "user_id"), dave);
  assert_null(json_object_get(m0, "username"));
  json_decref(r);
  /* nobody answering at all -> 503 */
  bus_unsubscribe(f.users_sub);
  f.users_sub = NULL;
  assert_err(call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id", (json_int_t)alice,
                  "channel_id", (json_int_t)ch, "username", "carol"),
             "unavailable", 503);
  fx_done(&f);
}

static void test_dm(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1], carol = f.uid[2];

  json_t *r = call(&f, "messages.dm.open", "{s:I,s:s,s:s}", "user_id", (json_int_t)alice,
                   "username", "alice", "peer", "bob");
  assert_ok(r);
  json_t *c = json_object_get(r, "channel");
  int64_t dm = ival(c, "id");
  assert_string_equal(sval(c, "kind"), "dm");
  assert_true(json_is_null(json_object_get(c, "name")));
  assert_true(json_is_true(json_object_get(c, "private")));
  assert_true(json_is_null(json_object_get(c, "owner_id")));
  assert_int_equal(ival(c, "peer_id"), bob);
  assert_string_equal(sval(c, "peer"), "bob");
  json_decref(r);
  fence(&f);
  /* both users' connections follow it, each seeing the other as peer */
  assert_int_equal(f.nev, 2);
  json_t *ev = event_on(&f, subj("user", alice), 0);
  assert_string_equal(sval(ev, "op"), "channel_joined");
  assert_string_equal(sval(json_object_get(ev, "channel"), "peer"), "bob");
  ev = event_on(&f, subj("user", bob), 0);
  assert_string_equal(sval(ev, "op"), "channel_joined");
  assert_int_equal(ival(json_object_get(ev, "channel"), "id"), dm);
  assert_string_equal(sval(json_object_get(ev, "channel"), "peer"), "alice");
  assert_int_equal(ival(json_object_get(ev, "channel"), "peer_id"), alice);

  /* idempotent, from either side, and announced once */
  events_clear(&f);
  r = call(&f, "messages.dm.open", "{s:I,s:s,s:s}", "user_id", (json_int_t)alice, "username",
           "alice", "peer", "bob");
  assert_int_equal(ival(json_object_get(r, "channel"), "id"), dm);
  json_decref(r);
  r = call(&f, "messages.dm.open", "{s:I,s:s,s:s}", "user_id", (json_int_t)bob, "username",
           "bob", "peer", "ALICE");
  assert_int_equal(ival(json_object_get(r, "channel"), "id"), dm);
  assert_string_equal(sval(json_object_get(r, "channel"), "peer"), "alice");
  json_decref(r);
  fence(&f);
  assert_int_equal(f.nev, 0);

  /* invisible to others; cannot be joined, left or extended */
  assert_err(call(&f, "messages.channel.get", "{s:I,s:I}", "user_id", (json_int_t)carol,
                  "channel_id", (json_int_t)dm),
             "not_found", 404);
  assert_err(call(&f, "messages.channel.join", "{s:I,s:s,s:I}", "user_id", (json_int_t)carol,
                  "username", "carol", "channel_id", (json_int_t)dm),
             "not_found", 404);
  assert_err(call(&f, "messages.channel.leave", "{s:I,s:s,s:I}", "user_id", (json_int_t)alice,
                  "username", "alice", "channel_id", (json_int_t)dm),
             "forbidden", 403);
  assert_err(call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id", (json_int_t)alice,
                  "channel_id", (json_int_t)dm, "username", "carol"),
             "forbidden", 403);
  assert_err(call(&f, "messages.dm.open", "{s:I,s:s,s:s}", "user_id", (json_int_t)alice,
                  "username", "alice", "peer", "nobody"),
             "user_not_found", 404);

  /* get by a member shows the peer */
  r = call(&f, "messages.channel.get", "{s:I,s:I}", "user_id", (json_int_t)bob, "channel_id",
           (json_int_t)dm);
  assert_string_equal(sval(json_object_get(r, "channel"), "peer"), "alice");
  json_decref(r);
  /* listed with the peer */
  int64_t gen = create(&f, alice, "general", false);
  r = call(&f, "messages.channel.list", "{s:I}", "user_id", (json_int_t)alice);
  json_t *list = json_object_get(r, "channels");
  assert_int_equal(json_array_size(list), 2);
  assert_int_equal(ival(json_array_get(list, 0), "id"), dm);
  assert_string_equal(sval(json_array_get(list, 0), "peer"), "bob");
  assert_int_equal(ival(json_array_get(list, 1), "id"), gen);
  assert_null(json_object_get(json_array_get(list, 1), "peer"));
  json_decref(r);

  /* a DM with oneself: one member, one event */
  events_clear(&f);
  r = call(&f, "messages.dm.open", "{s:I,s:s,s:s}", "user_id", (json_int_t)carol, "username",
           "carol", "peer", "carol");
  assert_ok(r);
  assert_int_equal(ival(json_object_get(r, "channel"), "peer_id"), carol);
  json_decref(r);
  fence(&f);
  assert_int_equal(f.nev, 1);
  fx_done(&f);
}

static void check_message_event(json_t *ev, int64_t ch, json_t *ack, int64_t author,
                                const char *author_name, const char *body) {
  assert_string_equal(sval(ev, "op"), "message");
  assert_int_equal(ival(ev, "channel_id"), ch);
  json_t *m = json_object_get(ev, "message");
  assert_int_equal(json_object_size(m), 8);
  assert_string_equal(sval(m, "id"), sval(ack, "id"));
  assert_int_equal(ival(m, "seq"), ival(ack, "seq"));
  assert_int_equal(ival(m, "author_id"), author);
  assert_string_equal(sval(m, "author"), author_name);
  assert_string_equal(sval(m, "body"), body);
  assert_int_equal(ival(m, "created_at"), ival(ack, "created_at"));
}

static void test_send(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1];
  int64_t ch = create(&f, alice, "general", false);
  join(&f, bob, ch);
  fence(&f);
  events_clear(&f);

  const char *bodies[3] = {"one", "two \"quoted\"\nline", "drei \xc3\xbc \xf0\x9f\x98\x80"};
  json_t *acks[3];
  for (int i = 0; i < 3; i++) {
    acks[i] = send_msg(&f, i == 1 ? bob : alice, ch, bodies[i]);
    assert_ok(acks[i]);
    assert_int_equal(ival(acks[i], "channel_id"), ch);
    assert_int_equal(ival(acks[i], "seq"), i + 1);
    assert_true(json_is_false(json_object_get(acks[i], "duplicate")));
    /* the id is a decimal string (beyond 2^53) */
    assert_true(strtoll(sval(acks[i], "id"), NULL, 10) > (1LL << 53));
    /* durable before the ack: a fresh read sees it */
    channel_rec_t c;
    assert_int_equal(f.store->ops->channel_get(f.store, ch, &c), 0);
    assert_int_equal(c.last_seq, i + 1);
  }
  fence(&f);
  /* exactly one event per message, in order, with the stored values */
  assert_int_equal(f.nev, 3);
  assert_int_equal(events_on(&f, subj("chan", ch)), 3);
  for (int i = 0; i < 3; i++) {
    json_t *ev = event_on(&f, subj("chan", ch), i);
    check_message_event(ev, ch, acks[i], i == 1 ? bob : alice, i == 1 ? "bob" : "alice",
                        bodies[i]);
    json_t *m = json_object_get(ev, "message");
    assert_true(json_is_null(json_object_get(m, "attachments")));
    assert_true(json_is_null(json_object_get(m, "nonce")));
  }
  /* no message.sent for a plain channel message */
  assert_int_equal(events_on(&f, "message.sent"), 0);
  assert_true(strtoll(sval(acks[0], "id"), NULL, 10) < strtoll(sval(acks[1], "id"), NULL, 10));
  for (int i = 0; i < 3; i++) json_decref(acks[i]);

  /* attachments and nonce travel in the event */
  events_clear(&f);
  json_t *r = call(&f, "messages.send", "{s:I,s:s,s:I,s:s,s:s,s:[s,s]}", "user_id",
                   (json_int_t)alice, "username", "alice", "channel_id", (json_int_t)ch, "body",
                   "pics", "nonce", "n-1", "attachments", "media/a.png", "media/\"b\".jpg");
  assert_ok(r);
  fence(&f);
  json_t *m = json_object_get(event_on(&f, subj("chan", ch), 0), "message");
  assert_string_equal(sval(m, "nonce"), "n-1");
  json_t *att = json_object_get(m, "attachments");
  assert_int_equal(json_array_size(att), 2);
  assert_string_equal(json_string_value(json_array_get(att, 1)), "media/\"b\".jpg");
  json_decref(r);

  /* unknown channel */
  assert_err(send_msg(&f, alice, 999, "void"), "not_found", 404);
  assert_true(metric(&f, "storm_messages_appends_total ") == 4);
  assert_true(metric(&f, "storm_messages_requests_total{op=\"send\",result=\"ok\"} ") == 4);
  assert_true(metric(&f, "storm_messages_requests_total{op=\"send\",result=\"not_found\"} ") == 1);
  fx_done(&f);
}

static void test_duplicate_nonce(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0];
  int64_t ch = create(&f, alice, "general", false);
  fence(&f);
  events_clear(&f);
  json_t *a = call(&f, "messages.send", "{s:I,s:s,s:I,s:s,s:s}", "user_id", (json_int_t)alice,
                   "username", "alice", "channel_id", (json_int_t)ch, "body", "hello", "nonce",
                   "retry-me");
  assert_ok(a);
  json_t *b = call(&f, "messages.send", "{s:I,s:s,s:I,s:s,s:s}", "user_id", (json_int_t)alice,
                   "username", "alice", "channel_id", (json_int_t)ch, "body", "hello", "nonce",
                   "retry-me");
  assert_ok(b);
  assert_string_equal(sval(a, "id"), sval(b, "id"));
  assert_int_equal(ival(a, "seq"), ival(b, "seq"));
  assert_int_equal(ival(a, "created_at"), ival(b, "created_at"));
  assert_true(json_is_false(json_object_get(a, "duplicate")));
  assert_true(json_is_true(json_object_get(b, "duplicate")));
  run_for(&f, 50);
  fence(&f);
  assert_int_equal(events_on(&f, subj("chan", ch)), 1);
  assert_int_equal(f.nev, 1);
  assert_true(metric(&f, "storm_messages_appends_total ") == 1);
  json_decref(a);
  json_decref(b);
  /* the same nonce from another channel is another message */
  int64_t ch2 = create(&f, alice, "other", false);
  a = call(&f, "messages.send", "{s:I,s:s,s:I,s:s,s:s}", "user_id", (json_int_t)alice,
           "username", "alice", "channel_id", (json_int_t)ch2, "body", "hello", "nonce",
           "retry-me");
  assert_true(json_is_false(json_object_get(a, "duplicate")));
  json_decref(a);
  fx_done(&f);
}

static json_t *edit(fx_t *f, int64_t user, int64_t ch, const char *id, const char *body) {
  return call(f, "messages.edit", "{s:I,s:I,s:s,s:s}", "user_id", (json_int_t)user, "channel_id",
              (json_int_t)ch, "message_id", id, "body", body);
}

static json_t *del(fx_t *f, int64_t user, int64_t ch, const char *id) {
  return call(f, "messages.delete", "{s:I,s:I,s:s}", "user_id", (json_int_t)user, "channel_id",
              (json_int_t)ch, "message_id", id);
}

static void test_edit_delete(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1], carol = f.uid[2];
  int64_t ch = create(&f, alice, "general", false);
  join(&f, bob, ch);
  json_t *ack = send_msg(&f, alice, ch, "typo");
  char id[32];
  snprintf(id, sizeof id, "%s", sval(ack, "id"));
  int64_t seq = ival(ack, "seq");
  json_decref(ack);
  fence(&f);
  events_clear(&f);

  /* another member: 403; a non-member: 404 */
  assert_err(edit(&f, bob, ch, id, "hijack"), "forbidden", 403);
  assert_err(edit(&f, carol, ch, id, "hijack"), "not_found", 404);
  assert_err(del(&f, bob, ch, id), "forbidden", 403);
  assert_err(del(&f, carol, ch, id), "not_found", 404);
  assert_err(edit(&f, alice, ch, "12345", "nothing"), "not_found", 404);
  assert_err(edit(&f, alice, ch, id, ""), "invalid_body", 400);
  fence(&f);
  assert_int_equal(f.nev, 0);

  /* the author edits (message_id as a string or a number) */
  json_t *r = call(&f, "messages.edit", "{s:I,s:I,s:I,s:s}", "user_id", (json_int_t)alice,
                   "channel_id", (json_int_t)ch, "message_id",
                   (json_int_t)strtoll(id, NULL, 10), "body", "fixed");
  assert_ok(r);
  json_t *m = json_object_get(r, "message");
  assert_string_equal(sval(m, "id"), id);
  assert_string_equal(sval(m, "body"), "fixed");
  assert_string_equal(sval(m, "author"), "alice");
  assert_true(ival(m, "edited_at") > 0);
  assert_true(json_is_false(json_object_get(m, "deleted")));
  json_decref(r);
  fence(&f);
  assert_int_equal(f.nev, 1);
  json_t *ev = event_on(&f, subj("chan", ch), 0);
  assert_string_equal(sval(ev, "op"), "message_edited");
  assert_int_equal(ival(ev, "channel_id"), ch);
  assert_string_equal(sval(json_object_get(ev, "message"), "body"), "fixed");
  assert_string_equal(sval(json_object_get(ev, "message"), "id"), id);

  /* delete */
  events_clear(&f);
  r = del(&f, alice, ch, id);
  assert_ok(r);
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
  fence(&f);
  assert_int_equal(f.nev, 1);
  ev = event_on(&f, subj("chan", ch), 0);
  assert_string_equal(sval(ev, "op"), "message_deleted");
  assert_int_equal(ival(ev, "channel_id"), ch);
  assert_string_equal(sval(ev, "id"), id);
  assert_int_equal(ival(ev, "seq"), seq);
  /* again: idempotent, silent */
  events_clear(&f);
  r = del(&f, alice, ch, id);
  assert_ok(r);
  json_decref(r);
  assert_err(edit(&f, alice, ch, id, "zombie"), "not_found", 404);
  fence(&f);
  assert_int_equal(f.nev, 0);
  /* history keeps the row, emptied */
  r = call(&f, "messages.history", "{s:I,s:I}", "user_id", (json_int_t)bob, "channel_id",
           (json_int_t)ch);
  m = json_array_get(json_object_get(r, "messages"), 0);
  assert_true(json_is_true(json_object_get(m, "deleted")));
  assert_string_equal(sval(m, "body"), "");
  json_decref(r);
  assert_err(del(&f, alice, ch, "99"), "not_found", 404);
  assert_err(del(&f, alice, ch, "0"), "not_found", 404);
  assert_err(call(&f, "messages.delete", "{s:I,s:I,s:s}", "user_id", (json_int_t)alice,
                  "channel_id", (json_int_t)ch, "message_id", "12x"),
             "bad_request", 400);
  fx_done(&f);
}

static json_t *list_entry(fx_t *f, int64_t user, int64_t ch) {
  json_t *r = call(f, "messages.channel.list", "{s:I}", "user_id", (json_int_t)user);
  json_t *found = NULL;
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(r, "channels"), i, c) {
    if (ival(c, "id") == ch) found = json_incref(c);
  }
  json_decref(r);
  if (!found) fail_msg("channel %lld not listed", (long long)ch);
  return found;
}

static void test_read_state(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1], carol = f.uid[2];
  int64_t ch = create(&f, alice, "general", false);
  join(&f, bob, ch);
  for (int i = 0; i < 5; i++) json_decref(send_msg(&f, alice, ch, "m"));
  json_t *e = list_entry(&f, bob, ch);
  assert_int_equal(ival(e, "last_seq"), 5);
  assert_int_equal(ival(e, "last_read_seq"), 0);
  assert_int_equal(ival(e, "unread"), 5);
  json_decref(e);
  fence(&f);
  events_clear(&f);

  json_t *r = call(&f, "messages.read", "{s:I,s:I,s:i}", "user_id", (json_int_t)bob,
                   "channel_id", (json_int_t)ch, "seq", 3);
  assert_ok(r);
  assert_int_equal(ival(r, "channel_id"), ch);
  assert_int_equal(ival(r, "last_read_seq"), 3);
  json_decref(r);
  fence(&f);
  assert_int_equal(f.nev, 1);
  json_t *ev = event_on(&f, subj("user", bob), 0);
  assert_string_equal(sval(ev, "op"), "read");
  assert_int_equal(ival(ev, "channel_id"), ch);
  assert_int_equal(ival(ev, "seq"), 3);
  e = list_entry(&f, bob, ch);
  assert_int_equal(ival(e, "unread"), 2);
  json_decref(e);
  /* never backwards; clamped to last_seq */
  r = call(&f, "messages.read", "{s:I,s:I,s:i}", "user_id", (json_int_t)bob, "channel_id",
           (json_int_t)ch, "seq", 1);
  assert_int_equal(ival(r, "last_read_seq"), 3);
  json_decref(r);
  r = call(&f, "messages.read", "{s:I,s:I,s:i}", "user_id", (json_int_t)bob, "channel_id",
           (json_int_t)ch, "seq", 100);
  assert_int_equal(ival(r, "last_read_seq"), 5);
  json_decref(r);
  e = list_entry(&f, bob, ch);
  assert_int_equal(ival(e, "unread"), 0);
  json_decref(e);
  /* a new member starts with nothing unread */
  join(&f, carol, ch);
  e = list_entry(&f, carol, ch);
  assert_int_equal(ival(e, "unread"), 0);
  json_decref(e);
  /* not a member */
  assert_err(call(&f, "messages.read", "{s:I,s:I,s:i}", "user_id", (json_int_t)f.uid[3],
                  "channel_id", (json_int_t)ch, "seq", 1),
             "not_found", 404);
  assert_err(call(&f, "messages.read", "{s:I,s:I,s:i}", "user_id", (json_int_t)bob, "channel_id",
                  (json_int_t)ch, "seq", -1),
             "bad_request", 400);
  fx_done(&f);
}

static void test_mentions(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1], dave = f.uid[3];
  int64_t ch = create(&f, alice, "general", false);
  join(&f, bob, ch);
  join(&f, dave, ch);
  fence(&f);
  events_clear(&f);
  /* bob and dave are members; carol is not; alice is the author; nobody
   * does not exist; mail@dave is no mention; @bob twice notifies once */
  json_t *ack = send_msg(&f, alice, ch,
                         "hi @Bob, @carol @alice @nobody mail@dave.example (@bob) @dave.");
  assert_ok(ack);
  RUN_UNTIL(&f, events_on(&f, "message.sent") >= 2);
  run_for(&f, 50);
  fence(&f);
  assert_int_equal(events_on(&f, "message.sent"), 2);
  int64_t seen[2];
  for (int i = 0; i < 2; i++) {
    json_t *n = event_on(&f, "message.sent", i);
    assert_int_equal(json_object_size(n), 5);
    seen[i] = ival(n, "recipientId");
    assert_int_equal(ival(n, "senderId"), alice);
    assert_string_equal(sval(n, "senderUsername"), "alice");
    assert_int_equal(ival(n, "conversationId"), ch);
    assert_string_equal(sval(n, "messageId"), sval(ack, "id"));
  }
  assert_true((seen[0] == bob && seen[1] == dave) || (seen[0] == dave && seen[1] == bob));
  assert_int_equal(events_on(&f, subj("chan", ch)), 1);
  json_decref(ack);
  fx_done(&f);
}

static void test_dm_notification(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1];
  json_t *r = call(&f, "messages.dm.open", "{s:I,s:s,s:s}", "user_id", (json_int_t)alice,
                   "username", "alice", "peer", "bob");
  int64_t dm = ival(json_object_get(r, "channel"), "id");
  json_decref(r);
  fence(&f);
  events_clear(&f);
  json_t *ack = send_msg(&f, alice, dm, "psst @carol @bob");
  assert_ok(ack);
  run_for(&f, 50);
  fence(&f);
  /* the peer only: mentions in a DM notify nobody else */
  assert_int_equal(events_on(&f, "message.sent"), 1);
  json_t *n = event_on(&f, "message.sent", 0);
  assert_int_equal(ival(n, "recipientId"), bob);
  assert_string_equal(sval(n, "senderUsername"), "alice");
  assert_int_equal(ival(n, "conversationId"), dm);
  assert_string_equal(sval(n, "messageId"), sval(ack, "id"));
  assert_int_equal(events_on(&f, subj("chan", dm)), 1);
  json_decref(ack);
  /* bob answers: alice is notified */
  events_clear(&f);
  json_decref(send_msg(&f, bob, dm, "yes?"));
  fence(&f);
  assert_int_equal(events_on(&f, "message.sent"), 1);
  assert_int_equal(ival(event_on(&f, "message.sent", 0), "recipientId"), alice);
  fx_done(&f);
}

static void expect_seqs(json_t *r, int from, int to, bool more) {
  json_t *ms = json_object_get(r, "messages");
  assert_int_equal(json_array_size(ms), to - from + 1);
  for (int s = from; s <= to; s++) {
    json_t *m = json_array_get(ms, (size_t)(s - from));
    assert_int_equal(ival(m, "seq"), s);
    assert_string_equal(sval(m, "author"), "alice");
    assert_true(json_is_null(json_object_get(m, "edited_at")));
    assert_true(json_is_false(json_object_get(m, "deleted")));
  }
  assert_true(json_is_boolean(json_object_get(r, "more")));
  assert_int_equal(json_is_true(json_object_get(r, "more")), more);
  json_decref(r);
}

static void test_history_pagination(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1];
  int64_t ch = create(&f, alice, "general", false);
  join(&f, bob, ch);
  for (int i = 1; i <= 10; i++) {
    char body[16];
    snprintf(body, sizeof body, "m%d", i);
    json_decref(send_msg(&f, alice, ch, body));
  }
#define HIST(...) call(&f, "messages.history", __VA_ARGS__)
  json_t *r = HIST("{s:I,s:I}", "user_id", (json_int_t)bob, "channel_id", (json_int_t)ch);
  assert_string_equal(sval(json_array_get(json_object_get(r, "messages"), 0), "body"), "m1");
  expect_seqs(r, 1, 10, false);
  expect_seqs(HIST("{s:I,s:I,s:i}", "user_id", (json_int_t)bob, "channel_id", (json_int_t)ch,
                   "limit", 3),
              8, 10, true);
  expect_seqs(HIST("{s:I,s:I,s:i,s:i}", "user_id", (json_int_t)bob, "channel_id",
                   (json_int_t)ch, "before", 8, "limit", 3),
              5, 7, true);
  expect_seqs(HIST("{s:I,s:I,s:i,s:i}", "user_id", (json_int_t)bob, "channel_id",
                   (json_int_t)ch, "before", 3, "limit", 3),
              1, 2, false);
  expect_seqs(HIST("{s:I,s:I,s:i,s:i}", "user_id", (json_int_t)bob, "channel_id",
                   (json_int_t)ch, "after", 2, "limit", 3),
              3, 5, true);
  expect_seqs(HIST("{s:I,s:I,s:i,s:i}", "user_id", (json_int_t)bob, "channel_id",
                   (json_int_t)ch, "after", 8, "limit", 5),
              9, 10, false);
  r = HIST("{s:I,s:I,s:i}", "user_id", (json_int_t)bob, "channel_id", (json_int_t)ch, "after",
           10);
  assert_int_equal(json_array_size(json_object_get(r, "messages")), 0);
  json_decref(r);
  assert_err(HIST("{s:I,s:I,s:i,s:i}", "user_id", (json_int_t)bob, "channel_id", (json_int_t)ch,
                  "after", 2, "before", 5),
             "bad_request", 400);
  assert_err(HIST("{s:I,s:I,s:i}", "user_id", (json_int_t)bob, "channel_id", (json_int_t)ch,
                  "limit", 0),
             "bad_request", 400);
  assert_err(HIST("{s:I,s:I,s:i}", "user_id", (json_int_t)bob, "channel_id", (json_int_t)ch,
                  "limit", 101),
             "bad_request", 400);
  assert_err(HIST("{s:I,s:I,s:i}", "user_id", (json_int_t)bob, "channel_id", (json_int_t)ch,
                  "before", -1),
             "bad_request", 400);
  r = HIST("{s:I,s:I,s:i}", "user_id", (json_int_t)bob, "channel_id", (json_int_t)ch, "limit",
           100);
  assert_int_equal(json_array_size(json_object_get(r, "messages")), 10);
  json_decref(r);
#undef HIST
  fx_done(&f);
}

/* A page larger than the bus payload limit is cut at the far end. */
static void test_history_payload_bound(void **state) {
  fx_t f;
  fx_init(&f);
  /* a small bus: 3 messages of ~4 KB fit, 10 do not */
  bus_close(f.bus, NULL, NULL);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  f.bus = bus_local_new(&f.loop, 16 * 1024);
  f.opts.bus = f.bus;
  assert_int_equal(bus_subscribe(f.bus, "users.get", "users", on_users_get, &f, &f.users_sub), 0);
  fx_start(&f);
  int64_t alice = f.uid[0];
  int64_t ch = create(&f, alice, "big", false);
  char body[4001];
  memset(body, 'x', 4000);
  body[4000] = '\0';
  for (int i = 0; i < 10; i++) json_decref(send_msg(&f, alice, ch, body));
  json_t *r = call(&f, "messages.history", "{s:I,s:I}", "user_id", (json_int_t)alice,
                   "channel_id", (json_int_t)ch);
  json_t *ms = json_object_get(r, "messages");
  size_t n = json_array_size(ms);
  assert_true(n >= 1 && n < 10);
  /* the newest are kept */
  assert_int_equal(ival(json_array_get(ms, n - 1), "seq"), 10);
  assert_true(json_is_true(json_object_get(r, "more")));
  json_decref(r);
  r = call(&f, "messages.history", "{s:I,s:I,s:i}", "user_id", (json_int_t)alice, "channel_id",
           (json_int_t)ch, "after", 0);
  ms = json_object_get(r, "messages");
  n = json_array_size(ms);
  assert_true(n >= 1 && n < 10);
  assert_int_equal(ival(json_array_get(ms, 0), "seq"), 1); /* the oldest are kept */
  assert_true(json_is_true(json_object_get(r, "more")));
  json_decref(r);
  fx_done(&f);
}

static void test_validation(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0];
  int64_t ch = create(&f, alice, "general", false);
  const char *C = "messages.channel.create", *S = "messages.send";

  assert_err(call_str(&f, C, "not json"), "bad_request", 400);
  assert_err(call_str(&f, C, "[1]"), "bad_request", 400);
  assert_err(call_raw(&f, C, "", 0), "bad_request", 400);
  assert_err(call_str(&f, C, "{\"name\":\"x\"}"), "bad_request", 400);
  assert_err(call_str(&f, C, "{\"user_id\":\"1\",\"name\":\"x\"}"), "bad_request", 400);
  assert_err(call_str(&f, C, "{\"user_id\":0,\"name\":\"x\"}"), "bad_request", 400);
  assert_err(call_str(&f, C, "{\"user_id\":1,\"user_id\":1,\"name\":\"x\"}"), "bad_request", 400);
  assert_err(call_str(&f, C, "{\"user_id\":1,\"name\":\"a\xff\"}"), "bad_request", 400);
  assert_err(call_str(&f, C, "{\"user_id\":1,\"name\":\"a\\u0000b\"}"), "bad_request", 400);
  assert_err(call_str(&f, C, "{\"user_id\":1}"), "bad_request", 400);
  assert_err(call_str(&f, C, "{\"user_id\":1,\"name\":\"\"}"), "invalid_name", 400);
  assert_err(call_str(&f, C, "{\"user_id\":1,\"name\":\"tab\\there\"}"), "invalid_name", 400);
  assert_err(call_str(&f, C, "{\"user_id\":1,\"name\":\"c1\\u0085\"}"), "invalid_name", 400);
  assert_err(call_str(&f, C, "{\"user_id\":1,\"name\":\" lead\"}"), "invalid_name", 400);
  assert_err(call_str(&f, C, "{\"user_id\":1,\"name\":\"trail \"}"), "invalid_name", 400);
  assert_err(call_str(&f, C, "{\"user_id\":1,\"name\":\"x\",\"private\":1}"), "bad_request", 400);
  assert_err(call_str(&f, C, "{\"user_id\":1,\"name\":\"x\",\"topic\":5}"), "bad_request", 400);
  /* 80 characters (of two bytes) pass, 81 do not */
  char name[81 * 2 + 1];
  for (int i = 0; i < 81; i++) memcpy(name + 2 * i, "\xc3\xa9", 2);
  name[80 * 2] = '\0';
  json_t *r = call(&f, C, "{s:I,s:s}", "user_id", (json_int_t)alice, "name", name);
  assert_ok(r);
  assert_string_equal(sval(json_object_get(r, "channel"), "name"), name);
  json_decref(r);
  for (int i = 0; i < 81; i++) memcpy(name + 2 * i, "\xc3\xa9", 2);
  name[81 * 2] = '\0';
  assert_err(call(&f, C, "{s:I,s:s}", "user_id", (json_int_t)alice, "name", name),
             "invalid_name", 400);
  /* topic: 250 characters */
  char topic[252];
  memset(topic, 't', 251);
  topic[251] = '\0';
  assert_err(call(&f, C, "{s:I,s:s,s:s}", "user_id", (json_int_t)alice, "name", "t1", "topic",
                  topic),
             "invalid_topic", 400);
  topic[250] = '\0';
  r = call(&f, C, "{s:I,s:s,s:s}", "user_id", (json_int_t)alice, "name", "t1", "topic", topic);
  assert_ok(r);
  json_decref(r);
  assert_err(call(&f, C, "{s:I,s:s,s:s}", "user_id", (json_int_t)alice, "name", "t2", "topic",
                  "bad\x01"),
             "invalid_topic", 400);

  /* send */
  assert_err(call(&f, S, "{s:I,s:I,s:s}", "user_id", (json_int_t)alice, "channel_id",
                  (json_int_t)ch, "body", "no username"),
             "bad_request", 400);
  assert_err(call(&f, S, "{s:I,s:s,s:I,s:s}", "user_id", (json_int_t)alice, "username",
                  "not valid!", "channel_id", (json_int_t)ch, "body", "x"),
             "bad_request", 400);
  assert_err(call(&f, S, "{s:I,s:s,s:s,s:s}", "user_id", (json_int_t)alice, "username", "alice",
                  "channel_id", "1", "body", "x"),
             "bad_request", 400);
  assert_err(call(&f, S, "{s:I,s:s,s:I}", "user_id", (json_int_t)alice, "username", "alice",
                  "channel_id", (json_int_t)ch),
             "bad_request", 400);
  assert_err(call(&f, S, "{s:I,s:s,s:I,s:s}", "user_id", (json_int_t)alice, "username", "alice",
                  "channel_id", (json_int_t)ch, "body", ""),
             "invalid_body", 400);
  assert_err(call(&f, S, "{s:I,s:s,s:I,s:s}", "user_id", (json_int_t)alice, "username", "alice",
                  "channel_id", (json_int_t)-3, "body", "x"),
             "not_found", 404);
  /* 4,000 characters pass (even of 4 bytes each), 4,001 do not */
  size_t big = 4001 * 4 + 1;
  char *body = malloc(big);
  for (int i = 0; i < 4001; i++) memcpy(body + 4 * i, "\xf0\x9f\x98\x80", 4);
  body[4000 * 4] = '\0';
  r = send_msg(&f, alice, ch, body);
  assert_ok(r);
  json_decref(r);
  body[4000 * 4] = '\xf0';
  body[4001 * 4] = '\0';
  assert_err(send_msg(&f, alice, ch, body), "invalid_body", 400);
  memset(body, 'a', 4001);
  body[4001] = '\0';
  assert_err(send_msg(&f, alice, ch, body), "invalid_body", 400);
  free(body);
  /* invalid UTF-8 anywhere: the whole payload is refused */
  char raw[160];
  snprintf(raw, sizeof raw,
           "{\"user_id\":%" PRId64 ",\"username\":\"alice\",\"channel_id\":%" PRId64
           ",\"body\":\"bad \xc3\x28\"}",
           alice, ch);
  assert_err(call_str(&f, S, raw), "bad_request", 400);
  /* nonce: 1-64 bytes */
  char nonce[66];
  memset(nonce, 'n', 65);
  nonce[65] = '\0';
  assert_err(call(&f, S, "{s:I,s:s,s:I,s:s,s:s}", "user_id", (json_int_t)alice, "username",
                  "alice", "channel_id", (json_int_t)ch, "body", "x", "nonce", nonce),
             "bad_request", 400);
  assert_err(call(&f, S, "{s:I,s:s,s:I,s:s,s:s}", "user_id", (json_int_t)alice, "username",
                  "alice", "channel_id", (json_int_t)ch, "body", "x", "nonce", ""),
             "bad_request", 400);
  assert_err(call(&f, S, "{s:I,s:s,s:I,s:s,s:i}", "user_id", (json_int_t)alice, "username",
                  "alice", "channel_id", (json_int_t)ch, "body", "x", "nonce", 5),
             "bad_request", 400);
  nonce[64] = '\0';
  r = call(&f, S, "{s:I,s:s,s:I,s:s,s:s}", "user_id", (json_int_t)alice, "username", "alice",
           "channel_id", (json_int_t)ch, "body", "x", "nonce", nonce);
  assert_ok(r);
  json_decref(r);
  /* attachments */
  assert_err(call(&f, S, "{s:I,s:s,s:I,s:s,s:[s,s,s,s,s,s,s,s,s,s,s]}", "user_id",
                  (json_int_t)alice, "username", "alice", "channel_id", (json_int_t)ch, "body",
                  "x", "attachments", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"),
             "invalid_attachments", 400);
  assert_err(call(&f, S, "{s:I,s:s,s:I,s:s,s:[i]}", "user_id", (json_int_t)alice, "username",
                  "alice", "channel_id", (json_int_t)ch, "body", "x", "attachments", 1),
             "invalid_attachments", 400);
  assert_err(call(&f, S, "{s:I,s:s,s:I,s:s,s:s}", "user_id", (json_int_t)alice, "username",
                  "alice", "channel_id", (json_int_t)ch, "body", "x", "attachments", "k"),
             "invalid_attachments", 400);
  assert_err(call(&f, S, "{s:I,s:s,s:I,s:s,s:[s]}", "user_id", (json_int_t)alice, "username",
                  "alice", "channel_id", (json_int_t)ch, "body", "x", "attachments", ""),
             "invalid_attachments", 400);
  char key[202];
  memset(key, 'k', 201);
  key[201] = '\0';
  assert_err(call(&f, S, "{s:I,s:s,s:I,s:s,s:[s]}", "user_id", (json_int_t)alice, "username",
                  "alice", "channel_id", (json_int_t)ch, "body", "x", "attachments", key),
             "invalid_attachments", 400);
  key[200] = '\0';
  r = call(&f, S, "{s:I,s:s,s:I,s:s,s:[s,s,s,s,s,s,s,s,s,s]}", "user_id", (json_int_t)alice,
           "username", "alice", "channel_id", (json_int_t)ch, "body", "x", "attachments", key,
           key, key, key, key, key, key, key, key, key);
  assert_ok(r);
  json_decref(r);
  /* an empty array is no attachments */
  fence(&f);
  events_clear(&f);
  r = call(&f, S, "{s:I,s:s,s:I,s:s,s:[]}", "user_id", (json_int_t)alice, "username", "alice",
           "channel_id", (json_int_t)ch, "body", "x", "attachments");
  assert_ok(r);
  json_decref(r);
  fence(&f);
  assert_true(json_is_null(
      json_object_get(json_object_get(event_on(&f, subj("chan", ch), 0), "message"),
                      "attachments")));

  /* lists */
  assert_err(call(&f, "messages.channel.public", "{s:I,s:i}", "user_id", (json_int_t)alice,
                  "limit", 101),
             "bad_request", 400);
  assert_err(call(&f, "messages.channel.public", "{s:I,s:s}", "user_id", (json_int_t)alice,
                  "limit", "5"),
             "bad_request", 400);
  assert_err(call(&f, "messages.channel.list", "{s:I,s:i}", "user_id", (json_int_t)alice,
                  "limit", 501),
             "bad_request", 400);
  assert_err(call(&f, "messages.channel.list", "{s:I,s:i}", "user_id", (json_int_t)alice,
                  "after", -1),
             "bad_request", 400);
  assert_err(call(&f, "messages.members.list", "{s:I,s:I,s:i}", "user_id", (json_int_t)alice,
                  "channel_id", (json_int_t)ch, "after", -5),
             "bad_request", 400);
  assert_err(call(&f, "messages.members.add", "{s:I,s:I}", "user_id", (json_int_t)alice,
                  "channel_id", (json_int_t)ch),
             "bad_request", 400);
  assert_err(call(&f, "messages.members.add", "{s:I,s:s}", "channel_id", (json_int_t)ch,
                  "username", "bob"),
             "bad_request", 400);
  assert_err(call(&f, "messages.dm.open", "{s:I,s:s}", "user_id", (json_int_t)alice, "username",
                  "alice"),
             "bad_request", 400);
  assert_err(call(&f, "messages.channel.join", "{s:I,s:I}", "user_id", (json_int_t)alice,
                  "channel_id", (json_int_t)ch),
             "bad_request", 400);
  assert_err(call(&f, "messages.read", "{s:I,s:I}", "user_id", (json_int_t)alice, "channel_id",
                  (json_int_t)ch),
             "bad_request", 400);
  assert_err(call(&f, "messages.edit", "{s:I,s:I,s:s}", "user_id", (json_int_t)alice,
                  "channel_id", (json_int_t)ch, "body", "x"),
             "bad_request", 400);
  assert_err(call(&f, "messages.edit", "{s:I,s:I,s:b,s:s}", "user_id", (json_int_t)alice,
                  "channel_id", (json_int_t)ch, "message_id", 1, "body", "x"),
             "bad_request", 400);
  /* too large */
  size_t huge = 200 * 1024;
  char *h = malloc(huge);
  memset(h, ' ', huge);
  h[0] = '{';
  h[huge - 1] = '}';
  assert_err(call_raw(&f, C, h, huge), "bad_request", 400);
  free(h);
  fx_done(&f);
}

/* 200 sends queued at once on one channel: seqs follow arrival order. */
static void test_send_burst_ordered(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1];
  int64_t ch = create(&f, alice, "busy", false);
  join(&f, bob, ch);
  fence(&f);
  events_clear(&f);
  enum { N = 200 };
  static reply_t r[N];
  for (int i = 0; i < N; i++) {
    char p[160];
    int n = snprintf(p, sizeof p,
                     "{\"user_id\":%" PRId64 ",\"username\":\"%s\",\"channel_id\":%" PRId64
                     ",\"body\":\"msg %d\"}",
                     i % 2 ? bob : alice, i % 2 ? "bob" : "alice", ch, i);
    send_raw(&f, "messages.send", p, (size_t)n, &r[i]);
  }
  RUN_UNTIL(&f, answered(r, N) == N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(r[i].status, 0);
    json_t *a = parse(r[i].data);
    free(r[i].data);
    assert_ok(a);
    assert_int_equal(ival(a, "seq"), i + 1);
    json_decref(a);
  }
  fence(&f);
  assert_int_equal(events_on(&f, subj("chan", ch)), N);
  for (int i = 0; i < N; i++) {
    json_t *m = json_object_get(event_on(&f, subj("chan", ch), i), "message");
    assert_int_equal(ival(m, "seq"), i + 1);
    char body[16];
    snprintf(body, sizeof body, "msg %d", i);
    assert_string_equal(sval(m, "body"), body);
  }
  assert_true(metric(&f, "storm_messages_appends_total ") == N);
  fx_done(&f);
}

static void test_no_reply_subject(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  const char *p = "{\"user_id\":1,\"name\":\"silent\"}";
  assert_int_equal(bus_publish(f.bus, "messages.channel.create", NULL, p, strlen(p)), 0);
  run_for(&f, 50);
  fence(&f);
  assert_int_equal(f.nev, 0);
  bool more;
  channel_rec_t c[4];
  assert_int_equal(f.store->ops->channel_list_public(f.store, 0, c, 4, &more), 0);
  fx_done(&f);
}

/* Stop with sends in every stage: each is answered (ack or 503), done
 * runs once, nothing leaks. */
static void test_stop_with_pending(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0];
  int64_t ch = create(&f, alice, "general", false);
  enum { N = 40 };
  static reply_t r[N];
  for (int i = 0; i < N; i++) {
    char p[160];
    int n = snprintf(p, sizeof p,
                     "{\"user_id\":%" PRId64 ",\"username\":\"alice\",\"channel_id\":%" PRId64
                     ",\"body\":\"m @bob\"}",
                     alice, ch);
    send_raw(&f, "messages.send", p, (size_t)n, &r[i]);
  }
  reply_t add;
  char p[128];
  int n = snprintf(p, sizeof p,
                   "{\"user_id\":%" PRId64 ",\"channel_id\":%" PRId64 ",\"username\":\"bob\"}",
                   alice, ch);
  send_raw(&f, "messages.members.add", p, (size_t)n, &add);
  f.users_mode = USERS_SILENT; /* lookups stay pending until stop cancels them */
  /* deliver the requests, let some get going */
  uv_run(&f.loop, UV_RUN_NOWAIT);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  fx_stop(&f);
  int ok = 0;
  RUN_UNTIL(&f, answered(r, N) + add.n == N + 1);
  for (int i = 0; i < N; i++) {
    assert_int_equal(r[i].status, 0);
    json_t *a = parse(r[i].data);
    free(r[i].data);
    if (json_object_get(a, "error")) {
      assert_err(a, "unavailable", 503);
    } else {
      ok++;
      json_decref(a);
    }
  }
  assert_int_equal(add.status, 0);
  json_t *a = parse(add.data);
  free(add.data);
  if (json_object_get(a, "error"))
    assert_err(a, "unavailable", 503);
  else
    json_decref(a);
  /* what was acknowledged is stored */
  channel_rec_t c;
  assert_int_equal(f.store->ops->channel_get(f.store, ch, &c), 0);
  assert_int_equal(c.last_seq, ok);
  fx_done(&f);
}

static void test_stop_idle_and_twice(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  messages_service_stop(f.svc, on_flag, &f.stopped);
  messages_service_stop(f.svc, on_flag, &f.stopped); /* ignored */
  RUN_UNTIL(&f, f.stopped == 1);
  run_for(&f, 10);
  assert_int_equal(f.stopped, 1);
  messages_service_free(f.svc);
  f.svc = NULL;
  /* unsubscribed: requests find no responder */
  reply_t r;
  send_raw(&f, "messages.channel.list", "{\"user_id\":1}", 13, &r);
  RUN_UNTIL(&f, r.n == 1);
  assert_int_equal(r.status, BUS_ENORESPONDERS);
  messages_service_stop(NULL, on_flag, NULL);
  messages_service_free(NULL);
  fx_done(&f);
}

static void test_start_invalid(void **state) {
  fx_t f;
  fx_init(&f);
  messages_service_t *s = (messages_service_t *)1;
  messages_service_opts_t o = f.opts;
  o.loop = NULL;
  assert_int_equal(messages_service_start(&o, &s), -EINVAL);
  assert_null(s);
  o = f.opts;
  o.bus = NULL;
  assert_int_equal(messages_service_start(&o, &s), -EINVAL);
  o = f.opts;
  o.store = NULL;
  assert_int_equal(messages_service_start(&o, &s), -EINVAL);
  o = f.opts;
  o.users_timeout_ms = 0;
  assert_int_equal(messages_service_start(&o, &s), -EINVAL);
  o = f.opts;
  o.names_cache_max = 15;
  assert_int_equal(messages_service_start(&o, &s), -EINVAL);
  assert_int_equal(messages_service_start(NULL, &s), -EINVAL);
  fx_done(&f);
}


/* ---- fault injection: a store that forwards to the real one, except the
 * calls told to fail ---- */

enum {
  P_CREATE = 1 << 0, P_GET = 1 << 1, P_LIST_PUBLIC = 1 << 2, P_LIST_USER = 1 << 3,
  P_DM = 1 << 4, P_MEMBER_ADD = 1 << 5, P_MEMBER_REMOVE = 1 << 6, P_MEMBER_GET = 1 << 7,
  P_MEMBERS_LIST = 1 << 8, P_READ = 1 << 9, P_PAGE = 1 << 10, P_MSG_GET = 1 << 11,
  P_EDIT = 1 << 12, P_DELETE = 1 << 13, P_MEMBER_COUNT = 1 << 14,
};

typedef struct {
  messages_store_t base;
  messages_store_t *real;
  _Atomic unsigned fail;  /* P_* bits: those calls return -EIO */
  int append_rc;          /* non-zero: append returns it at once */
  int append_status;      /* non-zero: the callback gets it (the message is stored anyway) */
  _Atomic int member_count; /* > 0: member_count_for_user answers this instead */
} proxy_t;

static proxy_t g_proxy;

#define FWD(bit, call) \
  return (atomic_load(&g_proxy.fail) & (bit)) ? -EIO : g_proxy.real->ops->call

static int px_channel_create(messages_store_t *s, const char *name, const char *topic,
                             bool is_private, int64_t owner_id, int64_t now_ms,
                             channel_rec_t *out) {
  FWD(P_CREATE, channel_create(g_proxy.real, name, topic, is_private, owner_id, now_ms, out));
}
static int px_channel_get(messages_store_t *s, int64_t id, channel_rec_t *out) {
  FWD(P_GET, channel_get(g_proxy.real, id, out));
}
static int px_channel_update(messages_store_t *s, int64_t id, const char *name,
                             const char *topic) {
  FWD(0, channel_update(g_proxy.real, id, name, topic));
}
static int px_channel_delete(messages_store_t *s, int64_t id) {
  FWD(0, channel_delete(g_proxy.real, id));
}
static int px_list_public(messages_store_t *s, int64_t after, channel_rec_t *out, size_t cap,
                          bool *more) {
  FWD(P_LIST_PUBLIC, channel_list_public(g_proxy.real, after, out, cap, more));
}
static int px_list_user(messages_store_t *s, int64_t user, int64_t after,
                        channel_membership_t *out, size_t cap, bool *more) {
  FWD(P_LIST_USER, channel_list_for_user(g_proxy.real, user, after, out, cap, more));
}
static int px_dm(messages_store_t *s, int64_t a, int64_t b, int64_t now, channel_rec_t *out,
                 bool *created) {
  FWD(P_DM, dm_get_or_create(g_proxy.real, a, b, now, out, created));
}
static int px_member_add(messages_store_t *s, int64_t ch, int64_t u, int64_t now, bool *added) {
  FWD(P_MEMBER_ADD, member_add(g_proxy.real, ch, u, now, added));
}
static int px_member_remove(messages_store_t *s, int64_t ch, int64_t u) {
  FWD(P_MEMBER_REMOVE, member_remove(g_proxy.real, ch, u));
}
static int px_member_get(messages_store_t *s, int64_t ch, int64_t u, member_rec_t *out) {
  FWD(P_MEMBER_GET, member_get(g_proxy.real, ch, u, out));
}
static int px_member_count(messages_store_t *s, int64_t u) {
  int fake = atomic_load(&g_proxy.member_count);
  if (fake > 0 && !(atomic_load(&g_proxy.fail) & P_MEMBER_COUNT)) return fake;
  FWD(P_MEMBER_COUNT, member_count_for_user(g_proxy.real, u));
}
static int px_member_muted(messages_store_t *s, int64_t ch, int64_t u, bool m) {
  FWD(0, member_set_muted(g_proxy.real, ch, u, m));
}
static int px_members_list(messages_store_t *s, int64_t ch, int64_t after, member_rec_t *out,
                           size_t cap, bool *more) {
  FWD(P_MEMBERS_LIST, members_list(g_proxy.real, ch, after, out, cap, more));
}
static int px_read_set(messages_store_t *s, int64_t ch, int64_t u, int64_t seq, int64_t *now) {
  FWD(P_READ, read_set(g_proxy.real, ch, u, seq, now));
}

typedef struct {
  msg_append_cb cb;
  void *arg;
} px_append_t;

static void px_on_append(void *arg, int status, const msg_ack_t *ack) {
  px_append_t a = *(px_append_t *)arg;
  free(arg);
  if (g_proxy.append_status)
    a.cb(a.arg, g_proxy.append_status, NULL);
  else
    a.cb(a.arg, status, ack);
}

static int px_append(messages_store_t *s, const msg_append_t *m, msg_append_cb cb, void *arg) {
  if (g_proxy.append_rc) return g_proxy.append_rc;
  px_append_t *a = malloc(sizeof *a);
  a->cb = cb;
  a->arg = arg;
  int rc = g_proxy.real->ops->append(g_proxy.real, m, px_on_append, a);
  if (rc < 0) free(a);
  return rc;
}
static int px_page(messages_store_t *s, int64_t ch, msg_dir_t dir, int64_t seq, size_t limit,
                   msg_page_t *out) {
  FWD(P_PAGE, messages_page(g_proxy.real, ch, dir, seq, limit, out));
}
static int px_msg_get(messages_store_t *s, int64_t ch, int64_t id, msg_rec_t **out) {
  FWD(P_MSG_GET, message_get(g_proxy.real, ch, id, out));
}
static int px_edit(messages_store_t *s, int64_t ch, int64_t id, int64_t author, str_t body,
                   int64_t now, msg_rec_t **out) {
  FWD(P_EDIT, message_edit(g_proxy.real, ch, id, author, body, now, out));
}
static int px_delete(messages_store_t *s, int64_t ch, int64_t id, int64_t author, int64_t now,
                     msg_rec_t **out) {
  FWD(P_DELETE, message_delete(g_proxy.real, ch, id, author, now, out));
}
static void px_stats(messages_store_t *s, msg_store_stats_t *out) {
  g_proxy.real->ops->stats(g_proxy.real, out);
}
static bool px_healthy(messages_store_t *s) { return g_proxy.real->ops->healthy(g_proxy.real); }
static void px_close(messages_store_t *s) { g_proxy.real->ops->close(g_proxy.real); }

static const messages_store_ops_t proxy_ops = {
    .channel_create = px_channel_create, .channel_get = px_channel_get,
    .channel_update = px_channel_update, .channel_delete = px_channel_delete,
    .channel_list_public = px_list_public, .channel_list_for_user = px_list_user,
    .dm_get_or_create = px_dm, .member_add = px_member_add, .member_remove = px_member_remove,
    .member_get = px_member_get, .member_set_muted = px_member_muted,
    .member_count_for_user = px_member_count,
    .members_list = px_members_list, .read_set = px_read_set, .append = px_append,
    .messages_page = px_page, .message_get = px_msg_get, .message_edit = px_edit,
    .message_delete = px_delete, .stats = px_stats, .healthy = px_healthy, .close = px_close,
};

/* Every store failure is 503 unavailable (append queue full: overloaded;
 * a channel gone at commit: not_found), and is counted. */
static void test_store_failures(void **state) {
  fx_t f;
  fx_init(&f);
  memset(&g_proxy, 0, sizeof g_proxy);
  g_proxy.base.ops = &proxy_ops;
  g_proxy.real = f.store;
  f.store = &g_proxy.base;
  f.opts.store = f.store;
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1];
  int64_t ch = create(&f, alice, "general", false);
  join(&f, bob, ch);
  json_t *ack = send_msg(&f, alice, ch, "first");
  char mid[32];
  snprintf(mid, sizeof mid, "%s", sval(ack, "id"));
  json_decref(ack);
  json_t *r = call(&f, "messages.dm.open", "{s:I,s:s,s:s}", "user_id", (json_int_t)alice,
                   "username", "alice", "peer", "bob");
  json_decref(r);
  fence(&f);
  events_clear(&f);

#define FAILS(bits, req)                      \
  do {                                        \
    atomic_store(&g_proxy.fail, (bits));      \
    assert_err(req, "unavailable", 503);      \
    atomic_store(&g_proxy.fail, 0u);          \
  } while (0)
  FAILS(P_CREATE, call(&f, "messages.channel.create", "{s:I,s:s}", "user_id", (json_int_t)alice,
                       "name", "x"));
  FAILS(P_LIST_USER, call(&f, "messages.channel.list", "{s:I}", "user_id", (json_int_t)alice));
  FAILS(P_LIST_PUBLIC,
        call(&f, "messages.channel.public", "{s:I}", "user_id", (json_int_t)alice));
  FAILS(P_GET, call(&f, "messages.channel.get", "{s:I,s:I}", "user_id", (json_int_t)alice,
                    "channel_id", (json_int_t)ch));
  FAILS(P_MEMBER_GET, call(&f, "messages.channel.get", "{s:I,s:I}", "user_id",
                           (json_int_t)alice, "channel_id", (json_int_t)ch));
  FAILS(P_MEMBER_ADD, call(&f, "messages.channel.join", "{s:I,s:s,s:I}", "user_id",
                           (json_int_t)f.uid[2], "username", "carol", "channel_id",
                           (json_int_t)ch));
  FAILS(P_MEMBER_REMOVE, call(&f, "messages.channel.leave", "{s:I,s:s,s:I}", "user_id",
                              (json_int_t)bob, "username", "bob", "channel_id", (json_int_t)ch));
  FAILS(P_MEMBERS_LIST, call(&f, "messages.members.list", "{s:I,s:I}", "user_id",
                             (json_int_t)alice, "channel_id", (json_int_t)ch));
  FAILS(P_MEMBER_ADD, call(&f, "messages.members.add", "{s:I,s:I,s:s}", "user_id",
                           (json_int_t)alice, "channel_id", (json_int_t)ch, "username", "dave"));
  FAILS(P_DM, call(&f, "messages.dm.open", "{s:I,s:s,s:s}", "user_id", (json_int_t)alice,
                   "username", "alice", "peer", "carol"));
  FAILS(P_PAGE, call(&f, "messages.history", "{s:I,s:I}", "user_id", (json_int_t)alice,
                     "channel_id", (json_int_t)ch));
  FAILS(P_READ, call(&f, "messages.read", "{s:I,s:I,s:i}", "user_id", (json_int_t)alice,
                     "channel_id", (json_int_t)ch, "seq", 1));
  FAILS(P_MEMBER_GET, edit(&f, alice, ch, mid, "x"));
  FAILS(P_EDIT, edit(&f, alice, ch, mid, "x"));
  FAILS(P_MSG_GET, del(&f, alice, ch, mid));
  FAILS(P_DELETE, del(&f, alice, ch, mid));
  /* send: the store checks the channel and the membership in the append's
   * own transaction (-EIO then, below), nothing before it */
  g_proxy.append_rc = -EAGAIN;
  assert_err(send_msg(&f, alice, ch, "x"), "overloaded", 503);
  g_proxy.append_rc = -ESHUTDOWN;
  assert_err(send_msg(&f, alice, ch, "x"), "unavailable", 503);
  g_proxy.append_rc = 0;
  g_proxy.append_status = -EIO;
  assert_err(send_msg(&f, alice, ch, "x"), "unavailable", 503);
  g_proxy.append_status = -ENOENT; /* the channel was deleted while queued */
  assert_err(send_msg(&f, alice, ch, "x"), "not_found", 404);
  g_proxy.append_status = 0;
  /* The per-user membership cap: refused at the cap, allowed one below. */
  FAILS(P_MEMBER_COUNT, call(&f, "messages.channel.create", "{s:I,s:s}", "user_id",
                             (json_int_t)alice, "name", "capped"));
  atomic_store(&g_proxy.member_count, 1000);
  assert_err(call(&f, "messages.channel.create", "{s:I,s:s}", "user_id", (json_int_t)alice, "name",
                  "capped"),
             "too_many_channels", 409);
  assert_err(call(&f, "messages.channel.join", "{s:I,s:s,s:I}", "user_id", (json_int_t)f.uid[2],
                  "username", "carol", "channel_id", (json_int_t)ch),
             "too_many_channels", 409);
  atomic_store(&g_proxy.member_count, 999);
  json_t *ok = call(&f, "messages.channel.create", "{s:I,s:s}", "user_id", (json_int_t)alice,
                    "name", "capped");
  assert_non_null(json_object_get(ok, "channel"));
  json_decref(ok);
  atomic_store(&g_proxy.member_count, 0);
  fence(&f);
  events_clear(&f); /* that create announced itself; the failures before it did not */
#undef FAILS
  fence(&f);
  assert_int_equal(f.nev, 0); /* nothing failed announced anything */
  assert_true(metric(&f, "storm_messages_requests_total{op=\"send\",result=\"unavailable\"} ") ==
              2);
  assert_true(metric(&f, "storm_messages_requests_total{op=\"send\",result=\"overloaded\"} ") ==
              1);
  /* and it works again */
  r = send_msg(&f, alice, ch, "recovered");
  assert_ok(r);
  json_decref(r);
  fx_done(&f);
}

/* ---- messages.send.batch ---- */

#define B "messages.send.batch"

/* An item {channel_id, body[, nonce]} (new reference). */
static json_t *item(int64_t ch, const char *body, const char *nonce) {
  json_t *i = json_pack("{s:I,s:s}", "channel_id", (json_int_t)ch, "body", body);
  if (nonce) json_object_set_new(i, "nonce", json_string(nonce));
  return i;
}

/* Sends a batch of items (stolen) as user and waits for the reply. */
static json_t *batch(fx_t *f, int64_t user, json_t *items) {
  json_t *p = json_pack("{s:I,s:s,s:o}", "user_id", (json_int_t)user, "username",
                        user_name(f, user), "items", items);
  assert_non_null(p);
  char *s = json_dumps(p, JSON_COMPACT);
  json_decref(p);
  json_t *r = call_raw(f, B, s, strlen(s));
  free(s);
  return r;
}

/* The results of a batch reply, checked to hold n. */
static json_t *results(json_t *r, size_t n) {
  assert_ok(r);
  json_t *a = json_object_get(r, "results");
  assert_true(json_is_array(a));
  assert_int_equal(json_array_size(a), n);
  return a;
}

/* The i-th result is the error code/status (not consumed). */
static void assert_item_err(json_t *res, size_t i, const char *code, int status) {
  json_t *o = json_array_get(res, i);
  assert_non_null(o);
  assert_err(json_incref(o), code, status);
}

/* The i-th result is an ack in ch with seq (duplicate as given). */
static json_t *assert_item_ack(json_t *res, size_t i, int64_t ch, int64_t seq, bool dup) {
  json_t *o = json_array_get(res, i);
  assert_non_null(o);
  assert_ok(o);
  assert_int_equal(json_object_size(o), 5);
  assert_int_equal(ival(o, "channel_id"), ch);
  assert_int_equal(ival(o, "seq"), seq);
  assert_true(json_is_boolean(json_object_get(o, "duplicate")));
  assert_int_equal(json_is_true(json_object_get(o, "duplicate")), dup);
  assert_true(strtoll(sval(o, "id"), NULL, 10) > 0);
  return o;
}

/* Items of two channels interleaved: results in item order, each
 * channel's seqs in item order, one event per message with the stored
 * values, durable before the reply. */
static void test_batch_order_mixed(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1];
  int64_t c1 = create(&f, alice, "one", false), c2 = create(&f, alice, "two", false);
  join(&f, bob, c1);
  json_t *pre = send_msg(&f, alice, c2, "before");
  json_decref(pre);
  fence(&f);
  events_clear(&f);
  const int64_t chans[6] = {c1, c2, c1, c1, c2, c1};
  const char *bodies[6] = {"a0", "b0", "a1 \"q\"\n", "a2 \xc3\xbc", "b1", "a3"};
  const int64_t seqs[6] = {1, 2, 2, 3, 3, 4};
  json_t *items = json_array();
  for (int i = 0; i < 6; i++) json_array_append_new(items, item(chans[i], bodies[i], NULL));
  /* a user_id inside an item is ignored: the envelope's caller posts */
  json_object_set_new(json_array_get(items, 5), "user_id", json_integer((json_int_t)bob));
  json_object_set_new(json_array_get(items, 4), "attachments", json_pack("[s]", "media/k.png"));
  json_t *r = batch(&f, alice, items);
  json_t *res = results(r, 6);
  for (int i = 0; i < 6; i++) assert_item_ack(res, (size_t)i, chans[i], seqs[i], false);
  channel_rec_t c;
  assert_int_equal(f.store->ops->channel_get(f.store, c1, &c), 0);
  assert_int_equal(c.last_seq, 4);
  assert_int_equal(f.store->ops->channel_get(f.store, c2, &c), 0);
  assert_int_equal(c.last_seq, 3);
  fence(&f);
  assert_int_equal(events_on(&f, subj("chan", c1)), 4);
  assert_int_equal(events_on(&f, subj("chan", c2)), 2);
  assert_int_equal(f.nev, 6);
  int k1 = 0, k2 = 0;
  for (int i = 0; i < 6; i++) {
    json_t *ev = chans[i] == c1 ? event_on(&f, subj("chan", c1), k1++)
                                : event_on(&f, subj("chan", c2), k2++);
    check_message_event(ev, chans[i], json_array_get(res, (size_t)i), alice, "alice", bodies[i]);
  }
  json_t *m = json_object_get(event_on(&f, subj("chan", c2), 1), "message");
  assert_string_equal(json_string_value(json_array_get(json_object_get(m, "attachments"), 0)),
                      "media/k.png");
  json_decref(r);
  assert_true(metric(&f, "storm_messages_requests_total{op=\"send.batch\",result=\"ok\"} ") == 1);
  assert_true(metric(&f, "storm_messages_requests_total{op=\"send\",result=\"ok\"} ") == 7);
  assert_true(metric(&f, "storm_messages_appends_total ") == 7);
  fx_done(&f);
}

/* Failing items among good ones: each answered with its own error, in
 * place; the good ones stored in order around them, nothing announced for
 * the failures. */
static void test_batch_failing_items(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1];
  int64_t ch = create(&f, alice, "general", false);
  int64_t pub = create(&f, bob, "bobs", false), priv = create(&f, bob, "secret", true);
  int64_t dm;
  {
    json_t *r = call(&f, "messages.dm.open", "{s:I,s:s,s:s}", "user_id", (json_int_t)alice,
                     "username", "alice", "peer", "bob");
    dm = ival(json_object_get(r, "channel"), "id");
    json_decref(r);
  }
  fence(&f);
  events_clear(&f);
  char big[4002];
  memset(big, 'x', 4001);
  big[4001] = '\0';
  json_t *items = json_array();
  json_array_append_new(items, item(ch, "good 1", NULL));              /* 0 */
  json_array_append_new(items, item(priv, "x", NULL));                  /* 1: 404 */
  json_array_append_new(items, item(pub, "x", NULL));                   /* 2: 403 */
  json_array_append_new(items, item(ch, "", NULL));                     /* 3: invalid_body */
  json_array_append_new(items, json_integer(5));                        /* 4: bad_request */
  json_array_append_new(items, item(999, "x", NULL));                   /* 5: 404 */
  json_array_append_new(items, item(0, "x", NULL));                     /* 6: 404 */
  json_t *att = item(ch, "x", NULL);
  json_object_set_new(att, "attachments", json_pack("[i]", 1));
  json_array_append_new(items, att);                                    /* 7: attachments */
  json_array_append_new(items, item(ch, big, NULL));                    /* 8: invalid_body */
  json_t *nn = item(ch, "x", NULL);
  json_object_set_new(nn, "nonce", json_integer(3));
  json_array_append_new(items, nn);                                     /* 9: bad_request */
  json_array_append_new(items, json_pack("{s:s}", "body", "no channel")); /* 10: bad_request */
  json_array_append_new(items, item(ch, "good 2 @bob", NULL));          /* 11 */
  json_array_append_new(items, item(dm, "hi bob", NULL));               /* 12 */
  json_t *r = batch(&f, alice, items);
  json_t *res = results(r, 13);
  assert_item_ack(res, 0, ch, 1, false);
  assert_item_err(res, 1, "not_found", 404);
  assert_item_err(res, 2, "forbidden", 403);
  assert_item_err(res, 3, "invalid_body", 400);
  assert_item_err(res, 4, "bad_request", 400);
  assert_item_err(res, 5, "not_found", 404);
  assert_item_err(res, 6, "not_found", 404);
  assert_item_err(res, 7, "invalid_attachments", 400);
  assert_item_err(res, 8, "invalid_body", 400);
  assert_item_err(res, 9, "bad_request", 400);
  assert_item_err(res, 10, "bad_request", 400);
  assert_item_ack(res, 11, ch, 2, false);
  assert_item_ack(res, 12, dm, 1, false);
  /* the private channel stays invisible: the same answer as an unknown one */
  assert_string_equal(sval(json_object_get(json_array_get(res, 1), "error"), "message"),
                      sval(json_object_get(json_array_get(res, 5), "error"), "message"));
  json_decref(r);
  RUN_UNTIL(&f, events_on(&f, "message.sent") == 1); /* the DM peer; bob is not in general */
  run_for(&f, 50);
  fence(&f);
  assert_int_equal(events_on(&f, subj("chan", ch)), 2);
  assert_int_equal(events_on(&f, subj("chan", dm)), 1);
  assert_int_equal(events_on(&f, subj("chan", priv)) + events_on(&f, subj("chan", pub)), 0);
  assert_int_equal(events_on(&f, "message.sent"), 1);
  assert_int_equal(ival(event_on(&f, "message.sent", 0), "recipientId"), bob);
  assert_true(metric(&f, "storm_messages_requests_total{op=\"send\",result=\"bad_request\"} ") ==
              3);
  assert_true(metric(&f, "storm_messages_requests_total{op=\"send\",result=\"not_found\"} ") == 3);
  assert_true(metric(&f, "storm_messages_appends_total ") == 3);
  fx_done(&f);
}

/* Nonces: a retry inside the batch and one of an earlier send get the
 * original ack with duplicate:true, and announce nothing. */
static void test_batch_duplicates(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0];
  int64_t ch = create(&f, alice, "general", false), c2 = create(&f, alice, "other", false);
  json_t *first = call(&f, "messages.send", "{s:I,s:s,s:I,s:s,s:s}", "user_id",
                       (json_int_t)alice, "username", "alice", "channel_id", (json_int_t)ch,
                       "body", "early", "nonce", "n0");
  assert_ok(first);
  fence(&f);
  events_clear(&f);
  json_t *items = json_array();
  json_array_append_new(items, item(ch, "one", "n1"));
  json_array_append_new(items, item(ch, "one again", "n1"));
  json_array_append_new(items, item(ch, "early again", "n0"));
  json_array_append_new(items, item(c2, "same nonce elsewhere", "n1"));
  json_array_append_new(items, item(ch, "two", "n2"));
  json_t *r = batch(&f, alice, items);
  json_t *res = results(r, 5);
  json_t *a = assert_item_ack(res, 0, ch, 2, false);
  json_t *b = assert_item_ack(res, 1, ch, 2, true);
  assert_string_equal(sval(a, "id"), sval(b, "id"));
  assert_int_equal(ival(a, "created_at"), ival(b, "created_at"));
  json_t *e = assert_item_ack(res, 2, ch, 1, true);
  assert_string_equal(sval(e, "id"), sval(first, "id"));
  assert_item_ack(res, 3, c2, 1, false);
  assert_item_ack(res, 4, ch, 3, false);
  run_for(&f, 50);
  fence(&f);
  assert_int_equal(events_on(&f, subj("chan", ch)), 2);
  assert_int_equal(events_on(&f, subj("chan", c2)), 1);
  assert_int_equal(f.nev, 3);
  json_t *m = json_object_get(event_on(&f, subj("chan", ch), 0), "message");
  assert_string_equal(sval(m, "body"), "one");
  assert_string_equal(sval(m, "nonce"), "n1");
  assert_true(metric(&f, "storm_messages_appends_total ") == 4);
  /* the whole batch again: all duplicates, nothing new */
  events_clear(&f);
  items = json_array();
  json_array_append_new(items, item(ch, "one", "n1"));
  json_array_append_new(items, item(ch, "two", "n2"));
  json_t *r2 = batch(&f, alice, items);
  json_t *res2 = results(r2, 2);
  assert_item_ack(res2, 0, ch, 2, true);
  assert_item_ack(res2, 1, ch, 3, true);
  run_for(&f, 50);
  fence(&f);
  assert_int_equal(f.nev, 0);
  json_decref(r2);
  json_decref(r);
  json_decref(first);
  fx_done(&f);
}

/* The envelope: a fault there fails the whole request (one error reply,
 * nothing stored); 100 items pass, 101 do not; the payload bound. */
static void test_batch_limits_malformed(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0];
  int64_t ch = create(&f, alice, "general", false);
  fence(&f);
  events_clear(&f);
  char p[256];
  const char *item1 = "{\"channel_id\":1,\"body\":\"x\"}";
  assert_err(call_str(&f, B, "not json"), "bad_request", 400);
  assert_err(call_raw(&f, B, "", 0), "bad_request", 400);
  assert_err(call_str(&f, B, "[1]"), "bad_request", 400);
  snprintf(p, sizeof p, "{\"username\":\"alice\",\"items\":[%s]}", item1);
  assert_err(call_str(&f, B, p), "bad_request", 400);
  snprintf(p, sizeof p, "{\"user_id\":0,\"username\":\"alice\",\"items\":[%s]}", item1);
  assert_err(call_str(&f, B, p), "bad_request", 400);
  snprintf(p, sizeof p, "{\"user_id\":%" PRId64 ",\"items\":[%s]}", alice, item1);
  assert_err(call_str(&f, B, p), "bad_request", 400);
  snprintf(p, sizeof p, "{\"user_id\":%" PRId64 ",\"username\":\"a b\",\"items\":[%s]}", alice,
           item1);
  assert_err(call_str(&f, B, p), "bad_request", 400);
  snprintf(p, sizeof p, "{\"user_id\":%" PRId64 ",\"username\":\"alice\"}", alice);
  assert_err(call_str(&f, B, p), "bad_request", 400);
  snprintf(p, sizeof p, "{\"user_id\":%" PRId64 ",\"username\":\"alice\",\"items\":{}}", alice);
  assert_err(call_str(&f, B, p), "bad_request", 400);
  snprintf(p, sizeof p, "{\"user_id\":%" PRId64 ",\"username\":\"alice\",\"items\":[]}", alice);
  assert_err(call_str(&f, B, p), "bad_request", 400);
  snprintf(p, sizeof p, "{\"user_id\":%" PRId64 ",\"username\":\"alice\",\"items\":null}", alice);
  assert_err(call_str(&f, B, p), "bad_request", 400);
  snprintf(p, sizeof p,
           "{\"user_id\":%" PRId64 ",\"username\":\"alice\",\"items\":[%s],\"items\":[%s]}",
           alice, item1, item1);
  assert_err(call_str(&f, B, p), "bad_request", 400);
  /* 101 items: refused as a whole */
  json_t *items = json_array();
  for (int i = 0; i < 101; i++) json_array_append_new(items, item(ch, "x", NULL));
  assert_err(batch(&f, alice, items), "bad_request", 400);
  /* over the payload bound (items of valid bodies, under the item count) */
  static char body[4000 * 3 + 1]; /* 4,000 characters of 3 bytes: 12 KB */
  for (int i = 0; i < 4000; i++) memcpy(body + 3 * i, "\xe2\x82\xac", 3);
  body[4000 * 3] = '\0';
  items = json_array();
  for (int i = 0; i < 50; i++) json_array_append_new(items, item(ch, body, NULL)); /* 600 KB */
  json_t *r = batch(&f, alice, items);
  json_t *e = json_object_get(r, "error");
  assert_non_null(e);
  assert_string_equal(sval(e, "message"), "request too large");
  assert_err(r, "bad_request", 400);
  run_for(&f, 50);
  fence(&f);
  assert_int_equal(f.nev, 0);
  channel_rec_t c;
  assert_int_equal(f.store->ops->channel_get(f.store, ch, &c), 0);
  assert_int_equal(c.last_seq, 0);
  assert_true(
      metric(&f, "storm_messages_requests_total{op=\"send.batch\",result=\"bad_request\"} ") == 14);
  /* exactly 100 items pass, in order */
  items = json_array();
  for (int i = 0; i < 100; i++) {
    char b[16];
    snprintf(b, sizeof b, "m%d", i);
    json_array_append_new(items, item(ch, b, NULL));
  }
  r = batch(&f, alice, items);
  json_t *res = results(r, 100);
  for (int i = 0; i < 100; i++) assert_item_ack(res, (size_t)i, ch, i + 1, false);
  json_decref(r);
  fence(&f);
  for (int i = 0; i < 100; i++) {
    char b[16];
    snprintf(b, sizeof b, "m%d", i);
    assert_string_equal(sval(json_object_get(event_on(&f, subj("chan", ch), i), "message"), "body"),
                        b);
  }
  /* without a reply subject: dropped, nothing stored */
  snprintf(p, sizeof p, "{\"user_id\":%" PRId64 ",\"username\":\"alice\",\"items\":[%s]}", alice,
           "{\"channel_id\":1,\"body\":\"quiet\"}");
  assert_int_equal(bus_publish(f.bus, B, NULL, p, strlen(p)), 0);
  run_for(&f, 50);
  assert_int_equal(f.store->ops->channel_get(f.store, ch, &c), 0);
  assert_int_equal(c.last_seq, 100);
  fx_done(&f);
}

/* Store failures reach each item; one reply still comes for the whole. */
static void test_batch_store_failures(void **state) {
  fx_t f;
  fx_init(&f);
  memset(&g_proxy, 0, sizeof g_proxy);
  g_proxy.base.ops = &proxy_ops;
  g_proxy.real = f.store;
  f.store = &g_proxy.base;
  f.opts.store = f.store;
  fx_start(&f);
  int64_t alice = f.uid[0];
  int64_t ch = create(&f, alice, "general", false), c2 = create(&f, alice, "other", false);
  fence(&f);
  events_clear(&f);
  json_t *items, *r, *res;
#define TWO() \
  (items = json_array(), json_array_append_new(items, item(ch, "a", NULL)), \
   json_array_append_new(items, item(c2, "b", NULL)), items)
  g_proxy.append_rc = -EAGAIN;
  r = batch(&f, alice, TWO());
  res = results(r, 2);
  assert_item_err(res, 0, "overloaded", 503);
  assert_item_err(res, 1, "overloaded", 503);
  json_decref(r);
  g_proxy.append_rc = 0;
  g_proxy.append_status = -EIO;
  r = batch(&f, alice, TWO());
  res = results(r, 2);
  assert_item_err(res, 0, "unavailable", 503);
  assert_item_err(res, 1, "unavailable", 503);
  json_decref(r);
  g_proxy.append_status = 0;
  fence(&f);
  assert_int_equal(f.nev, 0);
  r = batch(&f, alice, TWO());
  res = results(r, 2);
  assert_item_ack(res, 0, ch, 2, false); /* append_status stored the first one anyway */
  assert_item_ack(res, 1, c2, 2, false);
  json_decref(r);
#undef TWO
  fx_done(&f);
}

/* Stop with batches in flight: each gets its one reply, items acked or
 * 503, and what was acked is stored. */
static void test_batch_stop(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0];
  int64_t ch = create(&f, alice, "general", false);
  enum { N = 6, K = 20 };
  static reply_t r[N];
  for (int i = 0; i < N; i++) {
    json_t *items = json_array();
    for (int k = 0; k < K; k++) json_array_append_new(items, item(ch, "m", NULL));
    json_t *p = json_pack("{s:I,s:s,s:o}", "user_id", (json_int_t)alice, "username", "alice",
                          "items", items);
    char *s = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    send_raw(&f, B, s, strlen(s), &r[i]);
    free(s);
  }
  uv_run(&f.loop, UV_RUN_NOWAIT);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  fx_stop(&f);
  RUN_UNTIL(&f, answered(r, N) == N);
  int ok = 0, failed = 0;
  for (int i = 0; i < N; i++) {
    assert_int_equal(r[i].status, 0);
    json_t *a = parse(r[i].data);
    free(r[i].data);
    json_t *res = results(a, K);
    for (int k = 0; k < K; k++) {
      json_t *o = json_array_get(res, (size_t)k);
      if (json_object_get(o, "error")) {
        assert_item_err(res, (size_t)k, "unavailable", 503);
        failed++;
      } else {
        ok++;
      }
    }
    json_decref(a);
  }
  assert_int_equal(ok + failed, N * K);
  channel_rec_t c;
  assert_int_equal(f.store->ops->channel_get(f.store, ch, &c), 0);
  assert_int_equal(c.last_seq, ok);
  fx_done(&f);
}
#undef B

/* ---- the pure parts ---- */

static void test_mention_syntax(void **state) {
  char out[MESSAGES_MENTIONS_MAX][USER_NAME_MAX + 1];
  const char *b = "@Alice hi @bob.smith. @x @abc-d_e, e@mail.org @@carol (@dave) @eve...@frank";
  size_t n = msg_mentions(b, strlen(b), out, MESSAGES_MENTIONS_MAX);
  const char *want[] = {"alice", "bob.smith", "abc-d_e", "dave", "eve"};
  assert_int_equal(n, 5);
  for (size_t i = 0; i < n; i++) assert_string_equal(out[i], want[i]);
  /* duplicates once; the bound holds */
  b = "@aaa @AAA @bbb @ccc";
  assert_int_equal(msg_mentions(b, strlen(b), out, 2), 2);
  assert_string_equal(out[1], "bbb");
  /* too long to be a username: none */
  b = "@abcdefghijabcdefghijabcdefghijabc";
  assert_int_equal(msg_mentions(b, strlen(b), out, 4), 0);
  assert_int_equal(msg_mentions("@", 1, out, 4), 0);
  assert_int_equal(msg_mentions("\xc3\xa9@joe", 6, out, 4), 1); /* after a non-ASCII char */
}

static void test_names_cache(void **state) {
  assert_null(msg_names_new(0));
  msg_names_t *n = msg_names_new(2);
  assert_non_null(n);
  msg_names_put(n, 1, "alice");
  msg_names_put(n, 2, "bob");
  msg_names_put(n, 2, "bob"); /* no-op */
  assert_string_equal(msg_names_by_id(n, 1), "alice");
  assert_int_equal(msg_names_by_name(n, "bob"), 2);
  msg_names_put(n, 3, "carol"); /* evicts the oldest */
  assert_null(msg_names_by_id(n, 1));
  assert_int_equal(msg_names_by_name(n, "alice"), 0);
  assert_string_equal(msg_names_by_id(n, 2), "bob");
  assert_string_equal(msg_names_by_id(n, 3), "carol");
  msg_names_put(n, 4, "dave");
  msg_names_put(n, 5, "eve");
  assert_null(msg_names_by_id(n, 2));
  assert_null(msg_names_by_id(n, 3));
  assert_int_equal(msg_names_by_name(n, "eve"), 5);
  assert_int_equal(msg_names_by_name(n, "dave"), 4);
  msg_names_put(n, 0, "zero"); /* ignored */
  assert_int_equal(msg_names_by_name(n, "zero"), 0);
  msg_names_free(n);
  msg_names_free(NULL);
}

/* ---- attachments ---- */

#define ATT_SEND "{s:I,s:s,s:I,s:s,s:o}"

static json_t *send_att(fx_t *f, int64_t user, int64_t ch, json_t *keys) {
  return call(f, "messages.send", ATT_SEND, "user_id", (json_int_t)user, "username",
              user_name(f, user), "channel_id", (json_int_t)ch, "body", "see", "attachments", keys);
}

static void send_att_async(fx_t *f, int64_t user, int64_t ch, json_t *keys, reply_t *r) {
  json_t *p = json_pack(ATT_SEND, "user_id", (json_int_t)user, "username", user_name(f, user),
                        "channel_id", (json_int_t)ch, "body", "see", "attachments", keys);
  char *s = json_dumps(p, JSON_COMPACT);
  json_decref(p);
  send_raw(f, "messages.send", s, strlen(s), r);
  free(s);
}

/* messages.attachment.check {userId, key}: the visible flag. */
static bool visible(fx_t *f, int64_t user, const char *key) {
  json_t *r = call(f, "messages.attachment.check", "{s:I,s:s}", "userId", (json_int_t)user,
                   "key", key);
  assert_ok(r);
  json_t *v = json_object_get(r, "visible");
  assert_true(json_is_boolean(v));
  bool b = json_is_true(v);
  json_decref(r);
  return b;
}

static int64_t reply_seq(reply_t *r) {
  assert_int_equal(r->status, 0);
  json_t *j = parse(r->data);
  free(r->data);
  assert_ok(j);
  int64_t seq = ival(j, "seq");
  json_decref(j);
  return seq;
}

/* Issue 7: a message may carry keys its author uploaded (asked to the
 * media service), members of the channel may then see them. */
static void test_attachments(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0], bob = f.uid[1], carol = f.uid[2];
  int64_t ch = create(&f, alice, "general", false);
  join(&f, bob, ch);
  channel_rec_t c;

  /* one key not the author's: 400, nothing stored, no event */
  fence(&f);
  events_clear(&f);
  assert_err(send_att(&f, alice, ch, json_pack("[s,s]", "mine.png", "notmine.png")),
             "invalid_attachments", 400);
  fence(&f);
  assert_int_equal(events_on(&f, subj("chan", ch)), 0);
  assert_int_equal(f.store->ops->channel_get(f.store, ch, &c), 0);
  assert_int_equal(c.last_seq, 0);

  /* a repeated key is asked once; the message is indexed */
  f.media_calls = 0;
  json_t *r = send_att(&f, bob, ch, json_pack("[s,s]", "pic.png", "pic.png"));
  assert_ok(r);
  assert_int_equal(ival(r, "seq"), 1);
  json_decref(r);
  assert_int_equal(f.media_calls, 1);
  assert_true(visible(&f, alice, "pic.png")); /* a member who did not post it */
  assert_true(visible(&f, bob, "pic.png"));
  assert_false(visible(&f, carol, "pic.png")); /* not a member */
  assert_false(visible(&f, alice, "mine.png")); /* its send failed */
  /* no attachments: no question to the media service */
  f.media_calls = 0;
  r = send_msg(&f, alice, ch, "plain");
  assert_ok(r);
  json_decref(r);
  assert_int_equal(f.media_calls, 0);

  /* ordering: a send waiting for its check holds later sends back */
  reply_t r1, r3;
  send_att_async(&f, alice, ch, json_pack("[s]", "hold.png"), &r1);
  char p2[160];
  int n2 = snprintf(p2, sizeof p2, "{\"user_id\":%" PRId64 ",\"username\":\"bob\",\"channel_id\":%" PRId64 ",\"body\":\"after\"}", bob, ch);
  send_raw(&f, "messages.send", p2, (size_t)n2, &r3);
  RUN_UNTIL(&f, f.nheld == 1);
  run_for(&f, 100);
  assert_int_equal(r1.n + r3.n, 0);
  media_release(&f);
  RUN_UNTIL(&f, r1.n == 1 && r3.n == 1);
  assert_int_equal(reply_seq(&r1), 3);
  assert_int_equal(reply_seq(&r3), 4);

  /* in a batch: each item alone */
  json_t *items = json_array();
  json_t *i0 = item(ch, "a", NULL), *i1 = item(ch, "b", NULL);
  json_object_set_new(i0, "attachments", json_pack("[s]", "notmine.jpg"));
  json_object_set_new(i1, "attachments", json_pack("[s]", "b.jpg"));
  json_array_append_new(items, i0);
  json_array_append_new(items, i1);
  json_array_append_new(items, item(ch, "c", NULL));
  r = batch(&f, alice, items);
  json_t *res = results(r, 3);
  assert_item_err(res, 0, "invalid_attachments", 400);
  assert_item_ack(res, 1, ch, 5, false);
  assert_item_ack(res, 2, ch, 6, false);
  json_decref(r);
  assert_true(visible(&f, bob, "b.jpg"));

  /* the media service fails, or there is none: 503, nothing stored */
  assert_err(send_att(&f, alice, ch, json_pack("[s,s]", "ok.png", "broken.png")), "unavailable",
             503);
  /* a refusal wins over a failure */
  assert_err(send_att(&f, alice, ch, json_pack("[s,s]", "notmine.png", "broken.png")),
             "invalid_attachments", 400);
  bus_unsubscribe(f.media_sub);
  f.media_sub = NULL;
  assert_err(send_att(&f, alice, ch, json_pack("[s]", "ok.png")), "unavailable", 503);
  assert_int_equal(f.store->ops->channel_get(f.store, ch, &c), 0);
  assert_int_equal(c.last_seq, 6);

  /* leaving withdraws */
  r = call(&f, "messages.channel.leave", "{s:I,s:s,s:I}", "user_id", (json_int_t)bob, "username",
           "bob", "channel_id", (json_int_t)ch);
  assert_ok(r);
  json_decref(r);
  assert_false(visible(&f, bob, "b.jpg"));

  /* malformed checks */
  const char *bad[] = {"nope", "[]", "{\"key\":\"k\"}", "{\"userId\":0,\"key\":\"k\"}",
                       "{\"userId\":\"1\",\"key\":\"k\"}", "{\"userId\":1}",
                       "{\"userId\":1,\"key\":\"\"}", "{\"userId\":1,\"key\":5}",
                       "{\"userId\":1,\"key\":\"a\\u0000b\"}",
                       "{\"userId\":1,\"userId\":2,\"key\":\"k\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_err(call_str(&f, "messages.attachment.check", bad[i]), "bad_request", 400);
  char big[260];
  int n = snprintf(big, sizeof big, "{\"userId\":1,\"key\":\"%0201d\"}", 0);
  assert_err(call_raw(&f, "messages.attachment.check", big, (size_t)n), "bad_request", 400);
  assert_true(metric(&f, "storm_messages_requests_total{op=\"attachment.check\",result=\"ok\"} ") == 6);
  assert_true(metric(&f, "storm_messages_requests_total{op=\"attachment.check\",result=\"bad_request\"} ") == 11);
  fx_done(&f);
}

/* Stop answers a send waiting for its attachments' check (503) and
 * cancels the media.get in flight; a request to the check subject while
 * the store fails is 503. */
static void test_attachments_stop(void **state) {
  fx_t f;
  fx_init(&f);
  fx_start(&f);
  int64_t alice = f.uid[0];
  int64_t ch = create(&f, alice, "general", false);
  reply_t r1, r2;
  send_att_async(&f, alice, ch, json_pack("[s]", "hold.png"), &r1);
  char p[160];
  int n = snprintf(p, sizeof p, "{\"user_id\":%" PRId64 ",\"username\":\"alice\",\"channel_id\":%" PRId64 ",\"body\":\"behind\"}", alice, ch);
  send_raw(&f, "messages.send", p, (size_t)n, &r2);
  RUN_UNTIL(&f, f.nheld == 1);
  messages_service_stop(f.svc, on_flag, &f.stopped);
  RUN_UNTIL(&f, r1.n == 1 && r2.n == 1 && f.stopped == 1);
  for (reply_t *r = &r1; r <= &r2; r += &r2 - &r1) {
    json_t *j = parse(r->data);
    free(r->data);
    assert_err(j, "unavailable", 503);
  }
  media_release(&f); /* nobody listens any more */
  run_for(&f, 20);
  messages_service_free(f.svc);
  f.svc = NULL;
  fx_done(&f);
}

int main(void) {
  /* every log line is formatted (so sanitizers see the debug paths) and
   * discarded */
  int devnull = open("/dev/null", O_WRONLY);
  if (devnull >= 0) log_set_fd(devnull);
  log_set_level(LOG_LEVEL_DEBUG);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_list_get),
      cmocka_unit_test(test_join_leave),
      cmocka_unit_test(test_private_invisible),
      cmocka_unit_test(test_members_list_names),
      cmocka_unit_test(test_users_unavailable),
      cmocka_unit_test(test_dm),
      cmocka_unit_test(test_send),
      cmocka_unit_test(test_duplicate_nonce),
      cmocka_unit_test(test_edit_delete),
      cmocka_unit_test(test_read_state),
      cmocka_unit_test(test_mentions),
      cmocka_unit_test(test_dm_notification),
      cmocka_unit_test(test_history_pagination),
      cmocka_unit_test(test_history_payload_bound),
      cmocka_unit_test(test_validation),
      cmocka_unit_test(test_send_burst_ordered),
      cmocka_unit_test(test_no_reply_subject),
      cmocka_unit_test(test_stop_with_pending),
      cmocka_unit_test(test_stop_idle_and_twice),
      cmocka_unit_test(test_start_invalid),
      cmocka_unit_test(test_store_failures),
      cmocka_unit_test(test_batch_order_mixed),
      cmocka_unit_test(test_batch_failing_items),
      cmocka_unit_test(test_batch_duplicates),
      cmocka_unit_test(test_batch_limits_malformed),
      cmocka_unit_test(test_batch_store_failures),
      cmocka_unit_test(test_batch_stop),
      cmocka_unit_test(test_mention_syntax),
      cmocka_unit_test(test_names_cache),
      cmocka_unit_test(test_attachments),
      cmocka_unit_test(test_attachments_stop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
