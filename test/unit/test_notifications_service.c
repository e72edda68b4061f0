/* Unit tests for the notifications service over the in-process bus and
 * the SQLite store: requests and replies, the live push on user.<id>,
 * message.sent (types from the conversation lookup, which the test
 * answers as the messages service would; mute; a DM with oneself; no
 * messages service), malformed payloads on every subject (an error reply,
 * never a crash), and a store that is down (fail fast, 503). */
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "bus/bus_local.h"
#include "core/log.h"
#include "services/notifications/notifications_service.h"
#include "store/sqlite/notifications_sqlite.h"
#include "store/sqlite/sqlite_db.h"

typedef struct {
  uv_loop_t loop;
  bus_t *bus;
  char dir[64];
  sqlite_db_t *db;
  notif_store_t *store;
  notifications_service_t *svc;
  bus_sub_t *events, *lookups;
  json_t *pushed;      /* user.* events seen */
  const char *lookup;  /* the answer to messages.channel.get, NULL = no responder */
  int lookups_seen;
} fx_t;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static void on_event(bus_t *bus, const bus_msg_t *msg, void *arg) {
  fx_t *f = arg;
  json_t *j = json_loadb(msg->data, msg->len, 0, NULL);
  assert_non_null(j);
  json_object_set_new(j, "_subject", json_string(msg->subject));
  json_array_append_new(f->pushed, j);
}

static void on_lookup(bus_t *bus, const bus_msg_t *msg, void *arg) {
  fx_t *f = arg;
  f->lookups_seen++;
  bus_respond(bus, msg, f->lookup, strlen(f->lookup));
}

static fx_t *fx_new(notif_store_t *store) {
  fx_t *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  f->bus = bus_local_new(&f->loop, 0);
  f->pushed = json_array();
  if (!store) {
    snprintf(f->dir, sizeof f->dir, "/tmp/storm-nsvc-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char err[256];
    assert_int_equal(sqlite_db_open(f->dir, &f->db, err, sizeof err), 0);
    notif_sqlite_opts_t o = {.loop = &f->loop, .db = f->db};
    assert_int_equal(notif_sqlite_open(&o, &f->store), 0);
  } else {
    f->store = store;
  }
  notifications_service_opts_t o = {.loop = &f->loop, .bus = f->bus, .store = f->store,
                                    .lookup_timeout_ms = 200};
  assert_int_equal(notifications_service_start(&o, &f->svc), 0);
  assert_int_equal(bus_subscribe(f->bus, "user.*", NULL, on_event, f, &f->events), 0);
  return f;
}

static void set_lookup(fx_t *f, const char *answer) {
  f->lookup = answer;
  if (!f->lookups)
    assert_int_equal(bus_subscribe(f->bus, "messages.channel.get", NULL, on_lookup, f, &f->lookups), 0);
}

static void on_stopped(void *arg) { *(int *)arg = 1; }
static void on_bus_closed(void *arg) { *(int *)arg = 1; }

static void fx_free(fx_t *f) {
  int stopped = 0, closed = 0;
  notifications_service_stop(f->svc, on_stopped, &stopped);
  assert_int_equal(stopped, 0); /* never inside the call */
  while (!stopped) uv_run(&f->loop, UV_RUN_ONCE);
  notifications_service_free(f->svc);
  bus_close(f->bus, on_bus_closed, &closed);
  while (!closed) uv_run(&f->loop, UV_RUN_ONCE);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  if (f->db) {
    f->store->ops->close(f->store);
    sqlite_db_close(f->db);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  }
  json_decref(f->pushed);
  free(f);
}

typedef struct {
  int done, status;
  json_t *reply;
} call_t;

static void on_reply(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  call_t *c = arg;
  c->done = 1;
  c->status = status;
  if (status == 0) c->reply = json_loadb(msg->data, msg->len, 0, NULL);
}

/* A request; returns the parsed reply (owned by the caller). */
static json_t *request(fx_t *f, const char *subject, const char *payload) {
  call_t c = {0};
  assert_int_equal(bus_request(f->bus, subject, payload, strlen(payload), 3000, on_reply, &c, NULL), 0);
  while (!c.done) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.status, 0);
  assert_non_null(c.reply);
  return c.reply;
}

