/*
 * bus_local.c — the in-process engine: a FIFO of copied messages drained by a
 * uv_idle_t, a subject index, and request state with one shared timer.
 *
 * Safety during delivery: a callback may unsubscribe any subscription, even
 * one that is about to receive the same message. Delivery therefore first
 * snapshots the matching subscriptions into `scratch`, and while it runs
 * (`dispatching`) an unsubscribe only marks the subscription dead and parks
 * it on `zombies`; it is unlinked and freed once the batch is done. Nothing
 * else iterates the index while callbacks run, so that is the only place
 * that needs deferral.
 */
#include "bus/bus_local.h"

#include <inttypes.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

/* ---- intrusive chained hash table ----
 * Shared by the subject index (hash of the pattern) and the request table
 * (hash = request id, which is sequential and so spreads perfectly). */

typedef struct hnode {
  struct hnode *next;
  uint64_t hash;
} hnode_t;

typedef struct {
  hnode_t **b;
  size_t mask; /* bucket count - 1, a power of two minus one */
  size_t n;
} htab_t;

static int htab_init(htab_t *t, size_t buckets) {
  t->b = calloc(buckets, sizeof *t->b);
  t->mask = buckets - 1;
  t->n = 0;
  return t->b ? 0 : -ENOMEM;
}

/* Doubling keeps chains short. Failure is harmless: the old table stays,
 * with longer chains, so insertion itself never fails. */
static void htab_grow(htab_t *t) {
  size_t nb = (t->mask + 1) * 2;
  hnode_t **b = calloc(nb, sizeof *b);
  if (!b) return;
  for (size_t i = 0; i <= t->mask; i++) {
    hnode_t *n = t->b[i];
    while (n) {
      hnode_t *next = n->next;
      size_t j = n->hash & (nb - 1);
      n->next = b[j];
      b[j] = n;
      n = next;
    }
  }
  free(t->b);
  t->b = b;
  t->mask = nb - 1;
}

static void htab_insert(htab_t *t, hnode_t *n) {
  if (t->n > t->mask) htab_grow(t);
  hnode_t **slot = &t->b[n->hash & t->mask];
  n->next = *slot;
  *slot = n;
  t->n++;
}

static void htab_remove(htab_t *t, hnode_t *n) {
  for (hnode_t **pp = &t->b[n->hash & t->mask]; *pp; pp = &(*pp)->next) {
    if (*pp == n) {
      *pp = n->next;
      t->n--;
      return;
    }
  }
}

/* FNV-1a: subjects are short, so a simple byte hash beats anything fancier. */
static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

/* ---- types ---- */

struct lsub;

/* All subscriptions with the same pattern. Literal patterns are found by hash
 * lookup of the published subject; wildcard ones are also on `wild` and
 * matched one by one, so distinct wildcard patterns are the only linear cost. */
typedef struct entry {
  hnode_t h;
  struct entry *wnext, *wprev;
  struct lsub *head, *tail;
  size_t len;
  bool wild;
  char pattern[];
} entry_t;

typedef struct lsub {
  bus_sub_t base;
  struct lsub *prev, *next; /* in entry */
  struct lsub *zombie_next;
  entry_t *entry;
  bus_msg_cb cb;
  void *arg;
  const char *queue; /* NULL or queue_buf */
  uint64_t qhash;
  bool dead;
  char queue_buf[];
} lsub_t;

typedef struct req {
  hnode_t h; /* hash = request id */
  uint64_t deadline;
  size_t heap_idx;
  bus_reply_cb cb;
  void *arg;
} req_t;

/* One allocation per published message: payload first (aligned, for callers
 * that read it in place), then subject and reply, NUL-terminated. */
typedef struct qmsg {
  struct qmsg *next;
  size_t len;
  uint32_t subject_len;
  uint32_t reply_len; /* 0 = no reply (a valid reply is never empty) */
  alignas(max_align_t) char data[];
} qmsg_t;

