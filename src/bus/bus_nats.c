/*
 * bus_nats.c — the NATS engine: libnats for the protocol, a locked queue +
 * uv_async_t to bring messages from libnats's delivery thread to the loop,
 * a request table on one wildcard inbox, and an asynchronous close.
 *
 * Who may touch what: everything below "shared" in nbus_t is guarded by
 * `mu` and may be touched by libnats threads (message handler, subscription
 * completion, connection callbacks, reconnect backoff); the rest belongs to
 * the loop thread. Library threads only ever enqueue and uv_async_send,
 * always while holding `mu`, so once the loop has seen `live == 0` under the
 * same lock nothing will touch the async handle or the bus again.
 *
 * Queued messages carry the subscription's sid, never a pointer: dispatch
 * looks the sid up, so a message of a subscription removed meanwhile finds
 * nothing and is dropped, and no queued message can outlive what it names.
 */
#include "bus/bus_nats.h"

#include <inttypes.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "bus/bus_nats_ev.h"
#include "bus/bus_nats_req.h"

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

/* One copied message: payload first (aligned), then subject and reply. */
typedef struct inmsg {
  struct inmsg *next;
  int64_t sid;
  size_t len;
  size_t cost; /* bytes counted against inbound_max_bytes */
  uint32_t subject_len;
  uint32_t reply_len; /* 0: no reply */
  bool no_responders;
  alignas(max_align_t) char data[];
} inmsg_t;

typedef struct nsub {
  bus_sub_t base;
  struct nsub *hnext;       /* sid hash chain */
  struct nsub *prev, *next; /* every subscription, for close */
  natsSubscription *ns;     /* NULL once bus_close unsubscribed it */
  int64_t sid;
  bus_msg_cb cb;
  void *arg;
} nsub_t;

/* "_INBOX." + a 22-character NUID + "." */
#define INBOX_CAP 64

typedef struct {
  bus_t base;
  uv_loop_t *loop;
  natsConnection *nc;
  bus_nats_ev_t ev;
  uv_timer_t timer;

  /* ---- shared with libnats threads, under mu ---- */
  uv_mutex_t mu;
  uv_async_t async;
  inmsg_t *q_head, *q_tail; /* handed over, not yet taken by the loop */
  size_t q_n, q_bytes;      /* everything not yet dispatched (shared + local) */
  size_t max_n, max_bytes;
  uint64_t received, dropped_full;
  int live; /* libnats objects still able to call us: subscriptions + the connection */
  bool state_changed;
  atomic_uint_fast64_t reconnects;
  atomic_uint_fast64_t jitter; /* backoff randomness, from the reconnect thread */
  int64_t wait_ms, wait_max_ms;

  /* ---- loop thread ---- */
  inmsg_t *l_head, *l_tail; /* taken from the shared queue */
  nsub_t **sb;              /* sid hash */
  size_t smask, sn;
  nsub_t *subs;
  uint64_t delivered, dropped_unsub;

  reqtab_t reqs;
  uint64_t armed; /* deadline the timer is set for; UINT64_MAX when stopped */
  uint64_t next_id;
  natsSubscription *inbox_sub;
  int64_t inbox_sid;
  char inbox[INBOX_CAP];
  size_t inbox_len;

  bool close_started, work_done, finishing;
  uv_work_t work;
  int handles;
  void (*on_closed)(void *arg);
  void *on_closed_arg;
} nbus_t;

static const bus_ops_t nats_ops;

static nbus_t *nb(bus_t *bus) { return container_of(bus, nbus_t, base); }

/* libnats statuses from publish/subscribe, as bus.h errors. */
static int map_status(natsStatus s) {
  switch (s) {
  case NATS_OK: return 0;
  case NATS_INSUFFICIENT_BUFFER: return -ENOBUFS;
  case NATS_MAX_PAYLOAD: return -EMSGSIZE;
  case NATS_NO_MEMORY: return -ENOMEM;
  case NATS_CONNECTION_CLOSED: return -ENOTCONN;
  case NATS_INVALID_ARG:
  case NATS_INVALID_SUBJECT:
  case NATS_INVALID_QUEUE_NAME: return -EINVAL;
  default: return -EIO;
  }
}

