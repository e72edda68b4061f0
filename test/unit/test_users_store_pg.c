/* Unit tests for the users store on PostgreSQL (and for pg_db: the pool,
 * migrations, connection loss), against the server at STORM_TEST_PG (a
 * libpq URL; scripts/infra.sh starts one). Unset: the binary fails with a
 * message, it never skips.
 *
 * Part 1 is the backend-independent suite (users_store_suite.h), the same
 * that test_users_store.c runs on SQLite. Every test runs in a schema of
 * its own (storm_t_<pid>_<n>, selected through the URL's search_path and
 * dropped afterwards), so tests never see each other's rows.
 * Part 2 tests what is specific to PostgreSQL: migrations (idempotent,
 * failing, future versions, two replicas racing), two pools as two
 * replicas, connection loss (pg_terminate_backend, a database refusing
 * connections: -EIO, readiness false, then recovery), limits. Tests that
 * cut connections do it in a database of their own, never the shared
 * one. */
#include <errno.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "core/log.h"
#include "pg_fixture.h"
#include "store/pg/pg_db.h"
#include "store/pg/users_pg.h"
#include "store/users_store.h"
#include "users_store_suite.h"

/* ==== PostgreSQL fixture helpers ==== */

static pg_db_t *open_db(const char *url, unsigned pool) {
  pg_db_t *db = NULL;
  char err[256] = "x";
  int r = pg_db_open(url, pool, &db, err, sizeof err);
  if (r != 0) fail_msg("pg_db_open: %s", err);
  assert_string_equal(err, "");
  return db;
}

static void sleep_ms_(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ==== part 1: the suite on PostgreSQL ==== */

static struct {
  char schema[64];
  pg_db_t *db;
  users_store_t *s;
} cur;

static users_store_t *pg_make(void) {
  char url[1024];
  new_schema(cur.schema, sizeof cur.schema, url, sizeof url);
  char err[256];
  if (pg_db_open(url, 4, &cur.db, err, sizeof err) != 0) {
    fprintf(stderr, "pg_db_open: %s\n", err);
    return NULL;
  }
  users_pg_opts_t o = {.migrate_on_open = true};
  if (users_pg_open(cur.db, &o, &cur.s) != 0) return NULL;
  return cur.s;
}

static void pg_destroy(users_store_t *s) {
  s->ops->close(s);
  pg_db_close(cur.db);
  drop_schema(cur.schema);
  memset(&cur, 0, sizeof cur);
}

/* ==== part 2: PostgreSQL ==== */

/* Per-test fixture: a schema, its URL, and the log captured in a memfd
 * (failures are logged; we check those lines and keep the output clean). */
typedef struct {
  char schema[64];
  char url[1024];
  char dbname[64]; /* a database of the test's own, when it cuts connections */
  int log_fd;
} fx_t;

static int fx_setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  new_schema(f->schema, sizeof f->schema, f->url, sizeof f->url);
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
  drop_schema(f->schema);
  if (f->dbname[0]) {
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->dbname);
    admin_exec(g_admin, sql);
  }
  free(f);
  return 0;
}

static const char *logged(fx_t *f) {
  static char buf[32768];
  ssize_t n = pread(f->log_fd, buf, sizeof buf - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

static size_t count_of(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

/* Moves the fixture into a database of its own (public schema), for the
 * tests that refuse or cut its connections. */
static void own_database(fx_t *f) {
  snprintf(f->dbname, sizeof f->dbname, "storm_tdb_%d_%d", (int)getpid(), ++g_seq);
  char sql[160];
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", f->dbname);
  admin_exec(g_admin, sql);
  make_url(f->url, sizeof f->url, f->dbname, "public", f->dbname);
}

/* Refuses new connections to the fixture's database and kills the
 * existing ones; waits until they are gone. */
static void cut(fx_t *f, bool refuse) {
  char sql[256];
  snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS %s", f->dbname,
           refuse ? "false" : "true");
  admin_exec(g_admin, sql);
  if (!refuse) return;
  snprintf(sql, sizeof sql,
           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'",
           f->dbname);
  admin_exec(g_admin, sql);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'",
           f->dbname);
  for (int i = 0; i < 500 && admin_int(g_admin, sql) > 0; i++) sleep_ms_(10);
  assert_int_equal(admin_int(g_admin, sql), 0);
}

/* Kills the fixture database's backends (new connections still allowed). */
static void kill_backends(fx_t *f) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'",
           f->dbname);
  assert_true(admin_int(g_admin, sql) > 0);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'",
           f->dbname);
  for (int i = 0; i < 500 && admin_int(g_admin, sql) > 0; i++) sleep_ms_(10);
}