/* "_INBOX." + 22 random base62 characters + "." */
#define INBOX_RAND 22
#define INBOX_PREFIX_LEN (7 + INBOX_RAND + 1)

typedef struct {
  bus_t base;
  uv_loop_t *loop;
  uv_idle_t idle;   /* active exactly while the queue is non-empty or closing */
  uv_timer_t timer; /* active while requests are pending */

  htab_t subjects;
  entry_t *wild;
  size_t nsubs; /* linked subscriptions, zombies included: bounds a match set */
  lsub_t **scratch;
  size_t scratch_cap;
  lsub_t *zombies;
  bool dispatching;

  qmsg_t *q_head, *q_tail;

  htab_t reqs;
  req_t **heap; /* min-heap on deadline */
  size_t heap_n, heap_cap;
  uint64_t armed; /* deadline the timer is set for; UINT64_MAX when stopped */
  uint64_t next_id;
  char inbox[INBOX_PREFIX_LEN + 1];

  uint64_t rng;
  int open_handles;
  bool close_started;
  void (*on_closed)(void *arg);
  void *on_closed_arg;
} lbus_t;

static lbus_t *lbus(bus_t *bus) { return container_of(bus, lbus_t, base); }

/* xorshift64*: picks queue group members; quality needs are modest. */
static uint64_t rng_next(lbus_t *b) {
  uint64_t x = b->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  b->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static void on_idle(uv_idle_t *h);

/* ---- the queue ---- */

static int enqueue(lbus_t *b, const char *subject, const char *reply, const void *data,
                   size_t len) {
  size_t slen = strlen(subject), rlen = reply ? strlen(reply) : 0;
  qmsg_t *m = malloc(sizeof *m + len + slen + 1 + (reply ? rlen + 1 : 0));
  if (!m) return -ENOMEM;
  m->next = NULL;
  m->len = len;
  m->subject_len = (uint32_t)slen;
  m->reply_len = (uint32_t)rlen;
  if (len) memcpy(m->data, data, len);
  memcpy(m->data + len, subject, slen + 1);
  if (reply) memcpy(m->data + len + slen + 1, reply, rlen + 1);
  if (b->q_tail)
    b->q_tail->next = m;
  else
    b->q_head = m;
  b->q_tail = m;
  uv_idle_start(&b->idle, on_idle); /* no-op when already active */
  return 0;
}

static void drop_queue(lbus_t *b) {
  while (b->q_head) {
    qmsg_t *m = b->q_head;
    b->q_head = m->next;
    free(m);
  }
  b->q_tail = NULL;
}

/* ---- requests ---- */

static bool heap_less(const req_t *x, const req_t *y) {
  return x->deadline < y->deadline || (x->deadline == y->deadline && x->h.hash < y->h.hash);
}

static void heap_set(lbus_t *b, size_t i, req_t *r) {
  b->heap[i] = r;
  r->heap_idx = i;
}

static void heap_up(lbus_t *b, size_t i) {
  req_t *r = b->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_less(r, b->heap[p])) break;
    heap_set(b, i, b->heap[p]);
    i = p;
  }
  heap_set(b, i, r);
}

static void heap_down(lbus_t *b, size_t i) {
  req_t *r = b->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= b->heap_n) break;
    if (c + 1 < b->heap_n && heap_less(b->heap[c + 1], b->heap[c])) c++;
    if (!heap_less(b->heap[c], r)) break;
    heap_set(b, i, b->heap[c]);
    i = c;
  }
  heap_set(b, i, r);
}

static void on_timer(uv_timer_t *t);

/* Keeps the timer due no later than the earliest deadline. It may fire early
 * (the earliest request got its reply): on_timer then just re-arms. */
static void timer_arm(lbus_t *b) {
  if (b->heap_n == 0 || b->heap[0]->deadline >= b->armed) return;
  uint64_t now = uv_now(b->loop), d = b->heap[0]->deadline;
  uv_timer_start(&b->timer, on_timer, d > now ? d - now : 0, 0);
  b->armed = d;
}

