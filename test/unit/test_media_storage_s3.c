/* Unit tests for the S3 media backend against a real S3-compatible server
 * (scripts/s3rver.js, started by scripts/infra.sh: STORM_TEST_S3_ENDPOINT,
 * STORM_TEST_S3_ACCESS_KEY, STORM_TEST_S3_SECRET_KEY; unset → this test
 * FAILS, it never skips). Part 1 is the backend-independent suite
 * (media_storage_suite.h) with 64 KiB parts and a 100,000-byte read window,
 * so its objects go up in several parts and come back in several windows.
 * Part 2 is S3's own: multipart counts, a refused key pair (wrong secret,
 * unknown access key) reported by the probe with the S3 error code and by
 * every operation, an endpoint that does not answer or does not speak TLS,
 * bucket creation, the probe thread, option checking, and the XML and
 * query helpers. Each run uses buckets of its own. */
#include "media_storage_suite.h"

#include <sodium.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "services/media/media_storage_s3.h"
#include "services/media/s3_client.h"
#include "services/media/media_tmpfile.h"
#include "services/media/s3_xml.h"

#define TEST_PART MEDIA_S3_MIN_PART
#define TEST_WINDOW 100000

static const char *g_endpoint, *g_access, *g_secret;
static char g_bucket[64];

static media_s3_opts_t opts_for(const char *dir, const char *bucket, const char *secret) {
  media_s3_opts_t o = {
      .s3 = {.endpoint = g_endpoint, .access_key = g_access, .secret_key = secret, .bucket = bucket},
      .dir = dir,
      .part_size = TEST_PART,
      .read_window = TEST_WINDOW,
  };
  return o;
}

static int s3_open(uv_loop_t *loop, const char *dir, media_storage_t **out) {
  media_s3_opts_t o = opts_for(dir, g_bucket, g_secret);
  char err[200];
  int rc = media_storage_s3_open(loop, &o, out, err, sizeof err);
  if (rc < 0) fail_msg("media_storage_s3_open: %s", err);
  char msg[512];
  rc = media_storage_s3_probe(*out, msg, sizeof msg);
  if (rc < 0) fail_msg("probe: %s", msg);
  return 0;
}

/* Asked of the server directly: HEAD media/<id>. */
static bool s3_exists(fx_t *f, const char *id) {
  (void)f;
  s3_client_opts_t o = {.endpoint = g_endpoint, .access_key = g_access, .secret_key = g_secret,
                        .bucket = g_bucket};
  s3_client_t *c;
  assert_int_equal(s3_client_new(&o, &c, NULL, 0), 0);
  char key[64];
  snprintf(key, sizeof key, "media/%s", id);
  s3_result_t *res = malloc(sizeof *res);
  int rc = s3_client_request(c, "HEAD", key, NULL, NULL, NULL, NULL, 0, NULL, res);
  free(res);
  s3_client_free(c);
  if (rc != 0 && rc != -ENOENT) fail_msg("HEAD %s: %d", key, rc);
  return rc == 0;
}

static void test_multipart_counts(void **state) {
  fx_t *f = *state;
  media_s3_counts_t a, b;
  media_storage_s3_counts(f->st, &a);
  char id[MEDIA_OBJECT_ID_LEN + 1];
  /* 3.5 parts → 4 UploadPart requests and one multipart upload. */
  new_id(id);
  const size_t total = TEST_PART * 3 + TEST_PART / 2;
  store_object(f, id, total);
  media_storage_s3_counts(f->st, &b);
  assert_int_equal(b.multipart - a.multipart, 1);
  assert_int_equal(b.parts - a.parts, 4);
  assert_int_equal(b.single_puts, a.single_puts);
  assert_int_equal(b.aborts, 0);
  assert_int_equal(f->st->ops->size(f->st, id), (int64_t)total);
  read_range(f, id, 0, total, 8192);
  /* Exactly one part goes up whole; one byte more is two parts. */
  char id2[MEDIA_OBJECT_ID_LEN + 1], id3[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id2);
  new_id(id3);
  store_object(f, id2, TEST_PART);
  store_object(f, id3, TEST_PART + 1);
  media_storage_s3_counts(f->st, &a);
  assert_int_equal(a.single_puts - b.single_puts, 1);
  assert_int_equal(a.multipart - b.multipart, 1);
  assert_int_equal(a.parts - b.parts, 2);
  read_range(f, id3, TEST_PART - 10, 11, 8192);
  /* Reads come in windows: 228,376 bytes at 100,000 a window = 3 GETs. */
  media_storage_s3_counts(f->st, &a);
  read_range(f, id, 1000, total - 1000, 8192);
  media_storage_s3_counts(f->st, &b);
  assert_int_equal(b.window_fills - a.window_fills, 3);
  assert_string_equal(f->st->ops->kind, "s3");
  assert_true(media_storage_s3_ready(f->st));
}