static const int LAST = 4; /* pg_migrations' last version, checked below */

static void t_pg_migrations(void **state) {
  fx_t *f = *state;
  assert_int_equal(pg_migrations[pg_migrations_count - 1].version, LAST);
  pg_db_t *db = open_db(f->url, 2);
  assert_int_equal(pg_db_schema_version(db), 0);
  users_store_t *s = (users_store_t *)(uintptr_t)1;
  /* not migrated: the store refuses to open without migrate_on_open */
  assert_int_equal(users_pg_open(db, NULL, &s), -EPROTO);
  assert_true(s == (users_store_t *)(uintptr_t)1);
  assert_non_null(strstr(logged(f), "storm migrate"));
  char err[256];
  assert_int_equal(pg_db_migrate(db, err, sizeof err), (int)pg_migrations_count);
  assert_string_equal(err, "");
  assert_int_equal(pg_db_schema_version(db), LAST);
  assert_int_equal(pg_db_migrate(db, err, sizeof err), 0); /* idempotent */
  assert_non_null(strstr(logged(f), "applied migration 1 (users)"));
  assert_int_equal(pg_db_require_schema(db, 1, false, err, sizeof err), 0);
  assert_int_equal(pg_db_require_schema(db, LAST + 1, false, err, sizeof err), -EPROTO);
  PGconn *c = peek(f->url);
  assert_int_equal(admin_int(c, "SELECT count(*) FROM schema_migrations"),
                   (int64_t)pg_migrations_count);
  assert_true(admin_int(c, "SELECT min(applied_at) FROM schema_migrations") > 1600000000000);
  /* the tables are in the test's schema, not in public */
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM pg_tables WHERE schemaname = '%s' AND tablename IN "
           "('users','refresh_tokens','channels','members','messages','node_leases','media',"
           "'attachments')",
           f->schema);
  assert_int_equal(admin_int(c, sql), 8);

  /* a failing migration is rolled back whole: no table, no record */
  pg_migration_t list[8];
  memcpy(list, pg_migrations, pg_migrations_count * sizeof *list);
  list[pg_migrations_count] =
      (pg_migration_t){LAST + 1, "bad", "CREATE TABLE t2(x int); INSERT INTO no_such_table VALUES (1)"};
  assert_int_equal(pg_db_apply_migrations(db, list, pg_migrations_count + 1, err, sizeof err), -EIO);
  assert_non_null(strstr(err, "migration 5 (bad)"));
  assert_non_null(strstr(err, "no_such_table"));
  assert_int_equal(admin_int(c, "SELECT count(*) FROM pg_tables WHERE tablename = 't2'"), 0);
  assert_int_equal(pg_db_schema_version(db), LAST);
  /* a good one after it; then this binary no longer knows the database */
  list[pg_migrations_count] = (pg_migration_t){LAST + 1, "t2", "CREATE TABLE t2(x int)"};
  assert_int_equal(pg_db_apply_migrations(db, list, pg_migrations_count + 1, err, sizeof err), 1);
  assert_int_equal(pg_db_schema_version(db), LAST + 1);
  assert_int_equal(pg_db_migrate(db, err, sizeof err), -ENOTSUP);
  assert_non_null(strstr(err, "version 5 (t2)"));
  assert_non_null(strstr(err, "newer"));
  assert_int_equal(users_pg_open(db, NULL, &s), -ENOTSUP);
  users_pg_opts_t mo = {.migrate_on_open = true};
  assert_int_equal(users_pg_open(db, &mo, &s), -ENOTSUP);
  /* malformed lists */
  pg_migration_t bad[2] = {{2, "b", "SELECT 1"}, {1, "a", "SELECT 1"}};
  assert_int_equal(pg_db_apply_migrations(db, bad, 2, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "out of order"));
  bad[0] = (pg_migration_t){1, "nosql", NULL};
  assert_int_equal(pg_db_apply_migrations(db, bad, 1, err, sizeof err), -EINVAL);
  assert_int_equal(pg_db_apply_migrations(db, NULL, 1, err, sizeof err), -EINVAL);
  assert_int_equal(pg_db_apply_migrations(NULL, pg_migrations, 1, err, sizeof err), -EINVAL);
  PQfinish(c);
  pg_db_close(db);
}