/* Removes a request from the table and the heap; the caller frees it. */
static void req_unlink(lbus_t *b, req_t *r) {
  htab_remove(&b->reqs, &r->h);
  size_t i = r->heap_idx;
  req_t *last = b->heap[--b->heap_n];
  if (i < b->heap_n) {
    heap_set(b, i, last);
    heap_up(b, i);
    heap_down(b, last->heap_idx);
  }
  if (b->heap_n == 0) {
    /* a stopped timer lets uv_run return once the bus has nothing to do */
    uv_timer_stop(&b->timer);
    b->armed = UINT64_MAX;
  }
}

static req_t *req_take(lbus_t *b, uint64_t id) {
  for (hnode_t *n = b->reqs.b[id & b->reqs.mask]; n; n = n->next) {
    if (n->hash == id) {
      req_t *r = container_of(n, req_t, h);
      req_unlink(b, r);
      return r;
    }
  }
  return NULL;
}

/* If `s` is "<our inbox prefix><id>", returns the id, else 0 (never an id). */
static uint64_t inbox_id(const lbus_t *b, const char *s, size_t len) {
  if (len <= INBOX_PREFIX_LEN || len > INBOX_PREFIX_LEN + 19) return 0;
  if (memcmp(s, b->inbox, INBOX_PREFIX_LEN) != 0) return 0;
  uint64_t id = 0;
  for (size_t i = INBOX_PREFIX_LEN; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    id = id * 10 + (uint64_t)(s[i] - '0'); /* <= 19 digits: no overflow */
  }
  return id;
}

static void on_timer(uv_timer_t *t) {
  lbus_t *b = t->data;
  b->armed = UINT64_MAX;
  uint64_t now = uv_now(b->loop);
  while (b->heap_n && b->heap[0]->deadline <= now && !b->base.closed) {
    req_t *r = b->heap[0];
    req_unlink(b, r);
    r->cb(&b->base, BUS_ETIMEDOUT, NULL, r->arg);
    free(r);
  }
  if (!b->base.closed) timer_arm(b);
}

static int l_request(bus_t *bus, const char *subject, const void *data, size_t len,
                     uint64_t timeout_ms, bus_reply_cb cb, void *arg, uint64_t *req_id) {
  lbus_t *b = lbus(bus);
  if (b->heap_n == b->heap_cap) {
    size_t cap = b->heap_cap ? b->heap_cap * 2 : 64;
    req_t **h = realloc(b->heap, cap * sizeof *h);
    if (!h) return -ENOMEM;
    b->heap = h;
    b->heap_cap = cap;
  }
  req_t *r = malloc(sizeof *r);
  if (!r) return -ENOMEM;
  uint64_t id = ++b->next_id;
  char reply[INBOX_PREFIX_LEN + 21];
  snprintf(reply, sizeof reply, "%s%" PRIu64, b->inbox, id);
  int rc = enqueue(b, subject, reply, data, len);
  if (rc < 0) {
    free(r);
    return rc;
  }
  uint64_t now = uv_now(b->loop);
  r->deadline = timeout_ms > UINT64_MAX - now ? UINT64_MAX : now + timeout_ms;
  r->cb = cb;
  r->arg = arg;
  r->h.hash = id;
  htab_insert(&b->reqs, &r->h);
  heap_set(b, b->heap_n++, r);
  heap_up(b, r->heap_idx);
  timer_arm(b);
  if (req_id) *req_id = id;
  return 0;
}

static int l_request_cancel(bus_t *bus, uint64_t req_id) {
  req_t *r = req_take(lbus(bus), req_id);
  if (!r) return -ENOENT;
  free(r);
  return 0;
}

/* ---- subscriptions ---- */

static entry_t *entry_find(const lbus_t *b, const char *pattern, size_t len, uint64_t h) {
  for (hnode_t *n = b->subjects.b[h & b->subjects.mask]; n; n = n->next) {
    entry_t *e = container_of(n, entry_t, h);
    if (n->hash == h && e->len == len && memcmp(e->pattern, pattern, len) == 0) return e;
  }
  return NULL;
}

