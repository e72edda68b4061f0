/* worker_day.c — storm-day inside a worker (worker_int.h).
 *
 * Rooms are channels of room_users accounts x devices connections ("slots");
 * room g belongs to worker g % P, so rooms fill in the same global order
 * whatever P is. At a time t the target T(t) (linear ramps of the plan)
 * asks for rooms 0 .. T/S - 1 complete and T % S slots of the next one; a
 * worker opens its rooms' slots in order and closes from the last one.
 *
 * Message m of phase k is due at start_k + m / rate_k and goes to room
 * m mod G, where G = full rooms in T(due time): every worker computes the
 * same room, and only its owner sends, from the room's first slot. A room
 * takes messages only while it is live (all S slots have their hello and
 * the target includes it); otherwise the message is "skipped". A slot above
 * the target is closed only once its room is quiet (every sent message
 * acked and delivered to the S - 1 others) or QUIET_GRACE_US after the
 * room stopped being live, so a close never races a delivery: that keeps
 * "every acked message reached every member" exact while connections come
 * and go. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "load/worker_int.h"

#define QUIET_GRACE_US 5000000

typedef struct {
  unsigned g;       /* global room index */
  unsigned hi;      /* slots [0, hi) have been started (and not closed on purpose) */
  unsigned helloed; /* slots with a session */
  unsigned broken;  /* slots that failed or dropped */
  uint64_t sent, acks, deliveries;
  uint64_t nonlive_since; /* µs; 0 while live or never live */
  uint64_t msg_i;
} droom_t;

typedef struct {
  const day_plan_t *day;
  unsigned S, P, k, nrooms;
  droom_t *rooms;
  uint64_t *cursor; /* per phase: global messages handled */
  double tokens, conn_share;
  uint64_t last_us;
  unsigned last_phase;
  bool ended;
} day_t;

static int day_setup(worker_t *w) {
  const load_shape_t *sh = w->sh;
  day_t *d = calloc(1, sizeof *d);
  if (!d) return -ENOMEM;
  w->sc = d;
  d->day = sh->day;
  d->S = sh->room_size;
  d->P = w->cfg->o->procs ? w->cfg->o->procs : 1;
  d->k = w->cfg->index;
  d->nrooms = sh->rooms > d->k ? (sh->rooms - d->k + d->P - 1) / d->P : 0;
  d->conn_share = w->cfg->conn_rate;
  w->npeers = d->nrooms * d->S;
  w->peers = calloc(w->npeers ? w->npeers : 1, sizeof *w->peers);
  d->rooms = calloc(d->nrooms ? d->nrooms : 1, sizeof *d->rooms);
  d->cursor = calloc(DAY_MAX_PHASES, sizeof *d->cursor);
  if (!w->peers || !d->rooms || !d->cursor) return -ENOMEM;
  for (unsigned lr = 0; lr < d->nrooms; lr++) {
    d->rooms[lr].g = lr * d->P + d->k;
    for (unsigned s = 0; s < d->S; s++) {
      wpeer_t *p = &w->peers[lr * d->S + s];
      p->idx = d->rooms[lr].g * d->S + s;
      p->room = lr;
      p->in_room = true;
      p->sender = s == 0;
    }
  }
  w->step_counting = true;
  w->cur_step = 0;
  return 0;
}

static void day_free(worker_t *w) {
  day_t *d = w->sc;
  if (!d) return;
  free(d->rooms);
  free(d->cursor);
  free(d);
  w->sc = NULL;
}

static bool live(const day_t *d, const droom_t *r, unsigned want) {
  return want == d->S && r->hi == d->S && r->helloed == d->S && !r->broken;
}

static bool quiet(const day_t *d, const droom_t *r) {
  return r->acks == r->sent && r->deliveries == r->acks * (d->S - 1);
}

/* Slots room g should have open when the target is T. */
static unsigned want_of(const day_t *d, unsigned g, unsigned T) {
  unsigned full = T / d->S;
  return g < full ? d->S : g == full ? T % d->S : 0;
}

static const char *token_of(worker_t *w, unsigned g, unsigned s) {
  const load_shape_t *sh = w->sh;
  return sh->tokens[(size_t)g * sh->room_users + s / sh->devices];
}