/* One storage opened with a wrong secret (or access key) in a fresh dir. */
static media_storage_t *open_with(fx_t *f, const char *access, const char *secret,
                                  const char *endpoint, bool ssl) {
  media_s3_opts_t o = opts_for(f->dir, g_bucket, secret);
  o.s3.access_key = access;
  o.s3.endpoint = endpoint;
  o.s3.use_ssl = ssl;
  o.s3.connect_timeout_ms = 2000;
  media_storage_t *st;
  char err[200];
  assert_int_equal(media_storage_s3_open(&f->loop, &o, &st, err, sizeof err), 0);
  return st;
}

static void test_wrong_secret(void **state) {
  fx_t *f = *state;
  char id[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id);
  store_object(f, id, 1000); /* exists, so refusals are not -ENOENT */
  media_storage_t *bad = open_with(f, g_access, "not-the-secret", g_endpoint, false);
  char msg[512];
  assert_int_equal(media_storage_s3_probe(bad, msg, sizeof msg), -EACCES);
  if (!strstr(msg, "S3 refused our credentials (403 SignatureDoesNotMatch") ||
      !strstr(msg, "MINIO_SECRET_KEY"))
    fail_msg("unclear message: %s", msg);
  assert_false(media_storage_s3_ready(bad));
  /* Every operation is refused the same way, and leaves nothing behind. */
  assert_int_equal(bad->ops->size(bad, id), -EACCES);
  assert_int_equal(bad->ops->remove(bad, id), -EACCES);
  char id2[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id2);
  assert_int_equal(bad->ops->put(bad, id2, "abc", 3), -EACCES);
  media_storage_t *good = f->st;
  f->st = bad; /* the helpers below use f->st */
  expect_open_error(f, id, 0, 10, -EACCES);
  cbs_t c = {0};
  media_writer_t *w;
  assert_int_equal(bad->ops->writer_open(bad, id2, on_ready, &c, &w), 0);
  write_all(f, w, &c, 3 * TEST_PART, 50000); /* multipart: fails at CreateMultipartUpload */
  assert_int_equal(bad->ops->commit(w, on_done, &c), 0);
  while (!c.done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.done_status, -EACCES);
  assert_int_equal(tmp_count(f), 0);
  c = (cbs_t){0};
  assert_int_equal(bad->ops->writer_open(bad, id2, on_ready, &c, &w), 0);
  write_all(f, w, &c, 100, 100); /* single PUT */
  assert_int_equal(bad->ops->commit(w, on_done, &c), 0);
  while (!c.done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.done_status, -EACCES);
  assert_int_equal(tmp_count(f), 0);
  f->st = good;
  assert_false(s3_exists(f, id2));
  assert_int_equal(good->ops->size(good, id), 1000);
  bad->ops->close(bad);

  /* An access key the server does not know. */
  bad = open_with(f, "NO-SUCH-KEY", g_secret, g_endpoint, false);
  assert_int_equal(media_storage_s3_probe(bad, msg, sizeof msg), -EACCES);
  if (!strstr(msg, "403 InvalidAccessKeyId")) fail_msg("unclear message: %s", msg);
  bad->ops->close(bad);
}

static void test_unreachable_and_tls(void **state) {
  fx_t *f = *state;
  /* A port nobody listens on: bind, read the port, close. */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
  close(s);
  char ep[64], msg[512];
  snprintf(ep, sizeof ep, "http://127.0.0.1:%d", ntohs(a.sin_port));
  media_storage_t *bad = open_with(f, g_access, g_secret, ep, false);
  assert_int_equal(media_storage_s3_probe(bad, msg, sizeof msg), -ECONNREFUSED);
  if (!strstr(msg, "cannot be reached")) fail_msg("unclear message: %s", msg);
  assert_false(media_storage_s3_ready(bad));
  bad->ops->close(bad);
  /* TLS to a plain-HTTP server: the handshake fails, nothing is sent in clear. */
  snprintf(ep, sizeof ep, "https://%s", strstr(g_endpoint, "://") + 3);
  bad = open_with(f, g_access, g_secret, ep, true);
  assert_int_equal(media_storage_s3_probe(bad, msg, sizeof msg), -EPROTO);
  bad->ops->close(bad);
  /* "host:port" with use_ssl means https too. */
  bad = open_with(f, g_access, g_secret, strstr(g_endpoint, "://") + 3, true);
  assert_int_equal(media_storage_s3_probe(bad, msg, sizeof msg), -EPROTO);
  bad->ops->close(bad);
}

