/*
 * messages_sqlite.h — the messages store (store/messages_store.h) on the
 * embedded SQLite database (store/sqlite/sqlite_db.h).
 *
 * Ownership: the store borrows db and loop. db must stay open until the
 * store's ops->close has run (close the stores, then the db); the loop
 * must outlive the store and run once more after close (see
 * messages_store.h). The store owns its prepared statements on the shared
 * connection, a second connection of its own (the writer's) and a thread.
 *
 * Two connections, on purpose.
 *   - The writer thread owns a second connection to the same file with
 *     PRAGMA synchronous=FULL, so that each group-commit COMMIT fsyncs the
 *     WAL: an append is acknowledged only once it survives power loss, not
 *     just kill -9. One batch = BEGIN IMMEDIATE; for each queued append:
 *     channel lookup (missing → -ENOENT for that message alone), nonce
 *     check (found → the original, duplicate), INSERT with seq =
 *     last_seq + 1; then one UPDATE of channels.last_seq per channel
 *     touched; COMMIT. While a batch commits, new appends queue for the
 *     next one (up to batch_max per transaction), which is what makes
 *     throughput grow with load: one fsync per batch, not per message.
 *     A failing INSERT is undone alone (SQLite rolls back the failing
 *     statement, not the transaction; validating the channel and nonce
 *     first makes that the rare case, so no SAVEPOINT per message is paid)
 *     and fails with -EIO; the rest of the batch commits. If the
 *     transaction itself fails (BEGIN, an error that aborts it, the
 *     last_seq UPDATE, COMMIT), every append of the batch gets -EIO and
 *     nothing of it is stored: nothing is acknowledged that is not durable.
 *   - Every other operation uses the shared connection under the db lock,
 *     like the other stores (synchronous=NORMAL there: edits, deletes,
 *     memberships and read state survive a crash of the process, not of
 *     the machine).
 *
 * How the writers coexist. SQLite has one writer per file; a second
 * connection that finds the file locked sleeps in its busy handler with
 * growing delays (up to 100 ms per try). Under a steady load the writer
 * releases the lock only for microseconds between batches, so a plain
 * busy_timeout would starve every other write (and the shared connection
 * would hold the db lock, blocking all reads, while it sleeps). Hence:
 *   - a FIFO ticket lock ("gate") in the store: the writer holds it for
 *     each whole transaction, and this store's own writes on the shared
 *     connection take it before the db lock. They queue fairly behind at
 *     most the batch in progress and never meet a locked file, so never
 *     sleep in the busy handler with the db lock held.
 *   - the writer takes the db lock around its BEGIN IMMEDIATE (and only
 *     there): another store's write on the shared connection (users) that
 *     is waiting in the busy handler holds that lock, so the writer cannot
 *     start the next batch before it got its turn.
 *   Reads take only the db lock and never wait for a commit (WAL).
 * Lock order: gate, then db lock. Another process writing the file (the
 * sqlite3 shell, a backup) is handled by busy_timeout as before.
 *
 * Nonces in memory, one appender per file. A unique index on the nonce
 * put every insert of a random nonce on a random b-tree page, a WAL frame
 * per message (docs/storage.md). The writer instead remembers recent
 * nonces (store/msg_nonces.h: keyed hashes → ids), reads each candidate
 * row back by id and compares, and reloads the newest messages' nonces at
 * open, so a retry after a restart or a kill -9 still finds its original.
 * That memory is this process's, so the store holds an flock on
 * "<db>-append.lock" while open: a second store appending to the same
 * file (another process, or another connection in this one) is refused
 * with -EBUSY. Replicas use PostgreSQL.
 *
 * Threads: open must run on the loop thread (uv_async_init); close too.
 * A failed open has closed what it opened, but may leave a uv_async_t
 * closing: run the loop once before uv_loop_close, as after close.
 * append may be called from any thread; callbacks run on the loop thread.
 *
 * Errors, beyond messages_store.h: -EIO also for a stored row beyond the
 * MSG_* limits (written behind the store's back); logged under "store".
 */
#ifndef STORM_STORE_SQLITE_MESSAGES_SQLITE_H
#define STORM_STORE_SQLITE_MESSAGES_SQLITE_H

#include <uv.h>

#include "store/messages_store.h"
#include "store/sqlite/sqlite_db.h"

#define MESSAGES_SQLITE_BATCH_MAX 1000   /* default appends per transaction */
#define MESSAGES_SQLITE_QUEUE_MAX 100000 /* default appends waiting before -EAGAIN */

typedef struct {
  uv_loop_t *loop;         /* where append callbacks run; required */
  unsigned node_id;        /* 0..MSG_NODE_ID_MAX, in every message id */
  size_t batch_max;        /* appends per transaction, ≤ 100000; 0: MESSAGES_SQLITE_BATCH_MAX */
  size_t queue_max;        /* 0: MESSAGES_SQLITE_QUEUE_MAX */
  int busy_timeout_ms;     /* writer connection; 0: SQLITE_DB_BUSY_TIMEOUT_MS */
  int64_t nonce_gen_ms;    /* the duplicate check's generations (store/msg_nonces.h); */
  size_t nonce_gen_max;    /* 0: MSG_NONCES_GEN_MS / MSG_NONCES_GEN_MAX */
  unsigned nonce_hash_bits; /* tests only: 1..63 makes nonces collide; 0: all 64 */
} messages_sqlite_opts_t;

/* Prepares the statements, opens the writer connection and starts the
 * writer thread (the schema must be migrated: sqlite_db_open does it).
 * Returns 0 and sets *out, -EINVAL (bad opts), -EBUSY (another store
 * appends to this file), -ENOMEM or -EIO. */
int messages_sqlite_open(sqlite_db_t *db, const messages_sqlite_opts_t *opts,
                         messages_store_t **out);

#endif
