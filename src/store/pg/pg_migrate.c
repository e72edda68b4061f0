/* pg_migrate.c — the migration runner of the PostgreSQL database
 * (contract in pg_db.h; the list is pg_migrations.c).
 *
 * One transaction per migration, each starting with an advisory lock
 * scoped to the transaction and to the schema the tables land in: two
 * replicas starting together serialize there, and the second re-reads
 * schema_migrations after the first committed, so it applies nothing
 * twice. The lock is released by COMMIT/ROLLBACK, even if the process
 * dies, so a crashed migrator cannot wedge the others. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "store/pg/pg_db.h"

/* "STRM" — the first key of the two-int advisory lock; the second is the
 * schema's hash, so migrations of different schemas do not wait on each
 * other. */
#define MIGRATE_LOCK_KEY 0x5354524D

static const pg_stmt_t st_lock = {
    "storm_migrate_lock",
    "SELECT pg_advisory_xact_lock(1398035021, hashtext(coalesce(current_schema(), '')))"};
static const pg_stmt_t st_versions = {"storm_migrate_versions",
                                      "SELECT version, name FROM schema_migrations ORDER BY version"};
static const pg_stmt_t st_record = {
    "storm_migrate_record",
    "INSERT INTO schema_migrations(version, name, applied_at) VALUES ($1::int4, $2::text, $3::int8)"};
static const pg_stmt_t st_has_table = {"storm_migrate_has_table",
                                       "SELECT to_regclass('schema_migrations') IS NOT NULL"};
static const pg_stmt_t st_max = {"storm_migrate_max",
                                 "SELECT coalesce(max(version), 0) FROM schema_migrations"};

_Static_assert(MIGRATE_LOCK_KEY == 1398035021, "the lock key in st_lock");

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_err(char *err, size_t errlen, const char *what, pg_conn_t *c) {
  if (!err || !errlen) return;
  char msg[400];
  snprintf(msg, sizeof msg, "%s", c && pg_conn_raw(c) ? PQerrorMessage(pg_conn_raw(c)) : "");
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
  snprintf(err, errlen, "%s%s%s", what, *msg ? ": " : "", msg);
}

static int check_list(const pg_migration_t *list, size_t n, char *err, size_t errlen) {
  if (n && !list) {
    if (err && errlen) snprintf(err, errlen, "no migration list");
    return -EINVAL;
  }
  for (size_t i = 0; i < n; i++) {
    if (list[i].version <= 0 || !list[i].name || !list[i].sql ||
        (i && list[i].version <= list[i - 1].version)) {
      if (err && errlen)
        snprintf(err, errlen, "migration list: entry %zu (version %d) is invalid or out of order",
                 i, list[i].version);
      return -EINVAL;
    }
  }
  return 0;
}

static const pg_migration_t *find(const pg_migration_t *list, size_t n, int version) {
  for (size_t i = 0; i < n; i++)
    if (list[i].version == version) return &list[i];
  return NULL;
}

/* One step under the lock: applies the first pending migration. 1 applied,
 * 0 nothing pending, or a negative errno (transaction rolled back by the
 * caller's release). */
