/* gateway_internal.h — shared by the gateway's files only. */
#ifndef STORM_SERVICES_GATEWAY_INTERNAL_H
#define STORM_SERVICES_GATEWAY_INTERNAL_H

#include <stddef.h>

#include "auth/jwt.h"
#include "core/json_scan.h"
#include "core/ratelimit.h"
#include "net/ws.h"
#include "services/gateway/gateway.h"
#include "services/gateway/gateway_bucket.h"
#include "services/gateway/gateway_replay.h"
#include "services/gateway/gateway_subs.h"

/* Defaults of the gateway_opts_t fields left 0 (docs/protocol.md, Limits). */
#define GW_DEFAULT_RESUME_LIMIT 1000
#define GW_DEFAULT_SEND_RATE 10
#define GW_DEFAULT_SEND_BURST 20
#define GW_DEFAULT_MAX_CHANNELS 1000
/* Live frames held per connection while it replays (all channels). A
 * build-time override lets tests reach the overflow path. */
#ifndef GW_RESUME_HOLD_MAX
#define GW_RESUME_HOLD_MAX 2048
#endif
/* Channels of one connection replaying at once; the others wait (held). */
#define GW_RESUME_PARALLEL 4
/* One typing event per channel per connection per this many ms. */
#define GW_TYPING_INTERVAL_MS 2000
/* Sends queued behind the one in flight (serial sends), per connection:
 * a count and a byte bound (serialised payloads). The rate bucket is the
 * first bound (20 sends at the default settings); these cap the memory of
 * a connection whose rate was raised, while leaving room for a burst as
 * big as the in-process path takes (1,500 sends of 4,000 characters,
 * ~6 MB, in the black-box tests). Past them: `overloaded`. */
#define GW_SENDQ_MAX 4096
#define GW_SENDQ_MAX_BYTES (8 * 1024 * 1024)
/* What one messages.send.batch carries at most: queued sends, and their
 * serialised payloads' bytes (also kept under the bus's payload limit).
 * The messages service accepts up to 100 items and 512 KiB
 * (MESSAGES_BATCH_ITEMS_MAX, MESSAGES_BATCH_REQUEST_MAX). */
#define GW_SEND_BATCH_MAX 100
#define GW_SEND_BATCH_MAX_BYTES (256 * 1024)
/* Bus requests made for a WebSocket client. */
#define GW_CALL_TIMEOUT_MS 10000

struct gateway {
  net_server_t *server;
  bus_t *bus;
  health_t *health;
  metrics_registry_t *metrics;
  uint64_t heartbeat_ms;
  ws_handler_t ws_handler;
  uv_loop_t *loop;
  const jwt_keys_t *keys;
  ratelimit_t *auth_limit;  /* per-IP buckets of this gateway (also the fallback) */
  double auth_rate, auth_burst;
  struct redis_client *redis; /* shared buckets and presence; NULL = local only */
  char instance[25];        /* random id of this gateway in shared presence */
  uv_timer_t presence_hb;   /* refreshes storm:gw:<instance> */
  bool presence_hb_open, presence_stopped;
  const char *trusted_proxies;
  gw_subs_t subs;          /* local channel and user subscriptions */
  uv_timer_t order_tick;   /* gives up seq gaps (gateway_order.h); runs while events are held */
  bool order_tick_open, order_stopped;
  metrics_series_t *m_order[4]; /* dropped, held, gaps, skipped (gateway_fanout.c) */
  uint32_t resume_limit;   /* messages replayed per channel by resume */
  int presence_max_members; /* larger channels (members here) get no presence */
  float send_rate, send_burst; /* per-connection token bucket */
  /* One `send` request in flight per connection, the next ones queued
   * until its ack: over NATS, replicas of the messages service would
   * otherwise commit one client's pipelined sends in any order. What
   * queued meanwhile goes as one messages.send.batch (one replica, item
   * order kept), so a busy client pays one round trip per batch, not per
   * message. In-process there is one messages service, which keeps
   * arrival order: sends pipeline. */
  bool serial_sends;
};

typedef struct gw_call gw_call_t;

enum {
  GW_SESS_LOADING = 0, /* upgraded; waiting for messages.channel.list */
  GW_SESS_READY,       /* hello sent, subscribed */
  GW_SESS_CLOSED,      /* on_close ran: nothing may be sent or linked */
};

/*
 * Per-connection session, in the connection's user area (zeroed at
 * accept). Kept small (128 bytes; hello's session id is drawn when hello
 * is sent, not stored, since nothing else reads it): everything per channel lives in
 * cs.chans (16 bytes a channel), replay state is allocated only while a
 * resume runs. Torn down (and every allocation freed) in on_close.
 */
