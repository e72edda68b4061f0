/*
 * messages_send.c — messages.send: membership check, durable append,
 * events and notifications.
 *
 * Order. The store gives one channel's messages seqs in append order for
 * appends made from one thread. Checking membership on the pool (several
 * threads) and appending from there would reorder concurrent sends, so
 * each channel with sends in flight has a queue: one pool step checks the
 * membership of a whole batch of its queued sends (one channel_get, one
 * member_get per author), then the loop appends the accepted ones in
 * arrival order; sends arriving meanwhile wait for the next batch. Seqs
 * therefore follow the order in which requests reached the service, and a
 * member removed before the check of a send cannot post it. Batching also
 * keeps the pool cost per message low under load.
 *
 * Durability. The reply is sent from the append callback only, i.e. once
 * the message is committed and flushed. The chan.<id> event follows it,
 * exactly once per stored message: a nonce retry (duplicate) is answered
 * with the original ack and publishes nothing.
 *
 * Notifications (message.sent): the other member of a DM; in a channel,
 * each member mentioned as @username (resolved with users.get, then
 * checked against the membership on the pool), never the author. They are
 * best effort: published after the reply, dropped when the service stops.
 */
#include "services/messages/messages_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define COMPONENT "messages"
#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

/* Sends checked per pool step: bounds the step's duration (one member_get
 * each) while amortising the hop to the pool under load. */
#define SEND_BATCH_MAX 256

struct msg_chanq {
  uv_work_t work;
  messages_service_t *svc;
  int64_t channel_id;
  msg_chanq_t *hnext;                  /* bucket chain */
  msg_job_t *pending, *pending_tail;   /* waiting for the next check */
  msg_job_t *batch;                    /* being checked (linked by qnext) */
  bool busy;                           /* batch on the pool */
};

/* ---- channel queues by id ---- */

static size_t bucket_of(const messages_service_t *s, int64_t id) {
  uint64_t x = (uint64_t)id * UINT64_C(0x9E3779B97F4A7C15);
  return (size_t)(x >> 32) & (s->nqbuckets - 1);
}

static int grow(messages_service_t *s) {
  size_t n = s->nqbuckets ? s->nqbuckets * 2 : 64;
  msg_chanq_t **b = calloc(n, sizeof *b);
  if (!b) return -ENOMEM;
  for (size_t i = 0; i < s->nqbuckets; i++) {
    msg_chanq_t *q = s->qbuckets[i];
    while (q) {
      msg_chanq_t *next = q->hnext;
      size_t k = (size_t)((uint64_t)q->channel_id * UINT64_C(0x9E3779B97F4A7C15) >> 32) & (n - 1);
      q->hnext = b[k];
      b[k] = q;
      q = next;
    }
  }
  free(s->qbuckets);
  s->qbuckets = b;
  s->nqbuckets = n;
  return 0;
}

static msg_chanq_t *queue_get(messages_service_t *s, int64_t id) {
  if (s->nqbuckets)
    for (msg_chanq_t *q = s->qbuckets[bucket_of(s, id)]; q; q = q->hnext)
      if (q->channel_id == id) return q;
  if ((s->nqueues >= s->nqbuckets) && grow(s) < 0) return NULL;
  msg_chanq_t *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  q->svc = s;
  q->channel_id = id;
  size_t k = bucket_of(s, id);
  q->hnext = s->qbuckets[k];
  s->qbuckets[k] = q;
  s->nqueues++;
  return q;
}

static void queue_drop(msg_chanq_t *q) {
  messages_service_t *s = q->svc;
  msg_chanq_t **p = &s->qbuckets[bucket_of(s, q->channel_id)];
  while (*p != q) p = &(*p)->hnext;
  *p = q->hnext;
  s->nqueues--;
  free(q);
}

/* ---- the check (pool) ---- */

static void on_check(uv_work_t *w) {
  msg_chanq_t *q = container_of(w, msg_chanq_t, work);
  messages_store_t *st = q->svc->o.store;
  channel_rec_t ch;
  int crc = st->ops->channel_get(st, q->channel_id, &ch);
  int64_t last_author = 0;
  int last_rc = 0;
  for (msg_job_t *j = q->batch; j; j = j->qnext) {
    if (j->err != MSG_OK) continue; /* attachments refused */
    if (crc == -ENOENT) {
      j->err = MSG_E_NOT_FOUND;
      continue;
    }
    if (crc < 0) {
      j->err = MSG_E_UNAVAILABLE;
      continue;
    }
    int rc = j->req.user_id == last_author
                 ? last_rc
                 : st->ops->member_get(st, q->channel_id, j->req.user_id, NULL);
    last_author = j->req.user_id;
    last_rc = rc;
    if (rc == 0) {
      j->ch = ch;
    } else if (rc == -ENOENT) {
      /* A private channel does not exist for a non-member. */
      j->err = ch.is_private ? MSG_E_NOT_FOUND : MSG_E_FORBIDDEN;
      if (!ch.is_private) j->detail = "only members post";
    } else {
      log_debug(COMPONENT, "send: member_get error %d", rc);
      j->err = MSG_E_UNAVAILABLE;
    }
  }
  if (crc < 0 && crc != -ENOENT) log_debug(COMPONENT, "send: channel_get error %d", crc);
}

