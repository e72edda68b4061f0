/* Unit tests for the media service on the in-process bus, with the real
 * SQLite metadata store and local storage: the bus subjects' round trips
 * (media.upload.requested, media.get, media.delete.requested,
 * media.record), every malformed-payload reply, authorization (another
 * user gets 404), per-kind limits, and the store's own error paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "bus/bus_local.h"
#include "services/media/media_key.h"
#include "services/media/media_service.h"
#include "services/media/media_storage_local.h"
#include "store/sqlite/media_sqlite.h"
#include "media_store_suite.h"

typedef struct {
  uv_loop_t loop;
  char dir[128];
  bus_t *bus;
  sqlite_db_t *db;
  media_store_t *store;
  media_storage_t *storage;
  media_service_t *svc;
  metrics_registry_t *metrics[2]; /* one per service started */
  int nmetrics;
  /* the fake messages service: messages.attachment.check */
  bus_sub_t *check_sub;
  int check_mode; /* CHECK_* */
  int check_calls;
} fx_t;

enum { CHECK_NO, CHECK_YES, CHECK_ERROR, CHECK_SILENT, CHECK_GARBAGE };

static void on_check(bus_t *bus, const bus_msg_t *m, void *arg) {
  fx_t *f = arg;
  f->check_calls++;
  json_t *req = json_loadb(m->data, m->len, 0, NULL);
  assert_true(json_integer_value(json_object_get(req, "userId")) > 0);
  assert_non_null(json_string_value(json_object_get(req, "key")));
  json_decref(req);
  static const char *const answers[] = {
      [CHECK_NO] = "{\"visible\":false}",
      [CHECK_YES] = "{\"visible\":true}",
      [CHECK_ERROR] = "{\"error\":{\"code\":\"unavailable\",\"message\":\"x\",\"status\":503}}",
      [CHECK_GARBAGE] = "{\"visible\":1}",
  };
  if (f->check_mode == CHECK_SILENT) return;
  bus_respond(bus, m, answers[f->check_mode], strlen(answers[f->check_mode]));
}

