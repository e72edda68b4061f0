/*
 * messages_store.h — durable state of the messages service: channels,
 * direct conversations (DMs), memberships with read state, and message
 * history. One interface, several backends (SQLite now, PostgreSQL with
 * the distributed-mode issue); the same test-suite runs against each.
 * Nothing here names a backend: business rules (who may post, edit, see a
 * private channel) are the service's; the store keeps data consistent.
 *
 * Threads and calls.
 *   - append is asynchronous: it copies the message, queues it and returns;
 *     the backend makes it durable with group commit (many appends, one
 *     transaction, one fsync) and calls cb later, always on the libuv loop
 *     thread the backend was opened with, never from inside append. A
 *     callback means durable: status 0 is sent only after the transaction
 *     holding the row has been committed and flushed to stable storage.
 *     append itself may be called from any thread.
 *   - Every other call is blocking and thread-safe: the service runs them
 *     on libuv's thread pool, never on the event loop. Writes may wait for
 *     the group commit in progress (one fsync), reads never do.
 *   - close must be called on the loop thread: see below.
 *
 * Errors: 0 (or a count, where said) or a negative errno:
 *   -EINVAL  argument out of its MSG_* limit or NULL where not allowed
 *            (stores never truncate); a string holding a NUL byte (text
 *            columns of every backend refuse them; nonces are bytes and may)
 *   -ENOENT  no such channel / member / message (also: a foreign key, e.g.
 *            member_add for a user that does not exist)
 *   -EEXIST  channel name already taken
 *   -EPERM   message_edit/_delete with an expected author that is not the
 *            message's author
 *   -EAGAIN  append: the queue is full (MSG_QUEUE_MAX-style limit of the
 *            backend); back off, the store is overloaded
 *   -ESHUTDOWN append during close
 *   -ENOMEM  allocation failed
 *   -EIO     backend failure (logged by the backend with the detail)
 *
 * Model.
 *   Channel ids, user ids and message ids are int64 > 0. Times are unix
 *   milliseconds.
 *   A channel is kind CHANNEL (named; public or private; has an owner) or
 *   kind DM (no name, always private, no owner; exactly one per unordered
 *   pair of users, both members; a user may have a DM with himself, which
 *   then has one member). Names are unique among CHANNEL-kind channels,
 *   byte-wise: case folding and normalisation are the service's policy.
 *   last_seq is the seq of the newest committed message (0: none yet).
 *   Each member has last_read_seq: unread = channel last_seq - last_read_seq
 *   (deleted messages still count; good enough for a badge). A new member
 *   starts with last_read_seq = the channel's last_seq at join time (no
 *   history of unread on joining). read_set never moves it backwards and
 *   clamps it to last_seq.
 *   A message's seq is per channel, assigned at commit: 1, 2, 3, ... with no
 *   gap and in commit order; for appends of one channel made from one
 *   thread, commit order is append order. Its id is a snowflake (layout
 *   below) assigned at commit too, so ids grow with seq within a channel,
 *   and created_at is the time inside the id.
 *   Soft delete clears body and attachments and sets deleted; the row (and
 *   its seq, id and nonce) stays, so history pages stay gapless and a
 *   retried append with the same nonce still answers with the original.
 *   Idempotency: (author_id, channel_id, nonce) is unique when nonce is
 *   given; appending with a nonce already used returns the original id,
 *   seq and created_at with duplicate = true and stores nothing (even if
 *   the two copies are in the same batch, and even if the original has
 *   been deleted or edited since). A NULL nonce is never a duplicate.
 *   How long a nonce is remembered is the backend's: PostgreSQL always (a
 *   unique index); SQLite at least the last MSG_NONCES_GEN_MAX nonces of
 *   the last MSG_NONCES_GEN_MS, in the writer's memory and reloaded at
 *   start (store/msg_nonces.h). A retry older than that may be stored
 *   again.
 *
 * Message ids: (ms - MSG_ID_EPOCH_MS) << 22 | node_id << 12 | counter,
 *   41 bits of milliseconds (until 2093), the 10-bit node id given at open
 *   (distinct per process writing the same database), and a 12-bit counter
 *   (4096 ids per ms per node; beyond that the generator borrows the next
 *   millisecond). The generator never goes backwards: not when the clock
 *   does, nor across a restart (it resumes after the highest stored id).
 *
 * Memory. Fixed-size records (channel_rec_t, member_rec_t) are copied into
 * caller storage. Messages are variable (a body may be 16 KB), so pages
 * and single messages are returned as ONE heap allocation each holding the
 * records and every byte their str_t fields point to; free it with
 * msg_page_free / free(). Every str_t is also NUL-terminated.
 *
 * Lists are paginated by a cursor (the last id of the previous page, 0 to
 * start) and return the count written (0..cap, cap ≤ MSG_LIST_MAX) with
 * *more (may be NULL) telling whether rows remain after them.
 *
 * close: drains, then frees. Every append queued before close is committed
 * and its callback runs before close returns (from inside close, on the
 * loop thread); an append made during close (e.g. by a callback) fails
 * with -ESHUTDOWN; no callback runs after close returns. close may be
 * called from inside an append callback. No other call may be running on
 * another thread when close starts, nor start later (the service stops
 * its thread-pool work first); the callbacks close runs may use the store.
 * Like any libuv handle owner, the loop must run once more after close
 * (the backend's uv_async_t is freed in its close callback) before
 * uv_loop_close.
 */
