/*
 * notifications_service.c — subscriptions, requests, store calls and the
 * live push.
 *
 * A request's life: the bus callback parses the payload (invalid → 400 and
 * a log line, at once), checks the in-flight bound (full → 503
 * overloaded), and calls the store; the store's callback (on the loop)
 * answers. A notification is published on user.<id> only once stored, so
 * what a device is shown live is also what GET /notifications lists.
 *
 * Everything runs on the loop thread: the store is asynchronous (Redis on
 * the loop, SQLite on the pool behind its own queue), so the service holds
 * no locks and no threads of its own.
 */
#include "services/notifications/notifications_service.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/log.h"
#include "services/notifications/notifications_internal.h"
#include "store/msg_idgen.h"

#define COMPONENT "notifications"
#define QUEUE_GROUP "notifications"

static const char OOM_REPLY[] =
    "{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\",\"status\":503}}";

typedef struct {
  notifications_service_t *svc;
  notif_op_t op;
} route_t;

struct notifications_service {
  notifications_service_opts_t o;
  route_t routes[NOTIF_OP_COUNT];
  bus_sub_t *subs[NOTIF_OP_COUNT];
  notif_sent_t *sent;
  msg_idgen_t idgen;
  unsigned node;
  int inflight;
  bool stopping, closing;
  uv_idle_t done_handle; /* never started: stop finishes through its close callback */
  void (*done)(void *arg);
  void *done_arg;
  metrics_family_t *requests;
};

/* A request waiting for the store. */
typedef struct {
  notifications_service_t *svc;
  notif_req_t req;
  char reply[]; /* the reply subject */
} job_t;

/* A store add in flight: the event to publish once it is stored. */
typedef struct {
  notifications_service_t *svc;
  void (*done)(void *arg, int status, int64_t id);
  void *arg;
  int64_t user_id, id;
  size_t event_len;
  char event[];
} add_t;

/* ---- small helpers ---- */

bus_t *notif_svc_bus(notifications_service_t *s) { return s->o.bus; }
uint64_t notif_svc_lookup_timeout(notifications_service_t *s) { return s->o.lookup_timeout_ms; }
int notif_svc_max_queued(notifications_service_t *s) { return s->o.max_queued_events; }
bool notif_svc_has_room(const notifications_service_t *s) {
  return !s->stopping && s->inflight < s->o.max_inflight;
}

