/*
 * media_storage_suite.h — the backend-independent tests of the media
 * storage interface (services/media/media_storage.h), shared by
 * test_media_storage.c (local disk) and test_media_storage_s3.c (S3,
 * against a real S3-compatible server): the same tests decide whether a
 * backend meets the contract.
 *
 * Include it in one test file (it defines static functions). Set
 * media_suite_backend first: open(loop, dir, &st) opens a backend whose
 * temporary files live in <dir>/tmp; exists(fx, id) says whether the
 * object is stored, asked of the backend's store directly (the file, or
 * a HEAD request), not through the interface; flush is the fill at which
 * a writer hands its buffer on (the BUSY threshold) and buf the buffer
 * size. Each test gets a fresh directory and loop; teardown checks that
 * the loop closes with no leaked handle.
 *
 * One difference the interface allows is tested as such: reader_open on
 * the local disk checks existence and bounds at once, the S3 backend (no
 * I/O on the loop) at the first read; expect_open_error accepts either.
 */
#ifndef STORM_TEST_MEDIA_STORAGE_SUITE_H
#define STORM_TEST_MEDIA_STORAGE_SUITE_H

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
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include <cmocka.h>
#include <uv.h>

#include "services/media/media_key.h"
#include "services/media/media_storage.h"

typedef struct fx fx_t;

typedef struct {
  int (*open)(uv_loop_t *loop, const char *dir, media_storage_t **out);
  bool (*exists)(fx_t *f, const char *id);
  size_t flush, buf;
} media_suite_backend_t;

static media_suite_backend_t media_suite_backend;

struct fx {
  uv_loop_t loop;
  char root[128]; /* mkdtemp */
  char dir[160];  /* root/media: the backend creates it */
  media_storage_t *st;
};

static int suite_setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  snprintf(f->root, sizeof f->root, "/tmp/storm-media-test-XXXXXX");
  assert_non_null(mkdtemp(f->root));
  snprintf(f->dir, sizeof f->dir, "%s/media", f->root);
  assert_int_equal(media_suite_backend.open(&f->loop, f->dir, &f->st), 0);
  *state = f;
  return 0;
}