static void start_service(fx_t *f, uint64_t max_image) {
  media_service_opts_t o;
  media_service_opts_default(&o);
  o.loop = &f->loop;
  o.bus = f->bus;
  o.store = f->store;
  o.storage = f->storage;
  o.metrics = f->metrics[f->nmetrics++] = metrics_registry_new();
  if (max_image) o.max_image = max_image;
  o.check_timeout_ms = 300;
  assert_int_equal(media_service_start(&o, &f->svc), 0);
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  snprintf(f->dir, sizeof f->dir, "/tmp/storm-media-svc-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  f->bus = bus_local_new(&f->loop, 4 << 20);
  char err[256], mdir[200];
  assert_int_equal(sqlite_db_open(f->dir, &f->db, err, sizeof err), 0);
  assert_int_equal(media_sqlite_open(f->db, &f->store), 0);
  snprintf(mdir, sizeof mdir, "%s/media", f->dir);
  assert_int_equal(media_storage_local_open(&f->loop, mdir, &f->storage), 0);
  start_service(f, 0);
  assert_int_equal(bus_subscribe(f->bus, "messages.attachment.check", "messages", on_check, f,
                                 &f->check_sub), 0);
  *state = f;
  return 0;
}

static int done_calls;
static void on_stopped(void *arg) {
  (void)arg;
  done_calls++;
}

static int teardown(void **state) {
  fx_t *f = *state;
  done_calls = 0;
  media_service_stop(f->svc, on_stopped, NULL);
  media_service_stop(f->svc, on_stopped, NULL); /* second call ignored */
  assert_int_equal(done_calls, 0);              /* never inside stop */
  while (!done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  media_service_free(f->svc);
  bus_close(f->bus, NULL, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  f->store->ops->close(f->store);
  f->storage->ops->close(f->storage);
  sqlite_db_close(f->db);
  for (int i = 0; i < f->nmetrics; i++) metrics_registry_free(f->metrics[i]);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

typedef struct {
  bool done;
  int status;
  json_t *reply;
} call_t;

static void on_reply(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  call_t *c = arg;
  c->done = true;
  c->status = status;
  if (status == 0) c->reply = json_loadb(msg->data, msg->len, 0, NULL);
}

/* Sends payload on subject, waits for the reply object. */
static json_t *call_raw(fx_t *f, const char *subject, const char *payload, size_t len) {
  call_t c = {0};
  assert_int_equal(bus_request(f->bus, subject, payload, len, 5000, on_reply, &c, NULL), 0);
  while (!c.done) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.status, 0);
  assert_non_null(c.reply);
  return c.reply;
}

static json_t *call(fx_t *f, const char *subject, json_t *payload) {
  char *s = json_dumps(payload, JSON_COMPACT);
  json_decref(payload);
  json_t *r = call_raw(f, subject, s, strlen(s));
  free(s);
  return r;
}

/* Asserts an error reply with this status (and code), then frees it. */
static void expect_error(json_t *r, int status, const char *code, const char *in_message) {
  json_t *e = json_object_get(r, "error");
  if (!e) fail_msg("expected error %d, got %s", status, json_dumps(r, 0));
  assert_int_equal(json_integer_value(json_object_get(e, "status")), status);
  assert_string_equal(json_string_value(json_object_get(e, "code")), code);
  if (in_message && !strstr(json_string_value(json_object_get(e, "message")), in_message))
    fail_msg("message \"%s\" lacks \"%s\"", json_string_value(json_object_get(e, "message")), in_message);
  json_decref(r);
}

static const unsigned char GIF[] = {0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0,
                                    0xff, 0xff, 0xff, 0x21, 0xf9, 4, 1, 0, 0, 0, 0, 0x2c, 0, 0, 0, 0,
                                    1, 0, 1, 0, 0, 2, 1, 0x44, 0, 0x3b};

static char *b64(const void *data, size_t len) {
  size_t n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
  char *s = malloc(n);
  sodium_bin2base64(s, n, data, len, sodium_base64_VARIANT_ORIGINAL);
  return s;
}

static bool object_exists(fx_t *f, const char *key) {
  char id[MEDIA_OBJECT_ID_LEN + 1];
  assert_true(media_key_parse(key, strlen(key), id));
  return f->storage->ops->size(f->storage, id) >= 0;
}

static void test_upload_get_delete_round_trip(void **state) {
  fx_t *f = *state;
  char *data = b64(GIF, sizeof GIF);
  json_t *r = call(f, "media.upload.requested",
                   json_pack("{s:i, s:s, s:s, s:s}", "userId", 7, "filename", "../../x\\ny.gif", "data",
                             data, "contentType", "image/png"));
  free(data);
  const char *key = json_string_value(json_object_get(r, "key"));
  assert_non_null(key);
  char k[MEDIA_KEY_MAX + 1];
  snprintf(k, sizeof k, "%s", key);
  assert_string_equal(k + MEDIA_OBJECT_ID_LEN, "-ny.gif"); /* after the last / or \\ */
  assert_string_equal(json_string_value(json_object_get(r, "mime")), "image/gif"); /* not contentType */
  assert_int_equal(json_integer_value(json_object_get(r, "size")), sizeof GIF);
  char url[200];
  snprintf(url, sizeof url, "/media/%s", k);
  assert_string_equal(json_string_value(json_object_get(r, "url")), url);
  unsigned char h[32];
  char hex[65];
  crypto_hash_sha256(h, GIF, sizeof GIF);
  sodium_bin2hex(hex, sizeof hex, h, 32);
  assert_string_equal(json_string_value(json_object_get(r, "sha256")), hex);
  json_decref(r);
  assert_true(object_exists(f, k));

  r = call(f, "media.get", json_pack("{s:i, s:s}", "userId", 7, "key", k));
  assert_string_equal(json_string_value(json_object_get(r, "mime")), "image/gif");
  assert_string_equal(json_string_value(json_object_get(r, "sha256")), hex);
  assert_true(json_integer_value(json_object_get(r, "created_at")) > 0);
  json_decref(r);
  /* Another user: not found, whether reading or deleting. */
  expect_error(call(f, "media.get", json_pack("{s:i, s:s}", "userId", 8, "key", k)), 404,
               "media_not_found", NULL);
  expect_error(call(f, "media.delete.requested", json_pack("{s:i, s:s}", "userId", 8, "key", k)),
               404, "media_not_found", NULL);
  assert_true(object_exists(f, k));
  r = call(f, "media.delete.requested", json_pack("{s:i, s:s}", "userId", 7, "key", k));
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
  assert_false(object_exists(f, k));
  expect_error(call(f, "media.get", json_pack("{s:i, s:s}", "userId", 7, "key", k)), 404,
               "media_not_found", NULL);
  expect_error(call(f, "media.delete.requested", json_pack("{s:i, s:s}", "userId", 7, "key", k)),
               404, "media_not_found", NULL);
}

static void test_upload_refusals(void **state) {
  fx_t *f = *state;
  const char html[] = "<!doctype html><p>hi";
  char *d = b64(html, sizeof html - 1);
  expect_error(call(f, "media.upload.requested",
                    json_pack("{s:i, s:s, s:s}", "userId", 1, "filename", "a.png", "data", d)),
               415, "unsupported_media_type", "detected text/html");
  free(d);
  expect_error(call(f, "media.upload.requested",
                    json_pack("{s:i, s:s, s:s}", "userId", 1, "filename", "a.png", "data", "")),
               415, "unsupported_media_type", "unknown");
  expect_error(call(f, "media.upload.requested",
                    json_pack("{s:i, s:s, s:s}", "userId", 1, "filename", "a.png", "data", "!!notb64")),
               400, "bad_request", "base64");
  /* Over the bus upload cap (decoded). */
  size_t n = MEDIA_BUS_UPLOAD_MAX + 1;
  unsigned char *big = calloc(1, n);
  memcpy(big, GIF, sizeof GIF);
  d = b64(big, n);
  free(big);
  expect_error(call(f, "media.upload.requested", json_pack("{s:i, s:s}", "userId", 1, "data", d)),
               413, "payload_too_large", "use HTTP");
  free(d);
  /* Malformed payloads. */
  expect_error(call_raw(f, "media.upload.requested", "not json", 8), 400, "bad_request", NULL);
  expect_error(call_raw(f, "media.upload.requested", "[1]", 3), 400, "bad_request", NULL);
  expect_error(call(f, "media.upload.requested", json_pack("{s:s}", "data", "R0lG")), 400,
               "bad_request", "userId");
  expect_error(call(f, "media.upload.requested", json_pack("{s:i, s:s}", "userId", 0, "data", "R0lG")),
               400, "bad_request", "userId");
  expect_error(call(f, "media.upload.requested", json_pack("{s:s, s:s}", "userId", "1", "data", "R0lG")),
               400, "bad_request", "userId");
  expect_error(call(f, "media.upload.requested", json_pack("{s:i, s:i}", "userId", 1, "data", 5)),
               400, "bad_request", "data");
  expect_error(call(f, "media.upload.requested", json_pack("{s:i}", "userId", 1)), 400,
               "bad_request", "data");
  expect_error(call(f, "media.upload.requested",
                    json_pack("{s:i, s:s, s:i}", "userId", 1, "data", "R0lG", "filename", 3)),
               400, "bad_request", "filename");
  expect_error(call(f, "media.upload.requested",
                    json_pack("{s:i, s:s, s:i}", "userId", 1, "data", "R0lG", "contentType", 3)),
               400, "bad_request", "contentType");
  /* Larger than the request bound itself. */
  size_t big_len = MEDIA_BUS_UPLOAD_MAX / 3 * 4 + 9000;
  char *huge = malloc(big_len + 40);
  int off = sprintf(huge, "{\"userId\":1,\"data\":\"");
  memset(huge + off, 'A', big_len);
  strcpy(huge + off + big_len, "\"}");
  expect_error(call_raw(f, "media.upload.requested", huge, strlen(huge)), 413, "payload_too_large", NULL);
  free(huge);
  /* Nothing was stored by any of these. */
  char p[400];
  snprintf(p, sizeof p, "rmdir '%s'/media/objects/* 2>/dev/null; ls '%s'/media/objects | wc -l", f->dir, f->dir);
  FILE *pp = popen(p, "r");
  int count = -1;
  assert_int_equal(fscanf(pp, "%d", &count), 1);
  pclose(pp);
  assert_int_equal(count, 0);
}

static void test_kind_limit(void **state) {
  fx_t *f = *state;
  media_service_stop(f->svc, on_stopped, NULL);
  done_calls = 0;
  while (!done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  media_service_free(f->svc);
  start_service(f, 20); /* images up to 20 bytes */
  char *d = b64(GIF, sizeof GIF);
  expect_error(call(f, "media.upload.requested", json_pack("{s:i, s:s}", "userId", 1, "data", d)),
               413, "payload_too_large", "image files are limited to 20 bytes");
  free(d);
}

static void test_record_and_get_validation(void **state) {
  fx_t *f = *state;
  char key[MEDIA_KEY_MAX + 1];
  media_key_new("v.mp4", 5, key);
  const char *sha = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  json_t *r = call(f, "media.record",
                   json_pack("{s:i, s:s, s:s, s:i, s:s}", "userId", 3, "key", key, "mime",
                             "video/mp4", "size", 1234, "sha256", sha));
  assert_string_equal(json_string_value(json_object_get(r, "key")), key);
  assert_int_equal(json_integer_value(json_object_get(r, "size")), 1234);
  json_decref(r);
  expect_error(call(f, "media.record",
                    json_pack("{s:i, s:s, s:s, s:i, s:s}", "userId", 3, "key", key, "mime",
                              "video/mp4", "size", 1, "sha256", sha)),
               409, "media_exists", NULL);
  struct {
    json_t *payload;
    const char *in_message;
  } bad[] = {
      {json_pack("{s:i, s:s, s:s, s:i, s:s}", "userId", 3, "key", "nokey", "mime", "video/mp4", "size", 1, "sha256", sha), "key"},
      {json_pack("{s:i, s:s, s:s, s:i, s:s}", "userId", 3, "key", key, "mime", "text/html", "size", 1, "sha256", sha), "mime"},
      {json_pack("{s:i, s:s, s:i, s:s}", "userId", 3, "key", key, "size", 1, "sha256", sha), "mime"},
      {json_pack("{s:i, s:s, s:s, s:i, s:s}", "userId", 3, "key", key, "mime", "video/mp4", "size", -1, "sha256", sha), "size"},
      {json_pack("{s:i, s:s, s:s, s:s, s:s}", "userId", 3, "key", key, "mime", "video/mp4", "size", "1", "sha256", sha), "size"},
      {json_pack("{s:i, s:s, s:s, s:i, s:s}", "userId", 3, "key", key, "mime", "video/mp4", "size", 1, "sha256", "abc"), "sha256"},
      {json_pack("{s:i, s:s, s:s, s:i, s:s}", "userId", 3, "key", key, "mime", "video/mp4", "size", 1, "sha256",
                 "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"), "sha256"},
      {json_pack("{s:s, s:s, s:i, s:s}", "key", key, "mime", "video/mp4", "size", 1, "sha256", sha), "userId"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    expect_error(call(f, "media.record", bad[i].payload), 400, "bad_request", bad[i].in_message);
  /* get/delete: a malformed key is simply not found. */
  expect_error(call(f, "media.get", json_pack("{s:i, s:s}", "userId", 3, "key", "../../etc/passwd")),
               404, "media_not_found", NULL);
  expect_error(call(f, "media.get", json_pack("{s:i}", "userId", 3)), 404, "media_not_found", NULL);
  expect_error(call(f, "media.delete.requested", json_pack("{s:i, s:i}", "userId", 3, "key", 5)),
               404, "media_not_found", NULL);
  expect_error(call(f, "media.get", json_pack("{s:s}", "key", key)), 400, "bad_request", "userId");
  expect_error(call_raw(f, "media.get", "{\"userId\":1,\"userId\":2}", 23), 400, "bad_request", NULL);
  /* Recorded without an object: delete still succeeds (the missing file is fine). */
  r = call(f, "media.delete.requested", json_pack("{s:i, s:s}", "userId", 3, "key", key));
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
}

/* ---- the SQLite media store: the shared suite ---- */

static struct {
  char dir[128];
  sqlite_db_t *db;
} sq;

static media_store_t *sqlite_make(void) {
  snprintf(sq.dir, sizeof sq.dir, "/tmp/storm-media-store-XXXXXX");
  if (!mkdtemp(sq.dir)) return NULL;
  char err[256];
  if (sqlite_db_open(sq.dir, &sq.db, err, sizeof err) != 0) return NULL;
  media_store_t *s = NULL;
  return media_sqlite_open(sq.db, &s) == 0 ? s : NULL;
}

static void sqlite_destroy(media_store_t *s) {
  s->ops->close(s);
  sqlite_db_close(sq.db);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", sq.dir);
  assert_int_equal(system(cmd), 0);
}

/* What is SQLite's own: the open arguments, a statement that fails. */
static void test_store_sqlite_errors(void **state) {
  media_store_t *bad;
  assert_int_equal(media_sqlite_open(NULL, &bad), -EINVAL);
  media_store_t *s = sqlite_make();
  assert_non_null(s);
  assert_int_equal(media_sqlite_open(sq.db, NULL), -EINVAL);
  /* the table gone behind the store's back: -EIO, unhealthy */
  char *msg = NULL;
  sqlite_db_lock(sq.db);
  int rc = sqlite3_exec(sqlite_db_handle(sq.db), "DROP TABLE media", NULL, NULL, &msg);
  sqlite_db_unlock(sq.db);
  sqlite3_free(msg);
  if (rc == SQLITE_OK) { /* a prepared statement may hold the schema: then nothing to test */
    media_rec_t r;
    assert_int_equal(s->ops->get(s, "k", &r), -EIO);
    assert_false(s->ops->healthy(s));
  }
  sqlite_destroy(s);
}

static void test_policy_and_start_errors(void **state) {
  fx_t *f = *state;
  media_service_opts_t o;
  media_service_opts_default(&o);
  assert_int_equal(media_kind_limit(&o, MEDIA_KIND_IMAGE), 10 << 20);
  assert_int_equal(media_kind_limit(&o, MEDIA_KIND_VIDEO), 100 << 20);
  assert_int_equal(media_kind_limit(&o, MEDIA_KIND_NONE), 0);
  media_rec_t r = {.owner_id = 5};
  assert_int_equal(media_read_decision(&r, 5, false), MEDIA_READ_OWNER);
  assert_int_equal(media_read_decision(&r, 5, true), MEDIA_READ_OWNER);
  assert_int_equal(media_read_decision(&r, 6, false), MEDIA_READ_ASK);
  assert_int_equal(media_read_decision(&r, 6, true), MEDIA_READ_DENIED);
  media_service_t *s;
  assert_int_equal(media_service_start(&o, &s), -EINVAL); /* no loop, bus, ... */
  o.loop = &f->loop;
  o.bus = f->bus;
  o.store = f->store;
  o.storage = f->storage;
  o.check_timeout_ms = 0;
  assert_int_equal(media_service_start(&o, &s), -EINVAL);
  o.check_timeout_ms = 100;
  o.max_video = 0;
  assert_int_equal(media_service_start(&o, &s), -EINVAL);
  assert_int_equal(media_service_start(NULL, &s), -EINVAL);
}

/* Issue 7: a reader who is not the uploader may read what the messages
 * service says is attached where they are a member; ownerOnly (the
 * messages service's own question on send) never asks. */
static void test_attachment_read(void **state) {
  fx_t *f = *state;
  char *data = b64(GIF, sizeof GIF);
  json_t *r = call(f, "media.upload.requested",
                   json_pack("{s:i, s:s, s:s}", "userId", 7, "filename", "a.gif", "data", data));
  free(data);
  char k[MEDIA_KEY_MAX + 1];
  snprintf(k, sizeof k, "%s", json_string_value(json_object_get(r, "key")));
  json_decref(r);
#define GET(user, extra) call(f, "media.get", json_pack("{s:i, s:s" extra "}", "userId", user, "key", k))
  /* the owner: no question */
  f->check_calls = 0;
  r = GET(7, "");
  assert_string_equal(json_string_value(json_object_get(r, "key")), k);
  json_decref(r);
  r = call(f, "media.get", json_pack("{s:i, s:s, s:b}", "userId", 7, "key", k, "ownerOnly", 1));
  assert_string_equal(json_string_value(json_object_get(r, "key")), k);
  json_decref(r);
  assert_int_equal(f->check_calls, 0);
  /* another user: as the messages service says */
  f->check_mode = CHECK_YES;
  r = GET(8, "");
  assert_string_equal(json_string_value(json_object_get(r, "sha256")) ? "ok" : "", "ok");
  assert_int_equal(json_integer_value(json_object_get(r, "size")), sizeof GIF);
  json_decref(r);
  assert_int_equal(f->check_calls, 1);
  f->check_mode = CHECK_NO;
  expect_error(GET(8, ""), 404, "media_not_found", NULL);
  /* ownerOnly: never asked, 404 even when visible */
  f->check_mode = CHECK_YES;
  f->check_calls = 0;
  expect_error(call(f, "media.get", json_pack("{s:i, s:s, s:b}", "userId", 8, "key", k, "ownerOnly", 1)),
               404, "media_not_found", NULL);
  assert_int_equal(f->check_calls, 0);
  expect_error(call(f, "media.get", json_pack("{s:i, s:s, s:i}", "userId", 8, "key", k, "ownerOnly", 1)),
               400, "bad_request", "ownerOnly");
  /* an unknown key is not asked about */
  char unknown[MEDIA_KEY_MAX + 1];
  media_key_new("x.gif", 5, unknown);
  expect_error(call(f, "media.get", json_pack("{s:i, s:s}", "userId", 8, "key", unknown)), 404,
               "media_not_found", NULL);
  assert_int_equal(f->check_calls, 0);
  /* no answer to be had: 503, never a guess */
  f->check_mode = CHECK_ERROR;
  expect_error(GET(8, ""), 503, "unavailable", "messages service");
  f->check_mode = CHECK_GARBAGE;
  expect_error(GET(8, ""), 503, "unavailable", "messages service");
  f->check_mode = CHECK_SILENT; /* the timeout (300 ms) */
  expect_error(GET(8, ""), 503, "unavailable", "messages service");
  bus_unsubscribe(f->check_sub);
  f->check_sub = NULL;
  expect_error(GET(8, ""), 503, "unavailable", "messages service");
  r = GET(7, ""); /* the owner still reads */
  assert_null(json_object_get(r, "error"));
  json_decref(r);
#undef GET
}

/* Stop while a read check is in flight: answered 503, the request
 * cancelled (its late answer goes nowhere). */
static void test_stop_during_check(void **state) {
  fx_t *f = *state;
  char *data = b64(GIF, sizeof GIF);
  json_t *r = call(f, "media.upload.requested",
                   json_pack("{s:i, s:s, s:s}", "userId", 7, "filename", "a.gif", "data", data));
  free(data);
  json_t *p = json_pack("{s:i, s:s}", "userId", 9, "key", json_string_value(json_object_get(r, "key")));
  char *ps = json_dumps(p, JSON_COMPACT);
  json_decref(p);
  json_decref(r);
  f->check_mode = CHECK_SILENT;
  f->check_calls = 0;
  call_t c = {0};
  assert_int_equal(bus_request(f->bus, "media.get", ps, strlen(ps), 5000, on_reply, &c, NULL), 0);
  free(ps);
  while (f->check_calls == 0) uv_run(&f->loop, UV_RUN_ONCE);
  done_calls = 0;
  media_service_stop(f->svc, on_stopped, NULL);
  while (!c.done || !done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.status, 0);
  expect_error(c.reply, 503, "unavailable", "stopping");
  media_service_free(f->svc);
  start_service(f, 0); /* for the teardown */
}

int main(void) {
  media_store_suite_use(sqlite_make, sqlite_destroy);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_upload_get_delete_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_upload_refusals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kind_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_record_and_get_validation, setup, teardown),
      MEDIA_STORE_SUITE_TESTS,
      cmocka_unit_test(test_store_sqlite_errors),
      cmocka_unit_test_setup_teardown(test_policy_and_start_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_attachment_read, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_during_check, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
