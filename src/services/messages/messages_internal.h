/*
 * messages_internal.h — what the messages service's files share; not a
 * public API (the service is reached over the bus only: messages_service.h).
 *
 * Files, one job each:
 *   messages_validate.c  payload -> msg_req_t (on the loop, bounded by
 *                        MESSAGES_REQUEST_MAX); pure
 *   messages_send_scan.c the same for a plain messages.send, without a
 *                        JSON tree (the hot path); pure
 *   messages_mentions.c  @username mentions of a body; pure
 *   messages_reply.c     JSON of errors, channels, members, messages; pure
 *   messages_names.c     the bounded id <-> username cache (loop only)
 *   messages_lookup.c    users.get requests that fill a job's name slots
 *   messages_send.c      messages.send: append (membership checked by the
 *                        store), events; queues behind attachment checks
 *   messages_batch.c     messages.send.batch: one send job per item, one reply
 *   messages_attach.c    attachments: the author's ownership check on send
 *                        (media.get), messages.attachment.check
 *   messages_ops.c       every other op: pool step, then reply and events
 *   messages_service.c   lifecycle, subscriptions, jobs, replies, publishing
 * The pure files are safe from any thread; the others run on the loop,
 * except the work functions handed to uv_queue_work, which touch only
 * their job and the thread-safe store.
 */
#ifndef STORM_SERVICES_MESSAGES_INTERNAL_H
#define STORM_SERVICES_MESSAGES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "services/messages/messages_service.h"
#include "store/messages_store.h"
#include "store/users_store.h" /* USER_NAME_MAX: the users service's username bound */

/* Memberships (channels and DMs) one user may hold. Joining, creating or
 * being added past it is refused; opening a DM is not (a DM is between two
 * people and refusing it would block the other one too). The gateway
 * delivers at most as many channels per connection (GW_DEFAULT_MAX_CHANNELS). */
#define MSG_MAX_CHANNELS_PER_USER 1000

typedef enum {
  MSG_OP_CHANNEL_CREATE,
  MSG_OP_CHANNEL_LIST,
  MSG_OP_CHANNEL_PUBLIC,
  MSG_OP_CHANNEL_GET,
  MSG_OP_CHANNEL_JOIN,
  MSG_OP_CHANNEL_LEAVE,
  MSG_OP_MEMBERS_LIST,
  MSG_OP_MEMBERS_ADD,
  MSG_OP_DM_OPEN,
  MSG_OP_HISTORY,
  MSG_OP_SEND,
  MSG_OP_EDIT,
  MSG_OP_DELETE,
  MSG_OP_READ,
  MSG_OP_SEND_BATCH, /* parsed by msg_batch_parse, not msg_req_parse */
  MSG_OP_COUNT
} msg_op_t;

/* Reply errors: a fixed code, HTTP status and default message each. */
typedef enum {
  MSG_OK = 0,
  MSG_E_BAD_REQUEST,         /* 400: not JSON, wrong type, missing field, out of range */
  MSG_E_INVALID_NAME,        /* 400: channel name */
  MSG_E_INVALID_TOPIC,       /* 400 */
  MSG_E_INVALID_BODY,        /* 400 */
  MSG_E_INVALID_ATTACHMENTS, /* 400 */
  MSG_E_FORBIDDEN,           /* 403: visible, but not allowed */
  MSG_E_NOT_FOUND,           /* 404: no such channel/message, or invisible to the caller */
  MSG_E_USER_NOT_FOUND,      /* 404: the username (or the caller) has no account */
  MSG_E_NAME_TAKEN,          /* 409 */
  MSG_E_TOO_MANY_CHANNELS,   /* 409: the user is in MSG_MAX_CHANNELS_PER_USER conversations */
  MSG_E_OVERLOADED,          /* 503: the store's append queue is full */
  MSG_E_UNAVAILABLE,         /* 503: store or users service failure, shutting down */
  MSG_E_COUNT
} msg_err_t;