static void append(msg_job_t *j);
static void on_checked(uv_work_t *w, int status);

static void submit_batch(msg_chanq_t *q) {
  size_t n = 0;
  msg_job_t *tail = NULL;
  /* A send whose attachments are still being checked holds back the ones
   * queued after it (arrival order); msg_send_attach_done resumes. */
  for (msg_job_t *j = q->pending; j && n < SEND_BATCH_MAX && !msg_attach_waiting(j);
       j = j->qnext) {
    tail = j;
    n++;
  }
  if (n == 0) return;
  q->batch = q->pending;
  q->pending = tail->qnext;
  if (!q->pending) q->pending_tail = NULL;
  tail->qnext = NULL;
  q->busy = true;
  int rc = uv_queue_work(q->svc->o.loop, &q->work, on_check, on_checked);
  if (rc < 0) { /* only for invalid arguments */
    log_error(COMPONENT, "uv_queue_work failed: %s", uv_strerror(rc));
    on_checked(&q->work, UV_ECANCELED);
  }
}

static void on_checked(uv_work_t *w, int status) {
  msg_chanq_t *q = container_of(w, msg_chanq_t, work);
  messages_service_t *s = q->svc;
  msg_job_t *j = q->batch;
  q->batch = NULL;
  q->busy = false;
  while (j) {
    msg_job_t *next = j->qnext;
    j->qnext = NULL;
    if (status == UV_ECANCELED || (j->err == MSG_OK && s->stopping)) {
      j->err = MSG_E_UNAVAILABLE;
      j->detail = NULL;
    }
    if (j->err != MSG_OK)
      msg_job_finish(j);
    else
      append(j); /* in arrival order: this is what orders the seqs */
    j = next;
  }
  if (q->pending)
    submit_batch(q);
  else
    queue_drop(q);
}

void msg_send_start(msg_job_t *j) {
  messages_service_t *s = j->svc;
  msg_chanq_t *q = s->stopping ? NULL : queue_get(s, j->req.channel_id);
  if (!q) {
    j->err = MSG_E_UNAVAILABLE;
    msg_job_finish(j);
    return;
  }
  if (j->req.attachments && msg_attach_start(j) < 0) {
    if (!q->pending && !q->busy) queue_drop(q);
    msg_job_finish(j);
    return;
  }
  j->qnext = NULL;
  if (q->pending_tail)
    q->pending_tail->qnext = j;
  else
    q->pending = j;
  q->pending_tail = j;
  if (!q->busy) submit_batch(q);
}

void msg_send_attach_done(msg_job_t *j) {
  messages_service_t *s = j->svc;
  msg_chanq_t *q = s->nqbuckets ? s->qbuckets[bucket_of(s, j->req.channel_id)] : NULL;
  while (q && q->channel_id != j->req.channel_id) q = q->hnext;
  if (q && !q->busy && q->pending) submit_batch(q);
}

/* ---- append, reply, events ---- */

static void publish_sent(messages_service_t *s, int64_t recipient, msg_job_t *j) {
  buf_t b = BUF_INIT;
  buf_printf(&b, "{\"recipientId\":%" PRId64 ",\"senderId\":%" PRId64 ",\"senderUsername\":\"",
             recipient, j->req.user_id);
  buf_append_json_escaped(&b, j->req.username, strlen(j->req.username));
  buf_printf(&b, "\",\"conversationId\":%" PRId64 ",\"messageId\":\"%" PRId64 "\"}",
             j->req.channel_id, j->ack.id);
  if (b.oom) {
    log_error(COMPONENT, "message.sent lost: out of memory");
  } else {
    int rc = bus_publish(s->o.bus, "message.sent", NULL, b.data, b.len);
    if (rc < 0) log_warn(COMPONENT, "publish to message.sent failed: %d", rc);
  }
  buf_free(&b);
}

static void mentions_checked(msg_job_t *j) {
  for (size_t i = 0; i < j->nids; i++) publish_sent(j->svc, j->ids[i], j);
  msg_job_end(j);
}

/* Pool: keeps the mentioned users who are members of the channel. */
static void check_mentions(msg_job_t *j) {
  messages_store_t *st = j->svc->o.store;
  size_t keep = 0;
  for (size_t i = 0; i < j->nids; i++) {
    int rc = st->ops->member_get(st, j->req.channel_id, j->ids[i], NULL);
    if (rc == 0) j->ids[keep++] = j->ids[i];
  }
  j->nids = keep;
}

