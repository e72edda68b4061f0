/* Unit tests for the users store on SQLite.
 *
 * Part 1 is the backend-independent suite (users_store_suite.h, shared
 * with test_users_store_pg.c), run here on SQLite stores: every test of
 * USERS_STORE_SUITE_TESTS gets a fresh store from sqlite_make().
 * Part 2 tests what is specific to SQLite: data directory, pragmas,
 * migrations, fault injection (read-only connection, failing trigger,
 * out-of-limit rows), the db lock and close. Every test works in its own
 * mkdtemp directory, removed afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/users_sqlite.h"
#include "store/users_store.h"
#include "users_store_suite.h"

/* ==== part 2: SQLite ==== */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  return remove(path);
}

static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void make_tmpdir(char *dir, size_t len) {
  snprintf(dir, len, "/tmp/storm-users-XXXXXX");
  assert_non_null(mkdtemp(dir));
}

/* The current store of the suite: tests run one at a time. */
static struct {
  char dir[64];
  sqlite_db_t *db;
  users_store_t *s;
} cur;

static users_store_t *sqlite_make(void) {
  snprintf(cur.dir, sizeof cur.dir, "/tmp/storm-users-XXXXXX");
  if (!mkdtemp(cur.dir)) return NULL;
  char err[256];
  if (sqlite_db_open(cur.dir, &cur.db, err, sizeof err) != 0) {
    fprintf(stderr, "sqlite_db_open: %s\n", err);
    return NULL;
  }
  if (users_sqlite_open(cur.db, &cur.s) != 0) return NULL;
  return cur.s;
}

static void sqlite_destroy(users_store_t *s) {
  s->ops->close(s);
  sqlite_db_close(cur.db);
  rm_rf(cur.dir);
  memset(&cur, 0, sizeof cur);
}

/* Per-test fixture of part 2: a temp dir and the log captured in a memfd
 * (failures are logged; we check those lines and keep the output clean). */
typedef struct {
  char dir[64];
  char path[128]; /* dir/data, not yet created */
  int log_fd;
} fx_t;

static int fx_setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  make_tmpdir(f->dir, sizeof f->dir);
  snprintf(f->path, sizeof f->path, "%s/data", f->dir);
  f->log_fd = memfd_create("log", 0);
  if (f->log_fd < 0) return -1;
  log_set_fd(f->log_fd);
  log_set_level(LOG_LEVEL_INFO);
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  fx_t *f = *state;
  log_set_fd(2);
  log_set_level(LOG_LEVEL_WARN);
  close(f->log_fd);
  rm_rf(f->dir);
  free(f);
  return 0;
}