void notif_svc_count(notifications_service_t *s, notif_op_t op, const char *result) {
  const char *labels[2] = {notif_op_subject(op), result};
  metrics_inc(metrics_series(s->requests, labels));
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_reply(notifications_service_t *s, const char *reply, const char *data, size_t len) {
  bus_msg_t m = {.subject = reply, .reply = reply};
  int rc = bus_respond(s->o.bus, &m, data, len);
  if (rc < 0) log_debug(COMPONENT, "reply to %s not sent: %d", reply, rc);
}

static void reply_error(notifications_service_t *s, const char *reply, notif_op_t op,
                        const char *code, const char *message, int status) {
  notif_svc_count(s, op, code);
  buf_t b = BUF_INIT;
  notif_err_json(&b, code, message, status);
  if (b.oom) send_reply(s, reply, OOM_REPLY, sizeof OOM_REPLY - 1);
  else send_reply(s, reply, b.data, b.len);
  buf_free(&b);
}

/* A store failure (call or callback) as the reply a client sees. */
static void reply_store_error(notifications_service_t *s, const char *reply, notif_op_t op, int rc) {
  if (rc == -ENOBUFS)
    reply_error(s, reply, op, "overloaded", "too many notifications in flight, retry later", 503);
  else if (rc == -EINVAL)
    reply_error(s, reply, op, "bad_request", "invalid request", 400);
  else
    reply_error(s, reply, op, "unavailable", "the notification store is unavailable", 503);
}

static void reply_ok(notifications_service_t *s, job_t *j, buf_t *b) {
  if (b->oom) {
    reply_error(s, j->reply, j->req.op, "unavailable", "out of memory", 503);
    return;
  }
  notif_svc_count(s, j->req.op, "ok");
  send_reply(s, j->reply, b->data, b->len);
}

static void maybe_done(notifications_service_t *s);

/* Every store callback ends here: the slot is free for queued events. */
static void op_finished(notifications_service_t *s) {
  s->inflight--;
  notif_sent_pump(s->sent);
  maybe_done(s);
}

static void job_free(job_t *j) {
  notif_req_free(&j->req);
  free(j);
}

/* ---- storing one notification (send and message.sent) ---- */

static void on_added(void *arg, int status) {
  add_t *a = arg;
  notifications_service_t *s = a->svc;
  if (status == 0) {
    char subject[32];
    snprintf(subject, sizeof subject, "user.%" PRId64, a->user_id);
    int rc = bus_publish(s->o.bus, subject, NULL, a->event, a->event_len);
    if (rc < 0) log_warn(COMPONENT, "live push to %s failed: %d", subject, rc);
  }
  if (a->done) a->done(a->arg, status, a->id);
  free(a);
  op_finished(s);
}

int notif_svc_store(notifications_service_t *s, notif_t *n,
                    void (*done)(void *arg, int status, int64_t id), void *arg) {
  if (!notif_svc_has_room(s)) return -ENOBUFS;
  n->id = msg_idgen_next(&s->idgen, s->node, wall_ms(), &n->created_at);
  buf_t ev = BUF_INIT;
  notif_event_json(&ev, n);
  if (ev.oom) {
    buf_free(&ev);
    return -ENOMEM;
  }
  add_t *a = malloc(sizeof *a + ev.len);
  if (!a) {
    buf_free(&ev);
    return -ENOMEM;
  }
  a->svc = s;
  a->done = done;
  a->arg = arg;
  a->user_id = n->user_id;
  a->id = n->id;
  a->event_len = ev.len;
  memcpy(a->event, ev.data, ev.len);
  buf_free(&ev);
  int rc = s->o.store->ops->add(s->o.store, n, on_added, a);
  if (rc < 0) {
    free(a);
    return rc;
  }
  s->inflight++;
  return 0;
}

/* ---- requests ---- */

static void on_sent_stored(void *arg, int status, int64_t id) {
  job_t *j = arg;
  notifications_service_t *s = j->svc;
  if (status < 0) {
    reply_store_error(s, j->reply, j->req.op, status);
  } else {
    buf_t b = BUF_INIT;
    buf_printf(&b, "{\"id\":\"%" PRId64 "\"}", id);
    reply_ok(s, j, &b);
    buf_free(&b);
  }
  job_free(j);
}

static void on_listed(void *arg, int status, const notif_t *items, size_t n) {
  job_t *j = arg;
  notifications_service_t *s = j->svc;
  if (status < 0) {
    reply_store_error(s, j->reply, j->req.op, status);
  } else {
    buf_t b = BUF_INIT;
    buf_append_str(&b, "{\"notifications\":[");
    for (size_t i = 0; i < n; i++) {
      if (i) buf_append_char(&b, ',');
      notif_item_json(&b, &items[i]);
    }
    buf_append_str(&b, "]}");
    reply_ok(s, j, &b);
    buf_free(&b);
  }
  job_free(j);
  op_finished(s);
}

static void on_counted(void *arg, int status, int64_t n) {
  job_t *j = arg;
  notifications_service_t *s = j->svc;
  if (status < 0) {
    reply_store_error(s, j->reply, j->req.op, status);
  } else {
    buf_t b = BUF_INIT;
    if (j->req.op == NOTIF_OP_READ)
      buf_printf(&b, "{\"read\":%" PRId64 "}", n);
    else
      buf_printf(&b, "{\"channelId\":%" PRId64 ",\"muted\":%s}", j->req.channel_id,
                 n ? "true" : "false");
    reply_ok(s, j, &b);
    buf_free(&b);
  }
  job_free(j);
  op_finished(s);
}

static void on_muted(void *arg, int status) { on_counted(arg, status, ((job_t *)arg)->req.muted); }

static int dispatch(notifications_service_t *s, job_t *j) {
  notif_store_t *st = s->o.store;
  notif_req_t *r = &j->req;
  int rc;
  switch (r->op) {
  case NOTIF_OP_SEND: {
    notif_t n = {.user_id = r->user_id, .type = r->type, .payload = r->payload,
                 .payload_len = r->payload_len};
    return notif_svc_store(s, &n, on_sent_stored, j); /* counts itself */
  }
  case NOTIF_OP_GET: rc = st->ops->list(st, r->user_id, on_listed, j); break;
  case NOTIF_OP_READ:
    rc = st->ops->mark_read(st, r->user_id, r->all ? NULL : r->ids, r->all ? 0 : r->nids,
                            on_counted, j);
    break;
  case NOTIF_OP_MUTE:
    rc = st->ops->mute_set(st, r->user_id, r->channel_id, r->muted, on_muted, j);
    break;
  case NOTIF_OP_MUTE_GET:
    rc = st->ops->mute_get(st, r->user_id, r->channel_id, on_counted, j);
    break;
  default: return -EINVAL;
  }
  if (rc == 0) s->inflight++;
  return rc;
}

static void on_msg(bus_t *bus, const bus_msg_t *msg, void *arg) {
  (void)bus;
  route_t *rt = arg;
  notifications_service_t *s = rt->svc;
  if (s->stopping) return;
  if (rt->op == NOTIF_OP_SENT) {
    notif_sent_event(s->sent, msg->data, msg->len);
    return;
  }
  if (!msg->reply) {
    log_debug(COMPONENT, "%s without a reply subject dropped", msg->subject);
    return;
  }
  size_t rlen = strlen(msg->reply);
  job_t *j = calloc(1, sizeof *j + rlen + 1);
  if (!j) {
    notif_svc_count(s, rt->op, "unavailable");
    send_reply(s, msg->reply, OOM_REPLY, sizeof OOM_REPLY - 1);
    return;
  }
  j->svc = s;
  memcpy(j->reply, msg->reply, rlen + 1);
  const char *err = notif_req_parse(rt->op, msg->data, msg->len, &j->req);
  if (err) {
    log_warn(COMPONENT, "%s rejected: %s", msg->subject, err);
    reply_error(s, j->reply, rt->op, "bad_request", err, 400);
    job_free(j);
    return;
  }
  int rc = notif_svc_has_room(s) ? dispatch(s, j) : -ENOBUFS;
  if (rc < 0) {
    if (rc != -ENOBUFS) log_warn(COMPONENT, "%s failed: %s", msg->subject, strerror(-rc));
    reply_store_error(s, j->reply, rt->op, rc);
    job_free(j);
  }
}

/* ---- lifecycle ---- */

static void unsubscribe_all(notifications_service_t *s) {
  for (int i = 0; i < NOTIF_OP_COUNT; i++) {
    if (s->subs[i]) bus_unsubscribe(s->subs[i]);
    s->subs[i] = NULL;
  }
}

int notifications_service_start(const notifications_service_opts_t *o,
                                notifications_service_t **out) {
  if (!o || !out || !o->loop || !o->bus || !o->store || !o->store->ops || o->max_inflight < 0 ||
      o->max_queued_events < 0)
    return -EINVAL;
  *out = NULL;
  notifications_service_t *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->o = *o;
  if (!s->o.lookup_timeout_ms) s->o.lookup_timeout_ms = 2000;
  if (!s->o.max_inflight) s->o.max_inflight = 8192;
  if (!s->o.max_queued_events) s->o.max_queued_events = 100000;
  /* A random node per process: replicas' ids differ in the node bits, and
   * ids need only be unique per user (1 collision chance in 1,024 per
   * same-millisecond pair of replicas writing the same counter). */
  s->node = randombytes_uniform(1024);
  s->idgen.ms = -1;
  metrics_registry_t *reg = o->metrics ? o->metrics : metrics_default();
  static const char *const labels[] = {"subject", "result"};
  s->requests = metrics_counter_new(reg, "storm_notifications_requests_total",
                                    "Notifications service messages by subject and result.", 2,
                                    labels);
  int rc = notif_sent_init(s, &s->sent);
  for (int i = 0; rc == 0 && i < NOTIF_OP_COUNT; i++) {
    s->routes[i] = (route_t){s, (notif_op_t)i};
    rc = bus_subscribe(o->bus, notif_op_subject((notif_op_t)i), QUEUE_GROUP, on_msg,
                       &s->routes[i], &s->subs[i]);
    if (rc < 0) log_error(COMPONENT, "subscribing to %s failed: %d", notif_op_subject(i), rc);
  }
  if (rc < 0) {
    unsubscribe_all(s);
    notif_sent_free(s->sent);
    free(s);
    return rc;
  }
  uv_idle_init(o->loop, &s->done_handle);
  s->done_handle.data = s;
  *out = s;
  return 0;
}

static void on_done_closed(uv_handle_t *h) {
  notifications_service_t *s = h->data;
  if (s->done) s->done(s->done_arg); /* may free s */
}

static void maybe_done(notifications_service_t *s) {
  if (!s->stopping || s->closing || s->inflight > 0) return;
  s->closing = true;
  uv_close((uv_handle_t *)&s->done_handle, on_done_closed);
}

void notifications_service_stop(notifications_service_t *s, void (*done)(void *arg), void *arg) {
  if (!s || s->stopping) return;
  s->stopping = true;
  s->done = done;
  s->done_arg = arg;
  unsubscribe_all(s);
  notif_sent_stop(s->sent);
  maybe_done(s);
}

void notifications_service_free(notifications_service_t *s) {
  if (!s) return;
  notif_sent_free(s->sent);
  free(s);
}
