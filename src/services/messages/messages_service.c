/*
 * messages_service.c — subscriptions, jobs and the service's lifecycle.
 *
 * A request's life: the bus callback (loop) copies the reply subject and
 * parses the payload into a job (messages_validate.c); invalid input is
 * answered at once, valid jobs go to their op (messages_ops.c, or
 * messages_send.c for messages.send; messages.send.batch goes to
 * messages_batch.c, which makes one send job per item). This file owns what every op shares:
 * the list of live jobs (stop waits for it to empty), pool submission with
 * cancellation, replies with their metrics, and event publishing.
 *
 * Only the loop touches the service struct, the lists and the metrics; a
 * pool thread touches only its job and the (thread-safe) store.
 */
#include "services/messages/messages_service.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "services/messages/messages_internal.h"

#define COMPONENT "messages"
#define QUEUE_GROUP "messages"
#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

/* The answer when even an error reply cannot be allocated. */
static const char OOM_REPLY[] =
    "{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\",\"status\":503}}";

int64_t msg_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- jobs ---- */

static void maybe_done(messages_service_t *s);

void msg_count(messages_service_t *s, msg_op_t op, msg_err_t e) {
  const char *labels[2] = {msg_op_name(op), msg_err_code(e)};
  metrics_inc(metrics_series(s->requests, labels));
}

static void respond(messages_service_t *s, const char *reply, const char *data, size_t len) {
  bus_msg_t m = {.subject = reply, .reply = reply, .data = NULL, .len = 0};
  int rc = bus_respond(s->o.bus, &m, data, len);
  if (rc < 0) log_debug(COMPONENT, "reply to %s not sent: %d", reply, rc);
}

void msg_answer(messages_service_t *s, const char *reply, msg_op_t op, msg_err_t e,
                const char *detail, const buf_t *out) {
  msg_count(s, op, e);
  if (e == MSG_OK) {
    respond(s, reply, out ? out->data : "{}", out ? out->len : 2);
    return;
  }
  buf_t b = BUF_INIT;
  msg_err_json(e, detail, &b);
  if (b.oom)
    respond(s, reply, OOM_REPLY, sizeof OOM_REPLY - 1);
  else
    respond(s, reply, b.data, b.len);
  buf_free(&b);
}

void msg_job_reply(msg_job_t *j, const buf_t *out) {
  messages_service_t *s = j->svc;
  if (j->replied) return;
  j->replied = true;
  if (j->err == MSG_OK && out && out->oom) j->err = MSG_E_UNAVAILABLE;
  if (j->batch) { /* an item of a batch: answered with the others */
    msg_count(s, j->req.op, j->err);
    msg_batch_item_reply(j, out);
    return;
  }
  if (j->err == MSG_OK && out && out->len > bus_max_payload(s->o.bus)) {
    /* The list builders keep under the bound; anything else is a bug. */
    log_error(COMPONENT, "%s reply of %zu bytes exceeds the bus payload limit",
              msg_op_name(j->req.op), out->len);
    j->err = MSG_E_UNAVAILABLE;
    j->detail = "reply too large";
  }
  msg_answer(s, j->reply, j->req.op, j->err, j->detail, out);
}

void msg_job_end(msg_job_t *j) {
  messages_service_t *s = j->svc;
  if (j->prev)
    j->prev->next = j->next;
  else
    s->jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  s->njobs--;
  msg_attach_free(j);
  msg_req_free(&j->req);
  free(j->slots);
  free(j->items);
  msg_page_free(&j->page);
  free(j->msg);
  free(j->ids);
  free(j);
  maybe_done(s);
}

void msg_job_finish(msg_job_t *j) {
  if (!j->replied) {
    if (j->err == MSG_OK) j->err = MSG_E_UNAVAILABLE; /* a path that forgot to answer */
    msg_job_reply(j, NULL);
  }
  msg_job_end(j);
}

static void on_work(uv_work_t *w) {
  msg_job_t *j = container_of(w, msg_job_t, work);
  j->work_fn(j);
}

static void on_after_work(uv_work_t *w, int status) {
  msg_job_t *j = container_of(w, msg_job_t, work);
  j->on_pool = false;
  if (status == UV_ECANCELED) {
    j->err = MSG_E_UNAVAILABLE; /* stopped before it ran */
    j->detail = NULL;
  }
  if (j->err != MSG_OK)
    msg_job_finish(j);
  else
    j->after_fn(j);
}

void msg_job_submit(msg_job_t *j, msg_step_fn work_fn, msg_step_fn after_fn) {
  messages_service_t *s = j->svc;
  if (s->stopping) {
    j->err = MSG_E_UNAVAILABLE;
    msg_job_finish(j);
    return;
  }
  j->work_fn = work_fn;
  j->after_fn = after_fn;
  int rc = uv_queue_work(s->o.loop, &j->work, on_work, on_after_work);
  if (rc < 0) { /* only for invalid arguments: defended all the same */
    log_error(COMPONENT, "uv_queue_work failed: %s", uv_strerror(rc));
    j->err = MSG_E_UNAVAILABLE;
    msg_job_finish(j);
    return;
  }
  j->on_pool = true;
}

void msg_publish(messages_service_t *s, const char *prefix, int64_t id, const buf_t *b) {
  if (b->oom) {
    log_error(COMPONENT, "event for %s.%" PRId64 " lost: out of memory", prefix, id);
    return;
  }
  char subject[64];
  snprintf(subject, sizeof subject, "%s.%" PRId64, prefix, id);
  int rc = bus_publish(s->o.bus, subject, NULL, b->data, b->len);
  if (rc < 0) log_warn(COMPONENT, "publish to %s failed: %d", subject, rc);
}