/* Keeps scratch large enough for every linked subscription, so delivery
 * never allocates (and never fails) however many subscriptions match. */
static int scratch_reserve(lbus_t *b, size_t n) {
  if (n <= b->scratch_cap) return 0;
  size_t cap = b->scratch_cap ? b->scratch_cap * 2 : 64;
  while (cap < n) cap *= 2;
  lsub_t **s = realloc(b->scratch, cap * sizeof *s);
  if (!s) return -ENOMEM;
  b->scratch = s;
  b->scratch_cap = cap;
  return 0;
}

static int l_subscribe(bus_t *bus, const char *subject, const char *queue, bus_msg_cb cb,
                       void *arg, bus_sub_t **out) {
  lbus_t *b = lbus(bus);
  size_t slen = strlen(subject), qlen = queue ? strlen(queue) : 0;
  if (scratch_reserve(b, b->nsubs + 1) < 0) return -ENOMEM;
  lsub_t *s = malloc(sizeof *s + (queue ? qlen + 1 : 0));
  if (!s) return -ENOMEM;
  uint64_t h = hash_bytes(subject, slen);
  entry_t *e = entry_find(b, subject, slen, h);
  if (!e) {
    e = malloc(sizeof *e + slen + 1);
    if (!e) {
      free(s);
      return -ENOMEM;
    }
    memcpy(e->pattern, subject, slen + 1);
    e->len = slen;
    e->h.hash = h;
    e->head = e->tail = NULL;
    e->wild = strpbrk(subject, "*>") != NULL; /* valid: only as whole tokens */
    e->wprev = NULL;
    e->wnext = NULL;
    if (e->wild) {
      e->wnext = b->wild;
      if (b->wild) b->wild->wprev = e;
      b->wild = e;
    }
    htab_insert(&b->subjects, &e->h);
  }
  s->base.bus = bus;
  s->entry = e;
  s->cb = cb;
  s->arg = arg;
  s->dead = false;
  s->zombie_next = NULL;
  s->queue = NULL;
  s->qhash = 0;
  if (queue) {
    memcpy(s->queue_buf, queue, qlen + 1);
    s->queue = s->queue_buf;
    s->qhash = hash_bytes(queue, qlen);
  }
  s->next = NULL;
  s->prev = e->tail;
  if (e->tail)
    e->tail->next = s;
  else
    e->head = s;
  e->tail = s;
  b->nsubs++;
  if (out) *out = &s->base;
  return 0;
}

static void sub_unlink_free(lbus_t *b, lsub_t *s) {
  entry_t *e = s->entry;
  if (s->prev)
    s->prev->next = s->next;
  else
    e->head = s->next;
  if (s->next)
    s->next->prev = s->prev;
  else
    e->tail = s->prev;
  b->nsubs--;
  free(s);
  if (e->head) return;
  htab_remove(&b->subjects, &e->h);
  if (e->wild) {
    if (e->wprev)
      e->wprev->wnext = e->wnext;
    else
      b->wild = e->wnext;
    if (e->wnext) e->wnext->wprev = e->wprev;
  }
  free(e);
}

static int l_unsubscribe(bus_sub_t *sub) {
  lsub_t *s = container_of(sub, lsub_t, base);
  lbus_t *b = lbus(sub->bus);
  if (s->dead) return 0; /* already parked during this delivery */
  s->dead = true;
  if (b->dispatching) {
    s->zombie_next = b->zombies;
    b->zombies = s;
  } else {
    sub_unlink_free(b, s);
  }
  return 0;
}

static void sweep_zombies(lbus_t *b) {
  while (b->zombies) {
    lsub_t *s = b->zombies;
    b->zombies = s->zombie_next;
    sub_unlink_free(b, s);
  }
}

/* ---- delivery ---- */

