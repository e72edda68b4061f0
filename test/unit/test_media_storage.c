/* Unit tests for the local media storage backend and media keys: streaming
 * writes with backpressure, commit (visible only once done), abort and
 * failed commits leave nothing (no object, no temporary file), range
 * reads, blocking put/size/remove, invalid ids refused everywhere, stale
 * temporary files swept at open; key generation, parsing and file-name
 * sanitizing (path traversal, NUL bytes, length). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include <cmocka.h>
#include <uv.h>

#include "services/media/media_key.h"
#include "services/media/media_storage_local.h"

typedef struct {
  uv_loop_t loop;
  char dir[128];
  media_storage_t *st;
} fx_t;

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  snprintf(f->dir, sizeof f->dir, "/tmp/storm-media-test-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  strcat(f->dir, "/media"); /* open creates it */
  assert_int_equal(media_storage_local_open(&f->loop, f->dir, &f->st), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  f->st->ops->close(f->st);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(f->dir) - 6), f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

static int count_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static int tmp_count(const fx_t *f) {
  char p[256];
  snprintf(p, sizeof p, "%s/tmp", f->dir);
  return count_dir(p);
}

static bool object_exists(const fx_t *f, const char *id) {
  char p[256];
  snprintf(p, sizeof p, "%s/objects/%.2s/%s", f->dir, id, id);
  return access(p, F_OK) == 0;
}

static void new_id(char id[MEDIA_OBJECT_ID_LEN + 1]) {
  char key[MEDIA_KEY_MAX + 1];
  media_key_new("x", 1, key);
  assert_true(media_key_parse(key, strlen(key), id));
}

typedef struct {
  int ready_calls, ready_status;
  int done_calls, done_status;
} cbs_t;

static void on_ready(int status, void *arg) {
  cbs_t *c = arg;
  c->ready_calls++;
  c->ready_status = status;
}

static void on_done(int status, void *arg) {
  cbs_t *c = arg;
  c->done_calls++;
  c->done_status = status;
}

static void pattern(unsigned char *b, size_t n, size_t from) {
  for (size_t i = 0; i < n; i++) b[i] = (unsigned char)((from + i) * 131 % 251);
}

/* Writes total bytes in pieces of `piece`, honouring BUSY by running the
 * loop until on_ready. Returns the number of BUSY answers. */
static int write_all(fx_t *f, media_writer_t *w, cbs_t *c, size_t total, size_t piece) {
  static unsigned char b[64 * 1024];
  int busy = 0;
  for (size_t at = 0; at < total;) {
    size_t n = total - at < piece ? total - at : piece;
    pattern(b, n, at);
    int rc = f->st->ops->write(w, b, n);
    assert_true(rc == 0 || rc == MEDIA_STORAGE_BUSY);
    at += n;
    if (rc == MEDIA_STORAGE_BUSY) {
      busy++;
      int before = c->ready_calls;
      while (c->ready_calls == before) uv_run(&f->loop, UV_RUN_ONCE);
      assert_int_equal(c->ready_status, 0);
    }
  }
  return busy;
}

typedef struct {
  ssize_t n;
  bool done;
} read_res_t;

static void on_read_done(ssize_t n, void *arg) {
  read_res_t *res = arg;
  res->n = n;
  res->done = true;
}

static void read_range(fx_t *f, const char *id, uint64_t off, uint64_t len, size_t bufsz) {
  media_reader_t *r;
  assert_int_equal(f->st->ops->reader_open(f->st, id, off, len, &r), 0);
  unsigned char *got = malloc(len + 1), *want = malloc(len + 1), buf[8192];
  assert_true(bufsz <= sizeof buf);
  size_t have = 0;
  for (;;) {
    read_res_t res = {0, false};
    assert_int_equal(f->st->ops->read(r, buf, bufsz, on_read_done, &res), 0);
    /* A second read while one is pending is refused. */
    assert_int_equal(f->st->ops->read(r, buf, bufsz, on_read_done, &res), -EINVAL);
    while (!res.done) uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(res.n >= 0);
    if (res.n == 0) break;
    assert_true((size_t)res.n <= bufsz);
    memcpy(got + have, buf, (size_t)res.n);
    have += (size_t)res.n;
  }
  assert_int_equal(have, len);
  pattern(want, len, off);
  assert_memory_equal(got, want, len);
  f->st->ops->reader_close(r);
  free(got);
  free(want);
}

