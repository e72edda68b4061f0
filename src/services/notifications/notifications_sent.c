/*
 * notifications_sent.c — message.sent events become notifications.
 *
 * The event says who (recipientId), where (conversationId) and what
 * (messageId, senderUsername), not whether the conversation is a DM or a
 * channel, which decides the type ("dm" or "mention"). A conversation's
 * kind never changes, so it is asked once with messages.channel.get (as
 * the recipient, who is a member) and cached; events arriving while the
 * answer is pending wait on the cache entry, so a burst into one
 * conversation costs one request. If the messages service does not answer
 * (timeout, no responders, an error) the notification is still stored,
 * with type "message", and nothing is cached. A DM whose peer is the
 * recipient (a DM with oneself) never notifies, nor does an event whose
 * senderId is its recipientId: nobody is notified of their own message.
 *
 * Resolved events go through a FIFO (at most max_queued_events; beyond,
 * dropped and counted) that the store takes from while the service is
 * below its in-flight bound: a burst of 100,000 events is written to the
 * store as fast as it answers, pipelined, with bounded memory. The mute
 * check is part of the store's add (mute_channel = conversationId).
 *
 * Logs: a malformed event is logged (warn) and counted; store failures
 * are logged once per 1,000 so an outage does not flood the log.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "services/notifications/notifications_internal.h"

#define COMPONENT "notifications"
#define BUCKETS 4096
#define CACHE_MAX 65536

enum kind { K_PENDING, K_DM, K_CHANNEL, K_SELF, K_UNKNOWN };

typedef struct ev ev_t;
struct ev {
  ev_t *next;
  int64_t recipient, conv;
  enum kind kind;
  size_t payload_len;
  char payload[];
};

typedef struct entry entry_t;
struct entry {
  entry_t *next; /* bucket chain */
  notif_sent_t *x;
  int64_t conv, asker;
  enum kind kind;
  uint64_t req_id;
  ev_t *wait_head, *wait_tail;
};

struct notif_sent {
  notifications_service_t *s;
  entry_t *buckets[BUCKETS];
  size_t nentries;
  ev_t *q_head, *q_tail;
  size_t queued;
  uint64_t failures;
  bool stopped;
};

static size_t bucket_of(int64_t conv) {
  uint64_t h = (uint64_t)conv * 0x9E3779B97F4A7C15ULL;
  return (size_t)(h >> 52) % BUCKETS;
}

static entry_t *find(notif_sent_t *x, int64_t conv) {
  for (entry_t *e = x->buckets[bucket_of(conv)]; e; e = e->next)
    if (e->conv == conv) return e;
  return NULL;
}

static void unlink_entry(notif_sent_t *x, entry_t *e) {
  entry_t **p = &x->buckets[bucket_of(e->conv)];
  while (*p && *p != e) p = &(*p)->next;
  if (*p) *p = e->next;
  x->nentries--;
}

static void free_events(ev_t *e) {
  while (e) {
    ev_t *n = e->next;
    free(e);
    e = n;
  }
}

/* Bounded cache: when full, forget every resolved entry (they are one
 * request each to learn again); pending ones stay, they have waiters. */
static void evict_resolved(notif_sent_t *x) {
  for (size_t b = 0; b < BUCKETS; b++) {
    entry_t **p = &x->buckets[b];
    while (*p) {
      entry_t *e = *p;
      if (e->kind != K_PENDING) {
        *p = e->next;
        x->nentries--;
        free(e);
      } else {
        p = &e->next;
      }
    }
  }
}

/* ---- storing ---- */

static void on_stored(void *arg, int status, int64_t id) {
  notif_sent_t *x = arg;
  (void)id;
  if (status == NOTIF_MUTED) {
    notif_svc_count(x->s, NOTIF_OP_SENT, "muted");
  } else if (status < 0) {
    notif_svc_count(x->s, NOTIF_OP_SENT, "unavailable");
    if (x->failures++ % 1000 == 0)
      log_warn(COMPONENT, "message.sent: storing the notification failed: %s (%" PRIu64 " so far)",
               strerror(-status), x->failures);
  } else {
    notif_svc_count(x->s, NOTIF_OP_SENT, "ok");
  }
}

static const char *type_of(enum kind k) {
  return k == K_DM ? "dm" : k == K_CHANNEL ? "mention" : "message";
}

void notif_sent_pump(notif_sent_t *x) {
  while (x->q_head && notif_svc_has_room(x->s)) {
    ev_t *e = x->q_head;
    x->q_head = e->next;
    if (!x->q_head) x->q_tail = NULL;
    x->queued--;
    notif_t n = {.user_id = e->recipient, .type = type_of(e->kind), .payload = e->payload,
                 .payload_len = e->payload_len, .mute_channel = e->conv};
    int rc = notif_svc_store(x->s, &n, on_stored, x);
    if (rc < 0) on_stored(x, rc, 0);
    free(e);
  }
}

/* A resolved event: into the FIFO (or dropped), then as many as fit go. */
static void ready(notif_sent_t *x, ev_t *e, enum kind k) {
  e->next = NULL;
  if (k == K_SELF) {
    notif_svc_count(x->s, NOTIF_OP_SENT, "self");
    log_debug(COMPONENT, "message.sent to its own sender %" PRId64 " ignored", e->recipient);
    free(e);
    return;
  }
  if (x->stopped || x->queued >= (size_t)notif_svc_max_queued(x->s)) {
    notif_svc_count(x->s, NOTIF_OP_SENT, "dropped");
    if (x->failures++ % 1000 == 0)
      log_warn(COMPONENT, "message.sent: queue full, notification for user %" PRId64 " dropped",
               e->recipient);
    free(e);
    return;
  }
  e->kind = k;
  if (x->q_tail) x->q_tail->next = e;
  else x->q_head = e;
  x->q_tail = e;
  x->queued++;
  notif_sent_pump(x);
}