static size_t collect(lbus_t *b, const entry_t *e, size_t n) {
  for (lsub_t *s = e->head; s; s = s->next)
    if (!s->dead) b->scratch[n++] = s;
  return n;
}

static bool same_group(const lsub_t *x, const lsub_t *y) {
  return y->queue && x->qhash == y->qhash && strcmp(x->queue, y->queue) == 0;
}

/* Delivers the queue group of scratch[i] (members are at i and after) to one
 * live member picked at random, and clears the group from scratch. */
static bool deliver_group(lbus_t *b, size_t i, size_t n, const bus_msg_t *msg) {
  const lsub_t *first = b->scratch[i];
  size_t live = 0;
  for (size_t j = i; j < n; j++) {
    const lsub_t *t = b->scratch[j];
    if (t && !t->dead && same_group(first, t)) live++;
  }
  size_t k = live ? (size_t)(rng_next(b) % live) : 0;
  lsub_t *pick = NULL;
  for (size_t j = i; j < n; j++) {
    lsub_t *t = b->scratch[j];
    if (!t || !same_group(first, t)) continue;
    b->scratch[j] = NULL;
    if (!t->dead && !pick && k-- == 0) pick = t;
  }
  if (!pick) return false;
  pick->cb(&b->base, msg, pick->arg);
  return true;
}

static void dispatch(lbus_t *b, qmsg_t *m) {
  const char *subject = m->data + m->len;
  const char *reply = m->reply_len ? subject + m->subject_len + 1 : NULL;
  bus_msg_t msg = {subject, reply, m->data, m->len};

  size_t n = 0;
  entry_t *e = entry_find(b, subject, m->subject_len, hash_bytes(subject, m->subject_len));
  if (e) n = collect(b, e, n);
  for (entry_t *w = b->wild; w; w = w->wnext)
    if (bus__subject_match(w->pattern, subject)) n = collect(b, w, n);

  bool delivered = false;
  uint64_t id = inbox_id(b, subject, m->subject_len);
  if (id) {
    req_t *r = req_take(b, id);
    if (r) {
      r->cb(&b->base, 0, &msg, r->arg);
      free(r);
      delivered = true;
    }
  }
  for (size_t i = 0; i < n && !b->base.closed; i++) {
    lsub_t *s = b->scratch[i];
    if (!s) continue;
    if (s->queue) {
      delivered |= deliver_group(b, i, n, &msg);
    } else if (!s->dead) {
      s->cb(&b->base, &msg, s->arg);
      delivered = true;
    }
  }
  if (!delivered && reply && !b->base.closed) {
    /* NATS answers a request nobody can hear with a 503 status at once
     * rather than letting it time out; we do the same for our own inbox. */
    id = inbox_id(b, reply, m->reply_len);
    req_t *r = id ? req_take(b, id) : NULL;
    if (r) {
      r->cb(&b->base, BUS_ENORESPONDERS, NULL, r->arg);
      free(r);
    }
  }
}

static void close_step(lbus_t *b);

static void on_idle(uv_idle_t *h) {
  lbus_t *b = h->data;
  if (!b->base.closed) {
    b->dispatching = true;
    for (int i = 0; i < BUS_LOCAL_DRAIN_BATCH && b->q_head && !b->base.closed; i++) {
      qmsg_t *m = b->q_head;
      b->q_head = m->next;
      if (!b->q_head) b->q_tail = NULL;
      dispatch(b, m);
      free(m);
    }
    b->dispatching = false;
    sweep_zombies(b);
  }
  if (b->base.closed)
    close_step(b);
  else if (!b->q_head)
    uv_idle_stop(h);
}

/* ---- the rest of the vtable ---- */

static int l_publish(bus_t *bus, const char *subject, const char *reply, const void *data,
                     size_t len) {
  return enqueue(lbus(bus), subject, reply, data, len);
}

static bool l_is_connected(const bus_t *bus) { return true; }

