/* Unit tests for the WAL-gathering VFS (store/sqlite/sqlite_walbuf.h):
 * one write per commit, what another connection sees after a commit,
 * spills and rollbacks inside a transaction (reads of buffered frames),
 * a commit that survives the writer's SIGKILL, a failing write that fails
 * the commit and leaves nothing behind, and files other than the WAL
 * going through untouched. Each test works in its own mkdtemp directory. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/sqlite/sqlite_walbuf.h"

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  return remove(path);
}

typedef struct {
  char dir[64];
  char path[128];
} fx_t;

static int fx_setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/storm-walbuf-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  fx_t *f = *state;
  nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

static void exec_ok(sqlite3 *c, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(c, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) fail_msg("%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
}

static int64_t one_int(sqlite3 *c, const char *sql) {
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void integrity_ok(sqlite3 *c) {
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(c, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
  sqlite3_finalize(st);
}

/* A WAL database with one table and an index, opened with the default
 * VFS (the shared connection's settings) and closed again. */
static void make_db(const char *path) {
  sqlite3 *c = NULL;
  assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
  exec_ok(c, "PRAGMA journal_mode=WAL");
  exec_ok(c, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v BLOB NOT NULL);"
             "CREATE INDEX t_k ON t(k);");
  sqlite3_close(c);
}

static sqlite3 *open_walbuf(const char *path) {
  const char *vfs = sqlite_walbuf_vfs();
  assert_non_null(vfs);
  sqlite3 *c = NULL;
  assert_int_equal(sqlite3_open_v2(path, &c, SQLITE_OPEN_READWRITE, vfs), SQLITE_OK);
  exec_ok(c, "PRAGMA synchronous=FULL");
  return c;
}