typedef struct {
  gw_cstate_t cs;           /* channels and user topic; first (gw_cs_conn) */
  gw_call_t *calls;         /* in-flight bus requests; orphaned at close */
  gw_resume_t *resume;      /* NULL unless a resume runs or a finished one trails */
  json_t *early;            /* text frames received before hello (a JSON array of
                               strings), handled in order right after hello */
  json_t *sendq;            /* serial sends waiting: [item text, ref, nonce, channel, cost]
                               each (cost: the item text's bytes) */
  json_t *list_reply;       /* ?resume=1: the channel list, kept until the first frame
                               (JSON null: the list failed) */
  gw_bucket_t bucket;       /* send rate */
  int64_t user_id;
  char username[33];
  uint8_t state;            /* GW_SESS_* */
  bool online;              /* counted in cs.user->online (presence) */
  bool wait_first;          /* ?resume=1 and no client frame yet: hello waits for it */
  bool send_busy;           /* serial sends: a send or batch is waiting for its ack */
  uint32_t sendq_bytes;     /* sum of the costs in sendq */
} gw_session_t;

/* The connection of a member found in a topic: cs is the first member of
 * the session, which is the connection's user area. */
_Static_assert(offsetof(gw_session_t, cs) == 0, "gw_cs_conn relies on cs coming first");
static inline net_conn_t *gw_cs_conn(gw_cstate_t *cs) { return ws_conn_of(cs); }

/*
 * A bus request made for a connection. fn runs exactly once, from the
 * reply: c is NULL if the connection closed meanwhile (only release what
 * the call owns); otherwise reply is the success object, or NULL with an
 * error code and message (the service's, or timeout / unavailable /
 * internal). The call (and ref, data) is freed after fn returns.
 */
typedef void (*gw_call_fn)(gateway_t *g, net_conn_t *c, gw_call_t *call, json_t *reply,
                           const char *code, const char *message);
/* The same for the hot path (messages.send): the success object is only
 * scanned (core/json_scan.h), never parsed into a tree; an error reply is
 * still parsed, to read its code and message. */
typedef void (*gw_call_raw_fn)(gateway_t *g, net_conn_t *c, gw_call_t *call,
                               const jscan_val_t *reply, const char *code, const char *message);
struct gw_call {
  gw_call_t *prev, *next;   /* in the session's list */
  net_conn_t *conn;         /* NULL once the connection closed */
  gateway_t *g;
  gw_call_fn fn;            /* exactly one of fn and raw */
  gw_call_raw_fn raw;
  json_t *ref;              /* the client's ref, echoed (owned) */
  json_t *data;             /* per-op extra, e.g. the nonce (owned) */
  int64_t chan_id;
  uint32_t replay_id;
};

/* A client's send or broadcast frame as gw_send_scan reads it: spans into
 * the frame. */
typedef struct {
  bool broadcast;    /* op "broadcast" (else "send") */
  int64_t channel_id;
  jscan_val_t ref;   /* .p NULL: none; else a string or an integer */
  jscan_val_t body;  /* a string, checked: valid JSON text as it is */
  jscan_val_t nonce; /* send: a non-empty string, checked likewise; broadcast: none */
} gw_send_frame_t;
/* gateway_send_scan.c: true when data is a {"op":"send"} or
 * {"op":"broadcast"} frame the scan could read, with the members and types
 * those ops require; false: parse it with jansson. */
bool gw_send_scan(const char *data, size_t len, gw_send_frame_t *out);

int gateway_ws_routes(gateway_t *g);
int gateway_auth_routes(gateway_t *g);
int gateway_messages_routes(gateway_t *g);
/* GET /notifications, POST /notifications/read, PUT|GET /channels/{id}/mute. */
int gateway_notifications_routes(gateway_t *g);

/* Answers r with the reply to a bus request on subject (see gateway_forward.c). */
void gw_forward(gateway_t *g, http_req_t *r, const char *subject, const char *payload, size_t len,
                int success_status);
/* Same with a JSON payload, which it serialises and decrefs. */
void gw_forward_json(gateway_t *g, http_req_t *r, const char *subject, json_t *payload,
                     int success_status);
/* The client's IP: the peer, or from X-Forwarded-For when the peer is a trusted proxy. */
void gw_client_ip(const gateway_t *g, const http_req_t *r, char *out, size_t outlen);
/* The token of an "Authorization: Bearer" header, or STR_NULL. */
str_t gw_bearer(const http_req_t *r);
/* Verifies token; on failure answers 401 itself and returns -1. */
int gw_authenticate(gateway_t *g, http_req_t *r, str_t token, jwt_claims_t *claims);
/* The JSON object body of r, after checking Content-Type: application/json
 * (else 415). On failure answers (415, 400) itself and returns NULL. */
json_t *gw_json_body(http_req_t *r);

/* ---- WebSocket sessions (gateway_session.c) ---- */

/* Right after a successful upgrade: fills the session, subscribes user.<id>
 * and asks for the channel list; hello follows when it arrives, or, with
 * wait_first (?resume=1), when both it and the client's first frame have. */
