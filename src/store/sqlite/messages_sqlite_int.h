/*
 * messages_sqlite_int.h — internals shared by the files of the SQLite
 * messages store (not for other modules): the store object, the gate, and
 * the helpers every operation uses. Contract in messages_sqlite.h.
 *
 *   messages_sqlite.c         open/close, channels, DMs, members
 *   messages_sqlite_msgs.c    message reads, edit, delete (shared connection)
 *   messages_sqlite_writer.c  append queue, group-commit writer thread,
 *                             callbacks on the loop, id generator
 */
#ifndef STORM_STORE_SQLITE_MESSAGES_SQLITE_INT_H
#define STORM_STORE_SQLITE_MESSAGES_SQLITE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>
#include <uv.h>

#include "core/buf.h"
#include "store/msg_idgen.h"
#include "store/msg_nonces.h"
#include "store/sqlite/messages_sqlite.h"

/* Statements on the shared connection (messages_sqlite.c prepares them). */
enum {
  MST_BEGIN,
  MST_COMMIT,
  MST_ROLLBACK,
  MST_CH_INSERT,
  MST_CH_GET,
  MST_CH_KIND,
  MST_CH_UPDATE,
  MST_CH_DELETE,
  MST_CH_LIST_PUBLIC,
  MST_CH_LIST_USER,
  MST_DM_GET,
  MST_DM_INSERT,
  MST_MB_INSERT,
  MST_MB_DELETE,
  MST_MB_GET,
  MST_MB_MUTE,
  MST_MB_COUNT_USER,
  MST_MB_LIST,
  MST_MB_READ,
  MST_MSG_BEFORE,
  MST_MSG_AFTER,
  MST_MSG_GET,
  MST_MSG_WHO,
  MST_MSG_EDIT,
  MST_MSG_DELETE,
  MST_ATT_VISIBLE,
  MST_COUNT
};

/* Statements on the writer's connection. */
enum {
  WST_BEGIN,
  WST_COMMIT,
  WST_ROLLBACK,
  WST_CHANNEL,
  WST_BY_ID,
  WST_RECENT,
  WST_INSERT,
  WST_LAST_SEQ,
  WST_MAX_ID,
  WST_ATTACH,
  WST_MEMBER,
  WST_COUNT
};

/* A FIFO lock: waiters are served in arrival order. A pthread mutex is not
 * fair, and the writer re-locks right after unlocking, so with a plain
 * mutex a waiting read_set could lose to it batch after batch. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t next, serving;
} msq_gate_t;

typedef struct msq_job msq_job_t;

/* One channel touched by the batch in progress (writer thread only). */
typedef struct {
  int64_t channel_id; /* 0: free slot */
  int64_t last_seq;   /* -1: the channel does not exist */
  int64_t first_seq;  /* last_seq before the batch: changed if different */
  channel_kind_t kind;
  bool is_private;
  int64_t dm_user_lo, dm_user_hi;
  int64_t member_id;  /* the last author found a member in this batch */
} msq_chan_t;

typedef struct {
  messages_store_t base; /* first: the messages_store_t * handed out is this */
  sqlite_db_t *db;
  sqlite3 *conn; /* shared, borrowed from db */
  sqlite3_stmt *st[MST_COUNT];
  atomic_bool healthy;
  msq_gate_t gate;

  /* ---- writer (messages_sqlite_writer.c) ---- */
  uv_loop_t *loop;
  uv_async_t *async; /* own allocation: freed in its close callback */
  unsigned node_id;
  size_t batch_max, queue_max;
  int busy_timeout_ms;
  sqlite3 *wconn;
  sqlite3_stmt *wst[WST_COUNT];
  pthread_t thread;
  bool thread_started;

  pthread_mutex_t qmu; /* the queue and `closing` */
  pthread_cond_t qcv;
  msq_job_t *qhead, *qtail;
  size_t qlen;
  bool closing;

  pthread_mutex_t dmu; /* the done list */
  msq_job_t *dhead, *dtail;
  bool *gone; /* set by close when called from inside a callback */

  /* writer thread only */
  msq_job_t **batch;
  msq_chan_t *chans; /* open addressing, chan_cap slots (power of two) */
  size_t chan_cap;
  size_t *touched;   /* slots of chans used by the batch, batch_max entries */
  msg_idgen_t idgen; /* message ids */
  msg_nonces_t nonces; /* recent nonces: the duplicate check */
  int lock_fd;         /* holds the append lock of the file; -1: none */

  atomic_uint_fast64_t n_batches, n_appended, n_duplicates, n_failed, n_max_batch;
} msq_t;

static inline msq_t *msq_self(messages_store_t *s) { return (msq_t *)s; }

void msq_gate_init(msq_gate_t *g);
void msq_gate_destroy(msq_gate_t *g);
void msq_gate_lock(msq_gate_t *g);
void msq_gate_unlock(msq_gate_t *g);

/* Logs a backend failure (component "store", with sqlite3_errmsg of c)
 * and marks the store unhealthy; returns -EIO. Call before any ROLLBACK so
 * that the message still describes the failure. */
int msq_fail(msq_t *m, sqlite3 *c, const char *op, int rc);
/* The database answered: the store works again. Returns r. */
int msq_ok(msq_t *m, int r);
/* Resets a statement and drops its bindings (no caller pointer survives). */
void msq_idle(sqlite3_stmt *st);
/* A C string of at most max bytes (and not NULL). */
bool msq_fits(const char *s, size_t max);
/* A slice of at most max bytes holding no NUL. .p may be NULL only if
 * .n == 0. */
bool msq_slice_ok(str_t v, size_t max);

/* messages_sqlite_msgs.c */
int msq_messages_page(messages_store_t *s, int64_t channel_id, msg_dir_t dir, int64_t seq,
                      size_t limit, msg_page_t *out);
int msq_message_get(messages_store_t *s, int64_t channel_id, int64_t id, msg_rec_t **out);
int msq_message_edit(messages_store_t *s, int64_t channel_id, int64_t id,
                     int64_t expected_author, str_t body, int64_t now_ms, msg_rec_t **out);
int msq_message_delete(messages_store_t *s, int64_t channel_id, int64_t id,
                       int64_t expected_author, int64_t now_ms, msg_rec_t **out);
int msq_attachment_visible(messages_store_t *s, const char *key, int64_t user_id);
/* The keys of an append are valid (msg_append_t.keys): true or false. */
bool msq_keys_ok(const str_t *keys, size_t nkeys);
/* 0 if channel_id exists, -ENOENT, -EIO. Caller holds the db lock. */
int msq_channel_exists(msq_t *m, int64_t channel_id, const char *op);

/* messages_sqlite_writer.c */
int msq_writer_open(msq_t *m, const messages_sqlite_opts_t *o);
/* Drains the queue, joins the thread, runs the remaining callbacks, closes
 * the writer connection and the async handle. Safe on a half-opened
 * writer (open failures). */
void msq_writer_close(msq_t *m);
int msq_append(messages_store_t *s, const msg_append_t *msg, msg_append_cb cb, void *arg);
void msq_stats(messages_store_t *s, msg_store_stats_t *out);

#endif