typedef struct {
  const char *url;
  atomic_int *go;
  int migrate_r, open_r;
} mthread_t;

/* One replica starting: its own pool, migrate_on_open. */
static void *replica_start(void *arg) {
  mthread_t *t = arg;
  pg_db_t *db = NULL;
  char err[256];
  if (pg_db_open(t->url, 2, &db, err, sizeof err) != 0) {
    t->migrate_r = t->open_r = -999;
    return NULL;
  }
  while (!atomic_load(t->go)) {
  }
  t->migrate_r = pg_db_migrate(db, err, sizeof err);
  users_store_t *s = NULL;
  users_pg_opts_t o = {.migrate_on_open = true};
  t->open_r = users_pg_open(db, &o, &s);
  if (s) s->ops->close(s);
  pg_db_close(db);
  return NULL;
}

/* Six replicas migrate one empty schema at once: every migration is
 * applied exactly once, nobody fails. */
static void t_pg_migrations_concurrent(void **state) {
  fx_t *f = *state;
  enum { N = 6 };
  pthread_t th[N];
  mthread_t mt[N];
  atomic_int go = 0;
  for (int i = 0; i < N; i++) {
    mt[i] = (mthread_t){.url = f->url, .go = &go};
    assert_int_equal(pthread_create(&th[i], NULL, replica_start, &mt[i]), 0);
  }
  sleep_ms_(100);
  atomic_store(&go, 1);
  int applied = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    assert_true(mt[i].migrate_r >= 0);
    assert_int_equal(mt[i].open_r, 0);
    applied += mt[i].migrate_r;
  }
  assert_int_equal(applied, (int)pg_migrations_count);
  PGconn *c = peek(f->url);
  assert_int_equal(admin_int(c, "SELECT count(*) FROM schema_migrations"),
                   (int64_t)pg_migrations_count);
  PQfinish(c);
  assert_int_equal(count_of(logged(f), "applied migration 1 "), 1);
}

static void t_pg_open_errors(void **state) {
  fx_t *f = *state;
  pg_db_t *db = (pg_db_t *)(uintptr_t)1;
  char err[256];
  assert_int_equal(pg_db_open(NULL, 1, &db, err, sizeof err), -EINVAL);
  assert_int_equal(pg_db_open("", 1, &db, err, sizeof err), -EINVAL);
  assert_int_equal(pg_db_open(f->url, PG_DB_POOL_MAX + 1, &db, err, sizeof err), -EINVAL);
  assert_int_equal(pg_db_open(f->url, 1, NULL, err, sizeof err), -EINVAL);
  /* nothing listens on port 1 (loopback only) */
  assert_int_equal(pg_db_open("postgresql://postgres@127.0.0.1:1/x", 1, &db, err, sizeof err), -EIO);
  assert_true(strlen(err) > 0);
  assert_int_equal(pg_db_open("postgresql://postgres@127.0.0.1:1/x", 1, &db, NULL, 0), -EIO);
  /* a database that does not exist */
  char url[1024];
  make_url(url, sizeof url, "storm_no_such_db", "public", "x");
  assert_int_equal(pg_db_open(url, 1, &db, err, sizeof err), -EIO);
  assert_non_null(strstr(err, "storm_no_such_db"));
  assert_true(db == (pg_db_t *)(uintptr_t)1);
  users_store_t *s;
  assert_int_equal(users_pg_open(NULL, NULL, &s), -EINVAL);
  db = open_db(f->url, 1);
  assert_true(pg_db_ready(db));
  assert_true(pg_db_ping(db));
  assert_int_equal(users_pg_open(db, NULL, NULL), -EINVAL);
  pg_db_close(db);
  pg_db_close(NULL);
}