static void mentions_resolved(msg_job_t *j) {
  j->ids = calloc(j->nslots ? j->nslots : 1, sizeof *j->ids);
  if (!j->ids) {
    msg_job_end(j);
    return;
  }
  for (size_t i = 0; i < j->nslots; i++)
    if (j->slots[i].status == 0 && j->slots[i].id != j->req.user_id)
      j->ids[j->nids++] = j->slots[i].id;
  if (j->nids == 0) {
    msg_job_end(j);
    return;
  }
  msg_job_submit(j, check_mentions, mentions_checked); /* stopping: just ends it */
}

static void notify(msg_job_t *j) {
  messages_service_t *s = j->svc;
  if (j->ch.kind == CHANNEL_KIND_DM) {
    int64_t peer = msg_dm_peer(&j->ch, j->req.user_id);
    if (peer != j->req.user_id) publish_sent(s, peer, j);
    msg_job_end(j);
    return;
  }
  char names[MESSAGES_MENTIONS_MAX][USER_NAME_MAX + 1];
  size_t n = msg_mentions(j->req.body, j->req.body_len, names, MESSAGES_MENTIONS_MAX);
  for (size_t i = 0; i < n; i++)
    if (strcmp(names[i], j->req.username) != 0) msg_slot_add_name(j, names[i]);
  if (j->nslots == 0 || s->stopping) {
    msg_job_end(j);
    return;
  }
  msg_lookup_run(j, mentions_resolved);
}

static void on_appended(void *arg, int status, const msg_ack_t *ack) {
  msg_job_t *j = arg;
  messages_service_t *s = j->svc;
  if (status != 0) {
    j->err = status == -ENOENT ? MSG_E_NOT_FOUND : MSG_E_UNAVAILABLE;
    msg_job_finish(j);
    return;
  }
  j->ack = *ack;
  if (!ack->duplicate) metrics_inc(s->appends);
  buf_t b = BUF_INIT;
  buf_printf(&b,
             "{\"channel_id\":%" PRId64 ",\"id\":\"%" PRId64 "\",\"seq\":%" PRId64
             ",\"created_at\":%" PRId64 ",\"duplicate\":%s}",
             j->req.channel_id, ack->id, ack->seq, ack->created_at,
             ack->duplicate ? "true" : "false");
  msg_job_reply(j, &b);
  buf_free(&b);
  if (ack->duplicate) { /* announced when it was first stored */
    msg_job_end(j);
    return;
  }
  msg_rec_t m = {
      .id = ack->id,
      .channel_id = j->req.channel_id,
      .seq = ack->seq,
      .author_id = j->req.user_id,
      .body = {j->req.body, j->req.body_len},
      .attachments = {j->req.attachments, j->req.attachments_len},
      .nonce = {j->req.nonce_len ? j->req.nonce : NULL, j->req.nonce_len},
      .created_at = ack->created_at,
  };
  buf_t ev = BUF_INIT;
  buf_printf(&ev, "{\"op\":\"message\",\"channel_id\":%" PRId64 ",\"message\":",
             j->req.channel_id);
  msg_message_json(&m, j->req.username, false, &ev);
  buf_append_char(&ev, '}');
  msg_publish(s, "chan", j->req.channel_id, &ev);
  buf_free(&ev);
  notify(j);
}

static void append(msg_job_t *j) {
  messages_store_t *st = j->svc->o.store;
  msg_append_t m = {
      .channel_id = j->req.channel_id,
      .author_id = j->req.user_id,
      .body = {j->req.body, j->req.body_len},
      .attachments = {j->req.attachments, j->req.attachments_len},
      .nonce = {j->req.nonce_len ? j->req.nonce : NULL, j->req.nonce_len},
  };
  m.keys = msg_attach_keys(j, &m.nkeys);
  int rc = st->ops->append(st, &m, on_appended, j);
  if (rc < 0) {
    if (rc != -EAGAIN) log_debug(COMPONENT, "append refused: %d", rc);
    j->err = rc == -EAGAIN ? MSG_E_OVERLOADED : MSG_E_UNAVAILABLE;
    msg_job_finish(j);
  }
}

/* ---- stop ---- */

void msg_send_stop(messages_service_t *s) {
  for (size_t i = 0; i < s->nqbuckets; i++) {
    for (msg_chanq_t *q = s->qbuckets[i]; q; q = q->hnext) {
      /* Only a busy queue has waiting sends; it stays until its batch
       * comes back (cancelled or checked), which drops it. */
      while (q->pending) {
        msg_job_t *j = q->pending;
        q->pending = j->qnext;
        j->qnext = NULL;
        j->err = MSG_E_UNAVAILABLE;
        msg_job_finish(j);
      }
      q->pending_tail = NULL;
      if (q->busy) uv_cancel((uv_req_t *)&q->work);
    }
  }
}

void msg_send_free_queues(messages_service_t *s) {
  for (size_t i = 0; i < s->nqbuckets; i++) {
    msg_chanq_t *q = s->qbuckets[i];
    while (q) { /* none after done: defensive */
      msg_chanq_t *next = q->hnext;
      free(q);
      q = next;
    }
  }
  free(s->qbuckets);
  s->qbuckets = NULL;
  s->nqbuckets = s->nqueues = 0;
}