static void connections(worker_t *w, day_t *d, unsigned T, uint64_t now) {
  double dt = d->last_us ? (double)(now - d->last_us) / 1e6 : 0;
  d->tokens += dt * d->conn_share;
  double cap = d->conn_share * 0.05 + 1;
  if (d->tokens > cap) d->tokens = cap;
  for (unsigned lr = 0; lr < d->nrooms; lr++) {
    droom_t *r = &d->rooms[lr];
    unsigned want = want_of(d, r->g, T);
    if (!live(d, r, want) && r->hi && !r->nonlive_since) r->nonlive_since = now;
    while (r->hi < want && d->tokens >= 1) {
      wpeer_t *p = &w->peers[lr * d->S + r->hi];
      if (p->active) break; /* still closing from an earlier cool-down */
      if (!p->broken) {
        worker_connect(w, p, token_of(w, r->g, r->hi));
        d->tokens -= 1;
      }
      r->hi++;
    }
    if (r->hi > want && !(quiet(d, r) || (r->nonlive_since && now - r->nonlive_since >= QUIET_GRACE_US))) continue;
    while (r->hi > want) {
      wpeer_t *p = &w->peers[lr * d->S + r->hi - 1];
      if (p->active && !p->open) break; /* connecting: close it once it is open */
      if (p->active && !p->closing) {
        p->closing = true;
        wsc_close(p->c, 1000);
      }
      r->hi--;
    }
    if (live(d, r, want)) r->nonlive_since = 0;
  }
}

static void send_due(worker_t *w, day_t *d, double since, uint64_t now) {
  const day_plan_t *dp = d->day;
  const plan_t *pl = &w->sh->plan;
  load_result_t *r = w->res;
  bool all = true;
  for (unsigned k = 0; k < pl->n; k++) {
    uint64_t due = plan_due(pl, k, since, 0); /* one schedule for all rooms */
    if (due < pl->s[k].msgs) all = false;
    for (; d->cursor[k] < due; d->cursor[k]++) {
      uint64_t m = d->cursor[k];
      double at = pl->s[k].start + (double)m / pl->s[k].rate;
      unsigned G = (unsigned)dayplan_target(dp, at) / d->S;
      if (!G) {
        if (d->k == 0) r->steps[k].skipped++, r->n.skipped++;
        continue;
      }
      unsigned g = (unsigned)(m % G);
      if (g % d->P != d->k) continue;
      unsigned lr = g / d->P;
      droom_t *rm = lr < d->nrooms ? &d->rooms[lr] : NULL;
      if (!rm || !live(d, rm, want_of(d, g, (unsigned)dayplan_target(dp, since)))) {
        r->steps[k].skipped++;
        r->n.skipped++;
        continue;
      }
      char msg[400];
      int n = msg_format_send(msg, sizeof msg, w->sh->channels[g], k, now, rm->msg_i, w->cfg->o->prefix,
                              rm->msg_i);
      rm->msg_i++;
      r->n.sent++;
      r->steps[k].sent++;
      rm->sent++;
      if (!r->first_send_us) r->first_send_us = now;
      worker_send(w, &w->peers[lr * d->S], msg, n);
    }
  }
  if (all && since >= dp->total) w->done_sending = true;
}

static void day_tick(worker_t *w, uint64_t now) {
  day_t *d = w->sc;
  if (!w->go || now < w->go_us) return;
  double since = (double)(now - w->go_us) / 1e6;
  unsigned ph = dayplan_phase_at(d->day, since);
  load_result_t *r = w->res;
  if (ph != d->last_phase) { /* a phase ended: its connections as it closed */
    r->steps[d->last_phase].conns_end = r->n.open_now;
    d->last_phase = ph;
  }
  w->cur_step = ph;
  unsigned T = (unsigned)dayplan_target(d->day, since);
  connections(w, d, T, now);
  d->last_us = now;
  if (!w->done_sending) send_due(w, d, since, now);
  if (r->n.open_now > r->steps[ph].conns_peak) r->steps[ph].conns_peak = r->n.open_now;
  if (since >= d->day->total && !d->ended) {
    d->ended = true;
    r->steps[ph].conns_end = r->n.open_now;
  }
}

static void day_text(worker_t *w, wpeer_t *p, const msg_in_t *m, uint64_t now) {
  day_t *d = w->sc;
  load_result_t *r = w->res;
  if (!m->stamped) return;
  droom_t *rm = &d->rooms[p->room];
  uint64_t lat = now > m->t_us ? now - m->t_us : 0;
  if (p->sender) {
    if (m->kind != MSG_ACK) return;
    lhist_record(&r->ack, lat);
    r->n.acks++;
    r->n.expected += d->S - 1;
    if (m->step < r->nsteps) r->steps[m->step].acks++;
    rm->acks++;
    return;
  }
  if (m->kind != MSG_MESSAGE) return;
  rm->deliveries++;
  worker_delivery(w, m->step, lat, now);
}

static void day_hello(worker_t *w, wpeer_t *p) {
  day_t *d = w->sc;
  d->rooms[p->room].helloed++;
}

static void day_closed(worker_t *w, wpeer_t *p, bool was_hello) {
  day_t *d = w->sc;
  droom_t *r = &d->rooms[p->room];
  if (was_hello) r->helloed--;
  if (p->broken) r->broken++;
}

const worker_ops_t worker_day_ops = {day_setup, day_tick, day_text, day_free, day_hello, day_closed};