#ifndef STORM_STORE_MESSAGES_STORE_H
#define STORM_STORE_MESSAGES_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/str.h"

#define MSG_CHANNEL_NAME_MAX 320  /* bytes: 80 UTF-8 characters of up to 4 bytes */
#define MSG_CHANNEL_TOPIC_MAX 1000 /* bytes: 250 characters */
#define MSG_BODY_MAX 16000        /* bytes: 4,000 characters (the service counts them) */
#define MSG_ATTACHMENTS_MAX 16384 /* bytes of opaque JSON text */
#define MSG_NONCE_MAX 64          /* bytes, any values */
#define MSG_ATTACH_KEYS_MAX 16    /* media keys indexed per message (msg_append_t.keys) */
#define MSG_ATTACH_KEY_MAX 200    /* bytes of one media key */
#define MSG_PAGE_MAX 100          /* messages per page */
#define MSG_LIST_MAX 500          /* channels or members per list call */

#define MSG_ID_EPOCH_MS INT64_C(1704067200000) /* 2024-01-01T00:00:00Z */
#define MSG_NODE_ID_MAX 1023
#define MSG_ANY_AUTHOR 0 /* message_edit/_delete: do not check the author */

/* Reads the fields of a message id (see the layout above). */
static inline int64_t msg_id_ms(int64_t id) { return (id >> 22) + MSG_ID_EPOCH_MS; }
static inline unsigned msg_id_node(int64_t id) { return (unsigned)((id >> 12) & 0x3FF); }

typedef enum {
  CHANNEL_KIND_CHANNEL = 0,
  CHANNEL_KIND_DM = 1,
} channel_kind_t;

typedef struct {
  int64_t id;
  channel_kind_t kind;
  bool is_private;                        /* always true for a DM */
  char name[MSG_CHANNEL_NAME_MAX + 1];    /* "" for a DM */
  char topic[MSG_CHANNEL_TOPIC_MAX + 1];  /* "" when none */
  int64_t owner_id;                       /* 0: none (a DM, or the owner's account is gone) */
  int64_t dm_user_lo, dm_user_hi;         /* a DM's two users, lo <= hi; 0 for a channel */
  int64_t created_at;
  int64_t last_seq;                       /* newest committed message, 0: none */
} channel_rec_t;

typedef struct {
  int64_t channel_id, user_id;
  int64_t joined_at;
  int64_t last_read_seq;
  bool muted;
} member_rec_t;

/* One entry of channel_list_for_user: the channel and the user's own
 * membership (unread = channel.last_seq - member.last_read_seq). */
typedef struct {
  channel_rec_t channel;
  member_rec_t member;
} channel_membership_t;

typedef struct {
  int64_t id, channel_id, seq, author_id;
  str_t body;        /* bytes as appended ("" when deleted) */
  str_t attachments; /* .p == NULL: none */
  str_t nonce;       /* .p == NULL: none */
  int64_t created_at;
  int64_t edited_at; /* 0: never edited; also set by delete */
  bool deleted;
} msg_rec_t;

typedef struct {
  msg_rec_t *items; /* count records in ascending seq; owns their bytes */
  size_t count;
  bool more;        /* more messages exist beyond the page, in its direction */
} msg_page_t;