static void test_commit_and_read_ranges(void **state) {
  fx_t *f = *state;
  char id[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id);
  cbs_t c = {0};
  media_writer_t *w;
  assert_int_equal(f->st->ops->writer_open(f->st, id, on_ready, &c, &w), 0);
  assert_int_equal(tmp_count(f), 1);
  const size_t total = 1000 * 1000 + 7;
  int busy = write_all(f, w, &c, total, 60000);
  (void)busy;
  /* Not visible before commit completes. */
  assert_false(object_exists(f, id));
  media_reader_t *r;
  assert_int_equal(f->st->ops->reader_open(f->st, id, 0, 0, &r), -ENOENT);
  assert_int_equal(f->st->ops->size(f->st, id), -ENOENT);
  assert_int_equal(f->st->ops->commit(w, on_done, &c), 0);
  assert_false(object_exists(f, id));
  while (!c.done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.done_status, 0);
  assert_true(object_exists(f, id));
  assert_int_equal(tmp_count(f), 0);
  assert_int_equal(f->st->ops->size(f->st, id), (int64_t)total);
  read_range(f, id, 0, total, 8192);
  read_range(f, id, 12345, 100000, 4096);
  read_range(f, id, total - 1, 1, 100);
  read_range(f, id, total, 0, 100);
  read_range(f, id, 0, 0, 100);
  /* Ranges outside the object. */
  assert_int_equal(f->st->ops->reader_open(f->st, id, total, 1, &r), -EINVAL);
  assert_int_equal(f->st->ops->reader_open(f->st, id, total + 1, 0, &r), -EINVAL);
  assert_int_equal(f->st->ops->reader_open(f->st, id, 1, total, &r), -EINVAL);
  assert_int_equal(f->st->ops->reader_open(f->st, id, 0, UINT64_MAX, &r), -EINVAL);
  /* remove */
  assert_int_equal(f->st->ops->remove(f->st, id), 0);
  assert_false(object_exists(f, id));
  assert_int_equal(f->st->ops->remove(f->st, id), -ENOENT);
}

static void test_backpressure(void **state) {
  fx_t *f = *state;
  char id[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id);
  cbs_t c = {0};
  media_writer_t *w;
  assert_int_equal(f->st->ops->writer_open(f->st, id, on_ready, &c, &w), 0);
  static unsigned char b[MEDIA_LOCAL_BUF];
  pattern(b, sizeof b, 0);
  /* Reaching the flush mark hands the buffer to the pool (no BUSY yet);
   * filling the other one while that write runs is BUSY. */
  assert_int_equal(f->st->ops->write(w, b, MEDIA_LOCAL_FLUSH), 0);
  pattern(b, sizeof b, MEDIA_LOCAL_FLUSH);
  assert_int_equal(f->st->ops->write(w, b, MEDIA_LOCAL_FLUSH - 1), 0);
  assert_int_equal(f->st->ops->write(w, b + MEDIA_LOCAL_FLUSH - 1, 1), MEDIA_STORAGE_BUSY);
  /* The slack is still accepted, then no more. */
  assert_int_equal(f->st->ops->write(w, b + MEDIA_LOCAL_FLUSH, MEDIA_STORAGE_SLACK - 1),
                   MEDIA_STORAGE_BUSY);
  assert_int_equal(f->st->ops->write(w, b, 2), -ENOBUFS);
  assert_int_equal(c.ready_calls, 0);
  while (!c.ready_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.ready_status, 0);
  assert_int_equal(f->st->ops->commit(w, on_done, &c), 0);
  /* A committing writer takes no more data. */
  while (!c.done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.done_status, 0);
  assert_int_equal(f->st->ops->size(f->st, id), (int64_t)(2 * MEDIA_LOCAL_FLUSH + MEDIA_STORAGE_SLACK - 1));
  read_range(f, id, 0, 2 * MEDIA_LOCAL_FLUSH + MEDIA_STORAGE_SLACK - 1, 8192);
  assert_int_equal(c.ready_calls, 1);
}