static int suite_teardown(void **state) {
  fx_t *f = *state;
  f->st->ops->close(f->st);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
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

/* Writes total pattern bytes under id and commits; asserts success. */
__attribute__((unused)) /* not every backend file uses it */
static void store_object(fx_t *f, const char *id, size_t total) {
  cbs_t c = {0};
  media_writer_t *w;
  assert_int_equal(f->st->ops->writer_open(f->st, id, on_ready, &c, &w), 0);
  write_all(f, w, &c, total, 60000);
  assert_int_equal(f->st->ops->commit(w, on_done, &c), 0);
  while (!c.done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.done_status, 0);
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

/* reader_open fails with err, or succeeds and the first read reports err
 * through its callback (backends that do no I/O in reader_open). */
static void expect_open_error(fx_t *f, const char *id, uint64_t off, uint64_t len, int err) {
  media_reader_t *r;
  int rc = f->st->ops->reader_open(f->st, id, off, len, &r);
  if (rc != 0) {
    assert_int_equal(rc, err);
    return;
  }
  char buf[64];
  read_res_t res = {0, false};
  assert_int_equal(f->st->ops->read(r, buf, sizeof buf, on_read_done, &res), 0);
  while (!res.done) uv_run(&f->loop, UV_RUN_ONCE);
  f->st->ops->reader_close(r);
  if (res.n != err) fail_msg("range %llu+%llu: want %d, got %zd", (unsigned long long)off,
                             (unsigned long long)len, err, res.n);
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
  write_all(f, w, &c, total, 60000);
  /* Not visible before commit completes. */
  assert_false(media_suite_backend.exists(f, id));
  expect_open_error(f, id, 0, 0, -ENOENT);
  expect_open_error(f, id, 0, 10, -ENOENT);
  assert_int_equal(f->st->ops->size(f->st, id), -ENOENT);
  assert_int_equal(f->st->ops->commit(w, on_done, &c), 0);
  assert_false(media_suite_backend.exists(f, id));
  while (!c.done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.done_status, 0);
  assert_true(media_suite_backend.exists(f, id));
  assert_int_equal(tmp_count(f), 0);
  assert_int_equal(f->st->ops->size(f->st, id), (int64_t)total);
  read_range(f, id, 0, total, 8192);
  read_range(f, id, 12345, 100000, 4096);
  read_range(f, id, total - 1, 1, 100);
  /* The first byte alone: s3rver answers "bytes=0-0" with the whole
   * object, which must not fail the read nor leak past the range. */
  read_range(f, id, 0, 1, 100);
  read_range(f, id, total, 0, 100);
  read_range(f, id, 0, 0, 100);
  /* Ranges outside the object. */
  expect_open_error(f, id, total, 1, -EINVAL);
  expect_open_error(f, id, total + 1, 0, -EINVAL);
  expect_open_error(f, id, 1, total, -EINVAL);
  expect_open_error(f, id, 0, UINT64_MAX, -EINVAL);
  expect_open_error(f, id, 5, UINT64_MAX, -EINVAL);
  /* remove */
  assert_int_equal(f->st->ops->remove(f->st, id), 0);
  assert_false(media_suite_backend.exists(f, id));
  assert_int_equal(f->st->ops->remove(f->st, id), -ENOENT);
  assert_int_equal(f->st->ops->size(f->st, id), -ENOENT);
  expect_open_error(f, id, 0, 1, -ENOENT);
}

static void test_backpressure(void **state) {
  fx_t *f = *state;
  const size_t flush = media_suite_backend.flush, bufsz = media_suite_backend.buf;
  char id[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id);
  cbs_t c = {0};
  media_writer_t *w;
  assert_int_equal(f->st->ops->writer_open(f->st, id, on_ready, &c, &w), 0);
  unsigned char *b = malloc(bufsz);
  pattern(b, bufsz, 0);
  /* Reaching the flush mark hands the buffer to the pool (no BUSY yet);
   * filling the other one while that write runs is BUSY. */
  assert_int_equal(f->st->ops->write(w, b, flush), 0);
  pattern(b, bufsz, flush);
  assert_int_equal(f->st->ops->write(w, b, flush - 1), 0);
  assert_int_equal(f->st->ops->write(w, b + flush - 1, 1), MEDIA_STORAGE_BUSY);
  /* The slack is still accepted, then no more. */
  assert_int_equal(f->st->ops->write(w, b + flush, MEDIA_STORAGE_SLACK - 1), MEDIA_STORAGE_BUSY);
  assert_int_equal(f->st->ops->write(w, b, 2), -ENOBUFS);
  assert_int_equal(c.ready_calls, 0);
  while (!c.ready_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.ready_status, 0);
  assert_int_equal(f->st->ops->commit(w, on_done, &c), 0);
  /* A committing writer takes no more data, and commits once. */
  assert_true(f->st->ops->write(w, b, 1) < 0);
  assert_int_equal(f->st->ops->commit(w, on_done, &c), -EINVAL);
  while (!c.done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.done_status, 0);
  assert_int_equal(f->st->ops->size(f->st, id), (int64_t)(2 * flush + MEDIA_STORAGE_SLACK - 1));
  read_range(f, id, 0, 2 * flush + MEDIA_STORAGE_SLACK - 1, 8192);
  assert_int_equal(c.ready_calls, 1);
  free(b);
}

static void test_abort_leaves_nothing(void **state) {
  fx_t *f = *state;
  static unsigned char b[256 * 1024];
  for (int mode = 0; mode < 3; mode++) {
    char id[MEDIA_OBJECT_ID_LEN + 1];
    new_id(id);
    cbs_t c = {0};
    media_writer_t *w;
    assert_int_equal(f->st->ops->writer_open(f->st, id, on_ready, &c, &w), 0);
    if (mode >= 1) assert_int_equal(f->st->ops->write(w, b, 100), 0); /* buffered */
    if (mode == 2) /* in flight */
      assert_int_equal(f->st->ops->write(w, b, media_suite_backend.flush), 0);
    assert_int_equal(tmp_count(f), 1);
    f->st->ops->abort(w);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(tmp_count(f), 0);
    assert_false(media_suite_backend.exists(f, id));
    assert_int_equal(c.ready_calls, 0);
    assert_int_equal(c.done_calls, 0);
  }
  f->st->ops->abort(NULL); /* no-op */
}

static void test_put_and_exclusive_open(void **state) {
  fx_t *f = *state;
  char id[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id);
  static unsigned char b[300000];
  pattern(b, sizeof b, 0);
  assert_int_equal(f->st->ops->put(f->st, id, b, sizeof b), 0);
  assert_int_equal(tmp_count(f), 0);
  assert_true(media_suite_backend.exists(f, id));
  read_range(f, id, 0, sizeof b, 8192);
  read_range(f, id, 299999, 1, 16);
  /* An empty object is fine. */
  char id2[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id2);
  assert_int_equal(f->st->ops->put(f->st, id2, NULL, 0), 0);
  assert_int_equal(f->st->ops->size(f->st, id2), 0);
  read_range(f, id2, 0, 0, 16);
  assert_int_equal(f->st->ops->put(f->st, id2, NULL, 5), -EINVAL);
  /* Two writers for one id: the second is refused. */
  cbs_t c = {0};
  media_writer_t *w, *w2;
  char id3[MEDIA_OBJECT_ID_LEN + 1];
  new_id(id3);
  assert_int_equal(f->st->ops->writer_open(f->st, id3, on_ready, &c, &w), 0);
  assert_int_equal(f->st->ops->writer_open(f->st, id3, on_ready, &c, &w2), -EEXIST);
  assert_int_equal(f->st->ops->writer_open(f->st, id3, NULL, &c, &w2), -EINVAL);
  assert_int_equal(f->st->ops->commit(w, NULL, &c), -EINVAL);
  /* An empty commit makes an empty object. */
  assert_int_equal(f->st->ops->commit(w, on_done, &c), 0);
  while (!c.done_calls) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.done_status, 0);
  assert_int_equal(f->st->ops->size(f->st, id3), 0);
  assert_true(media_suite_backend.exists(f, id3));
  assert_int_equal(tmp_count(f), 0);
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

/* Day-old .part files are crash leftovers, removed at open; younger ones
 * and other names are left alone. */
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
  assert_int_equal(media_suite_backend.open(&f->loop, f->dir, &st2), 0);
  assert_int_equal(access(old, F_OK), -1);
  assert_int_equal(access(fresh, F_OK), 0);
  assert_int_equal(access(other, F_OK), 0);
  st2->ops->close(st2);
  unlink(fresh);
  unlink(other);
}

#define MEDIA_STORAGE_SUITE_TESTS                                                             \
  cmocka_unit_test_setup_teardown(test_commit_and_read_ranges, suite_setup, suite_teardown),  \
      cmocka_unit_test_setup_teardown(test_backpressure, suite_setup, suite_teardown),        \
      cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, suite_setup, suite_teardown), \
      cmocka_unit_test_setup_teardown(test_put_and_exclusive_open, suite_setup,               \
                                      suite_teardown),                                        \
      cmocka_unit_test_setup_teardown(test_invalid_ids, suite_setup, suite_teardown),         \
      cmocka_unit_test_setup_teardown(test_stale_temp_sweep, suite_setup, suite_teardown)

#endif
