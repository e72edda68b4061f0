/* worker_chat.c — the chat scenario inside a worker (worker_int.h): each of
 * the worker's users acts at Poisson times (exponential gaps at --rate per
 * user, kept in a min-heap), picking an action by weight and a conversation
 * uniformly among its own. Counts acks, deliveries (other users' messages
 * only: a user's own echo is not a delivery), history and read answers. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "load/worker_int.h"

typedef struct {
  const chat_layout_t *l;
  uint64_t rs;
  uint64_t *next_us;  /* per local user: its next action */
  uint32_t *heap;     /* local users ordered by next_us */
  unsigned nheap;
  uint64_t *last_seq; /* per (local user, conversation of the user): highest seq seen */
  uint64_t *msg_i;    /* per local user: messages sent (nonces) */
  uint32_t base;      /* user_off of the worker's first user */
  uint64_t end_us;
  bool scheduled;
} chat_t;

static bool earlier(const chat_t *c, uint32_t a, uint32_t b) { return c->next_us[a] < c->next_us[b]; }

static void sift_down(chat_t *c, unsigned i) {
  for (;;) {
    unsigned l = 2 * i + 1, r = l + 1, m = i;
    if (l < c->nheap && earlier(c, c->heap[l], c->heap[m])) m = l;
    if (r < c->nheap && earlier(c, c->heap[r], c->heap[m])) m = r;
    if (m == i) return;
    uint32_t t = c->heap[i];
    c->heap[i] = c->heap[m];
    c->heap[m] = t;
    i = m;
  }
}

