/*
 * pg_db.h — the distributed database: one PostgreSQL database (URL) shared
 * by the distributed stores (users, messages), reached through a small
 * pool of libpq connections, and the migration runner of its schema.
 *
 * Pool. pg_db_open connects one connection at once (so that a wrong URL or
 * password fails at start-up, loudly) and up to pool_size lazily. A caller
 * takes a connection with pg_db_acquire (waits on a condition variable
 * while all are busy), runs statements, and gives it back with
 * pg_db_release. A connection is used by one thread at a time, so a
 * transaction (BEGIN ... COMMIT on one connection) is never joined by
 * another thread's statement. pg_db_release rolls back a transaction left
 * open by a failed operation.
 *
 * Statements. Stores declare their SQL once as static pg_stmt_t; a
 * connection prepares each statement the first time it runs it there
 * (PQprepare), then only executes it (PQexecPrepared). Values always travel
 * as parameters, never inside SQL text. Results come in binary format and
 * are read with the pg_get_* helpers (exact widths checked).
 *
 * Failures.
 *   - Connection loss (server restart, pg_terminate_backend, network):
 *     the running call returns -EIO; the loss is logged once (error, "the
 *     database is unreachable") and pg_db_ready turns false; the broken
 *     connection is reset on its next use. Reconnection attempts are
 *     spaced PG_DB_RETRY_MS apart: meanwhile calls fail fast with -EIO
 *     instead of each waiting for a connect timeout. The first success
 *     logs "reachable again" and pg_db_ready turns true.
 *   - Before use, an idle connection is checked without a round trip:
 *     PQconsumeInput reads what a terminated backend sent (its FATAL
 *     goodbye, seen by the notice receiver, or the EOF), and the
 *     connection is reset at once. A server restart or a killed backend
 *     thus costs at most the calls already on the wire, not one failure
 *     per pooled connection.
 *   - Constraint violations are answers, not failures: pg_exec returns
 *     -EEXIST (unique_violation), -ENOENT (foreign_key_violation) and does
 *     not log them. Anything else is -EIO, logged under "store" with the
 *     operation name and PostgreSQL's message.
 *
 * Settings every connection gets (URL parameters override the first two):
 * connect_timeout=5, application_name=storm; then client_encoding=UTF8,
 * synchronous_commit=on (COMMIT returns once the WAL is flushed: what the
 * messages store promises as durable), TimeZone=UTC. The server encoding
 * must be UTF8 (checked at open): text columns then refuse invalid UTF-8,
 * which the stores check first and report as -EINVAL.
 *
 * Migrations: versioned SQL compiled into the binary (pg_migrations.c).
 * Each pending migration is applied in its own transaction that first
 * takes a transaction-scoped advisory lock (per schema), then creates
 * schema_migrations(version, name, applied_at) if missing, re-reads the
 * applied versions, runs the SQL and records it: replicas starting at once
 * serialize on the lock and the second finds nothing left to do. A
 * database recording a version unknown to this binary is refused
 * (-ENOTSUP), as with SQLite. Stores check the version at open
 * (pg_db_require_schema) and can apply the migrations themselves when the
 * caller asks (migrate_on_open); `storm migrate` applies them explicitly.
 *
 * Threads: every function is thread-safe. Errors: 0 (or a count) or a
 * negative errno; functions taking err/errlen write a one-line reason
 * (err may be NULL).
 */
#ifndef STORM_STORE_PG_PG_DB_H
#define STORM_STORE_PG_PG_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#define PG_DB_POOL_DEFAULT 8
#define PG_DB_POOL_MAX 64
#define PG_DB_RETRY_MS 1000 /* between reconnection attempts while unreachable */

typedef struct pg_db pg_db_t;
typedef struct pg_conn pg_conn_t;

/* A statement a store declares once (static storage: the pool keys its
 * prepared set by this address). name must be unique within the process
 * (prefix it with the store's name). */
typedef struct {
  const char *name;
  const char *sql;
} pg_stmt_t;

/* Parameters of one execution. Integers are sent as text (kept in ibuf),
 * text and bytea as binary (pointer and length: no NUL needed, nothing
 * copied: the bytes must stay valid until the call returns). */
#define PG_PARAMS_MAX 12
typedef struct {
  const char *v[PG_PARAMS_MAX];
  int len[PG_PARAMS_MAX];
  int fmt[PG_PARAMS_MAX];
  char ibuf[PG_PARAMS_MAX][24];
  int n;
} pg_params_t;

void pg_p_i64(pg_params_t *p, int64_t v);
void pg_p_bool(pg_params_t *p, bool v);
void pg_p_text(pg_params_t *p, const char *s, size_t n); /* UTF-8, no NUL */
void pg_p_cstr(pg_params_t *p, const char *s);           /* NULL: SQL NULL */
void pg_p_bytes(pg_params_t *p, const void *b, size_t n);
void pg_p_null(pg_params_t *p);
/* A NUL-terminated text-format value (array literals built by the caller). */
void pg_p_textfmt(pg_params_t *p, const char *s);