static inline void msg_page_free(msg_page_t *p) {
  free(p->items);
  p->items = NULL;
  p->count = 0;
}

typedef enum {
  MSG_BEFORE = 0, /* the newest `limit` messages with seq < the given seq */
  MSG_AFTER = 1,  /* the oldest `limit` messages with seq > the given seq */
} msg_dir_t;

/* MSG_BEFORE with this seq: the latest page. */
#define MSG_SEQ_LATEST INT64_MAX

/* What append copies. body may be empty (.n == 0, .p may then be NULL);
 * attachments and nonce are absent when .p == NULL. */
typedef struct {
  int64_t channel_id;
  int64_t author_id;
  str_t body;        /* ≤ MSG_BODY_MAX bytes, no NUL */
  str_t attachments; /* ≤ MSG_ATTACHMENTS_MAX bytes, no NUL */
  str_t nonce;       /* 1..MSG_NONCE_MAX bytes */
  /* Media keys the message carries, indexed (media_key, channel_id,
   * message_id) in the transaction that stores the message, for
   * attachment_visible. The store does not read them out of attachments
   * (opaque to it): the service passes the keys it checked. At most
   * MSG_ATTACH_KEYS_MAX of 1..MSG_ATTACH_KEY_MAX bytes without NUL (and
   * valid UTF-8); a repeated key is indexed once. NULL/0: none. Not
   * indexed for a duplicate (the original's keys stand). */
  const str_t *keys;
  size_t nkeys;
} msg_append_t;

typedef struct {
  int64_t id, seq, created_at;
  bool duplicate; /* the nonce was used before: these are the original's */
  /* The channel as the append's transaction saw it, so that the caller
   * needs no lookup of its own to route the message or word a refusal. */
  channel_kind_t kind;
  bool is_private;
  int64_t dm_user_lo, dm_user_hi;
} msg_ack_t;

/* status: 0 (ack filled, durable), -ENOENT (the channel does not exist,
 * e.g. deleted while the message was queued; nothing stored), -EPERM (the
 * author is not a member of the channel when the transaction runs;
 * nothing stored, only ack's channel fields are set), -EIO (the backend
 * failed; the message is not stored). ack is NULL for the other statuses,
 * and valid only during the call. */
typedef void (*msg_append_cb)(void *arg, int status, const msg_ack_t *ack);

typedef struct {
  uint64_t batches;    /* group-commit transactions committed */
  uint64_t appended;   /* new messages committed */
  uint64_t duplicates; /* appends answered with an existing message */
  uint64_t failed;     /* appends called back with an error */
  uint64_t max_batch;  /* most appends in one transaction */
  uint64_t queued;     /* appends waiting now (not yet in a transaction) */
} msg_store_stats_t;

typedef struct messages_store messages_store_t;