static void test_bucket_created_and_probe_thread(void **state) {
  fx_t *f = *state;
  char bucket[80], msg[512];
  snprintf(bucket, sizeof bucket, "%s-new", g_bucket);
  media_s3_opts_t o = opts_for(f->dir, bucket, g_secret);
  media_storage_t *st;
  assert_int_equal(media_storage_s3_open(&f->loop, &o, &st, NULL, 0), 0);
  assert_false(media_storage_s3_ready(st)); /* no probe yet */
  assert_int_equal(media_storage_s3_probe(st, msg, sizeof msg), 0);
  if (!strstr(msg, "(created)")) fail_msg("bucket not created? %s", msg);
  assert_true(media_storage_s3_ready(st));
  assert_int_equal(media_storage_s3_probe(st, msg, sizeof msg), 0);
  assert_null(strstr(msg, "(created)"));
  assert_int_equal(st->ops->put(st, "0123456789abcdef0123456789abcdef", "hi", 2), 0);
  assert_int_equal(st->ops->size(st, "0123456789abcdef0123456789abcdef"), 2);
  st->ops->close(st);
  /* The probe thread turns ready by itself, and a refused key stays red. */
  o = opts_for(f->dir, g_bucket, g_secret);
  o.probe_interval_ms = 50;
  assert_int_equal(media_storage_s3_open(&f->loop, &o, &st, NULL, 0), 0);
  for (int i = 0; i < 250 && !media_storage_s3_ready(st); i++) usleep(20000);
  assert_true(media_storage_s3_ready(st));
  st->ops->close(st);
  o.s3.secret_key = "wrong";
  assert_int_equal(media_storage_s3_open(&f->loop, &o, &st, NULL, 0), 0);
  usleep(300000);
  assert_false(media_storage_s3_ready(st));
  st->ops->close(st);
}

