/*
 * users_sqlite.h — the users store (store/users_store.h) on the embedded
 * SQLite database (store/sqlite/sqlite_db.h).
 *
 * Ownership: the store borrows db, which must stay open until the store's
 * ops->close has run (close the stores, then the db). The store owns its
 * prepared statements, prepared once here and finalized by close.
 *
 * Threads: every operation holds the db lock from first bind to last reset
 * (and across refresh_rotate's transaction), so the store is safe from any
 * thread and shares the connection with the other stores.
 *
 * Errors, beyond users_store.h:
 *   -EINVAL  a string longer than its USER_*_MAX limit (username at most
 *            USER_NAME_MAX bytes, display name USER_DISPLAY_MAX, password
 *            hash USER_HASH_MAX - 1) or NULL; refresh_rotate whose next
 *            token has another family or user than the old one. Nothing is
 *            ever truncated.
 *   -ENOENT  also: refresh_insert/rotate for a user that does not exist
 *            (foreign key); refresh_revoke_family of a family with no token.
 *   -EEXIST  also: refresh_insert/rotate with a token hash already stored.
 *   -EIO     SQLite failure (logged with sqlite3_errmsg under component
 *            "store"), or a stored row beyond the limits above.
 * healthy() is false after an -EIO until an operation succeeds again. It
 * does not probe the database itself: a read served from the page cache
 * would say nothing about the write path that failed.
 * refresh_purge_expired deletes tokens with expires_at <= now_ms.
 */
#ifndef STORM_STORE_SQLITE_USERS_SQLITE_H
#define STORM_STORE_SQLITE_USERS_SQLITE_H

#include "store/sqlite/sqlite_db.h"
#include "store/users_store.h"

/* Prepares the statements (the schema must be migrated: sqlite_db_open
 * does it). Returns 0 and sets *out, -EINVAL, -ENOMEM or -EIO. */
int users_sqlite_open(sqlite_db_t *db, users_store_t **out);

#endif
