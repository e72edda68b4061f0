/*
 * messages_pg.h — the messages store (store/messages_store.h) on
 * PostgreSQL (store/pg/pg_db.h), for distributed mode: several
 * messages-service processes ("replicas") append to the same channels.
 *
 * Use (on the loop thread):
 *     messages_pg_opts_t o = {.loop = loop, .migrate_on_open = true};
 *     messages_store_t *msgs;
 *     int r = messages_pg_open(db, &o, &msgs);   // db from pg_db_open
 *     ...
 *     msgs->ops->close(msgs);   // on the loop thread; then run the loop once
 *
 * Ownership: the store borrows db and loop: db must stay open until close
 * has run; the loop must outlive the store and run once more after close
 * (the uv_async_t is freed in its close callback). The store owns a
 * writer thread with its own connection (outside the pool, so appends
 * never queue behind reads) and its node-id lease.
 *
 * Appends: group commit. append copies and queues; the writer thread
 * takes everything queued (up to batch_max) into one transaction:
 *   1. renews its node-id lease (see below); lost → the batch fails;
 *   2. locks the batch's channels: SELECT ... WHERE id = ANY($1) ORDER BY
 *      id FOR NO KEY UPDATE. The row lock serializes the writers of every
 *      process on a channel (in id order: no deadlock between batches);
 *      a missing channel fails its appends alone with -ENOENT;
 *   3. looks up the batch's nonces — a new statement, so it sees whatever
 *      the previous holder of the lock committed, in any process; a nonce
 *      found (or repeated earlier in the batch) answers with the original
 *      id/seq/created_at, duplicate = true, and takes no seq;
 *   4. numbers the rest: seq = last_seq + 1, + 2, ... (gapless: the
 *      duplicates and missing channels were set aside first), ids from the
 *      generator kept above the channel's last_id, and inserts them all in
 *      one INSERT ... SELECT FROM unnest(arrays);
 *   5. writes channels.last_seq/last_id, and COMMITs.
 * The unique index (author_id, channel_id, nonce) backs step 3 up. COMMIT
 * is the durable point (synchronous_commit=on: the WAL is flushed before
 * it returns); only then do the callbacks run, on the loop thread, via a
 * uv_async_t. If anything in the transaction fails, every append of the
 * batch gets -EIO and nothing of it is stored. A COMMIT whose answer is
 * lost with the connection may still have committed: the caller saw
 * -EIO, and its retry with the same nonce gets the original back.
 *
 * Node ids (the 10 bits in every message id): leased from the
 * node_leases table so that two live processes never share one. At open
 * the store takes, under an advisory lock, the lowest node id without a
 * live lease (or opts.node_id when fixed_node, -EADDRINUSE if another
 * process holds it), with expires_at = now + lease_ttl_ms and a random
 * holder token. The writer renews the lease inside every batch
 * transaction (UPDATE ... WHERE node_id AND holder: the row lock fences a
 * takeover out of an in-flight batch) and every lease_ttl_ms/3 while
 * idle. A lease found lost (expired while the database was unreachable
 * and taken by another process) fails that batch; the next batch leases
 * again, perhaps another node id. close deletes the lease. After a lease
 * the generator resumes above the highest stored id, so a node id taken
 * over from a dead process never repeats its ids even with a clock behind.
 *
 * Threads: open and close on the loop thread; append from any thread;
 * every other call blocks on a pooled connection and is thread-safe.
 *
 * Errors, beyond messages_store.h: -EINVAL also for text that is not valid
 * UTF-8; -EIO also for a stored row beyond the MSG_* limits. open: -EINVAL
 * (bad opts), -ENOMEM, -EPROTO (schema too old: migrate), -ENOTSUP (schema
 * newer than this binary), -EADDRINUSE (fixed node id held by another live
 * process), -EADDRNOTAVAIL (all 1024 node ids leased), -EIO (unreachable;
 * logged).
 */
#ifndef STORM_STORE_PG_MESSAGES_PG_H
#define STORM_STORE_PG_MESSAGES_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "store/messages_store.h"
#include "store/pg/pg_db.h"

#define MESSAGES_PG_SCHEMA_MIN 4       /* the migrations that create its tables (2, 4) */
#define MESSAGES_PG_BATCH_MAX 1000     /* default appends per transaction */
#define MESSAGES_PG_QUEUE_MAX 100000   /* default appends waiting before -EAGAIN */
#define MESSAGES_PG_LEASE_TTL_MS 30000 /* default node-id lease */

typedef struct {
  uv_loop_t *loop;       /* where append callbacks run; required */
  bool fixed_node;       /* false (default): lease the lowest free node id */
  unsigned node_id;      /* with fixed_node: the one to lease, 0..MSG_NODE_ID_MAX */
  size_t batch_max;      /* appends per transaction, ≤ 100000; 0: MESSAGES_PG_BATCH_MAX */
  size_t queue_max;      /* 0: MESSAGES_PG_QUEUE_MAX */
  unsigned lease_ttl_ms; /* ≥ 300 when set; 0: MESSAGES_PG_LEASE_TTL_MS */
  bool migrate_on_open;  /* apply pending migrations first */
} messages_pg_opts_t;

/* Checks the schema, leases a node id, connects the writer and starts its
 * thread. Returns 0 and sets *out, or an error above (nothing left
 * behind; run the loop once before uv_loop_close, as after close). */
int messages_pg_open(pg_db_t *db, const messages_pg_opts_t *opts, messages_store_t **out);

/* The node id the store holds now (it may change after a lost lease). */
unsigned messages_pg_node_id(messages_store_t *s);

#endif