static int error_status(json_t *r) {
  return (int)json_integer_value(json_object_get(json_object_get(r, "error"), "status"));
}

static const char *error_code(json_t *r) {
  return json_string_value(json_object_get(json_object_get(r, "error"), "code"));
}

static size_t listed(fx_t *f, int64_t uid, json_t **out) {
  char p[64];
  snprintf(p, sizeof p, "{\"userId\":%lld}", (long long)uid);
  json_t *r = request(f, "notification.get", p);
  json_t *l = json_object_get(r, "notifications");
  assert_true(json_is_array(l));
  size_t n = json_array_size(l);
  if (out) *out = json_incref(l);
  json_decref(r);
  return n;
}

/* Lets queued bus messages, lookups and store batches run. */
static void settle(fx_t *f) {
  for (int i = 0; i < 50; i++) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(2000);
  }
  if (f->store->ops->ready(f->store)) (void)listed(f, 999999, NULL); /* a round trip through the store */
}

/* ---- tests ---- */

static void t_send_get_read_push(void **state) {
  (void)state;
  fx_t *f = fx_new(NULL);
  json_t *r = request(f, "notification.send", "{\"userId\":7,\"type\":\"custom\",\"payload\":{\"x\":[1,\"a\"]}}");
  const char *id = json_string_value(json_object_get(r, "id"));
  assert_non_null(id);
  char idc[32];
  snprintf(idc, sizeof idc, "%s", id);
  json_decref(r);
  settle(f);
  assert_int_equal(json_array_size(f->pushed), 1);
  json_t *ev = json_array_get(f->pushed, 0);
  assert_string_equal(json_string_value(json_object_get(ev, "_subject")), "user.7");
  assert_string_equal(json_string_value(json_object_get(ev, "op")), "notification");
  json_t *n = json_object_get(ev, "notification");
  assert_string_equal(json_string_value(json_object_get(n, "id")), idc);
  assert_string_equal(json_string_value(json_object_get(n, "type")), "custom");
  assert_int_equal(json_integer_value(json_array_get(json_object_get(json_object_get(n, "payload"), "x"), 0)), 1);
  json_t *l;
  assert_int_equal(listed(f, 7, &l), 1);
  assert_true(json_equal(json_array_get(l, 0), n));
  json_decref(l);
  assert_int_equal(listed(f, 8, NULL), 0);
  char p[96];
  snprintf(p, sizeof p, "{\"userId\":8,\"ids\":[\"%s\"]}", idc); /* another user's id */
  r = request(f, "notification.read", p);
  assert_int_equal(json_integer_value(json_object_get(r, "read")), 0);
  json_decref(r);
  snprintf(p, sizeof p, "{\"userId\":7,\"ids\":[\"%s\"]}", idc);
  r = request(f, "notification.read", p);
  assert_int_equal(json_integer_value(json_object_get(r, "read")), 1);
  json_decref(r);
  assert_int_equal(listed(f, 7, NULL), 0);
  json_decref(request(f, "notification.send", "{\"userId\":7,\"type\":\"a\",\"payload\":{}}"));
  r = request(f, "notification.read", "{\"userId\":7}");
  assert_int_equal(json_integer_value(json_object_get(r, "read")), 1);
  json_decref(r);
  fx_free(f);
}