static sqlite3 *open_plain(const char *path) {
  sqlite3 *c = NULL;
  assert_int_equal(sqlite3_open_v2(path, &c, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  return c;
}

/* n rows with keys spread over many index pages, in one transaction. */
static int insert_rows(sqlite3 *c, int first, int n, int vlen) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c, "INSERT INTO t(id, k, v) VALUES (?, ?, randomblob(?))", -1, &st,
                              NULL);
  if (rc != SQLITE_OK) return rc;
  for (int i = first; i < first + n && rc == SQLITE_OK; i++) {
    sqlite3_bind_int(st, 1, i);
    sqlite3_bind_int64(st, 2, (int64_t)i * 7919 % 100003);
    sqlite3_bind_int(st, 3, vlen);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  return rc;
}

static void test_vfs_registered_once(void **state) {
  const char *a = sqlite_walbuf_vfs(), *b = sqlite_walbuf_vfs();
  assert_non_null(a);
  assert_ptr_equal(a, b);
  sqlite3_vfs *v = sqlite3_vfs_find(a);
  assert_non_null(v);
  assert_ptr_not_equal(v, sqlite3_vfs_find(NULL)); /* registered, not made the default */
}

/* The point of the module: a commit of hundreds of frames is written by one
 * flush, and it is in the file (for another connection, through its own
 * descriptor) as soon as COMMIT returns. */
static void test_one_flush_per_commit(void **state) {
  fx_t *f = *state;
  make_db(f->path);
  sqlite3 *w = open_walbuf(f->path), *r = open_plain(f->path);
  exec_ok(w, "BEGIN IMMEDIATE");
  assert_int_equal(insert_rows(w, 1, 10, 100), SQLITE_OK);
  exec_ok(w, "COMMIT"); /* the first commit also writes the WAL header */
  for (int round = 0; round < 3; round++) {
    uint64_t before = sqlite_walbuf_flushes();
    exec_ok(w, "BEGIN IMMEDIATE");
    assert_int_equal(insert_rows(w, 100 + round * 1000, 500, 200), SQLITE_OK);
    exec_ok(w, "COMMIT");
    assert_int_equal(sqlite_walbuf_flushes() - before, 1);
    assert_int_equal(one_int(r, "SELECT count(*) FROM t"), 10 + 500 * (round + 1));
  }
  integrity_ok(r);
  sqlite3_close(r);
  sqlite3_close(w);
}

/* A tiny page cache makes SQLite spill dirty pages into the WAL in the
 * middle of the transaction and read them back: reads of buffered bytes,
 * writes inside the buffer, then a rollback whose frames the next
 * transaction overwrites. */
static void test_spill_rollback_and_reuse(void **state) {
  fx_t *f = *state;
  make_db(f->path);
  sqlite3 *w = open_walbuf(f->path);
  exec_ok(w, "PRAGMA cache_size=8");
  exec_ok(w, "BEGIN IMMEDIATE");
  assert_int_equal(insert_rows(w, 1, 3000, 300), SQLITE_OK);
  assert_int_equal(one_int(w, "SELECT count(*) FROM t WHERE k >= 0"), 3000);
  exec_ok(w, "ROLLBACK");
  assert_int_equal(one_int(w, "SELECT count(*) FROM t"), 0);

  exec_ok(w, "BEGIN IMMEDIATE");
  assert_int_equal(insert_rows(w, 1, 2000, 300), SQLITE_OK);
  exec_ok(w, "UPDATE t SET v = randomblob(50) WHERE id % 3 = 0");
  exec_ok(w, "COMMIT");
  exec_ok(w, "BEGIN IMMEDIATE");
  assert_int_equal(insert_rows(w, 5001, 1000, 300), SQLITE_OK);
  exec_ok(w, "DELETE FROM t WHERE id % 5 = 0");
  exec_ok(w, "COMMIT");
  integrity_ok(w);

  sqlite3 *r = open_plain(f->path);
  assert_int_equal(one_int(r, "SELECT count(*) FROM t"), 3000 - 600);
  assert_int_equal(one_int(r, "SELECT count(*) FROM t WHERE length(v) = 50"), 666 - 133);
  integrity_ok(r);
  sqlite3_close(r);
  /* A checkpoint copies the WAL into the database; a reopen reads it. */
  exec_ok(w, "PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close(w);
  r = open_plain(f->path);
  assert_int_equal(one_int(r, "SELECT count(*) FROM t"), 2400);
  integrity_ok(r);
  sqlite3_close(r);
}

/* A child commits transactions, reports each on a pipe, and is SIGKILLed
 * while it holds the connection open (nothing of ours runs at exit):
 * every commit it reported is in the file. */
static void test_commits_survive_sigkill(void **state) {
  fx_t *f = *state;
  make_db(f->path);
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    sqlite3 *w = open_walbuf(f->path);
    for (int i = 0; i < 1000; i++) {
      if (sqlite3_exec(w, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) _exit(2);
      if (insert_rows(w, 1 + i * 50, 50, 120) != SQLITE_OK) _exit(3);
      if (sqlite3_exec(w, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) _exit(4);
      if (write(p[1], &i, sizeof i) != sizeof i) _exit(5);
    }
    pause(); /* wait for the kill */
    _exit(6);
  }
  close(p[1]);
  int last = -1, i;
  while (last < 40 && read(p[0], &i, sizeof i) == sizeof i) last = i;
  kill(pid, SIGKILL);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  while (read(p[0], &i, sizeof i) == sizeof i) last = i; /* commits reported before it died */
  close(p[0]);
  assert_true(last >= 40);
  sqlite3 *r = open_plain(f->path);
  int64_t n = one_int(r, "SELECT count(*) FROM t");
  assert_true(n >= (int64_t)(last + 1) * 50);
  assert_int_equal(n % 50, 0); /* whole transactions only */
  integrity_ok(r);
  sqlite3_close(r);
}

/* ---- a failing write (the unix VFS's pwrite replaced for one commit) ---- */

static int fail_errno;
static ssize_t failing_pwrite(int fd, const void *b, size_t n, off_t off) {
  errno = fail_errno;
  return -1;
}

static const char *const write_calls[] = {"pwrite", "pwrite64", "write"};
static sqlite3_syscall_ptr saved[3];

static void writes_fail(sqlite3_vfs *v, int err) {
  fail_errno = err;
  for (int i = 0; i < 3; i++) {
    saved[i] = v->xGetSystemCall(v, write_calls[i]);
    if (saved[i])
      assert_int_equal(v->xSetSystemCall(v, write_calls[i], (sqlite3_syscall_ptr)failing_pwrite),
                       SQLITE_OK);
  }
}

static void writes_work(sqlite3_vfs *v) {
  for (int i = 0; i < 3; i++)
    if (saved[i]) assert_int_equal(v->xSetSystemCall(v, write_calls[i], saved[i]), SQLITE_OK);
}

static void test_failed_flush_fails_commit(void **state) {
  fx_t *f = *state;
  make_db(f->path);
  sqlite3 *w = open_walbuf(f->path);
  exec_ok(w, "BEGIN IMMEDIATE");
  assert_int_equal(insert_rows(w, 1, 100, 100), SQLITE_OK);
  exec_ok(w, "COMMIT");

  sqlite3_vfs *v = sqlite3_vfs_find(sqlite_walbuf_vfs());
  int errs[] = {EIO, ENOSPC};
  for (int k = 0; k < 2; k++) {
    exec_ok(w, "BEGIN IMMEDIATE");
    assert_int_equal(insert_rows(w, 1000 + k * 1000, 300, 200), SQLITE_OK); /* buffered */
    writes_fail(v, errs[k]);
    int rc = sqlite3_exec(w, "COMMIT", NULL, NULL, NULL);
    writes_work(v);
    assert_int_not_equal(rc, SQLITE_OK);
    int primary = sqlite3_errcode(w) & 0xff;
    assert_true(primary == SQLITE_IOERR || primary == SQLITE_FULL);
    if (!sqlite3_get_autocommit(w)) exec_ok(w, "ROLLBACK");
    assert_int_equal(one_int(w, "SELECT count(*) FROM t"), 100);
  }
  /* And the connection works again. */
  exec_ok(w, "BEGIN IMMEDIATE");
  assert_int_equal(insert_rows(w, 5000, 300, 200), SQLITE_OK);
  exec_ok(w, "COMMIT");
  sqlite3 *r = open_plain(f->path);
  assert_int_equal(one_int(r, "SELECT count(*) FROM t"), 400);
  integrity_ok(r);
  sqlite3_close(r);
  sqlite3_close(w);
}

/* Files other than a -wal are the base VFS's own: a rollback-journal
 * database through this VFS never touches the buffer. */
static void test_other_files_untouched(void **state) {
  fx_t *f = *state;
  sqlite3 *c = NULL;
  assert_int_equal(sqlite3_open_v2(f->path, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                   sqlite_walbuf_vfs()),
                   SQLITE_OK);
  exec_ok(c, "PRAGMA journal_mode=DELETE");
  exec_ok(c, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v BLOB NOT NULL)");
  uint64_t before = sqlite_walbuf_flushes();
  exec_ok(c, "BEGIN");
  assert_int_equal(insert_rows(c, 1, 500, 200), SQLITE_OK);
  exec_ok(c, "COMMIT");
  assert_int_equal(sqlite_walbuf_flushes(), before);
  sqlite3_close(c);
  sqlite3 *r = open_plain(f->path);
  assert_int_equal(one_int(r, "SELECT count(*) FROM t"), 500);
  sqlite3_close(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vfs_registered_once),
      cmocka_unit_test_setup_teardown(test_one_flush_per_commit, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_spill_rollback_and_reuse, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_commits_survive_sigkill, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_failed_flush_fails_commit, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_other_files_untouched, fx_setup, fx_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