static int step(pg_conn_t *c, const pg_migration_t *list, size_t n, char *err, size_t errlen) {
  if (pg_cmd(c, "BEGIN", "migrate begin") < 0 || pg_exec(c, &st_lock, NULL, NULL, "migrate lock") < 0 ||
      pg_cmd(c,
             "CREATE TABLE IF NOT EXISTS schema_migrations("
             " version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)",
             "migrate table") < 0) {
    put_err(err, errlen, "cannot prepare the migration", c);
    return -EIO;
  }
  PGresult *r;
  if (pg_exec(c, &st_versions, NULL, &r, "migrate versions") < 0) {
    put_err(err, errlen, "cannot read schema_migrations", c);
    return -EIO;
  }
  /* Every recorded version must be ours: a newer binary migrated this
   * database, and running older code on it would corrupt data quietly. */
  int rows = PQntuples(r);
  for (int i = 0; i < rows; i++) {
    int64_t v = 0;
    if (pg_get_i64(r, i, 0, &v) < 0 || !find(list, n, (int)v)) {
      if (err && errlen)
        snprintf(err, errlen,
                 "the database has schema version %lld (%s), newer than this binary knows",
                 (long long)v, PQgetvalue(r, i, 1));
      PQclear(r);
      return -ENOTSUP;
    }
  }
  const pg_migration_t *next = NULL;
  for (size_t k = 0; k < n && !next; k++) {
    bool done = false;
    for (int i = 0; i < rows && !done; i++) {
      int64_t v = 0;
      done = pg_get_i64(r, i, 0, &v) == 0 && v == list[k].version;
    }
    if (!done) next = &list[k];
  }
  PQclear(r);
  if (!next) return pg_cmd(c, "COMMIT", "migrate commit") < 0 ? -EIO : 0;
  /* Constant SQL compiled into the binary: no value is spliced into it. */
  if (pg_cmd(c, next->sql, "migrate apply") < 0) {
    char what[96];
    snprintf(what, sizeof what, "migration %d (%s) failed", next->version, next->name);
    put_err(err, errlen, what, c);
    return -EIO;
  }
  pg_params_t p = {0};
  pg_p_i64(&p, next->version);
  pg_p_cstr(&p, next->name);
  pg_p_i64(&p, wall_ms());
  if (pg_exec(c, &st_record, &p, NULL, "migrate record") < 0 ||
      pg_cmd(c, "COMMIT", "migrate commit") < 0) {
    put_err(err, errlen, "cannot record the migration", c);
    return -EIO;
  }
  log_info("store", "postgres: applied migration %d (%s)", next->version, next->name);
  return 1;
}

int pg_db_apply_migrations(pg_db_t *db, const pg_migration_t *list, size_t n, char *err,
                           size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (!db) return -EINVAL;
  int r = check_list(list, n, err, errlen);
  if (r < 0) return r;
  pg_conn_t *c = pg_db_acquire(db);
  if (!c) {
    if (err && errlen) snprintf(err, errlen, "the database is unreachable");
    return -EIO;
  }
  int applied = 0;
  while ((r = step(c, list, n, err, errlen)) == 1) applied++;
  pg_db_release(db, c); /* rolls back a failed step */
  return r < 0 ? r : applied;
}

int pg_db_migrate(pg_db_t *db, char *err, size_t errlen) {
  return pg_db_apply_migrations(db, pg_migrations, pg_migrations_count, err, errlen);
}

int pg_db_schema_version(pg_db_t *db) {
  pg_conn_t *c = pg_db_acquire(db);
  if (!c) return -EIO;
  PGresult *r = NULL;
  int64_t v = -1;
  bool has = false;
  int e = pg_exec(c, &st_has_table, NULL, &r, "schema version");
  if (e == 0 && pg_get_bool(r, 0, 0, &has) < 0) e = -EIO;
  PQclear(r);
  r = NULL;
  if (e == 0 && !has) v = 0;
  else if (e == 0 && (e = pg_exec(c, &st_max, NULL, &r, "schema version")) == 0 &&
           pg_get_i64(r, 0, 0, &v) < 0)
    e = -EIO;
  PQclear(r);
  pg_db_release(db, c);
  return e < 0 ? -EIO : (int)v;
}

int pg_db_require_schema(pg_db_t *db, int min_version, bool migrate, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (migrate) {
    int r = pg_db_migrate(db, err, errlen);
    if (r < 0) return r;
  }
  int v = pg_db_schema_version(db);
  if (v < 0) {
    if (err && errlen) snprintf(err, errlen, "cannot read the schema version");
    return -EIO;
  }
  int last = pg_migrations[pg_migrations_count - 1].version;
  if (v > last) {
    if (err && errlen)
      snprintf(err, errlen, "the database has schema version %d, newer than this binary (%d)", v,
               last);
    return -ENOTSUP;
  }
  if (v < min_version) {
    if (err && errlen)
      snprintf(err, errlen, "the database has schema version %d, this store needs %d: run `storm migrate`",
               v, min_version);
    return -EPROTO;
  }
  return 0;
}
