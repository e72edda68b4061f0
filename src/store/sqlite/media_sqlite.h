/*
 * media_sqlite.h — the media metadata store (store/media_store.h) on the
 * embedded SQLite database (store/sqlite/sqlite_db.h), table `media`
 * (migration 3).
 *
 * Ownership and threads as the users store (users_sqlite.h): borrows db,
 * which must outlive the store; owns its prepared statements; holds the db
 * lock from first bind to last reset, so it is safe from any thread.
 * healthy() is false after an -EIO until an operation succeeds again.
 */
#ifndef STORM_STORE_SQLITE_MEDIA_SQLITE_H
#define STORM_STORE_SQLITE_MEDIA_SQLITE_H

#include "store/media_store.h"
#include "store/sqlite/sqlite_db.h"

/* Prepares the statements (the schema must be migrated). Returns 0 and
 * sets *out, or -EINVAL, -ENOMEM, -EIO. */
int media_sqlite_open(sqlite_db_t *db, media_store_t **out);

#endif