/* Two replicas (two pools) rotate the same token at once: one wins. */
typedef struct {
  users_store_t *s;
  const uint8_t *old;
  refresh_rec_t next;
  int r;
  atomic_int *go;
} xrot_t;

static void *xrotate(void *arg) {
  xrot_t *t = arg;
  while (!atomic_load(t->go)) {
  }
  t->r = t->s->ops->refresh_rotate(t->s, t->old, &t->next);
  return NULL;
}

static void t_pg_two_replicas_rotate(void **state) {
  fx_t *f = *state;
  pg_db_t *db[2] = {open_db(f->url, 4), open_db(f->url, 4)};
  users_store_t *s[2];
  users_pg_opts_t o = {.migrate_on_open = true};
  assert_int_equal(users_pg_open(db[0], &o, &s[0]), 0);
  assert_int_equal(users_pg_open(db[1], &o, &s[1]), 0);
  int64_t uid = mkuser(s[0], "alice");
  user_rec_t u;
  assert_int_equal(s[1]->ops->user_by_id(s[1], uid, &u), 0); /* one database */
  assert_int_equal(s[1]->ops->user_create(s[1], "alice", "x", HASH1, 1, NULL), -EEXIST);
  for (int round = 0; round < 5; round++) {
    refresh_rec_t old = mkrt((uint8_t)(100 + round), 7, uid, 9000);
    assert_int_equal(s[0]->ops->refresh_insert(s[0], &old), 0);
    enum { N = 8 };
    pthread_t th[N];
    xrot_t xt[N];
    atomic_int go = 0;
    for (int i = 0; i < N; i++) {
      xt[i] = (xrot_t){.s = s[i % 2], .old = old.token_hash,
                       .next = mkrt((uint8_t)(10 * round + i), 7, uid, 9000), .go = &go};
      assert_int_equal(pthread_create(&th[i], NULL, xrotate, &xt[i]), 0);
    }
    atomic_store(&go, 1);
    int won = 0, already = 0;
    for (int i = 0; i < N; i++) {
      pthread_join(th[i], NULL);
      won += xt[i].r == 0;
      already += xt[i].r == -EALREADY;
    }
    assert_int_equal(won, 1);
    assert_int_equal(already, N - 1);
  }
  s[0]->ops->close(s[0]);
  s[1]->ops->close(s[1]);
  pg_db_close(db[0]);
  pg_db_close(db[1]);
}

/* Text PostgreSQL would refuse is -EINVAL before any round trip; rows
 * beyond the limits written behind the store's back are -EIO. */
static void t_pg_limits(void **state) {
  fx_t *f = *state;
  pg_db_t *db = open_db(f->url, 2);
  users_store_t *s;
  users_pg_opts_t o = {.migrate_on_open = true};
  assert_int_equal(users_pg_open(db, &o, &s), 0);
  assert_int_equal(s->ops->user_create(s, "bad\xC3", "d", HASH1, 1, NULL), -EINVAL);
  assert_int_equal(s->ops->user_create(s, "ok", "\xFF", HASH1, 1, NULL), -EINVAL);
  assert_int_equal(s->ops->user_by_name(s, "bad\xC3", NULL), -ENOENT);
  PGconn *c = peek(f->url);
  admin_exec(c, "INSERT INTO users VALUES (5, 'a-username-longer-than-thirty-two-bytes', 'd', 'h', 1)");
  admin_exec(c, "INSERT INTO users VALUES (6, 'ok', 'd', 'h', 1)");
  user_rec_t u;
  assert_int_equal(s->ops->user_by_id(s, 5, &u), -EIO);
  assert_false(s->ops->healthy(s));
  assert_non_null(strstr(logged(f), "exceeds the field limits"));
  assert_int_equal(s->ops->user_by_id(s, 6, &u), 0);
  assert_true(s->ops->healthy(s));
  /* a backend error that is not a constraint: -EIO with PostgreSQL's text */
  admin_exec(c, "ALTER TABLE refresh_tokens ADD CONSTRAINT never CHECK (created_at < 0)");
  refresh_rec_t r = mkrt(1, 1, 6, 9000);
  assert_int_equal(s->ops->refresh_insert(s, &r), -EIO);
  assert_false(s->ops->healthy(s));
  assert_non_null(strstr(logged(f), "never"));
  assert_non_null(strstr(logged(f), "23514"));
  /* rotate fails inside its transaction: the old token stays unused */
  admin_exec(c, "ALTER TABLE refresh_tokens DROP CONSTRAINT never");
  assert_int_equal(s->ops->refresh_insert(s, &r), 0);
  admin_exec(c, "ALTER TABLE refresh_tokens ADD CONSTRAINT never2 CHECK (created_at <> 4242) NOT VALID");
  refresh_rec_t next = mkrt(2, 1, 6, 9000);
  next.created_at = 4242;
  assert_int_equal(s->ops->refresh_rotate(s, r.token_hash, &next), -EIO);
  refresh_rec_t got;
  assert_int_equal(s->ops->refresh_get(s, r.token_hash, &got), 0);
  assert_false(got.used);
  assert_true(s->ops->healthy(s));
  PQfinish(c);
  s->ops->close(s);
  pg_db_close(db);
}