/* Limits of the contract (docs/subjects.md). Characters are code points. */
#define MESSAGES_NAME_MAX_CHARS 80
#define MESSAGES_TOPIC_MAX_CHARS 250
#define MESSAGES_BODY_MAX_CHARS 4000
#define MESSAGES_ATTACHMENTS_MAX 10
#define MESSAGES_ATTACHMENT_KEY_MAX 200 /* bytes */
#define MESSAGES_LIMIT_DEFAULT 50
#define MESSAGES_LIMIT_MAX 100          /* history, members, public channels */
#define MESSAGES_LIST_LIMIT_DEFAULT MSG_LIST_MAX /* channel.list: all of a user's, usually */
#define MESSAGES_MENTIONS_MAX 20        /* distinct @names notified per message */
/* Largest payload parsed. The longest valid send (4,000 characters written
 * as \uXXXX surrogate pairs, 12 bytes each, plus ten 200-byte attachment
 * keys of \u escapes) is under 64 KiB; the bound keeps the loop's parse
 * time and memory small whatever arrives. */
#define MESSAGES_REQUEST_MAX (128 * 1024)
/* messages.send.batch: items per request, and the payload parsed. The
 * gateway batches at most 100 sends of at most 256 KiB (serialised), so
 * the byte bound leaves room for the envelope; both keep one request's
 * loop time and the reply (about 300 bytes an item at worst) small. */
#define MESSAGES_BATCH_ITEMS_MAX 100
#define MESSAGES_BATCH_REQUEST_MAX (512 * 1024)

/* A parsed, validated request. Strings are NUL-terminated; body and
 * attachments are heap copies (msg_req_free). */
typedef struct {
  msg_op_t op;
  int64_t user_id;                          /* the caller (trusted) */
  char username[USER_NAME_MAX + 1];         /* the caller's, lower-case; "" when absent */
  int64_t channel_id;                       /* > 0 where the op has one */
  int64_t message_id;                       /* edit, delete */
  char name[MSG_CHANNEL_NAME_MAX + 1];      /* create */
  char topic[MSG_CHANNEL_TOPIC_MAX + 1];    /* create; "" when none */
  bool is_private;                          /* create */
  char target[USER_NAME_MAX + 1];           /* members.add username, dm.open peer; lower-case */
  bool has_before, has_after;               /* history: at most one */
  int64_t before, after;                    /* history cursors (seq); list cursors (id) in after */
  int limit;                                /* lists and history */
  int64_t seq;                              /* read */
  char *body;                               /* send, edit: valid UTF-8, no NUL */
  size_t body_len;
  char *attachments;                        /* send: compact JSON array text, NULL: none */
  size_t attachments_len;
  char nonce[MSG_NONCE_MAX + 1];            /* send */
  size_t nonce_len;                         /* 0: none */
} msg_req_t;

/* Parses data[0..len) as the request of op. Returns MSG_OK and fills out,
 * or the error to reply with; *detail is then NULL or a static message
 * naming the offending field (always set for MSG_E_BAD_REQUEST, never for
 * the 404s). A channel_id or message_id that cannot exist (<= 0) is
 * MSG_E_NOT_FOUND, a target username no account can have
 * MSG_E_USER_NOT_FOUND.
 * Unknown fields are ignored; duplicate keys are bad_request. out must be
 * released with msg_req_free whatever the result. */
msg_err_t msg_req_parse(msg_op_t op, const void *data, size_t len, msg_req_t *out,
                        const char **detail);
void msg_req_free(msg_req_t *r);
/* msg_req_parse without its hot path: the jansson tree for every op. */
msg_err_t msg_req_parse_tree(msg_op_t op, const void *data, size_t len, msg_req_t *out,
                             const char **detail);
/* The hot path: true when data is a messages.send this scan could read and
 * found valid (out as msg_req_parse fills it, MSG_OK); false otherwise, with
 * out cleared and nothing allocated: msg_req_parse_tree decides then. */
