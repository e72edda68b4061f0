/*
 * messages_batch.c — messages.send.batch: several sends of one caller in
 * one request, answered in one reply.
 *
 * Why it exists: over NATS the gateway keeps one request per connection in
 * flight so that replicas cannot reorder a client's sends; batching what
 * queued up meanwhile turns one round trip per message into one per batch.
 *
 * How: each valid item becomes an ordinary send job (messages_send.c),
 * started in item order from this one loop callback, so the items of one
 * channel enter that channel's queue in item order and get their seqs in
 * it; items of different channels proceed independently. Validation,
 * membership, nonces, durability, events and notifications are therefore
 * exactly those of messages.send. A job's answer is recorded here instead
 * of being sent (msg_job_reply calls msg_batch_item_reply); the reply
 * {"results":[...]} goes when the last item is answered, i.e. when every
 * item is durable or failed.
 *
 * Lifetime: the batch is not a job. It lives until its last item reports;
 * every item job reports before it ends (msg_job_finish answers a job that
 * did not), so no batch outlives the jobs stop waits for. A guard count
 * held while the items start keeps an item that is answered at once (bad
 * item, stopping) from sending the reply before the later items started.
 */
#include "services/messages/messages_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define COMPONENT "messages"

/* An item whose answer could not even be recorded (out of memory). */
static const char ITEM_OOM[] =
    "{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\",\"status\":503}}";

typedef struct {
  char *data; /* NULL: ITEM_OOM */
  size_t len;
} result_t;

struct msg_batch {
  messages_service_t *svc;
  size_t n;
  size_t left;        /* items not answered yet, plus the guard while starting */
  result_t *results;  /* n, in item order */
  char reply[];
};

static void batch_send(msg_batch_t *b) {
  messages_service_t *s = b->svc;
  buf_t out = BUF_INIT;
  buf_append(&out, "{\"results\":[", 12);
  for (size_t i = 0; i < b->n; i++) {
    if (i) buf_append_char(&out, ',');
    if (b->results[i].data)
      buf_append(&out, b->results[i].data, b->results[i].len);
    else
      buf_append(&out, ITEM_OOM, sizeof ITEM_OOM - 1);
  }
  buf_append(&out, "]}", 2);
  msg_err_t e = MSG_OK;
  const char *detail = NULL;
  if (out.oom) {
    e = MSG_E_UNAVAILABLE;
    detail = "out of memory";
  } else if (out.len > bus_max_payload(s->o.bus)) {
    /* ~300 bytes an item at most, 100 items: far below any bus limit. */
    log_error(COMPONENT, "send.batch reply of %zu bytes exceeds the bus payload limit", out.len);
    e = MSG_E_UNAVAILABLE;
    detail = "reply too large";
  }
  msg_answer(s, b->reply, MSG_OP_SEND_BATCH, e, detail, &out);
  buf_free(&out);
}

/* One item answered (or the starting guard dropped). */
static void batch_release(msg_batch_t *b) {
  if (--b->left > 0) return;
  batch_send(b);
  for (size_t i = 0; i < b->n; i++) free(b->results[i].data);
  free(b->results);
  free(b);
}

static void set_result(msg_batch_t *b, size_t i, msg_err_t e, const char *detail,
                       const buf_t *out) {
  buf_t tmp = BUF_INIT;
  if (e != MSG_OK)
    msg_err_json(e, detail, &tmp);
  else if (out)
    buf_append(&tmp, out->data, out->len);
  else
    buf_append(&tmp, "{}", 2);
  if (tmp.oom) {
    buf_free(&tmp);
    return; /* stays NULL: ITEM_OOM */
  }
  b->results[i].data = buf_steal(&tmp, &b->results[i].len);
}

void msg_batch_item_reply(msg_job_t *j, const buf_t *out) {
  msg_batch_t *b = j->batch;
  j->batch = NULL;
  set_result(b, j->batch_idx, j->err, j->detail, out);
  batch_release(b);
}

void msg_batch_start(messages_service_t *s, const bus_msg_t *msg) {
  msg_batch_item_t *items = NULL;
  size_t n = 0;
  const char *detail = NULL;
  msg_err_t e = msg_batch_parse(msg->data, msg->len, &items, &n, &detail);
  if (e != MSG_OK) {
    log_debug(COMPONENT, "%s rejected: %s%s%s", msg->subject, msg_err_code(e),
              detail ? ": " : "", detail ? detail : "");
    msg_answer(s, msg->reply, MSG_OP_SEND_BATCH, e, detail, NULL);
    return;
  }
  size_t rlen = strlen(msg->reply);
  msg_batch_t *b = calloc(1, sizeof *b + rlen + 1);
  result_t *results = b ? calloc(n, sizeof *results) : NULL;
  if (!results) {
    free(b);
    msg_batch_items_free(items, n);
    msg_answer(s, msg->reply, MSG_OP_SEND_BATCH, MSG_E_UNAVAILABLE, "out of memory", NULL);
    return;
  }
  memcpy(b->reply, msg->reply, rlen + 1);
  b->svc = s;
  b->n = n;
  b->results = results;
  b->left = n + 1;
  /* The gateway took the caller's username from the signed token. */
  const msg_req_t *caller = &items[0].req;
  if (caller->username[0]) msg_names_put(s->names, caller->user_id, caller->username);
  for (size_t i = 0; i < n; i++) {
    msg_batch_item_t *it = &items[i];
    if (it->err != MSG_OK) {
      log_debug(COMPONENT, "send.batch item %zu rejected: %s%s%s", i, msg_err_code(it->err),
                it->detail ? ": " : "", it->detail ? it->detail : "");
      msg_count(s, MSG_OP_SEND, it->err);
      set_result(b, i, it->err, it->detail, NULL);
      b->left--; /* the guard keeps it above 0 */
      continue;
    }
    msg_job_t *j = msg_job_new(s, "");
    if (!j) {
      msg_count(s, MSG_OP_SEND, MSG_E_UNAVAILABLE);
      set_result(b, i, MSG_E_UNAVAILABLE, "out of memory", NULL);
      b->left--;
      continue;
    }
    j->req = it->req; /* the job owns body and attachments now */
    memset(&it->req, 0, sizeof it->req);
    j->batch = b;
    j->batch_idx = i;
    msg_send_start(j);
  }
  msg_batch_items_free(items, n);
  batch_release(b); /* the guard: replies now if every item is answered */
}