/* Opens the pool: url is a libpq URI or conninfo string ("postgres://...",
 * "host=... dbname=..."); pool_size 1..PG_DB_POOL_MAX (0: default).
 * Connects once: -EIO (unreachable, auth, not UTF8; reason in err),
 * -EINVAL, -ENOMEM. *out is set only on success. */
int pg_db_open(const char *url, unsigned pool_size, pg_db_t **out, char *err, size_t errlen);

/* Every store built on db must be closed first. NULL is a no-op. */
void pg_db_close(pg_db_t *db);

/* false while the database is known unreachable (the last attempt to use
 * or reach it failed at the connection level). Cheap: reads a flag. */
bool pg_db_ready(pg_db_t *db);

/* Probes the database now (a round trip on a pooled connection,
 * reconnecting if needed) and returns the new pg_db_ready. Blocking: for
 * a health check run off the event loop. */
bool pg_db_ping(pg_db_t *db);

/* Takes a pooled connection (blocks while all are busy). Returns NULL
 * only when it cannot connect (the database is unreachable; logged). */
pg_conn_t *pg_db_acquire(pg_db_t *db);
/* Gives it back, rolled back to idle (a broken one is kept for reset). */
void pg_db_release(pg_db_t *db, pg_conn_t *c);

/* A connection outside the pool, same settings (a store's writer thread
 * owns one so that appends never wait for a pooled connection). NULL:
 * unreachable (logged). Free with pg_conn_free. */
pg_conn_t *pg_db_conn_new(pg_db_t *db);
void pg_conn_free(pg_conn_t *c);
/* Makes sure c is connected: reads what an idle connection received (a
 * killed backend's goodbye), resets a broken one (within the retry
 * spacing). 0 or -EIO. pg_db_acquire does this for pooled ones. */
int pg_conn_ensure(pg_conn_t *c);
/* The libpq connection: for PQtransactionStatus and the like; never run
 * statements on it directly (use pg_exec). */
PGconn *pg_conn_raw(pg_conn_t *c);

/* Runs st with p (may be NULL) on c, preparing it on first use. Returns 0
 * and *res (PQclear it; res may be NULL to discard the result), -EEXIST,
 * -ENOENT (see above) or -EIO. op names the operation in logs. */
int pg_exec(pg_conn_t *c, const pg_stmt_t *st, const pg_params_t *p, PGresult **res,
            const char *op);
/* A parameterless command (BEGIN, COMMIT, ROLLBACK): 0, -EIO. */
int pg_cmd(pg_conn_t *c, const char *sql, const char *op);
/* The SQLSTATE of the last failed pg_exec/pg_cmd on c ("" if none). */
const char *pg_conn_sqlstate(const pg_conn_t *c);

/* Binary result readers. -1 (and nothing written) if the value is NULL or
 * not of the expected width; pg_get_i64 accepts int8, int4 and int2. */
int pg_get_i64(const PGresult *r, int row, int col, int64_t *out);
int pg_get_bool(const PGresult *r, int row, int col, bool *out);
bool pg_is_null(const PGresult *r, int row, int col);
/* Rows changed by an INSERT/UPDATE/DELETE. */
int64_t pg_affected(const PGresult *r);

/* ---- migrations (pg_migrate.c) ---- */

typedef struct {
  int version;      /* > 0, strictly increasing through the list */
  const char *name; /* short, for schema_migrations and messages */
  const char *sql;  /* several statements allowed; no BEGIN/COMMIT */
} pg_migration_t;

/* The migrations of this binary, in order (pg_migrations.c). */
extern const pg_migration_t pg_migrations[];
extern const size_t pg_migrations_count;

/* Applies pending migrations: the count applied (0: up to date) or
 * -ENOTSUP (the database has a version this binary does not know), -EIO
 * (a migration failed: it is rolled back; reason in err), -EINVAL. */
int pg_db_migrate(pg_db_t *db, char *err, size_t errlen);
/* The same with an explicit list (tests). */
int pg_db_apply_migrations(pg_db_t *db, const pg_migration_t *list, size_t n, char *err,
                           size_t errlen);
/* Highest applied version, 0 for an empty schema, or -EIO. */
int pg_db_schema_version(pg_db_t *db);
/* What a store calls at open: the schema must be at least min_version and
 * not newer than this binary. migrate: apply pending migrations first.
 * 0, -EPROTO (too old: run `storm migrate`), -ENOTSUP (newer), -EIO. */
int pg_db_require_schema(pg_db_t *db, int min_version, bool migrate, char *err, size_t errlen);

#endif