/* ---- library threads ---- */

static void on_nats_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure) {
  nbus_t *b = closure;
  const char *subject = natsMsg_GetSubject(m);
  const char *reply = natsMsg_GetReply(m);
  if (reply && !*reply) reply = NULL;
  size_t len = (size_t)natsMsg_GetDataLength(m);
  size_t slen = strlen(subject), rlen = reply ? strlen(reply) : 0;
  size_t cost = sizeof(inmsg_t) + len + slen + 1 + (reply ? rlen + 1 : 0);
  inmsg_t *q = malloc(cost);
  if (q) {
    q->next = NULL;
    q->sid = natsSubscription_GetID(sub);
    q->len = len;
    q->cost = cost;
    q->subject_len = (uint32_t)slen;
    q->reply_len = (uint32_t)rlen;
    q->no_responders = natsMsg_IsNoResponders(m);
    if (len) memcpy(q->data, natsMsg_GetData(m), len);
    memcpy(q->data + len, subject, slen + 1);
    if (reply) memcpy(q->data + len + slen + 1, reply, rlen + 1);
  }
  natsMsg_Destroy(m);

  uv_mutex_lock(&b->mu);
  b->received++;
  if (!q || b->q_n >= b->max_n || b->q_bytes + cost > b->max_bytes) {
    b->dropped_full++;
    uv_mutex_unlock(&b->mu);
    free(q);
    return;
  }
  b->q_n++;
  b->q_bytes += cost;
  if (b->q_tail)
    b->q_tail->next = q;
  else
    b->q_head = q;
  b->q_tail = q;
  uv_async_send(&b->async); /* coalesced by libuv */
  uv_mutex_unlock(&b->mu);
}

/* A subscription's last handler call has returned. */
static void on_sub_complete(void *closure) {
  nbus_t *b = closure;
  uv_mutex_lock(&b->mu);
  b->live--;
  uv_async_send(&b->async);
  uv_mutex_unlock(&b->mu);
}

static void on_state(natsConnection *nc, void *closure) {
  nbus_t *b = closure;
  uv_mutex_lock(&b->mu);
  b->state_changed = true;
  uv_async_send(&b->async);
  uv_mutex_unlock(&b->mu);
}

static void on_reconnected(natsConnection *nc, void *closure) {
  nbus_t *b = closure;
  atomic_fetch_add(&b->reconnects, 1);
  on_state(nc, closure);
}

/* The connection's last callback. */
static void on_conn_closed(natsConnection *nc, void *closure) {
  nbus_t *b = closure;
  uv_mutex_lock(&b->mu);
  b->live--;
  uv_async_send(&b->async);
  uv_mutex_unlock(&b->mu);
}

/* Exponential backoff from wait_ms, capped at wait_max_ms, with "equal
 * jitter" (half fixed, half random) so a restarted server is not hit by
 * every client at the same instant. Runs on the reconnect thread. */
static int64_t backoff(natsConnection *nc, int attempts, void *closure) {
  nbus_t *b = closure;
  int64_t d = b->wait_ms;
  for (int i = 1; i < attempts && d < b->wait_max_ms; i++) d *= 2;
  if (d > b->wait_max_ms) d = b->wait_max_ms;
  uint64_t x = atomic_fetch_add(&b->jitter, 0x9E3779B97F4A7C15ULL);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return d / 2 + (int64_t)(x % (uint64_t)(d / 2 + 1));
}

/* ---- subscriptions (loop) ---- */

static nsub_t **sub_slot(nbus_t *b, int64_t sid) {
  return &b->sb[(uint64_t)sid & b->smask];
}

static nsub_t *sub_find(nbus_t *b, int64_t sid) {
  for (nsub_t *s = *sub_slot(b, sid); s; s = s->hnext)
    if (s->sid == sid) return s;
  return NULL;
}

/* sids are sequential per connection: `sid & mask` spreads them evenly. */
static void sub_grow(nbus_t *b) {
  size_t nb2 = (b->smask + 1) * 2;
  nsub_t **t = calloc(nb2, sizeof *t);
  if (!t) return; /* harmless: longer chains */
  for (size_t i = 0; i <= b->smask; i++) {
    for (nsub_t *s = b->sb[i], *next; s; s = next) {
      next = s->hnext;
      s->hnext = t[(uint64_t)s->sid & (nb2 - 1)];
      t[(uint64_t)s->sid & (nb2 - 1)] = s;
    }
  }
  free(b->sb);
  b->sb = t;
  b->smask = nb2 - 1;
}