typedef struct {
  /* ---- channels ---- */
  /* Creates a CHANNEL-kind channel and makes owner_id its first member, in
   * one transaction. name: 1..MSG_CHANNEL_NAME_MAX bytes; topic may be
   * NULL ("" stored). -EEXIST name taken, -ENOENT no such owner. */
  int (*channel_create)(messages_store_t *s, const char *name, const char *topic,
                        bool is_private, int64_t owner_id, int64_t now_ms, channel_rec_t *out);
  int (*channel_get)(messages_store_t *s, int64_t id, channel_rec_t *out);
  /* Changes name and/or topic (NULL: keep). A DM has no name: -EINVAL. */
  int (*channel_update)(messages_store_t *s, int64_t id, const char *name, const char *topic);
  /* Deletes the channel with its members and messages (not a soft delete;
   * appends still queued for it fail with -ENOENT). */
  int (*channel_delete)(messages_store_t *s, int64_t id);
  /* Public CHANNEL-kind channels with id > after_id, by id. Count or errno. */
  int (*channel_list_public)(messages_store_t *s, int64_t after_id, channel_rec_t *out,
                             size_t cap, bool *more);
  /* Channels and DMs user_id is a member of, id > after_id, by id. */
  int (*channel_list_for_user)(messages_store_t *s, int64_t user_id, int64_t after_id,
                               channel_membership_t *out, size_t cap, bool *more);
  /* The DM of users a and b (in either order), created with both as
   * members if missing; idempotent and race-safe (concurrent calls for one
   * pair get the same channel). *created (may be NULL) says whether this
   * call created it. -ENOENT: a user does not exist. */
  int (*dm_get_or_create)(messages_store_t *s, int64_t a, int64_t b, int64_t now_ms,
                          channel_rec_t *out, bool *created);

  /* ---- members ---- */
  /* Idempotent: an existing membership is left as it is, *added (may be
   * NULL) = false. -ENOENT: no such channel or user. */
  int (*member_add)(messages_store_t *s, int64_t channel_id, int64_t user_id, int64_t now_ms,
                    bool *added);
  int (*member_remove)(messages_store_t *s, int64_t channel_id, int64_t user_id);
  /* 0 and *out (may be NULL: a membership test) or -ENOENT. */
  int (*member_get)(messages_store_t *s, int64_t channel_id, int64_t user_id, member_rec_t *out);
  /* How many channels (DMs included) user_id is a member of: the service
   * caps memberships per user. Returns the count or a negative errno. */
  int (*member_count_for_user)(messages_store_t *s, int64_t user_id);
  int (*member_set_muted)(messages_store_t *s, int64_t channel_id, int64_t user_id, bool muted);
  /* Members with user_id > after_user_id, by user id. -ENOENT: no such
   * channel. */
  int (*members_list)(messages_store_t *s, int64_t channel_id, int64_t after_user_id,
                      member_rec_t *out, size_t cap, bool *more);
  /* last_read_seq = max(last_read_seq, min(seq, channel last_seq)); the
   * resulting value in *now_read (may be NULL). -ENOENT: not a member. */
  int (*read_set)(messages_store_t *s, int64_t channel_id, int64_t user_id, int64_t seq,
                  int64_t *now_read);

  /* ---- messages ---- */
  /* Queues m (copied). 0: cb will run exactly once; any error: it never
   * will. -EINVAL limits, -EAGAIN queue full, -ESHUTDOWN closing. The
   * channel and the author's membership are checked by the writer, inside
   * the transaction that stores the message (-ENOENT / -EPERM in the
   * callback): a member removed before that transaction cannot post, and
   * checking there costs no hop to another thread. A nonce retry by an
   * author who has left is refused like a new message. */
  int (*append)(messages_store_t *s, const msg_append_t *m, msg_append_cb cb, void *arg);
  /* Up to limit (1..MSG_PAGE_MAX) messages before/after seq, ascending,
   * deleted ones included. -ENOENT: no such channel. Free with
   * msg_page_free (also after an error: then items is NULL). */
  int (*messages_page)(messages_store_t *s, int64_t channel_id, msg_dir_t dir, int64_t seq,
                       size_t limit, msg_page_t *out);
  /* The message id of channel_id. *out is one allocation: free(*out). */
  int (*message_get)(messages_store_t *s, int64_t channel_id, int64_t id, msg_rec_t **out);
  /* Replaces body (attachments are kept), sets edited_at = now_ms.
   * expected_author: MSG_ANY_AUTHOR or the author the service allows
   * (-EPERM when it differs, nothing changed). A deleted message cannot be
   * edited: -ENOENT. *out (may be NULL) gets the edited message: free it. */
  int (*message_edit)(messages_store_t *s, int64_t channel_id, int64_t id,
                      int64_t expected_author, str_t body, int64_t now_ms, msg_rec_t **out);
  /* Soft delete (body "", attachments none, deleted, edited_at = now_ms).
   * Idempotent: deleting a deleted message is 0 and changes nothing.
   * expected_author as for message_edit. */
  int (*message_delete)(messages_store_t *s, int64_t channel_id, int64_t id,
                        int64_t expected_author, int64_t now_ms, msg_rec_t **out);

  /* ---- attachments ---- */
  /* 1 when some message that is not deleted, in a channel (or DM) user_id
   * is a member of, was appended with key among its keys; 0 otherwise
   * (also for a key nobody attached). -EINVAL: key not 1..
   * MSG_ATTACH_KEY_MAX bytes / NUL / not UTF-8, user_id <= 0. Leaving the
   * channel, deleting the message or the channel withdraws it. */
  int (*attachment_visible)(messages_store_t *s, const char *key, int64_t user_id);

  void (*stats)(messages_store_t *s, msg_store_stats_t *out);
  /* false after an -EIO until an operation succeeds again. */
  bool (*healthy)(messages_store_t *s);
  void (*close)(messages_store_t *s);
} messages_store_ops_t;

struct messages_store {
  const messages_store_ops_t *ops;
};

#endif