/* The database refuses connections (and the open ones are killed):
 * -EIO, unhealthy, not ready, logged once; then it comes back. */
static void t_pg_unreachable_then_back(void **state) {
  fx_t *f = *state;
  own_database(f);
  pg_db_t *db = open_db(f->url, 3);
  users_store_t *s;
  users_pg_opts_t o = {.migrate_on_open = true};
  assert_int_equal(users_pg_open(db, &o, &s), 0);
  int64_t uid = mkuser(s, "alice");
  cut(f, true);
  user_rec_t u;
  assert_int_equal(s->ops->user_by_id(s, uid, &u), -EIO);
  assert_false(s->ops->healthy(s));
  assert_false(pg_db_ready(db));
  for (int i = 0; i < 5; i++) assert_int_equal(s->ops->user_create(s, "bob", "B", HASH1, 1, NULL), -EIO);
  assert_false(pg_db_ping(db));
  assert_false(pg_db_ready(db));
  assert_int_equal(count_of(logged(f), "the database is unreachable"), 1);
  cut(f, false);
  assert_true(pg_db_ping(db)); /* a ping looks at once, whatever the retry spacing */
  assert_true(pg_db_ready(db));
  assert_int_equal(s->ops->user_by_id(s, uid, &u), 0);
  assert_true(s->ops->healthy(s));
  assert_int_equal(s->ops->user_create(s, "bob", "B", HASH1, 1, NULL), 0);
  assert_non_null(strstr(logged(f), "reachable again"));
  /* a second outage is logged again */
  cut(f, true);
  assert_int_equal(s->ops->user_by_id(s, uid, &u), -EIO);
  assert_int_equal(count_of(logged(f), "the database is unreachable"), 2);
  cut(f, false);
  sleep_ms_(PG_DB_RETRY_MS + 100); /* without a ping: the next call retries itself */
  assert_int_equal(s->ops->user_by_id(s, uid, &u), 0);
  assert_true(pg_db_ready(db));
  s->ops->close(s);
  pg_db_close(db);
}

/* Backends killed while idle (pg_terminate_backend): the pool notices on
 * acquire and reconnects; calls keep working, prepared statements are
 * prepared again on the new sessions. */
static void t_pg_backends_killed_idle(void **state) {
  fx_t *f = *state;
  own_database(f);
  pg_db_t *db = open_db(f->url, 2);
  users_store_t *s;
  users_pg_opts_t o = {.migrate_on_open = true};
  assert_int_equal(users_pg_open(db, &o, &s), 0);
  int64_t uid = mkuser(s, "alice");
  user_rec_t u;
  for (int round = 0; round < 3; round++) {
    kill_backends(f);
    assert_int_equal(s->ops->user_by_id(s, uid, &u), 0);
    assert_string_equal(u.username, "alice");
    assert_int_equal(s->ops->user_by_name(s, "alice", &u), 0);
  }
  assert_true(pg_db_ready(db));
  s->ops->close(s);
  pg_db_close(db);
}

static const pg_stmt_t st_sleep = {"test_sleep", "SELECT pg_sleep(30)"};

typedef struct {
  fx_t *f;
} killer_t;

static void *killer(void *arg) {
  killer_t *k = arg;
  sleep_ms_(300);
  kill_backends(k->f);
  return NULL;
}

/* A backend killed during a statement: that call is -EIO (logged once),
 * the connection is reset on its next use, and the pool works on. */
