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
#include "core/health.h"
#include "store/media_store.h"
#include "store/messages_store.h"
#include "store/users_store.h"

typedef struct sqlite_db sqlite_db_t;
typedef struct pg_db pg_db_t;

typedef struct {
  const storm_config_t *cfg;
  sqlite_db_t *sqlite;
  pg_db_t *pg;
  uv_timer_t probe;      /* PostgreSQL: pg_db_ping on the pool every second */
  uv_work_t probe_work;
  bool probing, probe_open;
} cmd_db_t;

/* 0, or -1 after logging why. */
int cmd_users_store_open(cmd_db_t *db, users_store_t **out);
int cmd_messages_store_open(cmd_db_t *db, uv_loop_t *loop, messages_store_t **out);
int cmd_media_store_open(cmd_db_t *db, media_store_t **out);
/* PostgreSQL only (a no-op for SQLite): probes the database off the loop
 * every second and adds the "database" readiness check, so /readyz follows
 * PostgreSQL with or without traffic (the stores' own checks only change
 * when they are used). Stop it in the shutdown sequence (the loop ends
 * once the probe is closed). */
void cmd_db_watch(cmd_db_t *db, uv_loop_t *loop, health_t *health);
/* True when the stores' own health checks mean something (SQLite); with
 * PostgreSQL the "database" check above stands for them. */
bool cmd_db_store_checks(const cmd_db_t *db);
void cmd_db_unwatch(cmd_db_t *db);
/* After every store on it is closed. */
void cmd_db_close(cmd_db_t *db);

#endif