static int n_subscribe(bus_t *bus, const char *subject, const char *queue, bus_msg_cb cb,
                       void *arg, bus_sub_t **out) {
  nbus_t *b = nb(bus);
  nsub_t *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  natsSubscription *ns = NULL;
  natsStatus st = queue ? natsConnection_QueueSubscribe(&ns, b->nc, subject, queue, on_nats_msg, b)
                        : natsConnection_Subscribe(&ns, b->nc, subject, on_nats_msg, b);
  if (st != NATS_OK) {
    free(s);
    return map_status(st);
  }
  uv_mutex_lock(&b->mu);
  b->live++;
  uv_mutex_unlock(&b->mu);
  if (natsSubscription_SetOnCompleteCB(ns, on_sub_complete, b) != NATS_OK) {
    /* only if libnats already closed it (connection closed under us):
     * then it will never call the handler again */
    uv_mutex_lock(&b->mu);
    b->live--;
    uv_mutex_unlock(&b->mu);
  }
  s->base.bus = bus;
  s->ns = ns;
  s->sid = natsSubscription_GetID(ns);
  s->cb = cb;
  s->arg = arg;
  if (b->sn > b->smask) sub_grow(b);
  nsub_t **slot = sub_slot(b, s->sid);
  s->hnext = *slot;
  *slot = s;
  b->sn++;
  s->next = b->subs;
  if (b->subs) b->subs->prev = s;
  b->subs = s;
  if (out) *out = &s->base;
  return 0;
}

static void nats_unsub(natsSubscription **ns) {
  if (!*ns) return;
  natsSubscription_Unsubscribe(*ns); /* fails only if already closed: fine */
  natsSubscription_Destroy(*ns);
  *ns = NULL;
}

static int n_unsubscribe(bus_sub_t *sub) {
  nsub_t *s = container_of(sub, nsub_t, base);
  nbus_t *b = nb(sub->bus);
  nats_unsub(&s->ns);
  for (nsub_t **pp = sub_slot(b, s->sid); *pp; pp = &(*pp)->hnext) {
    if (*pp == s) {
      *pp = s->hnext;
      b->sn--;
      break;
    }
  }
  if (s->prev)
    s->prev->next = s->next;
  else
    b->subs = s->next;
  if (s->next) s->next->prev = s->prev;
  free(s);
  return 0;
}

/* ---- publish and requests (loop) ---- */

static int n_publish(bus_t *bus, const char *subject, const char *reply, const void *data,
                     size_t len) {
  nbus_t *b = nb(bus);
  natsStatus s = reply ? natsConnection_PublishRequest(b->nc, subject, reply, data, (int)len)
                       : natsConnection_Publish(b->nc, subject, data, (int)len);
  return map_status(s);
}

static void on_timer(uv_timer_t *t);

/* Keeps the timer due no later than the earliest deadline; it may fire early
 * (that request got its reply), and on_timer then re-arms. */
static void timer_arm(nbus_t *b) {
  nreq_t *r = reqtab_first(&b->reqs);
  if (!r) {
    uv_timer_stop(&b->timer); /* lets the loop sleep without a wakeup */
    b->armed = UINT64_MAX;
    return;
  }
  if (r->deadline >= b->armed) return;
  uint64_t now = uv_now(b->loop);
  uv_timer_start(&b->timer, on_timer, r->deadline > now ? r->deadline - now : 0, 0);
  b->armed = r->deadline;
}

static void on_timer(uv_timer_t *t) {
  nbus_t *b = t->data;
  b->armed = UINT64_MAX;
  uint64_t now = uv_now(b->loop);
  nreq_t *r;
  while (!b->base.closed && (r = reqtab_first(&b->reqs)) && r->deadline <= now) {
    reqtab_take(&b->reqs, r->id);
    r->cb(&b->base, BUS_ETIMEDOUT, NULL, r->arg);
    free(r);
  }
  if (!b->base.closed) timer_arm(b);
}

