/* Unit tests for the local media storage backend and media keys: the
 * backend-independent suite (media_storage_suite.h: streaming writes with
 * backpressure, commit visible only once done, abort leaves nothing, range
 * reads, blocking put/size/remove, invalid ids, stale temporary files
 * swept at open) on local disk, then what is local only: a failed commit
 * (rename refused) leaves no temporary file, open's own errors; key
 * generation, parsing and file-name sanitizing (path traversal, NUL
 * bytes, length). */
#include "media_storage_suite.h"

#include "services/media/media_storage_local.h"

static int local_open(uv_loop_t *loop, const char *dir, media_storage_t **out) {
  return media_storage_local_open(loop, dir, out);
}

static bool local_exists(fx_t *f, const char *id) {
  char p[256];
  snprintf(p, sizeof p, "%s/objects/%.2s/%s", f->dir, id, id);
  return access(p, F_OK) == 0;
}

static void test_failed_commit_leaves_nothing(void **state) {
  fx_t *f = *state;
  char id[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id);
  /* A file where the fan-out directory should be: rename fails. */
  char p[256];
  snprintf(p, sizeof p, "%s/objects/%.2s", f->dir, id);
  int fd = open(p, O_WRONLY | O_CREAT, 0600);
  assert_true(fd >= 0);
  close(fd);
  cbs_t c = {0};
  media_writer_t *w;
  assert_int_equal(f->st->ops->writer_open(f->st, id, on_ready, &c, &w), 0);
  write_all(f, w, &c, 5000, 1000);
  assert_int_equal(f->st->ops->commit(w, on_done, &c), 0);
  while (!c.done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.done_status, -ENOTDIR);
  assert_int_equal(tmp_count(f), 0);
  assert_int_equal(f->st->ops->size(f->st, id), -ENOTDIR);
  /* put fails the same way and leaves no temporary file. */
  assert_int_equal(f->st->ops->put(f->st, id, "abc", 3), -ENOTDIR);
  assert_int_equal(tmp_count(f), 0);
  unlink(p);
}

static void test_local_open_errors(void **state) {
  fx_t *f = *state;
  media_storage_t *st2;
  assert_int_equal(media_storage_local_open(&f->loop, "", &st2), -EINVAL);
  assert_int_equal(media_storage_local_open(NULL, f->dir, &st2), -EINVAL);
  assert_int_equal(media_storage_local_open(&f->loop, "/proc/storm-no/such", &st2), -ENOENT);
  assert_string_equal(f->st->ops->kind, "local");
}

static void test_keys(void **state) {
  (void)state;
  char out[MEDIA_NAME_MAX + 1];
  struct {
    const char *in;
    size_t n;
    const char *want;
  } cases[] = {
      {"photo.png", 9, "photo.png"},
      {"../../etc/passwd", 16, "passwd"},
      {"..\\..\\windows\\system.ini", 24, "system.ini"},
      {"a\0b.png", 7, "a_b.png"},
      {"\0", 1, "_"},
      {"..", 2, "file"},
      {"../", 3, "file"},
      {".hidden", 7, "hidden"},
      {"...", 3, "file"},
      {"", 0, "file"},
      {"my holiday pic (1).JPG", 22, "my_holiday_pic__1_.JPG"},
      {"caf\xC3\xA9.gif", 9, "caf__.gif"},
      {"x;rm -rf ~.png", 14, "x_rm_-rf__.png"},
      {"dir/.png", 8, "png"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    media_name_sanitize(cases[i].in, cases[i].n, out);
    if (strcmp(out, cases[i].want) != 0) fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, cases[i].want);
  }
  /* Long names keep their extension and the bound. */
  char lng[300];
  memset(lng, 'a', 200);
  memcpy(lng + 200, ".webm", 6);
  media_name_sanitize(lng, 205, out);
  assert_int_equal(strlen(out), MEDIA_NAME_MAX);
  assert_string_equal(out + MEDIA_NAME_MAX - 5, ".webm");
  memset(lng, 'b', 300);
  media_name_sanitize(lng, 300, out);
  assert_int_equal(strlen(out), MEDIA_NAME_MAX);
  lng[10] = '.'; /* an "extension" longer than 16 bytes is not kept specially */
  media_name_sanitize(lng, 300, out);
  assert_int_equal(strlen(out), MEDIA_NAME_MAX);
  assert_memory_equal(out, "bbbbbbbbbb.bbb", 14);

  char k1[MEDIA_KEY_MAX + 1], k2[MEDIA_KEY_MAX + 1], id[MEDIA_OBJECT_ID_LEN + 1];
  media_key_new("../../etc/passwd", 16, k1);
  media_key_new(NULL, 0, k2);
  assert_int_equal(strlen(k1), MEDIA_OBJECT_ID_LEN + 7);
  assert_string_equal(k1 + MEDIA_OBJECT_ID_LEN, "-passwd");
  assert_string_equal(k2 + MEDIA_OBJECT_ID_LEN, "-file");
  assert_memory_not_equal(k1, k2, MEDIA_OBJECT_ID_LEN);
  assert_true(media_key_parse(k1, strlen(k1), id));
  assert_memory_equal(id, k1, MEDIA_OBJECT_ID_LEN);
  assert_true(media_object_id_valid(id));
  const char *bad[] = {
      "0123456789abcdef0123456789abcdef",    /* no name */
      "0123456789abcdef0123456789abcdef-",   /* empty name */
      "0123456789abcdef0123456789abcdef-.x", /* leading dot */
      "0123456789abcdef0123456789abcdef-a/b",
      "0123456789abcdef0123456789abcdef-a%2e",
      "0123456789abcdef0123456789abcdefxa.png",
      "0123456789ABCDEF0123456789abcdef-a.png",
      "../../etc/passwd",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (media_key_parse(bad[i], strlen(bad[i]), id)) fail_msg("accepted key \"%s\"", bad[i]);
  char longkey[MEDIA_KEY_MAX + 2];
  memcpy(longkey, "0123456789abcdef0123456789abcdef-", 33);
  memset(longkey + 33, 'n', MEDIA_NAME_MAX + 1);
  assert_false(media_key_parse(longkey, 33 + MEDIA_NAME_MAX + 1, id));
  assert_true(media_key_parse(longkey, 33 + MEDIA_NAME_MAX, id));
  assert_false(media_key_parse(NULL, 40, id));
}

int main(void) {
  media_suite_backend = (media_suite_backend_t){
      .open = local_open, .exists = local_exists, .flush = MEDIA_LOCAL_FLUSH, .buf = MEDIA_LOCAL_BUF};
  const struct CMUnitTest tests[] = {
      MEDIA_STORAGE_SUITE_TESTS,
      cmocka_unit_test_setup_teardown(test_failed_commit_leaves_nothing, suite_setup, suite_teardown),
      cmocka_unit_test_setup_teardown(test_local_open_errors, suite_setup, suite_teardown),
      cmocka_unit_test(test_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