void gw_session_open(gateway_t *g, net_conn_t *c, const jwt_claims_t *claims, bool wait_first);
/* Handles one client text frame of a READY session (gateway_ws.c). */
void gw_ws_handle_text(gateway_t *g, net_conn_t *c, const char *data, size_t len);
/* Client frames (and bytes) a session holds before hello; more closes it
 * (1008): the hold lasts only while the channel list loads, but it is
 * memory a client chooses, so it is bounded. */
#define GW_EARLY_MAX 32
#define GW_EARLY_MAX_BYTES (64 * 1024)
/* Called after the client's first frame was handled when wait_first was set:
 * a resume in it is stashed by then, so hello (if the list is in) can go and
 * apply it before any live event. */
void gw_session_first_frame(gateway_t *g, net_conn_t *c);
/* on_close: presence, replays, subscriptions, in-flight calls. */
void gw_session_close(gateway_t *g, net_conn_t *c);
/* Makes a bus request for c (see gw_call_fn). Takes ownership of call
 * (from gw_call_new) and payload. Returns 0, or a negative errno: then fn
 * never runs and the call is already freed. */
gw_call_t *gw_call_new(net_conn_t *c, gw_call_fn fn, json_t *ref);
gw_call_t *gw_call_new_raw(net_conn_t *c, gw_call_raw_fn raw, json_t *ref);
int gw_call_send(gateway_t *g, gw_call_t *call, const char *subject, json_t *payload);
/* The same with the payload's text (not owned). */
int gw_call_send_text(gateway_t *g, gw_call_t *call, const char *subject, const char *text,
                      size_t len);
/* Publishes {"op":"presence", channel_id, user_id, username, status} on
 * chan.<id> of every channel of s. */
void gw_presence_publish(gateway_t *g, const gw_session_t *s, const char *status);
/* Publishes {"op":op, channel_id, user_id, username[, status]} on chan.<chan_id>
 * (typing, presence). status may be NULL. */
void gw_publish_user_event(gateway_t *g, const gw_session_t *s, const char *op, int64_t chan_id,
                           const char *status);

/* ---- Broadcast (gateway_broadcast.c) ---- */

/* Longest `broadcast` body, in characters (the limit of a message body). */
#define GW_BROADCAST_BODY_MAX_CHARS 4000
/* True when body (a jansson string: valid UTF-8, no NUL) has 1 to
 * GW_BROADCAST_BODY_MAX_CHARS characters. */
bool gw_broadcast_body_ok(const char *body, size_t len);
/* Publishes {"op":"broadcast", channel_id, user_id, body} on chan.<chan_id>,
 * encoded once. Returns 0 or bus_publish's negative errno (-ENOMEM when
 * the event could not be built); nothing is retried or stored. */
int gw_broadcast_publish(gateway_t *g, int64_t user_id, int64_t chan_id, const char *body,
                         size_t len);

/* ---- Sending (gateway_ws.c) ---- */

/* Serialises, sends and decrefs obj. Returns ws_send's result. */
int gw_ws_send_json(net_conn_t *c, json_t *obj);
/* {"op":"error", code, message, ref?, channel_id? (when > 0)} */
void gw_ws_error(net_conn_t *c, const char *code, const char *message, json_t *ref,
                 int64_t chan_id);

/* ---- Bus subscriptions and fan-out (gateway_fanout.c) ---- */

/* Initialises g->subs with the bus hooks (chan.<id>, user.<id>). */
void gw_fanout_init(gateway_t *g, uint32_t max_channels);
/* Joins c to channel id (last_seq: the channel's, or -1; see
 * gw_subs_join_at), answering the client if the cap is reached. */
int gw_fanout_join(gateway_t *g, net_conn_t *c, int64_t chan_id, int64_t last_seq);
/* Closes the ordering timer (gateway_stop); held events then go at once. */
void gw_fanout_stop(gateway_t *g);

/* ---- Resume (gateway_resume.c) ---- */

/* The `resume` op (also the one stashed before hello). */
void gw_resume_op(gateway_t *g, net_conn_t *c, json_t *m, json_t *ref);
/* Ends c's replay of chan_id, if any, without answering (left channel). */
void gw_resume_cancel(gateway_t *g, net_conn_t *c, int64_t chan_id);
/* A live frame for a replaying entry: hold it, or cut the replay short. */
void gw_resume_live(gateway_t *g, net_conn_t *c, int64_t chan_id, int64_t seq, net_chunk_t *f);
/* A live event for a trailing entry: true to drop it (a message the
 * connection's finished resume already sent). Clears e->trailing when done. */
bool gw_resume_trail_drop(net_conn_t *c, gw_centry_t *e, int64_t chan_id, int64_t seq);
/* Drops all replay state of a closing connection. */
void gw_resume_drop(gw_session_t *s);

#endif
