/*
 * messages_send.c — messages.send: the durable append (which checks
 * membership), events and notifications.
 *
 * Order. The store gives one channel's messages seqs in append order for
 * appends made from one thread, and every append is made from the loop,
 * in the order the requests arrived. The only thing that can hold a send
 * back is the ownership check of its attachments (a bus round trip,
 * messages_attach.c): while one is in flight, later sends of the same
 * channel wait behind it in a queue for that channel, so seqs still follow
 * arrival order. A channel without such a send has no queue and its sends
 * go straight to the store.
 *
 * Membership. The store checks it inside the transaction that stores the
 * message (-EPERM), so a member removed before that transaction cannot
 * post, and a send costs no hop to the thread pool: that hop (a futex
 * wake-up of a pool thread, which then preempted the loop) was a fifth
 * of the loop's time at 15,000 sends/s.
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

struct msg_chanq {
  int64_t channel_id;
  msg_chanq_t *hnext;                  /* bucket chain */
  msg_job_t *pending, *pending_tail;   /* the first one's attachments are being checked */
};

/* ---- channel queues by id ---- */

static size_t bucket_of(int64_t id, size_t nbuckets) {
  uint64_t x = (uint64_t)id * UINT64_C(0x9E3779B97F4A7C15);
  return (size_t)(x >> 32) & (nbuckets - 1);
}

static int grow(messages_service_t *s) {
  size_t n = s->nqbuckets ? s->nqbuckets * 2 : 64;
  msg_chanq_t **b = calloc(n, sizeof *b);
  if (!b) return -ENOMEM;
  for (size_t i = 0; i < s->nqbuckets; i++) {
    msg_chanq_t *q = s->qbuckets[i];
    while (q) {
      msg_chanq_t *next = q->hnext;
      size_t k = bucket_of(q->channel_id, n);
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

static msg_chanq_t *queue_find(messages_service_t *s, int64_t id) {
  if (!s->nqbuckets) return NULL;
  msg_chanq_t *q = s->qbuckets[bucket_of(id, s->nqbuckets)];
  while (q && q->channel_id != id) q = q->hnext;
  return q;
}

static msg_chanq_t *queue_new(messages_service_t *s, int64_t id) {
  if ((s->nqueues >= s->nqbuckets) && grow(s) < 0) return NULL;
  msg_chanq_t *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  q->channel_id = id;
  size_t k = bucket_of(id, s->nqbuckets);
  q->hnext = s->qbuckets[k];
  s->qbuckets[k] = q;
  s->nqueues++;
  return q;
}

static void queue_drop(messages_service_t *s, msg_chanq_t *q) {
  msg_chanq_t **p = &s->qbuckets[bucket_of(q->channel_id, s->nqbuckets)];
  while (*p != q) p = &(*p)->hnext;
  *p = q->hnext;
  s->nqueues--;
  free(q);
}

static void append(msg_job_t *j);

/* A send whose turn has come: refused attachments end it, else it goes to
 * the store. */
static void proceed(msg_job_t *j) {
  if (j->err == MSG_OK && j->svc->stopping) {
    j->err = MSG_E_UNAVAILABLE;
    j->detail = NULL;
  }
  if (j->err != MSG_OK)
    msg_job_finish(j);
  else
    append(j);
}

/* Starts the queued sends up to the first one still waiting for its
 * attachments; drops the queue once it is empty. */
static void drain(messages_service_t *s, msg_chanq_t *q) {
  while (q->pending && !msg_attach_waiting(q->pending)) {
    msg_job_t *j = q->pending;
    q->pending = j->qnext;
    j->qnext = NULL;
    proceed(j);
  }
  if (!q->pending) {
    q->pending_tail = NULL;
    queue_drop(s, q);
  }
}

void msg_send_start(msg_job_t *j) {
  messages_service_t *s = j->svc;
  if (s->stopping) {
    j->err = MSG_E_UNAVAILABLE;
    msg_job_finish(j);
    return;
  }
  if (j->req.attachments && msg_attach_start(j) < 0) {
    msg_job_finish(j);
    return;
  }
  msg_chanq_t *q = queue_find(s, j->req.channel_id);
  if (!q && !msg_attach_waiting(j)) {
    proceed(j); /* nothing ahead of it: the common case */
    return;
  }
  if (!q && !(q = queue_new(s, j->req.channel_id))) {
    j->err = MSG_E_UNAVAILABLE;
    j->detail = "out of memory";
    msg_job_finish(j);
    return;
  }
  j->qnext = NULL;
  if (q->pending_tail)
    q->pending_tail->qnext = j;
  else
    q->pending = j;
  q->pending_tail = j;
  drain(s, q);
}

void msg_send_attach_done(msg_job_t *j) {
  messages_service_t *s = j->svc;
  msg_chanq_t *q = queue_find(s, j->req.channel_id);
  if (q) drain(s, q);
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
  if (status == -EPERM) {
    /* A private channel does not exist for a non-member. */
    j->err = ack->is_private ? MSG_E_NOT_FOUND : MSG_E_FORBIDDEN;
    if (!ack->is_private) j->detail = "only members post";
    msg_job_finish(j);
    return;
  }
  if (status != 0) {
    j->err = status == -ENOENT ? MSG_E_NOT_FOUND : MSG_E_UNAVAILABLE;
    msg_job_finish(j);
    return;
  }
  j->ack = *ack;
  j->ch.id = j->req.channel_id;
  j->ch.kind = ack->kind;
  j->ch.is_private = ack->is_private;
  j->ch.dm_user_lo = ack->dm_user_lo;
  j->ch.dm_user_hi = ack->dm_user_hi;
  if (!ack->duplicate) metrics_inc(s->appends);
  buf_t b = BUF_INIT;
  buf_append_str(&b, "{\"channel_id\":");
  buf_append_i64(&b, j->req.channel_id);
  buf_append_str(&b, ",\"id\":\"");
  buf_append_i64(&b, ack->id);
  buf_append_str(&b, "\",\"seq\":");
  buf_append_i64(&b, ack->seq);
  buf_append_str(&b, ",\"created_at\":");
  buf_append_i64(&b, ack->created_at);
  buf_append_str(&b, ack->duplicate ? ",\"duplicate\":true}" : ",\"duplicate\":false}");
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
  buf_append_str(&ev, "{\"op\":\"message\",\"channel_id\":");
  buf_append_i64(&ev, j->req.channel_id);
  buf_append_str(&ev, ",\"message\":");
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
    msg_chanq_t *q;
    while ((q = s->qbuckets[i])) {
      s->qbuckets[i] = q->hnext;
      s->nqueues--;
      while (q->pending) {
        msg_job_t *j = q->pending;
        q->pending = j->qnext;
        j->qnext = NULL;
        j->err = MSG_E_UNAVAILABLE;
        j->detail = NULL;
        msg_job_finish(j); /* cancels its attachment check */
      }
      free(q);
    }
  }
}

void msg_send_free_queues(messages_service_t *s) {
  free(s->qbuckets);
  s->qbuckets = NULL;
  s->nqbuckets = s->nqueues = 0;
}