static void t_malformed_payloads(void **state) {
  (void)state;
  fx_t *f = fx_new(NULL);
  log_set_level(LOG_LEVEL_ERROR);
  static const struct {
    const char *subject, *payload;
  } bad[] = {
      {"notification.send", ""},
      {"notification.send", "not json"},
      {"notification.send", "[1]"},
      {"notification.send", "{\"userId\":0,\"type\":\"a\",\"payload\":{}}"},
      {"notification.send", "{\"userId\":\"7\",\"type\":\"a\",\"payload\":{}}"},
      {"notification.send", "{\"userId\":7,\"type\":\"A\",\"payload\":{}}"},
      {"notification.send", "{\"userId\":7,\"type\":\"\",\"payload\":{}}"},
      {"notification.send", "{\"userId\":7,\"type\":\"a\",\"payload\":[]}"},
      {"notification.send", "{\"userId\":7,\"type\":\"a\"}"},
      {"notification.send", "{\"userId\":7,\"userId\":8,\"type\":\"a\",\"payload\":{}}"},
      {"notification.get", "{}"},
      {"notification.get", "{\"userId\":-1}"},
      {"notification.get", "{\"userId\":1.5}"},
      {"notification.read", "{\"userId\":1,\"ids\":\"x\"}"},
      {"notification.read", "{\"userId\":1,\"ids\":[0]}"},
      {"notification.read", "{\"userId\":1,\"ids\":[\"01\"]}"},
      {"notification.read", "{\"userId\":1,\"ids\":[\"99999999999999999999\"]}"},
      {"notification.mute", "{\"userId\":1,\"channelId\":2}"},
      {"notification.mute", "{\"userId\":1,\"channelId\":0,\"muted\":true}"},
      {"notification.mute", "{\"userId\":1,\"channelId\":2,\"muted\":1}"},
      {"notification.mute.get", "{\"userId\":1}"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *r = request(f, bad[i].subject, bad[i].payload);
    assert_int_equal(error_status(r), 400);
    assert_string_equal(error_code(r), "bad_request");
    json_decref(r);
  }
  /* A payload past 4 KiB once encoded. */
  static char big[6000];
  int n = snprintf(big, sizeof big, "{\"userId\":1,\"type\":\"a\",\"payload\":{\"s\":\"");
  memset(big + n, 'x', 4100);
  strcpy(big + n + 4100, "\"}}");
  json_t *r = request(f, "notification.send", big);
  assert_int_equal(error_status(r), 400);
  json_decref(r);
  /* 101 ids. */
  char ids[1024] = "{\"userId\":1,\"ids\":[1";
  for (int i = 2; i <= 101; i++) snprintf(ids + strlen(ids), sizeof ids - strlen(ids), ",%d", i);
  strcat(ids, "]}");
  r = request(f, "notification.read", ids);
  assert_int_equal(error_status(r), 400);
  json_decref(r);
  /* Malformed message.sent events: nothing stored, the service still answers. */
  set_lookup(f, "{\"channel\":{\"kind\":\"channel\"}}");
  const char *ev[] = {"", "x", "{}", "{\"recipientId\":5}",
                      "{\"recipientId\":5,\"conversationId\":3,\"messageId\":\"1x\",\"senderUsername\":\"a\"}",
                      "{\"recipientId\":5,\"conversationId\":3,\"messageId\":1,\"senderUsername\":\"\"}",
                      "{\"recipientId\":5,\"conversationId\":3,\"messageId\":1}"};
  for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++)
    assert_int_equal(bus_publish(f->bus, "message.sent", NULL, ev[i], strlen(ev[i])), 0);
  settle(f);
  assert_int_equal(listed(f, 5, NULL), 0);
  assert_int_equal(f->lookups_seen, 0);
  log_set_level(LOG_LEVEL_WARN);
  fx_free(f);
}

static void sent(fx_t *f, int64_t recipient, int64_t conv, const char *mid) {
  char p[200];
  int n = snprintf(p, sizeof p,
                   "{\"recipientId\":%lld,\"senderUsername\":\"al\\\"ice\",\"conversationId\":%lld,"
                   "\"messageId\":\"%s\"}",
                   (long long)recipient, (long long)conv, mid);
  assert_int_equal(bus_publish(f->bus, "message.sent", NULL, p, (size_t)n), 0);
}