static void free_all(lbus_t *b) {
  for (size_t i = 0; i <= b->subjects.mask; i++) {
    hnode_t *n = b->subjects.b[i];
    while (n) {
      hnode_t *next = n->next;
      entry_t *e = container_of(n, entry_t, h);
      for (lsub_t *s = e->head, *sn; s; s = sn) {
        sn = s->next;
        free(s);
      }
      free(e);
      n = next;
    }
  }
  free(b->subjects.b);
  free(b->reqs.b);
  free(b->heap);
  free(b->scratch);
  free(b);
}

static void on_handle_closed(uv_handle_t *h) {
  lbus_t *b = h->data;
  if (--b->open_handles > 0) return;
  void (*cb)(void *) = b->on_closed;
  void *arg = b->on_closed_arg;
  free_all(b);
  if (cb) cb(arg);
}

/* Runs from the idle callback after bus_close: never inside bus_close, so
 * the -ECANCELED callbacks cannot surprise the code that called close. */
static void close_step(lbus_t *b) {
  if (b->close_started) return;
  b->close_started = true;
  drop_queue(b);
  while (b->heap_n) {
    req_t *r = b->heap[0];
    req_unlink(b, r);
    r->cb(&b->base, -ECANCELED, NULL, r->arg);
    free(r);
  }
  uv_close((uv_handle_t *)&b->idle, on_handle_closed);
  uv_close((uv_handle_t *)&b->timer, on_handle_closed);
}

static void l_close(bus_t *bus, void (*on_closed)(void *arg), void *arg) {
  lbus_t *b = lbus(bus);
  b->on_closed = on_closed;
  b->on_closed_arg = arg;
  uv_timer_stop(&b->timer); /* pending requests get -ECANCELED, not a late timeout */
  b->armed = UINT64_MAX;
  uv_idle_start(&b->idle, on_idle);
}

static const bus_ops_t local_ops = {
    .kind = "local",
    .publish = l_publish,
    .subscribe = l_subscribe,
    .unsubscribe = l_unsubscribe,
    .request = l_request,
    .request_cancel = l_request_cancel,
    .is_connected = l_is_connected,
    .close = l_close,
};

static uint64_t random_seed(void *salt) {
  uint64_t seed = 0;
  if (uv_random(NULL, NULL, &seed, sizeof seed, 0, NULL) != 0 || seed == 0) {
    /* splitmix64 of the clock and an address: unique enough for an inbox */
    seed = uv_hrtime() ^ (uint64_t)(uintptr_t)salt;
    seed += 0x9E3779B97F4A7C15ULL;
    seed = (seed ^ (seed >> 30)) * 0xBF58476D1CE4E5B9ULL;
    seed = (seed ^ (seed >> 27)) * 0x94D049BB133111EBULL;
    seed ^= seed >> 31;
  }
  return seed ? seed : 1;
}

bus_t *bus_local_new(uv_loop_t *loop, size_t max_payload) {
  lbus_t *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  if (htab_init(&b->subjects, 64) < 0 || htab_init(&b->reqs, 64) < 0) {
    free(b->subjects.b);
    free(b);
    return NULL;
  }
  b->base.ops = &local_ops;
  /* bounded so that header + payload + subjects cannot overflow size_t */
  b->base.max_payload = max_payload == 0 ? BUS_DEFAULT_MAX_PAYLOAD
                        : max_payload > SIZE_MAX / 2 ? SIZE_MAX / 2
                                                     : max_payload;
  b->loop = loop;
  b->armed = UINT64_MAX;
  b->rng = random_seed(b);

  static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  memcpy(b->inbox, "_INBOX.", 7);
  for (int i = 0; i < INBOX_RAND; i++) b->inbox[7 + i] = b62[rng_next(b) % 62];
  b->inbox[INBOX_PREFIX_LEN - 1] = '.';
  b->inbox[INBOX_PREFIX_LEN] = '\0';

  uv_idle_init(loop, &b->idle);
  uv_timer_init(loop, &b->timer);
  b->idle.data = b;
  b->timer.data = b;
  b->open_handles = 2;
  return &b->base;
}
