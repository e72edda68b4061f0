/* sqlite_db.c — opening the embedded database and running migrations.
 * Contract in sqlite_db.h. */
#include "store/sqlite/sqlite_db.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

struct sqlite_db {
  sqlite3 *conn;
  pthread_mutex_t mu;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* mkdir with 0700 because the directory will hold every password hash and
 * refresh token hash; an existing directory is used as it is (the operator
 * may have chosen other modes on purpose). */
static int ensure_dir(const char *dir, char *err, size_t errlen) {
  if (mkdir(dir, 0700) == 0) return 0;
  int e = errno;
  if (e == EEXIST) {
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    set_err(err, errlen, "data dir %s exists and is not a directory", dir);
    return -ENOTDIR;
  }
  set_err(err, errlen, "cannot create data dir %s: %s", dir, strerror(e));
  return -e;
}

/* Runs one constant statement that may return a row; copies the first
 * column of the first row as text into val (if given). */
static int pragma(sqlite3 *c, const char *sql, char *val, size_t vlen, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && val) {
      const unsigned char *t = sqlite3_column_text(st, 0);
      snprintf(val, vlen, "%s", t ? (const char *)t : "");
    }
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  if (rc != SQLITE_OK) set_err(err, errlen, "%s: %s", sql, sqlite3_errmsg(c));
  sqlite3_finalize(st);
  return rc == SQLITE_OK ? 0 : -EIO;
}

static int configure(sqlite3 *c, char *err, size_t errlen) {
  char mode[16] = "";
  /* journal_mode answers with the mode in force: on a filesystem without
   * shared memory support SQLite quietly stays in another mode, and our
   * durability reasoning (sqlite_db.h) would no longer hold. It is also the
   * first statement to read the file, so "not a database" surfaces here. */
  if (pragma(c, "PRAGMA journal_mode=WAL", mode, sizeof mode, err, errlen) < 0) return -EIO;
  if (strcasecmp(mode, "wal") != 0) {
    set_err(err, errlen, "cannot enable WAL mode (journal_mode is %s)", mode);
    return -EIO;
  }
  if (pragma(c, "PRAGMA synchronous=NORMAL", NULL, 0, err, errlen) < 0) return -EIO;
  if (pragma(c, "PRAGMA foreign_keys=ON", NULL, 0, err, errlen) < 0) return -EIO;
  if (pragma(c, "PRAGMA wal_autocheckpoint=" SQLITE_DB_WAL_CHECKPOINT_PAGES, NULL, 0, err,
             errlen) < 0)
    return -EIO;
  if (sqlite3_busy_timeout(c, SQLITE_DB_BUSY_TIMEOUT_MS) != SQLITE_OK) {
    set_err(err, errlen, "busy_timeout: %s", sqlite3_errmsg(c));
    return -EIO;
  }
  return 0;
}

int sqlite_db_open(const char *data_dir, sqlite_db_t **out, char *err, size_t errlen) {
  set_err(err, errlen, "%s", "");
  if (!data_dir || !*data_dir || !out) {
    set_err(err, errlen, "sqlite_db_open: no data dir");
    return -EINVAL;
  }
  /* A library built without thread support would make FULLMUTEX a no-op
   * and the contract in sqlite_db.h false. */
  if (!sqlite3_threadsafe()) {
    set_err(err, errlen, "libsqlite3 was built without thread support");
    return -EINVAL;
  }
  int r = ensure_dir(data_dir, err, errlen);
  if (r < 0) return r;

  char path[PATH_MAX];
  int n = snprintf(path, sizeof path, "%s/%s", data_dir, SQLITE_DB_FILE);
  if (n < 0 || (size_t)n >= sizeof path) {
    set_err(err, errlen, "data dir path too long");
    return -EINVAL;
  }

  /* Create the file ourselves with 0600: SQLite would use 0644 (umask
   * permitting), and gives its -wal and -shm files the mode of the main
   * file. Password hashes are not for other local users, even when the
   * operator's data dir is group- or world-readable. An existing file keeps
   * its mode. */
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    set_err(err, errlen, "cannot create %s: %s", path, strerror(e));
    return -e;
  }
  close(fd);

  sqlite_db_t *db = calloc(1, sizeof *db);
  if (!db) {
    set_err(err, errlen, "out of memory");
    return -ENOMEM;
  }
  if (pthread_mutex_init(&db->mu, NULL) != 0) {
    free(db);
    set_err(err, errlen, "pthread_mutex_init failed");
    return -ENOMEM;
  }
  int rc = sqlite3_open_v2(path, &db->conn,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
  if (rc != SQLITE_OK) {
    set_err(err, errlen, "cannot open %s: %s", path,
            db->conn ? sqlite3_errmsg(db->conn) : sqlite3_errstr(rc));
    r = rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
    goto fail;
  }
  /* Extended codes let stores tell a UNIQUE from a FOREIGN KEY violation. */
  sqlite3_extended_result_codes(db->conn, 1);
  /* Defensive mode forbids the few SQL features (writable_schema, ...)
   * that can corrupt the file from SQL; we need none of them. */
  sqlite3_db_config(db->conn, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);

  char why[256];
  r = configure(db->conn, why, sizeof why);
  if (r < 0) {
    set_err(err, errlen, "cannot open %s: %s", path, why);
    goto fail;
  }
  r = sqlite_db_migrate(db, err, errlen);
  if (r < 0) goto fail;
  *out = db;
  return 0;

fail:
  sqlite3_close(db->conn); /* no statements exist yet: cannot be busy */
  pthread_mutex_destroy(&db->mu);
  free(db);
  return r;
}

