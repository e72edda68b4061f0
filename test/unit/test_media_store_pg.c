/* Unit tests for the media metadata store on PostgreSQL (media_pg.h),
 * against the server at STORM_TEST_PG (a libpq URL; scripts/infra.sh
 * starts one). Unset or unreachable: the binary fails with a message, it
 * never skips.
 *
 * Part 1 is the backend-independent suite (media_store_suite.h), the same
 * that test_media_service.c runs on SQLite. Part 2 is PostgreSQL's own:
 * the schema check at open, invalid UTF-8, a row beyond the limits
 * written behind the store's back, and a failing database (-EIO,
 * unhealthy, then healthy again). Every test runs in a schema of its own
 * (storm_tm_<pid>_<n>, through the URL's search_path, dropped after). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "core/log.h"
#include "pg_fixture.h"
#include "media_store_suite.h"
#include "store/pg/media_pg.h"
#include "store/pg/pg_db.h"

/* ---- part 1: the suite ---- */

static struct {
  char schema[64];
  char url[1024];
  pg_db_t *db;
} cur;

static media_store_t *pg_make(void) {
  new_schema(cur.schema, sizeof cur.schema, cur.url, sizeof cur.url);
  char err[256];
  if (pg_db_open(cur.url, 4, &cur.db, err, sizeof err) != 0) {
    fprintf(stderr, "pg_db_open: %s\n", err);
    return NULL;
  }
  media_store_t *s = NULL;
  media_pg_opts_t o = {.migrate_on_open = true};
  return media_pg_open(cur.db, &o, &s) == 0 ? s : NULL;
}

static void pg_destroy(media_store_t *s) {
  if (s) s->ops->close(s);
  pg_db_close(cur.db);
  drop_schema(cur.schema);
  memset(&cur, 0, sizeof cur);
}

/* ---- part 2: PostgreSQL's own ---- */

/* Runs sql in the current test schema, behind the store's back. */
static void peek_exec(const char *sql) {
  PGconn *c = peek(cur.url);
  admin_exec(c, sql);
  PQfinish(c);
}

static void t_pg_open(void **state) {
  media_store_t *s = NULL;
  assert_int_equal(media_pg_open(NULL, NULL, &s), -EINVAL);
  new_schema(cur.schema, sizeof cur.schema, cur.url, sizeof cur.url);
  char err[256];
  assert_int_equal(pg_db_open(cur.url, 2, &cur.db, err, sizeof err), 0);
  assert_int_equal(media_pg_open(cur.db, NULL, NULL), -EINVAL);
  /* an empty schema, not migrated: too old */
  assert_int_equal(media_pg_open(cur.db, NULL, &s), -EPROTO);
  assert_null(s);
  /* migrated: every migration of the binary, media's included */
  media_pg_opts_t o = {.migrate_on_open = true};
  assert_int_equal(media_pg_open(cur.db, &o, &s), 0);
  assert_true(pg_db_schema_version(cur.db) >= MEDIA_PG_SCHEMA_MIN);
  s->ops->close(s);
  /* a second open finds it up to date, without migrating */
  assert_int_equal(media_pg_open(cur.db, NULL, &s), 0);
  pg_destroy(s);
}

static void t_pg_errors(void **state) {
  media_store_t *s = pg_make();
  assert_non_null(s);
  /* PostgreSQL text refuses invalid UTF-8: refused before sending */
  media_rec_t r = mss_rec("k\xff", 1, "image/png", 1);
  assert_int_equal(s->ops->insert(s, &r), -EINVAL);
  assert_int_equal(s->ops->get(s, "k\xff", &r), -EINVAL);
  assert_int_equal(s->ops->remove(s, "k\xff", 1), -EINVAL);
  r = mss_rec("k", 1, "image/\xc3", 1);
  assert_int_equal(s->ops->insert(s, &r), -EINVAL);
  /* a row beyond the limits, written behind the store's back: -EIO */
  peek_exec("INSERT INTO media VALUES ('long', 1, 'a-mime-type-longer-than-31-bytes/x', 1, "
            "decode(repeat('00', 32), 'hex'), 1)");
  int devnull = open("/dev/null", O_WRONLY);
  log_set_fd(devnull); /* the failures below are logged */
  assert_int_equal(s->ops->get(s, "long", &r), -EIO);
  assert_false(s->ops->healthy(s));
  r = mss_rec("k", 1, "image/png", 1);
  assert_int_equal(s->ops->insert(s, &r), 0); /* an answer: healthy again */
  assert_true(s->ops->healthy(s));
  /* the table gone: every call -EIO and unhealthy */
  peek_exec("DROP TABLE media");
  assert_int_equal(s->ops->insert(s, &r), -EIO);
  assert_false(s->ops->healthy(s));
  assert_int_equal(s->ops->get(s, "k", &r), -EIO);
  assert_int_equal(s->ops->remove(s, "k", 1), -EIO);
  log_set_fd(2);
  close(devnull);
  pg_destroy(s);
}

int main(void) {
  if (pg_fixture_start("test_media_store_pg", "storm_tm") != 0) return 1;
  log_set_level(LOG_LEVEL_WARN);
  media_store_suite_use(pg_make, pg_destroy);
  const struct CMUnitTest tests[] = {
      MEDIA_STORE_SUITE_TESTS,
      cmocka_unit_test(t_pg_open),
      cmocka_unit_test(t_pg_errors),
  };
  int r = cmocka_run_group_tests_name("media_store_pg", tests, NULL, NULL);
  pg_fixture_stop();
  return r;
}
