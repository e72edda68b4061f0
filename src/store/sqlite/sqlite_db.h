/*
 * sqlite_db.h — the embedded database: one SQLite file, <data_dir>/storm.db,
 * shared by every embedded store (users now; messages, media and
 * notifications later), and the migration runner that brings its schema up
 * to date.
 *
 * Open settings and why:
 *   - journal_mode=WAL: readers never block the writer, and a commit is one
 *     append to the -wal file instead of a rewrite of the pages.
 *   - synchronous=NORMAL: in WAL mode a committed transaction is in the WAL
 *     file (the OS page cache) before COMMIT returns, so it survives a crash
 *     or kill -9 of the process; only an OS crash or power loss can lose the
 *     last transactions since the previous checkpoint fsync. That is the
 *     right trade for users and refresh tokens (a lost token means one more
 *     login). A store that needs power-loss durability (messages) can switch
 *     the connection to FULL; the setting is per connection, not per file.
 *   - foreign_keys=ON: SQLite's default is OFF; the schema relies on
 *     ON DELETE CASCADE.
 *   - wal_autocheckpoint=16384 pages (64 MiB of WAL; SQLite's default is
 *     1,000): the commit that takes the WAL past it copies the WAL into the
 *     database and fsyncs it. Messages rewrite the same few hundred index
 *     pages commit after commit, so a rarer checkpoint writes each page
 *     once for many commits: at 50,000 appends/s the writer's commit time
 *     fell by a quarter and the delivery p50 from ~10 to ~5 ms. The cost
 *     is the WAL's size on disk and the time to read it back after a
 *     crash. Every connection uses the same value, so whichever commits
 *     past it does the checkpoint.
 *   - busy_timeout=5000 ms: only another process (a `storm migrate` run, the
 *     sqlite3 shell, a backup) can hold the file's write lock, since this
 *     process has one connection; wait for it rather than fail at once.
 *
 * Threads — one connection, one mutex. The connection is opened with
 * SQLITE_OPEN_FULLMUTEX and carries a pthread mutex (sqlite_db_lock/unlock).
 * A store holds that mutex for the whole of each operation: from the first
 * bind of a prepared statement to its reset, and across every statement of
 * a transaction. This is needed, not belt and braces: a transaction belongs
 * to the connection, so any statement another thread ran between our BEGIN
 * and COMMIT would silently join our transaction; a prepared statement's
 * bindings and current row are shared by every thread using it; and
 * sqlite3_errmsg reports the connection's last error, whoever caused it.
 * FULLMUTEX is then only a guard against a store that forgets the lock.
 * Why not one connection per store: each store would still need its own
 * mutex for its prepared statements; writers would contend through file
 * locks and busy_timeout sleeps instead of a cheap mutex (SQLite has one
 * writer per file whatever we do); and a future transaction spanning two
 * stores (delete a user and their messages) would be impossible. We give up
 * concurrent readers, which a single embedded node does not need.
 * The mutex is not recursive: never call another store's operation while
 * holding it.
 *
 * Migrations: versioned SQL compiled into the binary (migrations.c), each
 * applied once, in order, inside its own BEGIN IMMEDIATE transaction
 * together with its row in schema_migrations(version, name, applied_at), so
 * a failed migration leaves neither schema changes nor its row behind.
 * sqlite_db_open runs them, so every process sees an up-to-date schema;
 * sqlite_db_migrate is idempotent and exported for a `storm migrate`
 * command (open, print sqlite_db_schema_version, close). A database that
 * records a version this binary does not know (written by a newer STORM)
 * refuses to open: running old code on a newer schema corrupts data
 * silently, a refusal is loud.
 *
 * Errors: 0 or a negative errno; on failure the functions taking err/errlen
 * write a one-line human-readable reason there (err may be NULL).
 *   -EINVAL  bad argument or malformed migration list
 *   -ENOTDIR data_dir exists and is not a directory
 *   -ENOTSUP the database has a schema version unknown to this binary
 *   -ENOMEM  allocation failed
 *   -EIO     any SQLite failure (not a database, read-only file, failed
 *            migration, WAL not available, ...)
 *   other    -errno of mkdir(2) for the data directory or of creating
 *            storm.db (created with mode 0600; SQLite gives its -wal and
 *            -shm files the same mode)
 */
#ifndef STORM_STORE_SQLITE_DB_H
#define STORM_STORE_SQLITE_DB_H

#include <stddef.h>

#include <sqlite3.h>

#define SQLITE_DB_FILE "storm.db"
#define SQLITE_DB_BUSY_TIMEOUT_MS 5000
#define SQLITE_DB_WAL_CHECKPOINT_PAGES "16384" /* a string: it goes into a PRAGMA */

typedef struct sqlite_db sqlite_db_t;

/* One schema step. sql may hold several statements; it runs inside a
 * transaction, so it must not contain BEGIN/COMMIT, VACUUM or
 * PRAGMA journal_mode. A released migration is never edited: fix forward
 * with a new version. */
typedef struct {
  int version;      /* > 0, strictly increasing through the list */
  const char *name; /* short, for schema_migrations and error messages */
  const char *sql;
} sqlite_migration_t;

/* The migrations of this binary, in order (migrations.c). */
extern const sqlite_migration_t sqlite_migrations[];
extern const size_t sqlite_migrations_count;

/* Creates data_dir (one level, mode 0700) if missing, opens or creates
 * <data_dir>/storm.db with the settings above and applies pending
 * migrations. *out is set only on success; close it with sqlite_db_close. */
int sqlite_db_open(const char *data_dir, sqlite_db_t **out, char *err, size_t errlen);

/* Applies this binary's pending migrations. Returns how many were applied
 * (0 when up to date) or a negative errno. Takes the db lock itself. */
int sqlite_db_migrate(sqlite_db_t *db, char *err, size_t errlen);

/* sqlite_db_migrate with an explicit list: the runner behind it, exported
 * so that tests can drive failing, unordered and future migrations. Every
 * version recorded in the database must appear in list. */
int sqlite_db_apply_migrations(sqlite_db_t *db, const sqlite_migration_t *list, size_t n,
                               char *err, size_t errlen);

/* Highest applied version (0 for an empty database) or -EIO. */
int sqlite_db_schema_version(sqlite_db_t *db);

/* The connection, for stores to prepare their statements on. Borrowed:
 * valid until sqlite_db_close. Use it only while holding the lock. */
sqlite3 *sqlite_db_handle(sqlite_db_t *db);

void sqlite_db_lock(sqlite_db_t *db);
void sqlite_db_unlock(sqlite_db_t *db);

/* Closes the connection. Every store built on db must be closed first (it
 * owns prepared statements on the connection); a leftover statement is
 * logged and the file is closed when it is finalized. NULL is a no-op. */
void sqlite_db_close(sqlite_db_t *db);

#endif