static int n_request(bus_t *bus, const char *subject, const void *data, size_t len,
                     uint64_t timeout_ms, bus_reply_cb cb, void *arg, uint64_t *req_id) {
  nbus_t *b = nb(bus);
  if (reqtab_reserve(&b->reqs) < 0) return -ENOMEM;
  nreq_t *r = malloc(sizeof *r);
  if (!r) return -ENOMEM;
  uint64_t id = b->next_id + 1;
  char reply[INBOX_CAP + 24];
  snprintf(reply, sizeof reply, "%s%" PRIu64, b->inbox, id);
  int rc = map_status(natsConnection_PublishRequest(b->nc, subject, reply, data, (int)len));
  if (rc < 0) {
    free(r);
    return rc;
  }
  b->next_id = id;
  uint64_t now = uv_now(b->loop);
  r->id = id;
  r->deadline = timeout_ms > UINT64_MAX - now ? UINT64_MAX : now + timeout_ms;
  r->cb = cb;
  r->arg = arg;
  reqtab_add(&b->reqs, r);
  timer_arm(b);
  if (req_id) *req_id = id;
  return 0;
}

static int n_request_cancel(bus_t *bus, uint64_t req_id) {
  nbus_t *b = nb(bus);
  nreq_t *r = reqtab_take(&b->reqs, req_id);
  if (!r) return -ENOENT;
  free(r);
  if (!reqtab_first(&b->reqs)) timer_arm(b);
  return 0;
}

/* The id in "<inbox><digits>", or 0 (never an id) if `s` is not that. */
static uint64_t inbox_id(const nbus_t *b, const char *s, size_t len) {
  if (len <= b->inbox_len || len > b->inbox_len + 19) return 0;
  if (memcmp(s, b->inbox, b->inbox_len) != 0) return 0;
  uint64_t id = 0;
  for (size_t i = b->inbox_len; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    id = id * 10 + (uint64_t)(s[i] - '0');
  }
  return id;
}

/* ---- delivery (loop) ---- */

static void dispatch(nbus_t *b, inmsg_t *m) {
  const char *subject = m->data + m->len;
  const char *reply = m->reply_len ? subject + m->subject_len + 1 : NULL;
  bus_msg_t msg = {subject, reply, m->data, m->len};

  /* A 503 goes to whichever subscription of ours matches the inbox (the
   * server picks one), so it is recognised by subject, not by sid. */
  if (m->sid == b->inbox_sid || m->no_responders) {
    uint64_t id = inbox_id(b, subject, m->subject_len);
    nreq_t *r = id ? reqtab_take(&b->reqs, id) : NULL;
    if (r) {
      b->delivered++;
      if (m->no_responders)
        r->cb(&b->base, BUS_ENORESPONDERS, NULL, r->arg);
      else
        r->cb(&b->base, 0, &msg, r->arg);
      free(r);
      if (!b->base.closed && !reqtab_first(&b->reqs)) timer_arm(b);
      return;
    }
    /* a late or duplicate reply; or a status message, which means nothing
     * to a plain subscriber (bus_msg_t has no headers) */
    return;
  }
  nsub_t *s = sub_find(b, m->sid);
  if (!s) {
    b->dropped_unsub++;
    return;
  }
  b->delivered++;
  s->cb(&b->base, &msg, s->arg);
}

static void free_list(inmsg_t *m) {
  while (m) {
    inmsg_t *next = m->next;
    free(m);
    m = next;
  }
}

static void close_step(nbus_t *b);