static void t_pg_killed_in_flight(void **state) {
  fx_t *f = *state;
  own_database(f);
  pg_db_t *db = open_db(f->url, 1);
  pg_conn_t *c = pg_db_acquire(db);
  assert_non_null(c);
  pthread_t th;
  killer_t k = {f};
  assert_int_equal(pthread_create(&th, NULL, killer, &k), 0);
  assert_int_equal(pg_exec(c, &st_sleep, NULL, NULL, "test sleep"), -EIO);
  pthread_join(th, NULL);
  assert_false(pg_db_ready(db));
  assert_true(strncmp(pg_conn_sqlstate(c), "57P01", 5) == 0 || pg_conn_sqlstate(c)[0] == '\0');
  pg_db_release(db, c);
  assert_int_equal(count_of(logged(f), "the database is unreachable"), 1);
  assert_true(pg_db_ping(db));
  c = pg_db_acquire(db);
  assert_non_null(c);
  assert_int_equal(pg_cmd(c, "SELECT 1", "test"), 0);
  pg_db_release(db, c);
  pg_db_close(db);
}

/* pg_db_release rolls back a transaction a caller left open, and the
 * pool hands out at most pool_size connections. */
typedef struct {
  pg_db_t *db;
  atomic_int *got;
} waiter_t;

static void *waiter(void *arg) {
  waiter_t *w = arg;
  pg_conn_t *c = pg_db_acquire(w->db);
  atomic_store(w->got, 1);
  pg_db_release(w->db, c);
  return NULL;
}

static void t_pg_pool(void **state) {
  fx_t *f = *state;
  pg_db_t *db = open_db(f->url, 2);
  pg_conn_t *a = pg_db_acquire(db), *b = pg_db_acquire(db);
  assert_non_null(a);
  assert_non_null(b);
  assert_true(a != b);
  atomic_int got = 0;
  waiter_t w = {db, &got};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, waiter, &w), 0);
  sleep_ms_(100);
  assert_int_equal(atomic_load(&got), 0); /* both taken: it waits */
  assert_int_equal(pg_cmd(a, "BEGIN", "test"), 0);
  assert_int_equal(PQtransactionStatus(pg_conn_raw(a)), PQTRANS_INTRANS);
  pg_db_release(db, a);
  pthread_join(th, NULL);
  assert_int_equal(atomic_load(&got), 1);
  pg_conn_t *again = pg_db_acquire(db);
  assert_int_equal(PQtransactionStatus(pg_conn_raw(again)), PQTRANS_IDLE);
  /* a syntax error is -EIO with the state kept for the caller */
  assert_int_equal(pg_cmd(again, "SELEC 1", "test"), -EIO);
  assert_string_equal(pg_conn_sqlstate(again), "42601");
  assert_true(pg_db_ready(db)); /* an SQL error is not a lost connection */
  pg_db_release(db, again);
  pg_db_release(db, b);
  /* session settings */
  pg_conn_t *c = pg_db_acquire(db);
  assert_string_equal(PQparameterStatus(pg_conn_raw(c), "client_encoding"), "UTF8");
  assert_string_equal(PQparameterStatus(pg_conn_raw(c), "application_name"), f->schema);
  pg_db_release(db, c);
  pg_db_close(db);
}

#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void) {
  if (pg_fixture_start("test_users_store_pg", "storm_t") != 0) return 1;
  log_set_level(LOG_LEVEL_WARN);
  users_store_suite_use(pg_make, pg_destroy);
  const struct CMUnitTest tests[] = {
      USERS_STORE_SUITE_TESTS,
      FX_TEST(t_pg_migrations),
      FX_TEST(t_pg_migrations_concurrent),
      FX_TEST(t_pg_open_errors),
      FX_TEST(t_pg_two_replicas_rotate),
      FX_TEST(t_pg_limits),
      FX_TEST(t_pg_unreachable_then_back),
      FX_TEST(t_pg_backends_killed_idle),
      FX_TEST(t_pg_killed_in_flight),
      FX_TEST(t_pg_pool),
  };
  int r = cmocka_run_group_tests_name("users_store_pg", tests, NULL, NULL);
  pg_fixture_stop();
  return r;
}
