/* Unit tests for the notifications store on SQLite.
 *
 * Part 1 is the backend-independent suite (notifications_store_suite.h,
 * shared with test_notifications_store_redis.c), each test on a fresh
 * database in its own mkdtemp directory. Part 2 is what is specific to
 * SQLite: expired rows are deleted (not only hidden), a failing batch
 * fails every op in it and turns ready() false until one succeeds. */
#include <ftw.h>
#include <sys/stat.h>

#include "core/log.h"
#include "notifications_store_suite.h"
#include "store/sqlite/notifications_sqlite.h"
#include "store/sqlite/sqlite_db.h"

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static struct {
  char dir[64];
  sqlite_db_t *db;
} cur;

static int64_t read_clock(void *arg) { return *(int64_t *)arg; }

static notif_store_t *sqlite_make(uv_loop_t *loop, int64_t *clock) {
  snprintf(cur.dir, sizeof cur.dir, "/tmp/storm-notif-XXXXXX");
  if (!mkdtemp(cur.dir)) return NULL;
  char err[256];
  if (sqlite_db_open(cur.dir, &cur.db, err, sizeof err) != 0) {
    fprintf(stderr, "sqlite_db_open: %s\n", err);
    return NULL;
  }
  notif_sqlite_opts_t o = {.loop = loop, .db = cur.db, .clock = read_clock, .clock_arg = clock};
  notif_store_t *s = NULL;
  return notif_sqlite_open(&o, &s) == 0 ? s : NULL;
}

static void sqlite_destroy(notif_store_t *s) {
  s->ops->close(s);
  sqlite_db_close(cur.db);
  cur.db = NULL;
  nftw(cur.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ==== part 2 ==== */

static int64_t count_rows(const char *where) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM notifications %s", where);
  sqlite_db_lock(cur.db);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(sqlite_db_handle(cur.db), sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite_db_unlock(cur.db);
  return n;
}

static void exec_sql(const char *sql) {
  sqlite_db_lock(cur.db);
  assert_int_equal(sqlite3_exec(sqlite_db_handle(cur.db), sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite_db_unlock(cur.db);
}

static void t_expired_rows_are_purged(void **state) {
  nctx_t *c = NC(state);
  int64_t t0 = c->clock;
  (void)n_muted(c, c->uid, 1); /* the first batch runs the global purge: now not due for a minute */
  c->clock = t0 + 1;
  assert_int_equal(n_add_full(c, c->uid, 1, t0 - NOTIF_TTL_MS, "dm", "{}", 0), 0);
  assert_int_equal(n_add_full(c, c->uid + 1, 2, t0 - NOTIF_TTL_MS, "dm", "{}", 0), 0);
  assert_int_equal(count_rows(""), 2);
  nres_t r;
  n_list(c, c->uid, &r); /* deletes the caller's expired rows only */
  assert_int_equal(r.nitems, 0);
  assert_int_equal(count_rows(""), 1);
  /* The global purge runs within the first batch once a minute passed. */
  c->clock = t0 + 60000;
  assert_int_equal(n_add_full(c, c->uid + 2, 3, c->clock, "dm", "{}", 0), 0);
  assert_int_equal(count_rows(""), 1);
  assert_int_equal(count_rows("WHERE id = 3"), 1);
}

static void t_cap_trims_rows(void **state) {
  nctx_t *c = NC(state);
  for (int64_t i = 1; i <= 130; i++) assert_int_equal(n_add(c, c->uid, i), 0);
  assert_int_equal(count_rows(""), NOTIF_CAP);
  assert_int_equal(count_rows("WHERE id <= 30"), 0);
}

static void t_failed_batch(void **state) {
  nctx_t *c = NC(state);
  assert_int_equal(n_add(c, c->uid, 1), 0);
  exec_sql("ALTER TABLE notifications RENAME TO gone");
  log_set_level(LOG_LEVEL_ERROR + 1);
  assert_int_equal(n_add(c, c->uid, 2), -EIO);
  assert_false(c->s->ops->ready(c->s));
  nres_t r = {0};
  assert_int_equal(c->s->ops->list(c->s, c->uid, nres_list, &r), 0);
  assert_int_equal(c->s->ops->mark_read(c->s, c->uid, NULL, 0, nres_count, &r), 0);
  nwait(c, &r, 2);
  assert_int_equal(r.status, -EIO);
  assert_int_equal(r.n, 0);
  log_set_level(LOG_LEVEL_INFO);
  exec_sql("ALTER TABLE gone RENAME TO notifications");
  n_mute(c, c->uid, 3, true); /* a good batch: ready again */
  assert_true(c->s->ops->ready(c->s));
  n_list(c, c->uid, &r);
  assert_int_equal(r.nitems, 1);
}

static void t_duplicate_id_fails_only_its_add(void **state) {
  nctx_t *c = NC(state);
  log_set_level(LOG_LEVEL_ERROR + 1);
  nres_t a = {0}, b = {0}, d = {0};
  notif_t n = {.id = 5, .user_id = c->uid, .created_at = c->clock, .type = "dm", .payload = "{}",
               .payload_len = 2};
  assert_int_equal(c->s->ops->add(c->s, &n, nres_status, &a), 0);
  assert_int_equal(c->s->ops->add(c->s, &n, nres_status, &b), 0);
  n.id = 6;
  assert_int_equal(c->s->ops->add(c->s, &n, nres_status, &d), 0);
  nwait(c, &d, 1);
  log_set_level(LOG_LEVEL_INFO);
  assert_int_equal(a.status, 0);
  assert_int_equal(b.status, -EIO);
  assert_int_equal(d.status, 0);
  assert_true(c->s->ops->ready(c->s));
  assert_int_equal(count_rows(""), 2);
}

static void t_open_arguments(void **state) {
  (void)state;
  notif_store_t *s = NULL;
  notif_sqlite_opts_t o = {0};
  assert_int_equal(notif_sqlite_open(NULL, &s), -EINVAL);
  assert_int_equal(notif_sqlite_open(&o, &s), -EINVAL);
  assert_null(s);
}

int main(void) {
  log_set_level(LOG_LEVEL_WARN);
  nsuite_make = sqlite_make;
  nsuite_destroy = sqlite_destroy;
  const struct CMUnitTest tests[] = {
      NOTIF_STORE_SUITE_TESTS,
      NSUITE_TEST(t_expired_rows_are_purged),
      NSUITE_TEST(t_cap_trims_rows),
      NSUITE_TEST(t_failed_batch),
      NSUITE_TEST(t_duplicate_id_fails_only_its_add),
      cmocka_unit_test(t_open_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