static void on_async(uv_async_t *h) {
  nbus_t *b = h->data;
  uv_mutex_lock(&b->mu);
  inmsg_t *got = b->q_head, *got_tail = b->q_tail;
  b->q_head = b->q_tail = NULL;
  bool changed = b->state_changed;
  b->state_changed = false;
  uv_mutex_unlock(&b->mu);

  if (b->base.closed) {
    free_list(got);
    close_step(b);
    return;
  }
  if (got) {
    if (b->l_tail)
      b->l_tail->next = got;
    else
      b->l_head = got;
    b->l_tail = got_tail;
  }
  if (changed) {
    int64_t mp = natsConnection_GetMaxPayload(b->nc);
    if (mp > 0) b->base.max_payload = (size_t)mp;
  }
  size_t k = 0, bytes = 0;
  while (k < BUS_NATS_DRAIN_BATCH && b->l_head && !b->base.closed) {
    inmsg_t *m = b->l_head;
    b->l_head = m->next;
    if (!b->l_head) b->l_tail = NULL;
    k++;
    bytes += m->cost;
    dispatch(b, m);
    free(m);
  }
  uv_mutex_lock(&b->mu);
  b->q_n -= k;
  b->q_bytes -= bytes;
  uv_mutex_unlock(&b->mu);
  if (b->base.closed)
    close_step(b);
  else if (b->l_head)
    uv_async_send(&b->async); /* the rest after other I/O had its turn */
}

/* ---- close ---- */

static void free_bus(nbus_t *b) {
  free_list(b->q_head);
  free_list(b->l_head);
  for (nsub_t *s = b->subs, *next; s; s = next) {
    next = s->next;
    free(s);
  }
  while (reqtab_first(&b->reqs)) free(reqtab_take(&b->reqs, reqtab_first(&b->reqs)->id));
  reqtab_free(&b->reqs);
  free(b->sb);
  uv_mutex_destroy(&b->mu);
  free(b);
}

static void handle_done(nbus_t *b) {
  if (--b->handles > 0) return;
  void (*cb)(void *) = b->on_closed;
  void *arg = b->on_closed_arg;
  free_bus(b);
  if (cb) cb(arg);
}

static void on_closed_handle(uv_handle_t *h) { handle_done(h->data); }

static void on_ev_closed(void *arg) { handle_done(arg); }

/* Frees everything once libnats can no longer call into the bus: the
 * connection is closed (work_done), detached from the loop, and every
 * subscription and the connection have run their last callback. */
static void maybe_finish(nbus_t *b) {
  if (!b->work_done || b->finishing || bus_nats_ev_must_wait(&b->ev)) return;
  uv_mutex_lock(&b->mu);
  int live = b->live;
  uv_mutex_unlock(&b->mu);
  if (live > 0) return;
  b->finishing = true;
  b->handles = 3;
  uv_close((uv_handle_t *)&b->timer, on_closed_handle);
  uv_close((uv_handle_t *)&b->async, on_closed_handle);
  bus_nats_ev_close(&b->ev, on_ev_closed);
}

static void on_detached(void *arg) {
  nbus_t *b = arg;
  uv_async_send(&b->async); /* maybe_finish from the loop, not from inside libnats */
}

/* Runs on a libuv worker: Close flushes (waiting for a PONG the loop reads)
 * and joins libnats's threads, neither of which may block the loop. */
static void close_work(uv_work_t *w) {
  nbus_t *b = w->data;
  natsConnection_Close(b->nc);
}

static void close_done(uv_work_t *w, int status) {
  nbus_t *b = w->data;
  natsConnection_Destroy(b->nc);
  b->nc = NULL;
  b->work_done = true;
  maybe_finish(b);
}

/* From the loop after bus_close (never inside it). */
static void close_step(nbus_t *b) {
  if (!b->close_started) {
    b->close_started = true;
    free_list(b->l_head);
    b->l_head = b->l_tail = NULL;
    nreq_t *r;
    while ((r = reqtab_first(&b->reqs))) {
      reqtab_take(&b->reqs, r->id);
      r->cb(&b->base, -ECANCELED, NULL, r->arg);
      free(r);
    }
    b->work.data = b;
    if (uv_queue_work(b->loop, &b->work, close_work, close_done) < 0) {
      close_work(&b->work); /* cannot happen with a live loop; block rather than leak */
      close_done(&b->work, 0);
      return;
    }
  }
  maybe_finish(b);
}

static void n_close(bus_t *bus, void (*on_closed)(void *arg), void *arg) {
  nbus_t *b = nb(bus);
  b->on_closed = on_closed;
  b->on_closed_arg = arg;
  uv_timer_stop(&b->timer); /* pending requests get -ECANCELED, not a late timeout */
  b->armed = UINT64_MAX;
  for (nsub_t *s = b->subs; s; s = s->next) nats_unsub(&s->ns);
  nats_unsub(&b->inbox_sub);
  uv_async_send(&b->async);
}