/* The gap to a user's next action: exponential with mean 1/rate. */
static uint64_t gap_us(chat_t *c, double rate) {
  double u = ((double)(chat_rand(&c->rs) >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
  double g = -log(u) / rate * 1e6;
  return g > 3.6e9 ? (uint64_t)3.6e9 : (uint64_t)g;
}

static int chat_setup(worker_t *w) {
  const worker_cfg_t *cfg = w->cfg;
  chat_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  w->sc = c;
  c->l = w->sh->chat;
  w->npeers = cfg->hi - cfg->lo;
  unsigned n = w->npeers ? w->npeers : 1;
  c->base = c->l->user_off[cfg->lo];
  uint32_t nconv = c->l->user_off[cfg->hi] - c->base;
  w->peers = calloc(n, sizeof *w->peers);
  c->next_us = calloc(n, sizeof *c->next_us);
  c->heap = calloc(n, sizeof *c->heap);
  c->msg_i = calloc(n, sizeof *c->msg_i);
  c->last_seq = calloc(nconv ? nconv : 1, sizeof *c->last_seq);
  if (!w->peers || !c->next_us || !c->heap || !c->msg_i || !c->last_seq) return -ENOMEM;
  c->rs = (cfg->o->seed ? cfg->o->seed : 1) * 0x9e3779b97f4a7c15ull + cfg->index + 1;
  for (unsigned j = 0; j < w->npeers; j++) w->peers[j].idx = cfg->lo + j;
  return 0;
}

static void chat_free(worker_t *w) {
  chat_t *c = w->sc;
  if (!c) return;
  free(c->next_us);
  free(c->heap);
  free(c->msg_i);
  free(c->last_seq);
  free(c);
  w->sc = NULL;
}

/* The slot of conversation `ch` (a channel id) in user u's list, or -1. */
static long conv_slot(const chat_t *c, unsigned u, long long ch) {
  const chat_layout_t *l = c->l;
  for (uint32_t i = l->user_off[u]; i < l->user_off[u + 1]; i++)
    if (l->conv_id[l->user_convs[i]] == ch) return (long)i;
  return -1;
}

static void act(worker_t *w, chat_t *c, unsigned j, uint64_t now) {
  const load_opts_t *o = w->cfg->o;
  const chat_layout_t *l = c->l;
  wpeer_t *p = &w->peers[j];
  unsigned u = p->idx;
  uint32_t nconv = l->user_off[u + 1] - l->user_off[u];
  if (!nconv || p->broken) return;
  uint32_t slot = l->user_off[u] + (uint32_t)(chat_rand(&c->rs) % nconv);
  unsigned conv = l->user_convs[slot];
  long long ch = l->conv_id[conv];
  load_result_t *r = w->res;
  char m[512];
  int n;
  switch (chat_pick(&o->weights, (uint32_t)(chat_rand(&c->rs) >> 32))) {
  case CHAT_SEND:
    n = msg_format_chat_send(m, sizeof m, ch, 0, now, c->msg_i[j]++, u, o->prefix);
    r->n.sent++;
    r->steps[0].sent++;
    if (!r->first_send_us) r->first_send_us = now;
    break;
  case CHAT_TYPING:
    n = msg_format_typing(m, sizeof m, ch);
    r->n.typing++;
    break;
  case CHAT_HISTORY:
    n = msg_format_history(m, sizeof m, ch, o->history_limit, now);
    r->n.history++;
    break;
  default:
    n = msg_format_read(m, sizeof m, ch, c->last_seq[slot - c->base], now);
    r->n.reads++;
    break;
  }
  worker_send(w, p, m, n);
}

static void chat_tick(worker_t *w, uint64_t now) {
  chat_t *c = w->sc;
  const load_opts_t *o = w->cfg->o;
  if (!w->go || now < w->go_us || w->done_sending) return;
  if (!c->scheduled) { /* every user's first action at a random point of its first gap */
    c->scheduled = true;
    c->end_us = w->go_us + (uint64_t)(o->duration * 1e6);
    for (unsigned j = 0; j < w->npeers; j++) {
      c->next_us[j] = w->go_us + gap_us(c, o->rate);
      c->heap[c->nheap++] = j;
    }
    for (unsigned i = c->nheap / 2; i-- > 0;) sift_down(c, i);
  }
  while (c->nheap && c->next_us[c->heap[0]] <= now && c->next_us[c->heap[0]] < c->end_us) {
    unsigned j = c->heap[0];
    act(w, c, j, now);
    c->next_us[j] += gap_us(c, o->rate);
    sift_down(c, 0);
  }
  if (now >= c->end_us) w->done_sending = true;
}

static void chat_text(worker_t *w, wpeer_t *p, const msg_in_t *m, uint64_t now) {
  chat_t *c = w->sc;
  load_result_t *r = w->res;
  uint64_t lat = m->stamped && now > m->t_us ? now - m->t_us : 0;
  long slot;
  switch (m->kind) {
  case MSG_ACK:
    if (!m->stamped) return;
    lhist_record(&r->ack, lat);
    r->n.acks++;
    r->steps[0].acks++;
    if ((slot = conv_slot(c, p->idx, m->channel)) >= 0) {
      r->n.expected += chat_conv_size(c->l, c->l->user_convs[slot]) - 1;
      if (m->seq > c->last_seq[slot - c->base]) c->last_seq[slot - c->base] = m->seq;
    }
    return;
  case MSG_MESSAGE:
    if ((slot = conv_slot(c, p->idx, m->channel)) >= 0 && m->seq > c->last_seq[slot - c->base])
      c->last_seq[slot - c->base] = m->seq;
    if (m->stamped && m->has_user && m->user != p->idx) worker_delivery(w, m->step, lat, now);
    return;
  case MSG_HISTORY:
    if (!m->stamped) return;
    lhist_record(&r->history, lat);
    r->n.history_rx++;
    return;
  case MSG_READ_ACK:
    if (!m->stamped) return;
    lhist_record(&r->read, lat);
    r->n.reads_rx++;
    return;
  case MSG_TYPING:
    r->n.typing_rx++;
    return;
  default:
    return;
  }
}

const worker_ops_t worker_chat_ops = {chat_setup, chat_tick, chat_text, chat_free, NULL, NULL};