static void test_abort_leaves_nothing(void **state) {
  fx_t *f = *state;
  static unsigned char b[MEDIA_LOCAL_BUF];
  for (int mode = 0; mode < 3; mode++) {
    char id[MEDIA_OBJECT_ID_LEN + 1];
    new_id(id);
    cbs_t c = {0};
    media_writer_t *w;
    assert_int_equal(f->st->ops->writer_open(f->st, id, on_ready, &c, &w), 0);
    if (mode >= 1) assert_int_equal(f->st->ops->write(w, b, 100), 0);                /* buffered */
    if (mode == 2) assert_int_equal(f->st->ops->write(w, b, MEDIA_LOCAL_FLUSH), 0); /* in flight */
    assert_int_equal(tmp_count(f), 1);
    f->st->ops->abort(w);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(tmp_count(f), 0);
    assert_false(object_exists(f, id));
    assert_int_equal(c.ready_calls, 0);
    assert_int_equal(c.done_calls, 0);
  }
  f->st->ops->abort(NULL); /* no-op */
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

static void test_put_and_exclusive_open(void **state) {
  fx_t *f = *state;
  char id[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id);
  static unsigned char b[300000];
  pattern(b, sizeof b, 0);
  assert_int_equal(f->st->ops->put(f->st, id, b, sizeof b), 0);
  assert_int_equal(tmp_count(f), 0);
  read_range(f, id, 0, sizeof b, 8192);
  read_range(f, id, 299999, 1, 16);
  /* An empty object is fine. */
  char id2[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id2);
  assert_int_equal(f->st->ops->put(f->st, id2, NULL, 0), 0);
  assert_int_equal(f->st->ops->size(f->st, id2), 0);
  assert_int_equal(f->st->ops->put(f->st, id2, NULL, 5), -EINVAL);
  /* Two writers for one id: the second is refused. */
  cbs_t c = {0};
  media_writer_t *w, *w2;
  char id3[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id3);
  assert_int_equal(f->st->ops->writer_open(f->st, id3, on_ready, &c, &w), 0);
  assert_int_equal(f->st->ops->writer_open(f->st, id3, on_ready, &c, &w2), -EEXIST);
  assert_int_equal(f->st->ops->writer_open(f->st, id3, NULL, &c, &w2), -EINVAL);
  /* An empty commit makes an empty object. */
  assert_int_equal(f->st->ops->commit(w, on_done, &c), 0);
  while (!c.done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.done_status, 0);
  assert_int_equal(f->st->ops->size(f->st, id3), 0);
}

static void test_invalid_ids(void **state) {
  fx_t *f = *state;
  const char *bad[] = {"../../etc/passwd", "", "0123456789abcdef0123456789abcde",
                       "0123456789abcdef0123456789abcdef0", "0123456789ABCDEF0123456789abcdef",
                       "0123456789abcdef/123456789abcdef", "0123456789abcdef\n123456789abcdef"};
  cbs_t c = {0};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    media_writer_t *w;
    media_reader_t *r;
    assert_false(media_object_id_valid(bad[i]));
    assert_int_equal(f->st->ops->writer_open(f->st, bad[i], on_ready, &c, &w), -EINVAL);
    assert_int_equal(f->st->ops->reader_open(f->st, bad[i], 0, 0, &r), -EINVAL);
    assert_int_equal(f->st->ops->size(f->st, bad[i]), -EINVAL);
    assert_int_equal(f->st->ops->remove(f->st, bad[i]), -EINVAL);
    assert_int_equal(f->st->ops->put(f->st, bad[i], "x", 1), -EINVAL);
  }
  assert_false(media_object_id_valid(NULL));
  assert_int_equal(tmp_count(f), 0);
}

static void test_stale_temp_sweep(void **state) {
  fx_t *f = *state;
  char old[256], fresh[256], other[256];
  snprintf(old, sizeof old, "%s/tmp/aaaa.part", f->dir);
  snprintf(fresh, sizeof fresh, "%s/tmp/bbbb.part", f->dir);
  snprintf(other, sizeof other, "%s/tmp/cccc.keep", f->dir);
  const char *files[] = {old, fresh, other};
  for (int i = 0; i < 3; i++) {
    int fd = open(files[i], O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
  }
  struct utimbuf t = {.actime = time(NULL) - 2 * 86400, .modtime = time(NULL) - 2 * 86400};
  assert_int_equal(utime(old, &t), 0);
  assert_int_equal(utime(other, &t), 0);
  media_storage_t *st2;
  assert_int_equal(media_storage_local_open(&f->loop, f->dir, &st2), 0);
  assert_int_equal(access(old, F_OK), -1);
  assert_int_equal(access(fresh, F_OK), 0);
  assert_int_equal(access(other, F_OK), 0);
  st2->ops->close(st2);
  unlink(fresh);
  unlink(other);
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
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_commit_and_read_ranges, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_commit_leaves_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_put_and_exclusive_open, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_ids, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stale_temp_sweep, setup, teardown),
      cmocka_unit_test(test_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