/* ---- the conversation lookup ---- */

static enum kind kind_from_reply(const entry_t *e, int status, const bus_msg_t *msg) {
  if (status != 0) return K_UNKNOWN;
  json_t *j = json_loadb(msg->data, msg->len, 0, NULL);
  json_t *ch = json_object_get(j, "channel");
  const char *kind = json_string_value(json_object_get(ch, "kind"));
  enum kind k = K_UNKNOWN;
  if (kind && strcmp(kind, "dm") == 0) {
    json_t *peer = json_object_get(ch, "peer_id");
    k = json_is_integer(peer) && json_integer_value(peer) == e->asker ? K_SELF : K_DM;
  } else if (kind && strcmp(kind, "channel") == 0) {
    k = K_CHANNEL;
  }
  json_decref(j);
  return k;
}

static void on_lookup(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  (void)bus;
  entry_t *e = arg;
  notif_sent_t *x = e->x;
  enum kind k = kind_from_reply(e, status, msg);
  if (k == K_UNKNOWN)
    log_debug(COMPONENT, "kind of conversation %" PRId64 " unknown (status %d): type \"message\"",
              e->conv, status);
  ev_t *w = e->wait_head;
  e->wait_head = e->wait_tail = NULL;
  e->req_id = 0;
  if (k == K_UNKNOWN) { /* not cached: the next event asks again */
    unlink_entry(x, e);
    free(e);
  } else {
    e->kind = k;
  }
  while (w) {
    ev_t *n = w->next;
    ready(x, w, k);
    w = n;
  }
}

static void lookup(notif_sent_t *x, ev_t *ev) {
  if (x->nentries >= CACHE_MAX) evict_resolved(x);
  entry_t *e = calloc(1, sizeof *e);
  if (!e) {
    ready(x, ev, K_UNKNOWN);
    return;
  }
  e->x = x;
  e->conv = ev->conv;
  e->asker = ev->recipient;
  e->kind = K_PENDING;
  e->wait_head = e->wait_tail = ev;
  ev->next = NULL;
  size_t b = bucket_of(e->conv);
  e->next = x->buckets[b];
  x->buckets[b] = e;
  x->nentries++;
  char payload[96];
  int len = snprintf(payload, sizeof payload, "{\"user_id\":%" PRId64 ",\"channel_id\":%" PRId64 "}",
                     ev->recipient, ev->conv);
  int rc = bus_request(notif_svc_bus(x->s), "messages.channel.get", payload, (size_t)len,
                       notif_svc_lookup_timeout(x->s), on_lookup, e, &e->req_id);
  if (rc < 0) {
    log_warn(COMPONENT, "asking messages.channel.get failed: %d", rc);
    on_lookup(NULL, rc, NULL, e);
  }
}

void notif_sent_event(notif_sent_t *x, const void *data, size_t len) {
  if (x->stopped) return;
  notif_req_t r;
  const char *err = notif_req_parse(NOTIF_OP_SENT, data, len, &r);
  if (err) {
    notif_svc_count(x->s, NOTIF_OP_SENT, "bad_request");
    log_warn(COMPONENT, "message.sent ignored: %s", err);
    return;
  }
  if (r.sender_id == r.user_id) {
    notif_svc_count(x->s, NOTIF_OP_SENT, "self");
    log_debug(COMPONENT, "message.sent to its own sender %" PRId64 " ignored", r.user_id);
    notif_req_free(&r);
    return;
  }
  ev_t *ev = malloc(sizeof *ev + r.payload_len);
  if (!ev) {
    notif_svc_count(x->s, NOTIF_OP_SENT, "unavailable");
    notif_req_free(&r);
    return;
  }
  ev->next = NULL;
  ev->recipient = r.user_id;
  ev->conv = r.channel_id;
  ev->payload_len = r.payload_len;
  memcpy(ev->payload, r.payload, r.payload_len);
  notif_req_free(&r);
  entry_t *e = find(x, ev->conv);
  if (!e) {
    lookup(x, ev);
  } else if (e->kind == K_PENDING) {
    if (e->wait_tail) e->wait_tail->next = ev;
    else e->wait_head = ev;
    e->wait_tail = ev;
  } else {
    ready(x, ev, e->kind);
  }
}

int notif_sent_init(notifications_service_t *s, notif_sent_t **out) {
  notif_sent_t *x = calloc(1, sizeof *x);
  if (!x) return -ENOMEM;
  x->s = s;
  *out = x;
  return 0;
}

void notif_sent_stop(notif_sent_t *x) {
  if (!x || x->stopped) return;
  x->stopped = true;
  bus_t *bus = notif_svc_bus(x->s);
  for (size_t b = 0; b < BUCKETS; b++)
    for (entry_t *e = x->buckets[b]; e; e = e->next)
      if (e->kind == K_PENDING) {
        if (e->req_id) bus_request_cancel(bus, e->req_id);
        e->req_id = 0;
        free_events(e->wait_head);
        e->wait_head = e->wait_tail = NULL;
      }
  free_events(x->q_head);
  x->q_head = x->q_tail = NULL;
  x->queued = 0;
}

void notif_sent_free(notif_sent_t *x) {
  if (!x) return;
  notif_sent_stop(x);
  for (size_t b = 0; b < BUCKETS; b++) {
    entry_t *e = x->buckets[b];
    while (e) {
      entry_t *n = e->next;
      free(e);
      e = n;
    }
  }
  free(x);
}