/* ---- migrations ---- */

static int validate_list(const sqlite_migration_t *list, size_t n, char *err, size_t errlen) {
  if (!list && n > 0) goto bad;
  for (size_t i = 0; i < n; i++) {
    if (list[i].version <= 0 || !list[i].name || !list[i].sql) goto bad;
    if (i > 0 && list[i].version <= list[i - 1].version) {
      set_err(err, errlen, "migration list out of order at version %d", list[i].version);
      return -EINVAL;
    }
  }
  return 0;
bad:
  set_err(err, errlen, "malformed migration list");
  return -EINVAL;
}

static bool in_list(const sqlite_migration_t *list, size_t n, int version) {
  for (size_t i = 0; i < n; i++)
    if (list[i].version == version) return true;
  return false;
}

/* Refuses a database that records a version absent from list. Checked
 * before anything is applied, so a newer database is left untouched.
 * Caller holds the lock. */
static int check_known(sqlite3 *c, const sqlite_migration_t *list, size_t n, char *err,
                       size_t errlen) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c, "SELECT version, name FROM schema_migrations ORDER BY version",
                              -1, &st, NULL);
  int r = 0;
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t v = sqlite3_column_int64(st, 0);
    if (v <= 0 || v > INT_MAX || !in_list(list, n, (int)v)) {
      const unsigned char *name = sqlite3_column_text(st, 1);
      set_err(err, errlen,
              "database has schema version %lld (%s) unknown to this binary, which knows up "
              "to %d: it was written by a newer STORM; upgrade STORM or restore a backup",
              (long long)v, name ? (const char *)name : "?", n ? list[n - 1].version : 0);
      r = -ENOTSUP;
      rc = SQLITE_DONE;
      break;
    }
    rc = SQLITE_OK;
  }
  if (rc != SQLITE_DONE) {
    set_err(err, errlen, "reading schema_migrations: %s", sqlite3_errmsg(c));
    r = -EIO;
  }
  sqlite3_finalize(st);
  return r;
}

/* 1 if version is recorded, 0 if not, -EIO. Caller holds the lock. */
static int is_applied(sqlite3 *c, int version) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c, "SELECT 1 FROM schema_migrations WHERE version = ?", -1, &st,
                              NULL);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 1, version);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -EIO;
}

static int record(sqlite3 *c, const sqlite_migration_t *m) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(
      c, "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)", -1, &st,
      NULL);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 1, m->version);
  if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, wall_ms());
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Applies one migration in its own transaction. BEGIN IMMEDIATE takes the
 * write lock before we look, so two processes migrating at once apply each
 * version exactly once: the second finds it recorded and skips.
 * Returns 1 applied, 0 already there, -EIO. Caller holds the lock. */