static const char *type_at(json_t *l, size_t i) {
  return json_string_value(json_object_get(json_array_get(l, i), "type"));
}

static void t_message_sent_types_mute_and_self(void **state) {
  (void)state;
  fx_t *f = fx_new(NULL);
  set_lookup(f, "{\"channel\":{\"id\":3,\"kind\":\"channel\",\"name\":\"c\"}}");
  sent(f, 5, 3, "100");
  sent(f, 5, 3, "101"); /* the kind is cached or awaited: one lookup */
  settle(f);
  json_t *l;
  assert_int_equal(listed(f, 5, &l), 2);
  assert_string_equal(type_at(l, 0), "mention");
  json_t *p = json_object_get(json_array_get(l, 0), "payload");
  assert_int_equal(json_integer_value(json_object_get(p, "conversationId")), 3);
  assert_string_equal(json_string_value(json_object_get(p, "messageId")), "101");
  assert_string_equal(json_string_value(json_object_get(p, "senderUsername")), "al\"ice");
  json_decref(l);
  assert_int_equal(f->lookups_seen, 1);
  assert_int_equal(json_array_size(f->pushed), 2);

  /* Muted: nothing stored, nothing pushed. */
  json_decref(request(f, "notification.mute", "{\"userId\":5,\"channelId\":3,\"muted\":true}"));
  json_t *r = request(f, "notification.mute.get", "{\"userId\":5,\"channelId\":3}");
  assert_true(json_is_true(json_object_get(r, "muted")));
  json_decref(r);
  sent(f, 5, 3, "102");
  settle(f);
  assert_int_equal(listed(f, 5, NULL), 2);
  assert_int_equal(json_array_size(f->pushed), 2);

  /* A DM: type dm. A DM with oneself (peer = the recipient): nothing. */
  set_lookup(f, "{\"channel\":{\"id\":4,\"kind\":\"dm\",\"peer_id\":6}}");
  sent(f, 5, 4, "103");
  settle(f);
  assert_int_equal(listed(f, 5, &l), 3);
  assert_string_equal(type_at(l, 0), "dm");
  json_decref(l);
  set_lookup(f, "{\"channel\":{\"id\":9,\"kind\":\"dm\",\"peer_id\":5}}");
  sent(f, 5, 9, "104");
  settle(f);
  assert_int_equal(listed(f, 5, NULL), 3);
  assert_int_equal(json_array_size(f->pushed), 3);

  /* senderId = recipientId: nothing, in any conversation (the channel 3
   * was unmuted first so only the sender rule can drop it); another
   * senderId notifies; a malformed senderId is refused. */
  json_decref(request(f, "notification.mute", "{\"userId\":5,\"channelId\":3,\"muted\":false}"));
  set_lookup(f, "{\"channel\":{\"id\":3,\"kind\":\"channel\",\"name\":\"c\"}}");
  const char *own = "{\"recipientId\":5,\"senderId\":5,\"senderUsername\":\"x\",\"conversationId\":3,\"messageId\":\"110\"}";
  const char *bad = "{\"recipientId\":5,\"senderId\":\"z\",\"senderUsername\":\"x\",\"conversationId\":3,\"messageId\":\"111\"}";
  const char *other = "{\"recipientId\":5,\"senderId\":7,\"senderUsername\":\"x\",\"conversationId\":3,\"messageId\":\"112\"}";
  assert_int_equal(bus_publish(f->bus, "message.sent", NULL, own, strlen(own)), 0);
  assert_int_equal(bus_publish(f->bus, "message.sent", NULL, bad, strlen(bad)), 0);
  settle(f);
  assert_int_equal(listed(f, 5, NULL), 3);
  assert_int_equal(bus_publish(f->bus, "message.sent", NULL, other, strlen(other)), 0);
  settle(f);
  assert_int_equal(listed(f, 5, NULL), 4);
  assert_int_equal(json_array_size(f->pushed), 4);

  /* The messages service answers an error: still notified, type "message". */
  set_lookup(f, "{\"error\":{\"code\":\"not_found\",\"message\":\"x\",\"status\":404}}");
  sent(f, 5, 10, "105");
  settle(f);
  assert_int_equal(listed(f, 5, &l), 5);
  assert_string_equal(type_at(l, 0), "message");
  json_decref(l);
  fx_free(f);
}