bool msg_send_scan(const void *data, size_t len, msg_req_t *out);

/* One item of a messages.send.batch: a send request as msg_req_parse
 * would build it (user_id and username from the envelope), or the error
 * that item alone is answered with (detail as for msg_req_parse). */
typedef struct {
  msg_req_t req;
  msg_err_t err;
  const char *detail;
} msg_batch_item_t;

/* Parses a messages.send.batch payload {user_id, username, items:[...]}.
 * An envelope fault (not a bounded JSON object, bad caller, items not an
 * array of 1..MESSAGES_BATCH_ITEMS_MAX) fails the whole request: returns
 * the error (and *detail) with *items NULL. Otherwise returns MSG_OK and
 * *items, *n: every item parsed with messages.send's rules, each with its
 * own result; release with msg_batch_items_free. MSG_E_UNAVAILABLE when
 * out of memory. */
msg_err_t msg_batch_parse(const void *data, size_t len, msg_batch_item_t **items, size_t *n,
                          const char **detail);
void msg_batch_items_free(msg_batch_item_t *items, size_t n);

/* The users service's username rules (3-32 of [a-z0-9_.-] after ASCII
 * lower-casing): folds in[0..len) into out, false if they do not hold. */
bool msg_username_fold(const char *in, size_t len, char out[USER_NAME_MAX + 1]);

/* Code points of s[0..len), or -1 if it is not valid UTF-8; with
 * no_controls, also -1 for C0/C1 control characters and DEL. */
long msg_utf8_chars(const char *s, size_t len, bool no_controls);

/* Writes the distinct usernames mentioned as @name in body (folded, at
 * most max) into out and returns their count. A mention starts at '@'
 * that follows the start or a character that cannot be in a username (so
 * "a@b.example" is no mention), runs over [A-Za-z0-9_.-] and loses
 * trailing dots (sentence punctuation); what is left must be a valid
 * username. */
size_t msg_mentions(const char *body, size_t len, char out[][USER_NAME_MAX + 1], size_t max);

/* ---- replies (messages_reply.c) ---- */

const char *msg_op_name(msg_op_t op);     /* "channel.create", ... (metrics label) */
const char *msg_op_subject(msg_op_t op);  /* "messages.channel.create", ... */
const char *msg_err_code(msg_err_t e);    /* "ok" for MSG_OK */
int msg_err_status(msg_err_t e);
/* {"error":{"code","message","status"}}; detail, when not NULL, replaces
 * the standard message. */
void msg_err_json(msg_err_t e, const char *detail, buf_t *out);

/* A channel object {id, kind, name, topic, private, owner_id, created_at,
 * last_seq}, plus for a DM seen by viewer {peer_id, peer} (peer: the
 * username or null), plus {last_read_seq, unread} when m is not NULL. */
void msg_channel_json(const channel_rec_t *c, int64_t viewer, const char *peer,
                      const member_rec_t *m, buf_t *out);
/* The other user of a DM as seen by viewer (viewer itself for a DM with
 * oneself); 0 for a channel. */
int64_t msg_dm_peer(const channel_rec_t *c, int64_t viewer);

/* A message object {id, seq, author_id, author, body, attachments, nonce,
 * created_at} (author: username or null; id as a decimal string: see
 * docs/subjects.md), plus {edited_at, deleted} when full. Stored
 * attachments that are not a JSON array are rendered null. */
void msg_message_json(const msg_rec_t *m, const char *author, bool full, buf_t *out);

/* {"user_id","username","joined_at"} (username omitted when NULL). */
void msg_member_json(int64_t user_id, const char *username, int64_t joined_at, buf_t *out);

/* ---- the username cache (messages_names.c): loop only ---- */

typedef struct msg_names msg_names_t;