static int apply_one(sqlite3 *c, const sqlite_migration_t *m, char *err, size_t errlen) {
  char *msg = NULL;
  if (sqlite3_exec(c, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
    set_err(err, errlen, "migration %d (%s): BEGIN: %s", m->version, m->name,
            msg ? msg : sqlite3_errmsg(c));
    sqlite3_free(msg);
    return -EIO;
  }
  int r = is_applied(c, m->version);
  if (r < 0) {
    set_err(err, errlen, "migration %d (%s): %s", m->version, m->name, sqlite3_errmsg(c));
    goto rollback;
  }
  if (r == 1) {
    r = 0;
    goto rollback; /* nothing was written: rolling back just ends it */
  }
  if (sqlite3_exec(c, m->sql, NULL, NULL, &msg) != SQLITE_OK) {
    set_err(err, errlen, "migration %d (%s) failed: %s", m->version, m->name,
            msg ? msg : sqlite3_errmsg(c));
    sqlite3_free(msg);
    r = -EIO;
    goto rollback;
  }
  if (record(c, m) < 0 || sqlite3_exec(c, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    set_err(err, errlen, "migration %d (%s): %s", m->version, m->name, sqlite3_errmsg(c));
    r = -EIO;
    goto rollback;
  }
  return 1;

rollback:
  /* The transaction may already be gone (SQLite rolls back by itself
   * after some errors); a failing ROLLBACK then is expected and harmless. */
  if (!sqlite3_get_autocommit(c)) sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
  return r;
}

int sqlite_db_apply_migrations(sqlite_db_t *db, const sqlite_migration_t *list, size_t n,
                               char *err, size_t errlen) {
  if (!db) {
    set_err(err, errlen, "no database");
    return -EINVAL;
  }
  int r = validate_list(list, n, err, errlen);
  if (r < 0) return r;

  sqlite_db_lock(db);
  sqlite3 *c = db->conn;
  char *msg = NULL;
  if (sqlite3_exec(c,
                   "CREATE TABLE IF NOT EXISTS schema_migrations("
                   " version INTEGER PRIMARY KEY,"
                   " name TEXT,"
                   " applied_at INTEGER)",
                   NULL, NULL, &msg) != SQLITE_OK) {
    set_err(err, errlen, "creating schema_migrations: %s", msg ? msg : sqlite3_errmsg(c));
    sqlite3_free(msg);
    r = -EIO;
    goto out;
  }
  r = check_known(c, list, n, err, errlen);
  if (r < 0) goto out;
  int applied = 0;
  for (size_t i = 0; i < n; i++) {
    r = apply_one(c, &list[i], err, errlen);
    if (r < 0) goto out;
    if (r == 1) {
      applied++;
      log_info("store", "applied migration %d (%s)", list[i].version, list[i].name);
    }
  }
  r = applied;
out:
  sqlite_db_unlock(db);
  return r;
}

int sqlite_db_migrate(sqlite_db_t *db, char *err, size_t errlen) {
  return sqlite_db_apply_migrations(db, sqlite_migrations, sqlite_migrations_count, err, errlen);
}

int sqlite_db_schema_version(sqlite_db_t *db) {
  sqlite_db_lock(db);
  sqlite3_stmt *st = NULL;
  int r = -EIO;
  if (sqlite3_prepare_v2(db->conn, "SELECT coalesce(max(version), 0) FROM schema_migrations", -1,
                         &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    int64_t v = sqlite3_column_int64(st, 0);
    r = v >= 0 && v <= INT_MAX ? (int)v : -EIO;
  }
  sqlite3_finalize(st);
  sqlite_db_unlock(db);
  return r;
}

sqlite3 *sqlite_db_handle(sqlite_db_t *db) { return db->conn; }

void sqlite_db_lock(sqlite_db_t *db) { pthread_mutex_lock(&db->mu); }

void sqlite_db_unlock(sqlite_db_t *db) { pthread_mutex_unlock(&db->mu); }

void sqlite_db_close(sqlite_db_t *db) {
  if (!db) return;
  if (sqlite3_close(db->conn) != SQLITE_OK) {
    /* A store was not closed. close_v2 defers the close until its
     * statements are finalized instead of leaking the connection. */
    log_error("store", "sqlite_db_close: statements still open (%s); a store was not closed",
              sqlite3_errmsg(db->conn));
    sqlite3_close_v2(db->conn);
  }
  pthread_mutex_destroy(&db->mu);
  free(db);
}