static void test_options(void **state) {
  fx_t *f = *state;
  struct {
    const char *endpoint, *bucket, *region, *access, *secret;
    bool ssl;
    const char *why;
  } bad[] = {
      {"", "bucket", NULL, "a", "s", false, "empty"},
      {"ftp://h:1", "bucket", NULL, "a", "s", false, "scheme"},
      {"http://h:1/path", "bucket", NULL, "a", "s", false, "no path"},
      {"http://u:p@h:1", "bucket", NULL, "a", "s", false, "no path, user"},
      {"http://h:1?x", "bucket", NULL, "a", "s", false, "query"},
      {"http://h:1", "bucket", NULL, "a", "s", true, "TLS"},
      {"http://h:1", "AB", NULL, "a", "s", false, "bucket"},
      {"http://h:1", "-abc", NULL, "a", "s", false, "bucket"},
      {"http://h:1", "ab_c", NULL, "a", "s", false, "bucket"},
      {"http://h:1", "bucket", "us east", "a", "s", false, "region"},
      {"http://h:1", "bucket", "a:b", "a", "s", false, "region"},
      {"http://h:1", "bucket", NULL, "", "s", false, "access key"},
      {"http://h:1", "bucket", NULL, "a", "", false, "secret key"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    media_s3_opts_t o = {.s3 = {.endpoint = bad[i].endpoint, .bucket = bad[i].bucket,
                                .region = bad[i].region, .access_key = bad[i].access,
                                .secret_key = bad[i].secret, .use_ssl = bad[i].ssl},
                         .dir = f->dir};
    media_storage_t *st;
    char err[200];
    int rc = media_storage_s3_open(&f->loop, &o, &st, err, sizeof err);
    if (rc != -EINVAL || !strstr(err, bad[i].why))
      fail_msg("case %zu: rc %d, err \"%s\" (want -EINVAL mentioning %s)", i, rc, err, bad[i].why);
  }
  media_s3_opts_t o = opts_for(f->dir, g_bucket, g_secret);
  media_storage_t *st;
  o.part_size = TEST_PART - 1;
  assert_int_equal(media_storage_s3_open(&f->loop, &o, &st, NULL, 0), -EINVAL);
  o.part_size = 0;
  o.read_window = 100;
  assert_int_equal(media_storage_s3_open(&f->loop, &o, &st, NULL, 0), -EINVAL);
  o.read_window = 0;
  o.dir = "";
  assert_int_equal(media_storage_s3_open(&f->loop, &o, &st, NULL, 0), -EINVAL);
  o.dir = "/proc/storm-no/such";
  assert_int_equal(media_storage_s3_open(&f->loop, &o, &st, NULL, 0), -ENOENT);
  assert_int_equal(media_storage_s3_open(NULL, &o, &st, NULL, 0), -EINVAL);
  /* Defaults, a trailing slash and an https endpoint are accepted. */
  o = opts_for(f->dir, g_bucket, g_secret);
  o.part_size = 0;
  o.s3.endpoint = "https://s3.example.test/";
  o.s3.region = "eu-west-3";
  assert_int_equal(media_storage_s3_open(&f->loop, &o, &st, NULL, 0), 0);
  st->ops->close(st);
  /* The client refuses keys and queries that could change a URL. */
  s3_client_opts_t co = {.endpoint = g_endpoint, .access_key = g_access, .secret_key = g_secret,
                         .bucket = g_bucket};
  s3_client_t *c;
  assert_int_equal(s3_client_new(&co, &c, NULL, 0), 0);
  s3_result_t *res = malloc(sizeof *res);
  assert_int_equal(s3_client_request(c, "GET", "../x", NULL, NULL, NULL, NULL, 0, NULL, res), -EINVAL);
  assert_int_equal(s3_client_request(c, "GET", "a b", NULL, NULL, NULL, NULL, 0, NULL, res), -EINVAL);
  assert_int_equal(s3_client_request(c, "GET", "/x", NULL, NULL, NULL, NULL, 0, NULL, res), -EINVAL);
  assert_int_equal(s3_client_request(c, "GET", "x", "a=b c", NULL, NULL, NULL, 0, NULL, res), -EINVAL);
  assert_int_equal(s3_client_request(c, "GET", "x", "a=b#", NULL, NULL, NULL, 0, NULL, res), -EINVAL);
  assert_int_equal(s3_client_request(c, "PATCH", "x", NULL, NULL, NULL, NULL, 0, NULL, res), -EINVAL);
  s3_body_t b = {"x", -1, 0, 1};
  assert_int_equal(s3_client_request(c, "GET", "x", NULL, NULL, &b, NULL, 0, NULL, res), -EINVAL);
  /* A sink smaller than the answer is -EOVERFLOW, not a cut object. */
  assert_int_equal(s3_client_request(c, "PUT", "media/sinktest", NULL, NULL, &(s3_body_t){"0123456789", -1, 0, 10},
                                     NULL, 0, NULL, res), 0);
  char small[4];
  size_t got;
  assert_int_equal(s3_client_request(c, "GET", "media/sinktest", NULL, NULL, NULL, small, sizeof small, &got, res),
                   -EOVERFLOW);
  char big[32];
  assert_int_equal(s3_client_request(c, "GET", "media/sinktest", NULL, "bytes=2-5", NULL, big, sizeof big, &got, res), 0);
  assert_int_equal(got, 4);
  assert_memory_equal(big, "2345", 4);
  assert_int_equal(res->status, 206);
  assert_int_equal(res->total_size, 10);
  /* A missing key: 404 with the S3 code parsed. */
  assert_int_equal(s3_client_request(c, "GET", "media/nope", NULL, NULL, NULL, big, sizeof big, &got, res), -ENOENT);
  assert_string_equal(res->code, "NoSuchKey");
  char line[400];
  s3_result_describe(res, line, sizeof line);
  assert_non_null(strstr(line, "404 NoSuchKey"));
  assert_int_equal(s3_client_request(c, "DELETE", "media/sinktest", NULL, NULL, NULL, NULL, 0, NULL, res), 0);
  free(res);
  s3_client_free(c);
}

static void test_xml_and_escape(void **state) {
  (void)state;
  const char *x = "<?xml version=\"1.0\"?>\n<InitiateMultipartUploadResult><Bucket>b</Bucket>"
                  "<Key>media/k</Key><KeyCount>3</KeyCount><UploadId>a&amp;b&lt;&#65;&#x42;&#x20AC;</UploadId>"
                  "<Empty></Empty><Nested><In>x</In></Nested><Bad>&bogus;</Bad><Num>&#0;</Num>"
                  "</InitiateMultipartUploadResult>";
  size_t n = strlen(x), pos = 0;
  char out[64];
  assert_int_equal(s3_xml_text(x, n, "UploadId", NULL, out, sizeof out), 9);
  assert_string_equal(out, "a&b<AB\xE2\x82\xAC");
  assert_int_equal(s3_xml_text(x, n, "Key", &pos, out, sizeof out), 7);
  assert_string_equal(out, "media/k");
  assert_int_equal(s3_xml_text(x, n, "Key", &pos, out, sizeof out), -ENOENT); /* <KeyCount> is not <Key> */
  assert_int_equal(s3_xml_text(x, n, "KeyCount", NULL, out, sizeof out), 1);
  assert_int_equal(s3_xml_text(x, n, "Empty", NULL, out, sizeof out), 0);
  assert_string_equal(out, "");
  assert_int_equal(s3_xml_text(x, n, "Nested", NULL, out, sizeof out), -ENOENT);
  assert_int_equal(s3_xml_text(x, n, "Bad", NULL, out, sizeof out), -EINVAL);
  assert_int_equal(s3_xml_text(x, n, "Num", NULL, out, sizeof out), -EINVAL);
  assert_int_equal(s3_xml_text(x, n, "UploadId", NULL, out, 5), -ENOSPC);
  assert_int_equal(s3_xml_text(x, n, "Missing", NULL, out, sizeof out), -ENOENT);
  assert_int_equal(s3_xml_text(x, 60, "Bucket", NULL, out, sizeof out), -ENOENT); /* cut */
  assert_int_equal(s3_xml_text(x, n, "", NULL, out, sizeof out), -EINVAL);
  assert_int_equal(s3_xml_text("<A>x", 4, "A", NULL, out, sizeof out), -ENOENT);
  assert_int_equal(s3_xml_text("<A>x</B>", 8, "A", NULL, out, sizeof out), -ENOENT);
  assert_int_equal(s3_xml_text("<A>x\0y</A>", 11, "A", NULL, out, sizeof out), -EINVAL);
  assert_true(s3_xml_root_is(x, n, "InitiateMultipartUploadResult"));
  assert_false(s3_xml_root_is(x, n, "Initiate"));
  assert_false(s3_xml_root_is(x, n, "Error"));
  const char *e = "\n\n<Error>\n<Code>InternalError</Code></Error>";
  assert_true(s3_xml_root_is(e, strlen(e), "Error"));
  assert_false(s3_xml_root_is("<?xml", 5, "Error"));
  assert_false(s3_xml_root_is("", 0, "Error"));
  char q[16];
  assert_int_equal(s3_query_escape("a b/c~", q, sizeof q), 10);
  assert_string_equal(q, "a%20b%2Fc~");
  assert_int_equal(s3_query_escape("abcdefgh/", q, 10), -ENOSPC);
}

int main(void) {
  g_endpoint = getenv("STORM_TEST_S3_ENDPOINT");
  g_access = getenv("STORM_TEST_S3_ACCESS_KEY");
  g_secret = getenv("STORM_TEST_S3_SECRET_KEY");
  if (!g_endpoint || !*g_endpoint || !g_access || !*g_access || !g_secret || !*g_secret) {
    fprintf(stderr, "test_media_storage_s3: STORM_TEST_S3_ENDPOINT, STORM_TEST_S3_ACCESS_KEY and "
                    "STORM_TEST_S3_SECRET_KEY must name an S3-compatible server (scripts/infra.sh "
                    "start DIR starts s3rver and writes them to DIR/env). FAILING, not skipping.\n");
    return 1;
  }
  unsigned char r[4];
  randombytes_buf(r, sizeof r);
  snprintf(g_bucket, sizeof g_bucket, "storm-unit-%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
  media_suite_backend = (media_suite_backend_t){
      .open = s3_open, .exists = s3_exists, .flush = MEDIA_TMPFILE_FLUSH, .buf = MEDIA_TMPFILE_BUF};
  const struct CMUnitTest tests[] = {
      MEDIA_STORAGE_SUITE_TESTS,
      cmocka_unit_test_setup_teardown(test_multipart_counts, suite_setup, suite_teardown),
      cmocka_unit_test_setup_teardown(test_wrong_secret, suite_setup, suite_teardown),
      cmocka_unit_test_setup_teardown(test_unreachable_and_tls, suite_setup, suite_teardown),
      cmocka_unit_test_setup_teardown(test_bucket_created_and_probe_thread, suite_setup, suite_teardown),
      cmocka_unit_test_setup_teardown(test_options, suite_setup, suite_teardown),
      cmocka_unit_test(test_xml_and_escape),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