/* Everything logged so far by the test (static buffer). */
static const char *logged(fx_t *f) {
  static char buf[16384];
  ssize_t n = pread(f->log_fd, buf, sizeof buf - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

static sqlite_db_t *open_ok(const char *dir) {
  sqlite_db_t *db = NULL;
  char err[256] = "x";
  int r = sqlite_db_open(dir, &db, err, sizeof err);
  if (r != 0) fprintf(stderr, "open: %s\n", err);
  assert_int_equal(r, 0);
  assert_string_equal(err, "");
  assert_non_null(db);
  return db;
}

/* First column of the first row of a constant query, as int64. */
static int64_t q_int(sqlite_db_t *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(sqlite_db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void q_text(sqlite_db_t *db, const char *sql, char *out, size_t len) {
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(sqlite_db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
}

static void exec_ok(sqlite_db_t *db, const char *sql) {
  assert_int_equal(sqlite3_exec(sqlite_db_handle(db), sql, NULL, NULL, NULL), SQLITE_OK);
}

static void t_sqlite_data_dir_created(void **state) {
  fx_t *f = *state;
  struct stat st;
  assert_int_equal(stat(f->path, &st), -1);
  sqlite_db_t *db = open_ok(f->path);
  assert_int_equal(stat(f->path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0700);
  char file[192];
  snprintf(file, sizeof file, "%s/storm.db", f->path);
  assert_int_equal(stat(file, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0600); /* password hashes: owner only */
  snprintf(file, sizeof file, "%s/storm.db-wal", f->path);
  assert_int_equal(stat(file, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  sqlite_db_close(db);
  /* an existing directory keeps its mode */
  assert_int_equal(chmod(f->path, 0750), 0);
  db = open_ok(f->path);
  assert_int_equal(stat(f->path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0750);
  sqlite_db_close(db);
}

static void t_sqlite_open_errors(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = (sqlite_db_t *)(uintptr_t)1; /* must stay untouched on failure */
  char err[256];
  assert_int_equal(sqlite_db_open(NULL, &db, err, sizeof err), -EINVAL);
  assert_int_equal(sqlite_db_open("", &db, err, sizeof err), -EINVAL);
  assert_int_equal(sqlite_db_open(f->path, NULL, err, sizeof err), -EINVAL);
  assert_true(err[0] != '\0');

  /* parent missing: one level only */
  char deep[192];
  snprintf(deep, sizeof deep, "%s/a/b", f->dir);
  assert_int_equal(sqlite_db_open(deep, &db, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, "cannot create data dir"));

  /* storm.db cannot be created (a directory stands in its way) */
  char blocked[192];
  assert_int_equal(mkdir(f->path, 0700), 0);
  snprintf(blocked, sizeof blocked, "%s/storm.db", f->path);
  assert_int_equal(mkdir(blocked, 0700), 0);
  assert_int_equal(sqlite_db_open(f->path, &db, err, sizeof err), -EISDIR);
  assert_non_null(strstr(err, "cannot create"));
  assert_int_equal(rmdir(blocked), 0);
  assert_int_equal(rmdir(f->path), 0);

  /* data dir is a file */
  int fd = open(f->path, O_CREAT | O_WRONLY, 0600);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(sqlite_db_open(f->path, &db, err, sizeof err), -ENOTDIR);
  assert_non_null(strstr(err, "not a directory"));
  /* NULL err is allowed */
  assert_int_equal(sqlite_db_open(f->path, &db, NULL, 0), -ENOTDIR);
  assert_true(db == (sqlite_db_t *)(uintptr_t)1);
}

static void t_sqlite_not_a_database(void **state) {
  fx_t *f = *state;
  assert_int_equal(mkdir(f->path, 0700), 0);
  char file[192];
  snprintf(file, sizeof file, "%s/storm.db", f->path);
  FILE *fp = fopen(file, "w");
  assert_non_null(fp);
  for (int i = 0; i < 512; i++) fputs("this is not a database ", fp);
  fclose(fp);
  sqlite_db_t *db = NULL;
  char err[256];
  assert_int_equal(sqlite_db_open(f->path, &db, err, sizeof err), -EIO);
  assert_null(db);
  assert_non_null(strstr(err, "not a database"));
}

static void t_sqlite_pragmas(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  char mode[16];
  q_text(db, "PRAGMA journal_mode", mode, sizeof mode);
  assert_string_equal(mode, "wal");
  assert_int_equal(q_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
  assert_int_equal(q_int(db, "PRAGMA foreign_keys"), 1);
  assert_int_equal(q_int(db, "PRAGMA busy_timeout"), SQLITE_DB_BUSY_TIMEOUT_MS);
  sqlite_db_close(db);
  /* WAL is a property of the file: a plain connection sees it too */
  char file[192];
  snprintf(file, sizeof file, "%s/storm.db", f->path);
  sqlite3 *c;
  assert_int_equal(sqlite3_open(file, &c), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(c, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  sqlite3_close(c);
}

static void t_sqlite_migrations_once(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  const int64_t nmig = (int64_t)sqlite_migrations_count;
  const int last = sqlite_migrations[sqlite_migrations_count - 1].version;
  assert_int_equal(q_int(db, "SELECT count(*) FROM schema_migrations"), nmig);
  assert_int_equal(q_int(db, "SELECT min(version) FROM schema_migrations"), 1);
  char name[32];
  q_text(db, "SELECT name FROM schema_migrations WHERE version = 1", name, sizeof name);
  assert_string_equal(name, sqlite_migrations[0].name);
  int64_t applied_at = q_int(db, "SELECT applied_at FROM schema_migrations WHERE version = 1");
  assert_true(applied_at > 1600000000000); /* unix ms */
  assert_int_equal(sqlite_db_schema_version(db), last);
  /* the tables and indexes of migration 1 exist */
  assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN "
                             "('users','refresh_tokens','refresh_tokens_family',"
                             "'refresh_tokens_expires_at')"),
                   4);
  char err[256];
  assert_int_equal(sqlite_db_migrate(db, err, sizeof err), 0); /* nothing pending */
  sqlite_db_close(db);

  db = open_ok(f->path); /* re-open: a no-op */
  assert_int_equal(q_int(db, "SELECT count(*) FROM schema_migrations"), nmig);
  assert_int_equal(q_int(db, "SELECT applied_at FROM schema_migrations WHERE version = 1"),
                   applied_at);
  sqlite_db_close(db);
  assert_non_null(strstr(logged(f), "applied migration 1"));
}

static void t_sqlite_future_version_refused(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  exec_ok(db, "INSERT INTO schema_migrations VALUES (999, 'from the future', 0)");
  sqlite_db_close(db);
  db = NULL;
  char err[256];
  assert_int_equal(sqlite_db_open(f->path, &db, err, sizeof err), -ENOTSUP);
  assert_null(db);
  assert_non_null(strstr(err, "999"));
  assert_non_null(strstr(err, "newer"));
}

/* The binary's own migrations followed by extra ones numbered after its
 * last version (the database already records every binary migration, so
 * a test list must contain them all). Returns the list length. */
static size_t with_extra(sqlite_migration_t *out, const sqlite_migration_t *extra, size_t n) {
  size_t k = sqlite_migrations_count;
  memcpy(out, sqlite_migrations, k * sizeof *out);
  memcpy(out + k, extra, n * sizeof *out);
  return k + n;
}

static void t_sqlite_failing_migration(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  char err[256];
  const int last = sqlite_migrations[sqlite_migrations_count - 1].version;
  sqlite_migration_t list[64];
  const sqlite_migration_t bad[] = {
      {last + 1, "bad", "CREATE TABLE t2(x); INSERT INTO no_such_table VALUES (1);"},
  };
  size_t n = with_extra(list, bad, 1);
  assert_int_equal(sqlite_db_apply_migrations(db, list, n, err, sizeof err), -EIO);
  char want[64];
  snprintf(want, sizeof want, "migration %d (bad)", last + 1);
  assert_non_null(strstr(err, want));
  assert_non_null(strstr(err, "no_such_table"));
  /* rolled back: neither the table nor the record */
  assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 't2'"), 0);
  assert_int_equal(sqlite_db_schema_version(db), last);
  assert_true(sqlite3_get_autocommit(sqlite_db_handle(db)));

  const sqlite_migration_t good[] = {
      {last + 1, "t2", "CREATE TABLE t2(x); INSERT INTO t2 VALUES (42);"},
      {last + 2, "t3", "CREATE TABLE t3(y);"},
  };
  n = with_extra(list, good, 2);
  assert_int_equal(sqlite_db_apply_migrations(db, list, n, err, sizeof err), 2);
  assert_int_equal(q_int(db, "SELECT x FROM t2"), 42);
  assert_int_equal(sqlite_db_schema_version(db), last + 2);
  assert_int_equal(sqlite_db_apply_migrations(db, list, n, err, sizeof err), 0);
  /* this binary does not know them */
  assert_int_equal(sqlite_db_migrate(db, err, sizeof err), -ENOTSUP);
  snprintf(want, sizeof want, "version %d (t2)", last + 1);
  assert_non_null(strstr(err, want));
  sqlite_db_close(db);
}

static void t_sqlite_bad_migration_list(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  char err[256];
  const sqlite_migration_t unordered[] = {sqlite_migrations[0], {3, "c", "SELECT 1"}, {2, "b", "SELECT 1"}};
  assert_int_equal(sqlite_db_apply_migrations(db, unordered, 3, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "out of order"));
  const sqlite_migration_t dup[] = {sqlite_migrations[0], {1, "again", "SELECT 1"}};
  assert_int_equal(sqlite_db_apply_migrations(db, dup, 2, err, sizeof err), -EINVAL);
  const sqlite_migration_t zero[] = {{0, "zero", "SELECT 1"}};
  assert_int_equal(sqlite_db_apply_migrations(db, zero, 1, err, sizeof err), -EINVAL);
  const sqlite_migration_t nosql[] = {sqlite_migrations[0], {2, "nosql", NULL}};
  assert_int_equal(sqlite_db_apply_migrations(db, nosql, 2, err, sizeof err), -EINVAL);
  assert_int_equal(sqlite_db_apply_migrations(db, NULL, 1, err, sizeof err), -EINVAL);
  assert_int_equal(sqlite_db_apply_migrations(NULL, sqlite_migrations, 1, err, sizeof err), -EINVAL);
  /* an empty list cannot account for the recorded versions */
  assert_int_equal(sqlite_db_apply_migrations(db, NULL, 0, err, sizeof err), -ENOTSUP);
  assert_int_equal(sqlite_db_schema_version(db),
                   sqlite_migrations[sqlite_migrations_count - 1].version);
  sqlite_db_close(db);
}

/* Backend failures: -EIO, a log line with SQLite's message, healthy()
 * false until an operation succeeds. query_only makes every write fail. */
static void t_sqlite_io_error_unhealthy(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  users_store_t *s;
  assert_int_equal(users_sqlite_open(db, &s), 0);
  user_rec_t u;
  assert_int_equal(s->ops->user_create(s, "alice", "A", HASH1, 1, &u), 0);
  refresh_rec_t r = mkrt(1, 7, u.id, 9000), next = mkrt(2, 7, u.id, 9000), got;
  assert_int_equal(s->ops->refresh_insert(s, &r), 0);

  exec_ok(db, "PRAGMA query_only=1");
  assert_int_equal(s->ops->user_create(s, "bob", "B", HASH1, 1, NULL), -EIO);
  assert_false(s->ops->healthy(s));
  assert_non_null(strstr(logged(f), "users user_create"));
  assert_non_null(strstr(logged(f), "readonly"));
  assert_non_null(strstr(logged(f), "\"component\":\"store\""));
  assert_int_equal(s->ops->user_set_password_hash(s, u.id, HASH2), -EIO);
  refresh_rec_t r3 = mkrt(3, 7, u.id, 9000);
  assert_int_equal(s->ops->refresh_insert(s, &r3), -EIO);
  assert_int_equal(s->ops->refresh_rotate(s, r.token_hash, &next), -EIO);
  assert_int_equal(s->ops->refresh_revoke(s, r.token_hash), -EIO);
  assert_int_equal(s->ops->refresh_revoke_family(s, r.family), -EIO);
  assert_int_equal(s->ops->refresh_purge_expired(s, 100000), -EIO);
  assert_false(s->ops->healthy(s));
  assert_true(sqlite3_get_autocommit(sqlite_db_handle(db))); /* no transaction left open */

  /* a successful query restores health; nothing was changed */
  assert_int_equal(s->ops->refresh_get(s, r.token_hash, &got), 0);
  assert_true(s->ops->healthy(s));
  assert_false(got.used);
  assert_false(got.revoked);
  assert_int_equal(s->ops->user_by_id(s, u.id, &u), 0);
  assert_string_equal(u.password_hash, HASH1);

  exec_ok(db, "PRAGMA query_only=0");
  assert_int_equal(s->ops->refresh_rotate(s, r.token_hash, &next), 0);
  s->ops->close(s);
  sqlite_db_close(db);
}

/* A failure inside rotate's transaction after the UPDATE (the INSERT of
 * the successor is aborted by a trigger): old stays unused. */
static void t_sqlite_rotate_rollback(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  users_store_t *s;
  assert_int_equal(users_sqlite_open(db, &s), 0);
  int64_t uid = mkuser(s, "alice");
  refresh_rec_t old = mkrt(1, 7, uid, 9000), next = mkrt(2, 7, uid, 9000), got;
  assert_int_equal(s->ops->refresh_insert(s, &old), 0);
  exec_ok(db, "CREATE TRIGGER boom BEFORE INSERT ON refresh_tokens "
              "BEGIN SELECT RAISE(ABORT, 'injected fault'); END");
  assert_int_equal(s->ops->refresh_rotate(s, old.token_hash, &next), -EIO);
  assert_false(s->ops->healthy(s));
  assert_non_null(strstr(logged(f), "injected fault"));
  assert_true(sqlite3_get_autocommit(sqlite_db_handle(db)));
  assert_int_equal(s->ops->refresh_get(s, old.token_hash, &got), 0);
  assert_false(got.used);
  assert_int_equal(s->ops->refresh_get(s, next.token_hash, &got), -ENOENT);
  exec_ok(db, "DROP TRIGGER boom");
  assert_int_equal(s->ops->refresh_rotate(s, old.token_hash, &next), 0);
  assert_true(s->ops->healthy(s));
  s->ops->close(s);
  sqlite_db_close(db);
}

/* Rows written behind the store's back beyond its limits are reported,
 * not truncated. */
static void t_sqlite_row_beyond_limits(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  users_store_t *s;
  assert_int_equal(users_sqlite_open(db, &s), 0);
  exec_ok(db, "INSERT INTO users VALUES (5, 'a-username-longer-than-thirty-two-bytes', 'd', 'h', 1)");
  exec_ok(db, "INSERT INTO users VALUES (6, 'ok', 'd', 'h', 1)");
  exec_ok(db, "INSERT INTO refresh_tokens(token_hash, family, user_id, created_at, expires_at) "
              "VALUES (zeroblob(32), x'0102', 6, 1, 2)");
  exec_ok(db, "INSERT INTO refresh_tokens(token_hash, family, user_id, created_at, expires_at) "
              "VALUES (x'01', zeroblob(16), 6, 1, 2)");
  user_rec_t u;
  assert_int_equal(s->ops->user_by_id(s, 5, &u), -EIO);
  assert_false(s->ops->healthy(s));
  assert_non_null(strstr(logged(f), "exceeds the field limits"));
  assert_int_equal(s->ops->user_by_id(s, 6, &u), 0);
  assert_true(s->ops->healthy(s));
  uint8_t zero[32] = {0};
  refresh_rec_t r;
  assert_int_equal(s->ops->refresh_get(s, zero, &r), -EIO);
  assert_non_null(strstr(logged(f), "malformed hash or family"));
  s->ops->close(s);
  sqlite_db_close(db);
}

static void t_sqlite_open_store_errors(void **state) {
  fx_t *f = *state;
  users_store_t *s = (users_store_t *)(uintptr_t)1;
  assert_int_equal(users_sqlite_open(NULL, &s), -EINVAL);
  sqlite_db_t *db = open_ok(f->path);
  assert_int_equal(users_sqlite_open(db, NULL), -EINVAL);
  /* schema missing: preparing fails */
  exec_ok(db, "PRAGMA foreign_keys=OFF; DROP TABLE refresh_tokens");
  assert_int_equal(users_sqlite_open(db, &s), -EIO);
  assert_true(s == (users_store_t *)(uintptr_t)1);
  assert_non_null(strstr(logged(f), "no such table: refresh_tokens"));
  sqlite_db_close(db);
}

/* The exact row count after the concurrent creation of part 1. */
static void t_sqlite_concurrent_rows(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  users_store_t *s;
  assert_int_equal(users_sqlite_open(db, &s), 0);
  concurrent_create(s);
  assert_int_equal(q_int(db, "SELECT count(*) FROM users"), NNAMES);
  s->ops->close(s);
  sqlite_db_close(db);
}

typedef struct {
  users_store_t *s;
  atomic_int done;
  int r;
} lthread_t;

static void *locked_create(void *arg) {
  lthread_t *t = arg;
  t->r = t->s->ops->user_create(t->s, "waiter", "W", HASH1, 1, NULL);
  atomic_store(&t->done, 1);
  return NULL;
}

/* A store operation waits while another party holds the db lock (as a
 * store does across a transaction). */
static void t_sqlite_lock_excludes_stores(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  users_store_t *s;
  assert_int_equal(users_sqlite_open(db, &s), 0);
  lthread_t t = {.s = s};
  pthread_t th;
  sqlite_db_lock(db);
  assert_int_equal(pthread_create(&th, NULL, locked_create, &t), 0);
  struct timespec ts = {0, 100 * 1000 * 1000};
  nanosleep(&ts, NULL);
  assert_int_equal(atomic_load(&t.done), 0);
  assert_int_equal(q_int(db, "SELECT count(*) FROM users"), 0);
  sqlite_db_unlock(db);
  pthread_join(th, NULL);
  assert_int_equal(t.r, 0);
  assert_int_equal(q_int(db, "SELECT count(*) FROM users"), 1);
  s->ops->close(s);
  sqlite_db_close(db);
}

/* Closing the db with a statement still prepared: logged, and the file is
 * really closed once that statement is finalized (ASan checks no leak). */
static void t_sqlite_close_with_open_statement(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(sqlite_db_handle(db), "SELECT 1", -1, &st, NULL), SQLITE_OK);
  sqlite_db_close(db);
  assert_non_null(strstr(logged(f), "a store was not closed"));
  assert_int_equal(sqlite3_step(st), SQLITE_ROW); /* still usable: the close was deferred */
  sqlite3_finalize(st);
  sqlite_db_close(NULL);
}

/* Data survives close and re-open (the file, not a cache, holds it). */
static void t_sqlite_persistence(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  users_store_t *s;
  assert_int_equal(users_sqlite_open(db, &s), 0);
  user_rec_t a, got;
  assert_int_equal(s->ops->user_create(s, "alice", "A", HASH1, 1, &a), 0);
  refresh_rec_t r = mkrt(1, 7, a.id, 9000);
  assert_int_equal(s->ops->refresh_insert(s, &r), 0);
  s->ops->close(s);
  sqlite_db_close(db);
  db = open_ok(f->path);
  assert_int_equal(users_sqlite_open(db, &s), 0);
  assert_int_equal(s->ops->user_by_name(s, "alice", &got), 0);
  assert_user_equal(&got, &a);
  refresh_rec_t rg;
  assert_int_equal(s->ops->refresh_get(s, r.token_hash, &rg), 0);
  assert_rt_equal(&rg, &r);
  /* deleting a user cascades to their tokens (foreign_keys=ON) */
  exec_ok(db, "DELETE FROM users WHERE username = 'alice'");
  assert_int_equal(s->ops->refresh_get(s, r.token_hash, &rg), -ENOENT);
  s->ops->close(s);
  sqlite_db_close(db);
}

#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void) {
  log_set_level(LOG_LEVEL_WARN); /* the suite's "applied migration" lines are noise */
  users_store_suite_use(sqlite_make, sqlite_destroy);
  const struct CMUnitTest tests[] = {
      USERS_STORE_SUITE_TESTS,
      FX_TEST(t_sqlite_data_dir_created),
      FX_TEST(t_sqlite_open_errors),
      FX_TEST(t_sqlite_not_a_database),
      FX_TEST(t_sqlite_pragmas),
      FX_TEST(t_sqlite_migrations_once),
      FX_TEST(t_sqlite_future_version_refused),
      FX_TEST(t_sqlite_failing_migration),
      FX_TEST(t_sqlite_bad_migration_list),
      FX_TEST(t_sqlite_io_error_unhealthy),
      FX_TEST(t_sqlite_rotate_rollback),
      FX_TEST(t_sqlite_row_beyond_limits),
      FX_TEST(t_sqlite_open_store_errors),
      FX_TEST(t_sqlite_concurrent_rows),
      FX_TEST(t_sqlite_lock_excludes_stores),
      FX_TEST(t_sqlite_close_with_open_statement),
      FX_TEST(t_sqlite_persistence),
  };
  return cmocka_run_group_tests_name("users_store", tests, NULL, NULL);
}