static bool n_is_connected(const bus_t *bus) {
  const nbus_t *b = container_of(bus, nbus_t, base);
  return b->nc && natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED;
}

static const bus_ops_t nats_ops = {
    .kind = "nats",
    .publish = n_publish,
    .subscribe = n_subscribe,
    .unsubscribe = n_unsubscribe,
    .request = n_request,
    .request_cancel = n_request_cancel,
    .is_connected = n_is_connected,
    .close = n_close,
};

int bus_nats_stats(const bus_t *bus, bus_nats_stats_t *st) {
  if (!bus || !st || bus->ops != &nats_ops) return -EINVAL;
  nbus_t *b = container_of(bus, nbus_t, base);
  uv_mutex_lock(&b->mu);
  st->received = b->received;
  st->dropped_full = b->dropped_full;
  st->queued = b->q_n;
  uv_mutex_unlock(&b->mu);
  st->dropped_unsub = b->dropped_unsub;
  st->delivered = b->delivered;
  st->reconnects = atomic_load(&b->reconnects);
  st->pending_requests = b->reqs.n;
  return 0;
}

/* ---- open ---- */

static int map_open(natsStatus s) {
  switch (s) {
  case NATS_OK: return 0;
  case NATS_NO_SERVER:
  case NATS_IO_ERROR:
  case NATS_TIMEOUT:
  case NATS_STALE_CONNECTION: return -ECONNREFUSED;
  case NATS_INVALID_ARG:
  case NATS_ADDRESS_MISSING: return -EINVAL;
  case NATS_NO_MEMORY: return -ENOMEM;
  default: return -EIO;
  }
}

/* Splits the comma list (spaces around entries ignored) into `opts`. */
static int set_servers(natsOptions *opts, const char *list) {
  char *copy = strdup(list);
  if (!copy) return -ENOMEM;
  size_t cap = 1;
  for (const char *p = list; *p; p++) cap += *p == ',';
  const char **v = malloc(cap * sizeof *v);
  if (!v) {
    free(copy);
    return -ENOMEM;
  }
  int n = 0;
  for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ') tok++;
    char *end = tok + strlen(tok);
    while (end > tok && end[-1] == ' ') *--end = '\0';
    if (*tok) v[n++] = tok;
  }
  int rc = n == 0 ? -EINVAL : map_open(natsOptions_SetServers(opts, v, n));
  free(v);
  free(copy);
  return rc;
}

static int set_options(nbus_t *b, natsOptions *opts, const bus_nats_opts_t *o) {
  natsStatus s = NATS_OK;
  int rc = set_servers(opts, o->servers);
  if (rc < 0) return rc;
  int ping = o->ping_interval_ms ? o->ping_interval_ms : 10000;
  if (s == NATS_OK) s = natsOptions_SetName(opts, o->name ? o->name : "storm");
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, o->connect_timeout_ms ? o->connect_timeout_ms : 2000);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, b->wait_ms);
  if (s == NATS_OK) s = natsOptions_SetCustomReconnectDelay(opts, backoff, b);
  if (s == NATS_OK)
    s = natsOptions_SetReconnectBufSize(opts, o->reconnect_buf_bytes ? o->reconnect_buf_bytes : 8 << 20);
  if (s == NATS_OK) s = natsOptions_SetPingInterval(opts, ping);
  if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(opts, 2);
  /* Without it libnats's flusher thread writes ~1 ms after each publish (a
   * 2 ms request/reply round trip); with it a publish asks the loop for a
   * write at once, and everything published in one loop turn still goes out
   * in one write. */
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, true);
  /* one delivery pool instead of a thread per subscription */
  if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(opts, true);
  if (s == NATS_OK)
    s = natsOptions_SetEventLoop(opts, &b->ev, bus_nats_ev_attach, bus_nats_ev_read,
                                 bus_nats_ev_write, bus_nats_ev_detach);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, on_conn_closed, b);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, on_state, b);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, on_reconnected, b);
  if (s == NATS_OK && !o->fail_if_down)
    s = natsOptions_SetRetryOnFailedConnect(opts, true, on_state, b);
  if (s == NATS_OK) return 0;
  return s == NATS_NO_MEMORY ? -ENOMEM : -EINVAL; /* a value libnats refused */
}