/* cap entries (>= 1); the oldest entry is evicted when full. NULL: ENOMEM. */
msg_names_t *msg_names_new(size_t cap);
void msg_names_free(msg_names_t *n);
/* Records id <-> name (name: a valid folded username). */
void msg_names_put(msg_names_t *n, int64_t id, const char *name);
/* The name of id or NULL; valid until the next put. */
const char *msg_names_by_id(const msg_names_t *n, int64_t id);
/* The id of name, 0 if unknown. */
int64_t msg_names_by_name(const msg_names_t *n, const char *name);

/* ---- the service (loop only, except where said) ---- */

typedef struct msg_job msg_job_t;
typedef void (*msg_step_fn)(msg_job_t *j);

/* One name to resolve through users.get: by id (id > 0, name "") or by
 * name (id 0). status: 0 resolved (both set), -ENOENT no such user,
 * -EAGAIN users service unavailable (timeout, no responders, bad answer,
 * shutting down), 1 waiting. */
typedef struct {
  int64_t id;
  char name[USER_NAME_MAX + 1];
  int status;
} msg_slot_t;

typedef struct msg_lookup msg_lookup_t;
typedef struct msg_chanq msg_chanq_t;
typedef struct msg_batch msg_batch_t;
typedef struct msg_attach msg_attach_t;

struct msg_job {
  uv_work_t work;
  messages_service_t *svc;
  msg_job_t *prev, *next;   /* svc->jobs: every live job */
  msg_job_t *qnext;         /* in a channel queue (send) */
  msg_req_t req;
  msg_err_t err;
  const char *detail;
  bool replied;             /* the request is answered; later steps only publish */
  bool on_pool;             /* work queued and not yet back */
  msg_step_fn work_fn;      /* pool thread */
  msg_step_fn after_fn;     /* loop, after work_fn */
  msg_step_fn resolved_fn;  /* loop, after the slots' lookups */
  int lookups;              /* users.get requests in flight */
  msg_slot_t *slots;
  size_t nslots, slots_cap;
  /* results of the pool step */
  channel_rec_t ch;
  member_rec_t mem;
  bool flag;                /* added / created / changed */
  void *items;              /* list rows (channel_membership_t, channel_rec_t, member_rec_t) */
  size_t nitems;
  bool more;
  msg_page_t page;
  msg_rec_t *msg;
  msg_ack_t ack;
  int64_t num;              /* read: last_read_seq; members.add/dm.open: target id */
  int64_t *ids;             /* send: mentioned user ids, then the members among them */
  size_t nids;
  msg_batch_t *batch;       /* an item of a messages.send.batch: its reply goes there
                               (NULL once given: the batch may be gone) */
  size_t batch_idx;
  msg_attach_t *attach;     /* send with attachments: their check (messages_attach.c) */
  char reply[];             /* copy of the request's reply subject ("" for a batch item) */
};

typedef struct {
  messages_service_t *svc;
  msg_op_t op;
} msg_route_t;

struct messages_service {
  messages_service_opts_t o;
  bus_sub_t *subs[MSG_OP_COUNT];
  msg_route_t routes[MSG_OP_COUNT];
  bus_sub_t *attach_sub;    /* MSG_ATTACH_CHECK_SUBJECT */
  msg_job_t *jobs;          /* every live job */
  size_t njobs;
  msg_lookup_t *lookups;    /* users.get requests in flight */
  msg_names_t *names;
  /* send: channel queues by channel id */
  msg_chanq_t **qbuckets;
  size_t nqbuckets, nqueues;
  uv_idle_t done_handle;    /* never started: stop finishes through its close callback */
  bool stopping, closing;
  void (*done)(void *arg);
  void *done_arg;
  metrics_family_t *requests;
  metrics_series_t *appends;
};

/* messages_service.c */
/* A new job, linked into the live jobs (stop waits for it), with a copy of
 * reply; NULL when out of memory. */
msg_job_t *msg_job_new(messages_service_t *s, const char *reply);
/* Counts one answer of op with e in the metrics. */
void msg_count(messages_service_t *s, msg_op_t op, msg_err_t e);
/* Counts and sends one answer on reply: the error e (detail as in
 * msg_err_json) or, for MSG_OK, out ("{}" when NULL). */