static void t_message_sent_without_messages_service(void **state) {
  (void)state;
  fx_t *f = fx_new(NULL);
  sent(f, 5, 3, "100"); /* no responder: type "message" */
  for (int i = 0; i < 20 && listed(f, 5, NULL) == 0; i++) settle(f);
  json_t *l;
  assert_int_equal(listed(f, 5, &l), 1);
  assert_string_equal(type_at(l, 0), "message");
  json_decref(l);
  fx_free(f);
}

/* ---- a store that is down ---- */

static int down_add(notif_store_t *s, const notif_t *n, notif_status_fn fn, void *arg) { return -ENOTCONN; }
static int down_list(notif_store_t *s, int64_t u, notif_list_fn fn, void *arg) { return -ENOTCONN; }
static int down_read(notif_store_t *s, int64_t u, const int64_t *ids, size_t n, notif_count_fn fn,
                     void *arg) { return -ENOBUFS; }
static int down_mute_set(notif_store_t *s, int64_t u, int64_t c, bool m, notif_status_fn fn, void *arg) {
  return -ENOTCONN;
}
static int down_mute_get(notif_store_t *s, int64_t u, int64_t c, notif_count_fn fn, void *arg) {
  return -ENOTCONN;
}
static bool down_ready(notif_store_t *s) { return false; }
static void down_close(notif_store_t *s) {}
static const notif_store_ops_t down_ops = {down_add, down_list, down_read, down_mute_set,
                                           down_mute_get, down_ready, down_close};

static void t_store_down_fails_fast(void **state) {
  (void)state;
  notif_store_t down = {&down_ops};
  fx_t *f = fx_new(&down);
  log_set_level(LOG_LEVEL_ERROR);
  uint64_t t0 = uv_hrtime();
  json_t *r = request(f, "notification.send", "{\"userId\":1,\"type\":\"a\",\"payload\":{}}");
  assert_true(uv_hrtime() - t0 < 100 * 1000000ULL);
  assert_int_equal(error_status(r), 503);
  assert_string_equal(error_code(r), "unavailable");
  json_decref(r);
  r = request(f, "notification.get", "{\"userId\":1}");
  assert_string_equal(error_code(r), "unavailable");
  json_decref(r);
  r = request(f, "notification.read", "{\"userId\":1}");
  assert_string_equal(error_code(r), "overloaded");
  json_decref(r);
  r = request(f, "notification.mute", "{\"userId\":1,\"channelId\":2,\"muted\":false}");
  assert_int_equal(error_status(r), 503);
  json_decref(r);
  set_lookup(f, "{\"channel\":{\"kind\":\"channel\"}}");
  sent(f, 1, 2, "5"); /* dropped, counted, logged; no crash */
  settle(f);
  assert_int_equal(json_array_size(f->pushed), 0);
  log_set_level(LOG_LEVEL_WARN);
  fx_free(f);
}

static void t_start_arguments(void **state) {
  (void)state;
  notifications_service_t *s = NULL;
  notifications_service_opts_t o = {0};
  assert_int_equal(notifications_service_start(&o, &s), -EINVAL);
  assert_int_equal(notifications_service_start(NULL, &s), -EINVAL);
  assert_null(s);
}

int main(void) {
  log_set_level(LOG_LEVEL_WARN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(t_send_get_read_push),
      cmocka_unit_test(t_malformed_payloads),
      cmocka_unit_test(t_message_sent_types_mute_and_self),
      cmocka_unit_test(t_message_sent_without_messages_service),
      cmocka_unit_test(t_store_down_fails_fast),
      cmocka_unit_test(t_start_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