msg_job_t *msg_job_new(messages_service_t *s, const char *reply) {
  size_t rlen = strlen(reply);
  msg_job_t *j = calloc(1, sizeof *j + rlen + 1);
  if (!j) return NULL;
  memcpy(j->reply, reply, rlen + 1);
  j->svc = s;
  j->next = s->jobs;
  if (s->jobs) s->jobs->prev = j;
  s->jobs = j;
  s->njobs++;
  return j;
}

static void on_msg(bus_t *bus, const bus_msg_t *msg, void *arg) {
  msg_route_t *rt = arg;
  messages_service_t *s = rt->svc;
  if (!msg->reply) {
    /* Nobody would hear the answer; a send without one could not learn
     * whether it was stored either. */
    log_debug(COMPONENT, "%s without a reply subject dropped", msg->subject);
    return;
  }
  if (rt->op == MSG_OP_SEND_BATCH) {
    msg_batch_start(s, msg);
    return;
  }
  msg_job_t *j = msg_job_new(s, msg->reply);
  if (!j) {
    msg_count(s, rt->op, MSG_E_UNAVAILABLE);
    respond(s, msg->reply, OOM_REPLY, sizeof OOM_REPLY - 1);
    return;
  }
  j->err = msg_req_parse(rt->op, msg->data, msg->len, &j->req, &j->detail);
  if (j->err != MSG_OK) {
    log_debug(COMPONENT, "%s rejected: %s%s%s", msg->subject, msg_err_code(j->err),
              j->detail ? ": " : "", j->detail ? j->detail : "");
    msg_job_finish(j);
    return;
  }
  /* The gateway took the caller's username from the signed token. */
  if (j->req.username[0]) msg_names_put(s->names, j->req.user_id, j->req.username);
  msg_ops_start(j);
}

/* ---- lifecycle ---- */

void messages_service_opts_default(messages_service_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->users_timeout_ms = 2000;
  o->names_cache_max = 8192;
}

static bool opts_valid(const messages_service_opts_t *o) {
  return o && o->loop && o->bus && o->store && o->store->ops && o->users_timeout_ms > 0 &&
         o->names_cache_max >= 16 && o->names_cache_max <= (1u << 24);
}

static void unsubscribe_all(messages_service_t *s) {
  for (int i = 0; i < MSG_OP_COUNT; i++) {
    if (s->subs[i]) bus_unsubscribe(s->subs[i]);
    s->subs[i] = NULL;
  }
  if (s->attach_sub) bus_unsubscribe(s->attach_sub);
  s->attach_sub = NULL;
}

int messages_service_start(const messages_service_opts_t *o, messages_service_t **out) {
  *out = NULL;
  if (!opts_valid(o)) return -EINVAL;
  messages_service_t *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->o = *o;
  s->names = msg_names_new(o->names_cache_max);
  if (!s->names) {
    free(s);
    return -ENOMEM;
  }
  metrics_registry_t *reg = o->metrics ? o->metrics : metrics_default();
  static const char *const req_labels[] = {"op", "result"};
  s->requests = metrics_counter_new(reg, "storm_messages_requests_total",
                                    "Messages service requests by operation and result code.", 2,
                                    req_labels);
  s->appends = metrics_series0(metrics_counter_new(
      reg, "storm_messages_appends_total",
      "Messages made durable by the store (nonce retries not counted).", 0, NULL));
  for (int i = 0; i < MSG_OP_COUNT; i++) {
    s->routes[i] = (msg_route_t){s, (msg_op_t)i};
    int rc = bus_subscribe(o->bus, msg_op_subject((msg_op_t)i), QUEUE_GROUP, on_msg,
                           &s->routes[i], &s->subs[i]);
    if (rc < 0) {
      log_error(COMPONENT, "subscribing to %s failed: %d", msg_op_subject((msg_op_t)i), rc);
      unsubscribe_all(s);
      msg_names_free(s->names);
      free(s);
      return rc;
    }
  }
  int rc = bus_subscribe(o->bus, MSG_ATTACH_CHECK_SUBJECT, QUEUE_GROUP, msg_attach_on_check, s,
                         &s->attach_sub);
  if (rc < 0) {
    log_error(COMPONENT, "subscribing to %s failed: %d", MSG_ATTACH_CHECK_SUBJECT, rc);
    unsubscribe_all(s);
    msg_names_free(s->names);
    free(s);
    return rc;
  }
  uv_idle_init(o->loop, &s->done_handle);
  s->done_handle.data = s;
  *out = s;
  return 0;
}

static void on_done_closed(uv_handle_t *h) {
  messages_service_t *s = h->data;
  if (s->done) s->done(s->done_arg); /* may free s: touch nothing after */
}

static void maybe_done(messages_service_t *s) {
  if (!s->stopping || s->closing || s->njobs > 0) return;
  s->closing = true;
  uv_close((uv_handle_t *)&s->done_handle, on_done_closed);
}

void messages_service_stop(messages_service_t *s, void (*done)(void *arg), void *arg) {
  if (!s || s->stopping) return;
  s->stopping = true;
  s->done = done;
  s->done_arg = arg;
  unsubscribe_all(s);
  /* Pool jobs not started come back with UV_ECANCELED (answered 503);
   * running ones finish and are answered. Sends waiting for their
   * channel's membership check are answered now. Appends already in the
   * store complete normally: their callbacks answer them. */
  for (msg_job_t *j = s->jobs; j; j = j->next)
    if (j->on_pool) uv_cancel((uv_req_t *)&j->work);
  msg_send_stop(s);
  msg_lookup_cancel_all(s);
  maybe_done(s);
}

void messages_service_free(messages_service_t *s) {
  if (!s) return;
  msg_send_free_queues(s);
  msg_names_free(s->names);
  free(s);
}
