/*
 * messages_pg_int.h — internals shared by the files of the PostgreSQL
 * messages store (not for other modules). Contract in messages_pg.h.
 *
 *   messages_pg.c         open/close, helpers, channels, DMs, members
 *   messages_pg_msgs.c    message pages, get, edit, delete
 *   messages_pg_writer.c  append queue, group-commit writer thread,
 *                         callbacks on the loop, id generator, node lease
 */
#ifndef STORM_STORE_PG_MESSAGES_PG_INT_H
#define STORM_STORE_PG_MESSAGES_PG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "core/buf.h"
#include "store/msg_idgen.h"
#include "store/pg/messages_pg.h"

typedef struct mpg_job mpg_job_t;

/* Array parameters of the batch statements: the message insert's 8, then
 * the attachments insert's 3. */
#define MPG_ARRAYS 11

/* One channel of the batch in progress (writer thread only). */
typedef struct {
  int64_t channel_id; /* 0: free slot */
  int64_t last_seq;   /* -1: the channel does not exist */
  int64_t last_id;
  bool changed;
  channel_kind_t kind;
  bool is_private;
  int64_t dm_user_lo, dm_user_hi;
} mpg_chan_t;

typedef struct {
  messages_store_t base; /* first: the messages_store_t * handed out is this */
  pg_db_t *db;
  atomic_bool healthy;

  /* ---- writer (messages_pg_writer.c) ---- */
  uv_loop_t *loop;
  uv_async_t *async; /* own allocation: freed in its close callback */
  bool fixed_node;
  atomic_uint node_id;
  size_t batch_max, queue_max;
  unsigned lease_ttl_ms;
  char holder[33]; /* hex of 16 random bytes: this store's lease token */
  bool leased;     /* writer thread (and open/close) only */
  pg_conn_t *wconn;
  pthread_t thread;
  bool thread_started;

  pthread_mutex_t qmu; /* the queue and `closing` */
  pthread_cond_t qcv;
  mpg_job_t *qhead, *qtail;
  size_t qlen;
  bool closing;

  pthread_mutex_t dmu; /* the done list */
  mpg_job_t *dhead, *dtail;
  bool *gone; /* set by close when called from inside a callback */

  /* writer thread only */
  mpg_job_t **batch;
  mpg_chan_t *chans; /* open addressing, chan_cap slots (power of two) */
  size_t chan_cap;
  size_t *touched;
  buf_t a[MPG_ARRAYS]; /* array literals of the batch statements */
  msg_idgen_t idgen; /* message ids */

  atomic_uint_fast64_t n_batches, n_appended, n_duplicates, n_failed, n_max_batch;
} mpg_t;

static inline mpg_t *mpg_self(messages_store_t *s) { return (mpg_t *)s; }

/* The database answered: healthy again. Returns r. */
int mpg_ok(mpg_t *m, int r);
/* Maps a pg_exec/pg_cmd result: -EIO/-ENOMEM mark the store unhealthy,
 * anything else is an answer. Returns e. */
int mpg_answer(mpg_t *m, int e);
/* A pooled connection, or NULL (unreachable: marks unhealthy). */
pg_conn_t *mpg_take(mpg_t *m);
/* At most max bytes, no NUL, valid UTF-8; .p NULL only with .n == 0. */
bool mpg_slice_ok(str_t v, size_t max);
/* The keys of an append are valid (msg_append_t.keys). */
bool mpg_keys_ok(const str_t *keys, size_t nkeys);
/* 0 if channel_id exists, -ENOENT, -EIO. */
int mpg_channel_exists(mpg_t *m, pg_conn_t *c, int64_t channel_id, const char *op);

/* messages_pg_msgs.c */
int mpg_messages_page(messages_store_t *s, int64_t channel_id, msg_dir_t dir, int64_t seq,
                      size_t limit, msg_page_t *out);
int mpg_message_get(messages_store_t *s, int64_t channel_id, int64_t id, msg_rec_t **out);
int mpg_message_edit(messages_store_t *s, int64_t channel_id, int64_t id, int64_t expected_author,
                     str_t body, int64_t now_ms, msg_rec_t **out);
int mpg_message_delete(messages_store_t *s, int64_t channel_id, int64_t id,
                       int64_t expected_author, int64_t now_ms, msg_rec_t **out);
int mpg_attachment_visible(messages_store_t *s, const char *key, int64_t user_id);

/* messages_pg_writer.c */
int mpg_writer_open(mpg_t *m, const messages_pg_opts_t *o);
/* Drains the queue, joins the thread, runs the remaining callbacks,
 * releases the lease, closes the connection and the async handle. Safe on
 * a half-opened writer. */
void mpg_writer_close(mpg_t *m);
int mpg_append(messages_store_t *s, const msg_append_t *msg, msg_append_cb cb, void *arg);
void mpg_stats(messages_store_t *s, msg_store_stats_t *out);

#endif
