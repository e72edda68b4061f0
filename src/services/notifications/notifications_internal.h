/*
 * notifications_internal.h — what the notifications service's files share;
 * not a public API (the service is reached over the bus only).
 *
 * notifications_req.c turns a payload into a notif_req_t or a
 * bad_request detail, and writes the reply JSON; notifications_service.c
 * owns subscriptions, requests and the store calls; notifications_sent.c
 * turns message.sent events into notifications (conversation kind cache,
 * queue behind the in-flight bound). All on the loop thread.
 */
#ifndef STORM_SERVICES_NOTIFICATIONS_INTERNAL_H
#define STORM_SERVICES_NOTIFICATIONS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "services/notifications/notifications_service.h"
#include "store/notifications_store.h"

typedef enum {
  NOTIF_OP_SEND,
  NOTIF_OP_GET,
  NOTIF_OP_READ,
  NOTIF_OP_MUTE,
  NOTIF_OP_MUTE_GET,
  NOTIF_OP_SENT, /* the message.sent event */
  NOTIF_OP_COUNT
} notif_op_t;

/* Largest payload parsed: a 4 KiB notification payload escaped by a
 * client can be several times longer; the bound keeps parse time small. */
#define NOTIF_REQUEST_MAX (64 * 1024)
#define NOTIF_SENDER_MAX 64

typedef struct {
  notif_op_t op;
  int64_t user_id;       /* userId, or message.sent's recipientId */
  int64_t channel_id;    /* mute: channelId; message.sent: conversationId */
  int64_t sender_id;     /* message.sent: senderId, 0 when absent */
  bool muted;
  bool all;              /* read without ids */
  size_t nids;
  int64_t ids[NOTIF_READ_IDS_MAX];
  char type[NOTIF_TYPE_MAX + 1];
  char *payload;         /* owned: compact JSON object (send, message.sent) */
  size_t payload_len;
} notif_req_t;

/* Parses data[0..len) as op's payload. NULL on success (free with
 * notif_req_free), else a static string naming the fault (the
 * bad_request message; out needs no freeing then). Unknown fields are
 * ignored; duplicate keys are refused. */
const char *notif_req_parse(notif_op_t op, const void *data, size_t len, notif_req_t *out);
void notif_req_free(notif_req_t *r);

/* The subject of op ("notification.send", ..., "message.sent"). */
const char *notif_op_subject(notif_op_t op);

/* {"error":{"code","message","status"}} */
void notif_err_json(buf_t *out, const char *code, const char *message, int status);
/* {"id":"<id>","type":..,"payload":<object>,"created_at":ms} */
void notif_item_json(buf_t *out, const notif_t *n);
/* {"op":"notification","notification":<item>} — the user.<id> event. */
void notif_event_json(buf_t *out, const notif_t *n);

/* ---- shared by notifications_service.c and notifications_sent.c ---- */

/* Stores n (its id and created_at are assigned here), then publishes the
 * event. done(arg, status) as the store's add callback; done may be NULL
 * (events). Counts against the in-flight bound. Returns 0 or a negative
 * errno (then done never runs). */
int notif_svc_store(notifications_service_t *s, notif_t *n,
                    void (*done)(void *arg, int status, int64_t id), void *arg);

/* True when a store op may start now (below max_inflight). */
bool notif_svc_has_room(const notifications_service_t *s);

/* notifications_sent.c */
typedef struct notif_sent notif_sent_t;
int notif_sent_init(notifications_service_t *s, notif_sent_t **out);
/* A message.sent payload (parsed or not: malformed ones are logged here). */
void notif_sent_event(notif_sent_t *x, const void *data, size_t len);
/* A store op finished: queued events may go. */
void notif_sent_pump(notif_sent_t *x);
/* Cancels lookups and drops queued events (stop). */
void notif_sent_stop(notif_sent_t *x);
/* Lookups still pending (stop waits for none: they are cancelled). */
void notif_sent_free(notif_sent_t *x);

/* Accessors notifications_sent.c needs from the service. */
bus_t *notif_svc_bus(notifications_service_t *s);
uint64_t notif_svc_lookup_timeout(notifications_service_t *s);
int notif_svc_max_queued(notifications_service_t *s);
void notif_svc_count(notifications_service_t *s, notif_op_t op, const char *result);

#endif