int bus_nats_open(uv_loop_t *loop, const bus_nats_opts_t *o, bus_t **out) {
  if (out) *out = NULL;
  if (!loop || !o || !out || !o->servers) return -EINVAL;
  if (o->connect_timeout_ms < 0 || o->reconnect_wait_ms < 0 || o->reconnect_wait_max_ms < 0 ||
      o->reconnect_buf_bytes < 0 || o->ping_interval_ms < 0)
    return -EINVAL;
  nbus_t *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  b->base.ops = &nats_ops;
  b->base.max_payload = BUS_DEFAULT_MAX_PAYLOAD;
  b->loop = loop;
  b->armed = UINT64_MAX;
  b->max_n = o->inbound_max_msgs ? o->inbound_max_msgs : 65536;
  b->max_bytes = o->inbound_max_bytes ? o->inbound_max_bytes : (size_t)64 << 20;
  b->wait_ms = o->reconnect_wait_ms ? o->reconnect_wait_ms : 100;
  b->wait_max_ms = o->reconnect_wait_max_ms ? o->reconnect_wait_max_ms : 5000;
  if (b->wait_max_ms < b->wait_ms) b->wait_max_ms = b->wait_ms;
  atomic_init(&b->reconnects, 0);
  atomic_init(&b->jitter, uv_hrtime() ^ (uint64_t)(uintptr_t)b);
  b->smask = 63;
  b->sb = calloc(b->smask + 1, sizeof *b->sb);
  if (!b->sb || reqtab_init(&b->reqs) < 0) {
    free(b->sb);
    free(b);
    return -ENOMEM;
  }
  int rc = uv_mutex_init(&b->mu);
  if (rc == 0) {
    rc = bus_nats_ev_init(&b->ev, loop, on_detached, b);
    if (rc < 0) uv_mutex_destroy(&b->mu);
  }
  if (rc < 0) {
    reqtab_free(&b->reqs);
    free(b->sb);
    free(b);
    return rc;
  }
  /* From here on, failures go through the normal asynchronous teardown. */
  uv_async_init(loop, &b->async, on_async);
  uv_timer_init(loop, &b->timer);
  b->async.data = b;
  b->timer.data = b;

  natsOptions *opts = NULL;
  natsStatus s = natsOptions_Create(&opts);
  rc = s == NATS_OK ? set_options(b, opts, o) : map_open(s);
  if (rc == 0) {
    b->live = 1; /* the connection: its closed callback will come */
    s = natsConnection_Connect(&b->nc, opts);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
      rc = map_open(s);
      b->live = 0;
      b->nc = NULL;
    }
  }
  natsOptions_Destroy(opts);
  if (rc == 0) {
    natsInbox *inbox = NULL;
    s = natsInbox_Create(&inbox);
    if (s == NATS_OK) {
      b->inbox_len = (size_t)snprintf(b->inbox, sizeof b->inbox, "%s.", inbox);
      char pattern[INBOX_CAP + 2];
      snprintf(pattern, sizeof pattern, "%s*", b->inbox);
      natsInbox_Destroy(inbox);
      s = natsConnection_Subscribe(&b->inbox_sub, b->nc, pattern, on_nats_msg, b);
    }
    if (s == NATS_OK) {
      b->live++;
      b->inbox_sid = natsSubscription_GetID(b->inbox_sub);
      if (natsSubscription_SetOnCompleteCB(b->inbox_sub, on_sub_complete, b) != NATS_OK) b->live--;
      int64_t mp = natsConnection_GetMaxPayload(b->nc);
      if (mp > 0) b->base.max_payload = (size_t)mp;
      *out = &b->base;
      return 0;
    }
    rc = map_status(s);
    bus_close(&b->base, NULL, NULL);
    return rc;
  }
  /* never connected: nothing of libnats can call us */
  b->base.closed = true;
  b->close_started = true;
  b->work_done = true;
  maybe_finish(b);
  return rc;
}
