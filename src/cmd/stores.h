/*
 * stores.h — opens the durable stores the configuration names, for
 * `storm serve` and the admin commands alike: SQLite in the data directory
 * (embedded), or PostgreSQL when --db / DATABASE_URL is set (distributed).
 *
 * The database is opened once, on first use, and shared by the stores.
 * PostgreSQL must have been migrated (`storm migrate`): a schema older
 * than a store needs fails the open with a message saying so. Errors are
 * logged here (with the reason); callers only return their exit code.
 */
#ifndef STORM_CMD_STORES_H
#define STORM_CMD_STORES_H

#include <uv.h>

#include "core/config.h"
#include "store/media_store.h"
#include "store/messages_store.h"
#include "store/users_store.h"

typedef struct sqlite_db sqlite_db_t;
typedef struct pg_db pg_db_t;

typedef struct {
  const storm_config_t *cfg;
  sqlite_db_t *sqlite;
  pg_db_t *pg;
} cmd_db_t;

/* 0, or -1 after logging why. */
int cmd_users_store_open(cmd_db_t *db, users_store_t **out);
int cmd_messages_store_open(cmd_db_t *db, uv_loop_t *loop, messages_store_t **out);
int cmd_media_store_open(cmd_db_t *db, media_store_t **out);
/* After every store on it is closed. */
void cmd_db_close(cmd_db_t *db);

#endif