void msg_answer(messages_service_t *s, const char *reply, msg_op_t op, msg_err_t e,
                const char *detail, const buf_t *out);
/* Answers the job (its error, or out), counting it in the metrics. */
void msg_job_reply(msg_job_t *j, const buf_t *out);
/* Answers the job (if not yet) with its error, then frees it. */
void msg_job_finish(msg_job_t *j);
/* Frees the job (answered or not) and lets stop complete. */
void msg_job_end(msg_job_t *j);
/* Queues work_fn on the pool, then after_fn on the loop; a job cancelled
 * by stop finishes with 503 instead. When stopping, finishes with 503 at
 * once. */
void msg_job_submit(msg_job_t *j, msg_step_fn work_fn, msg_step_fn after_fn);
/* Publishes b on subject prefix.<id> (a plain publish); logs failures. */
void msg_publish(messages_service_t *s, const char *prefix, int64_t id, const buf_t *b);
int64_t msg_now_ms(void);

/* messages_lookup.c */
/* Adds a slot for id (by id) unless the cache or another slot has it. */
void msg_slot_need_id(msg_job_t *j, int64_t id);
/* Adds a slot for a folded username; returns its index or -1 (ENOMEM). */
int msg_slot_add_name(msg_job_t *j, const char *name);
/* The username of id known to the job (its slots, then the cache), or NULL. */
const char *msg_name_of(msg_job_t *j, int64_t id);
/* Resolves every waiting slot (cache first, then users.get) and calls
 * next(j) once all are settled — from inside this call if nothing had to
 * be asked. Must be the caller's last use of j. */
void msg_lookup_run(msg_job_t *j, msg_step_fn next);
/* Cancels every users.get in flight; their slots settle with -EAGAIN. */
void msg_lookup_cancel_all(messages_service_t *s);

/* messages_ops.c: takes a parsed job of any op but send. */
void msg_ops_start(msg_job_t *j);

/* messages_send.c */
/* Takes a parsed messages.send job. */
void msg_send_start(msg_job_t *j);
/* Stop: answers queued sends 503, cancels membership checks not started. */
void msg_send_stop(messages_service_t *s);
/* The attachments check of a queued send settled: lets its queue go on. */
void msg_send_attach_done(msg_job_t *j);
void msg_send_free_queues(messages_service_t *s);

/* messages_attach.c */
#define MSG_ATTACH_CHECK_SUBJECT "messages.attachment.check"
/* Starts the ownership check of a send that has attachments: one
 * media.get {userId, key, ownerOnly} per distinct key, in parallel. 0:
 * started; msg_send_attach_done(j) runs once every answer is in (never
 * inside this call), with j->err set if the send must fail. Else a
 * negative errno with j->err set and nothing in flight. */
int msg_attach_start(msg_job_t *j);
/* True while j's check is in flight. */
bool msg_attach_waiting(const msg_job_t *j);
/* The checked keys to index with the append (*n 0 and NULL: none). */
const str_t *msg_attach_keys(const msg_job_t *j, size_t *n);
/* Cancels requests still in flight and frees the check (msg_job_end). */
void msg_attach_free(msg_job_t *j);
/* The bus callback of MSG_ATTACH_CHECK_SUBJECT (arg: the service). */
void msg_attach_on_check(bus_t *bus, const bus_msg_t *msg, void *arg);

/* messages_batch.c */
/* Handles one messages.send.batch request (msg->reply set): each valid
 * item becomes a send job started in item order, so items of one channel
 * queue (and get seqs) in item order; the reply goes once every item is
 * answered. */
void msg_batch_start(messages_service_t *s, const bus_msg_t *msg);
/* From msg_job_reply, for a job with j->batch: records its answer (its
 * error, or out) as item j->batch_idx and clears j->batch. */
void msg_batch_item_reply(msg_job_t *j, const buf_t *out);

#endif
