/*
 * users_pg.h — the users store (store/users_store.h) on PostgreSQL
 * (store/pg/pg_db.h), for distributed mode: several processes may share
 * the database.
 *
 * Use:
 *     pg_db_t *db;  users_store_t *users;  char err[256];
 *     pg_db_open(url, 0, &db, err, sizeof err);
 *     users_pg_open(db, &(users_pg_opts_t){.migrate_on_open = true}, &users);
 *     ...
 *     users->ops->close(users);  pg_db_close(db);
 *
 * Ownership: the store borrows db, which must stay open until the store's
 * close has run. It owns nothing else: statements are prepared per pooled
 * connection, on first use.
 *
 * Threads: every operation takes a pooled connection for its duration, so
 * operations run in parallel up to the pool size and are safe from any
 * thread. refresh_rotate locks the old token's row (SELECT ... FOR UPDATE)
 * inside its transaction: concurrent rotations of one token, from any
 * process, serialize there and exactly one wins.
 *
 * Errors, beyond users_store.h and the same as the SQLite store:
 *   -EINVAL  also a string that is not valid UTF-8 (PostgreSQL text refuses
 *            it; checked before sending).
 *   -EIO     the database failed or is unreachable (logged by pg_db; the
 *            pool reconnects on a later call), or a stored row is beyond
 *            the limits.
 * healthy() is false after an -EIO until an operation succeeds again.
 */
#ifndef STORM_STORE_PG_USERS_PG_H
#define STORM_STORE_PG_USERS_PG_H

#include <stdbool.h>

#include "store/pg/pg_db.h"
#include "store/users_store.h"

#define USERS_PG_SCHEMA_MIN 1 /* the migration that creates its tables */

typedef struct {
  /* Apply pending migrations before checking the schema (else a schema
   * older than USERS_PG_SCHEMA_MIN fails the open with -EPROTO). */
  bool migrate_on_open;
} users_pg_opts_t;

/* opts may be NULL (defaults: no migration). Returns 0 and sets *out,
 * -EINVAL, -ENOMEM, -EPROTO (schema too old), -ENOTSUP (schema newer than
 * this binary), -EIO (unreachable, failed migration; logged). */
int users_pg_open(pg_db_t *db, const users_pg_opts_t *opts, users_store_t **out);

#endif
