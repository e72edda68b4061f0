/*
 * media_pg.h — the media metadata store (store/media_store.h) on
 * PostgreSQL (store/pg/pg_db.h), for distributed mode: every media-service
 * replica shares the table (migration 3 "media", pg_migrations.c).
 *
 * Ownership: borrows db, which must stay open until the store's close has
 * run; owns nothing else (statements are prepared per pooled connection on
 * first use). Threads: every operation takes a pooled connection for its
 * duration: safe from any thread, in parallel up to the pool size.
 *
 * Errors as media_store.h, plus: -EINVAL also for a string that is not
 * valid UTF-8 (PostgreSQL text refuses it; checked before sending); -EIO
 * the database failed or is unreachable (logged by pg_db), or a stored row
 * is beyond the limits. healthy() is false after an -EIO until an
 * operation succeeds again.
 */
#ifndef STORM_STORE_PG_MEDIA_PG_H
#define STORM_STORE_PG_MEDIA_PG_H

#include <stdbool.h>

#include "store/media_store.h"
#include "store/pg/pg_db.h"

#define MEDIA_PG_SCHEMA_MIN 3 /* the migration that creates its table */

typedef struct {
  /* Apply pending migrations before checking the schema (else a schema
   * older than MEDIA_PG_SCHEMA_MIN fails the open with -EPROTO). */
  bool migrate_on_open;
} media_pg_opts_t;

/* opts may be NULL (no migration). 0 and *out, -EINVAL, -ENOMEM, -EPROTO
 * (schema too old), -ENOTSUP (newer than this binary), -EIO. */
int media_pg_open(pg_db_t *db, const media_pg_opts_t *opts, media_store_t **out);

#endif
