/*
 * notifications_sqlite.h — the notifications store (store/notifications_store.h)
 * on the embedded SQLite database, tables `notifications` and
 * `notification_mutes` (migration 4).
 *
 * The interface is asynchronous; SQLite is not. Operations are queued on
 * the loop and ONE pool job at a time runs up to NOTIF_SQLITE_BATCH of
 * them in one BEGIN IMMEDIATE transaction (a burst of message.sent costs
 * one commit per batch, not per notification), then calls their callbacks
 * back on the loop in queue order. A batch that fails to commit fails all
 * its operations with -EIO; a duplicate (user, id) fails only its add
 * (-EIO, logged).
 *
 * Expiry: a notification with created_at <= now - NOTIF_TTL_MS is never
 * listed; list deletes the user's expired rows, and a batch deletes every
 * expired row at most once a minute of the store's clock. "now" is read on
 * the loop when an op is submitted (opts.clock, for tests).
 *
 * Borrows db (must outlive the store) and takes the db lock only inside
 * the pool job, for the whole batch. ready() is false after a failed batch
 * until one succeeds. close: no operation may be pending.
 */
#ifndef STORM_STORE_SQLITE_NOTIFICATIONS_SQLITE_H
#define STORM_STORE_SQLITE_NOTIFICATIONS_SQLITE_H

#include <uv.h>

#include "store/notifications_store.h"
#include "store/sqlite/sqlite_db.h"

#define NOTIF_SQLITE_BATCH 512      /* ops per transaction */
#define NOTIF_SQLITE_MAX_QUEUED 65536

typedef struct {
  uv_loop_t *loop;
  sqlite_db_t *db;
  notif_clock_fn clock; /* NULL = wall clock */
  void *clock_arg;
} notif_sqlite_opts_t;

/* Prepares the statements (schema must be migrated). 0 and *out, or
 * -EINVAL, -ENOMEM, -EIO. */
int notif_sqlite_open(const notif_sqlite_opts_t *o, notif_store_t **out);

#endif
