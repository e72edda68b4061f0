/* worker.c — see worker.h and worker_int.h. A 5 ms tick paces connections
 * and sends (or runs the scenario's tick); a 100 ms tick reports counters; a
 * timer re-armed on each whole second of the run's clock reports that
 * second. */
#include "load/worker_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "net/ws_frame.h"

static uint64_t now_us(void) { return uv_hrtime() / 1000u; }
uint64_t worker_now_us(void) { return now_us(); }

static load_step_t *cur_step(worker_t *w) {
  return w->step_counting && w->cur_step < w->res->nsteps ? &w->res->steps[w->cur_step] : NULL;
}

void worker_error(worker_t *w, const char *what, const char *d, size_t n) {
  load_result_t *r = w->res;
  r->n.errors++;
  load_step_t *s = cur_step(w);
  if (s) s->errors++;
  if (r->n.errors <= 5) fprintf(stderr, "storm-load[w%u]: %s: %.*s\n", w->cfg->index, what, (int)(n > 300 ? 300 : n), d);
}

bool worker_send(worker_t *w, wpeer_t *p, const char *m, int n) {
  if (n < 0 || p->gone || !p->c || wsc_send_text(p->c, m, (size_t)n) < 0) {
    worker_error(w, "cannot queue", m, n < 0 ? 0 : (size_t)n);
    return false;
  }
  return true;
}

void worker_delivery(worker_t *w, unsigned step, uint64_t lat, uint64_t now) {
  load_result_t *r = w->res;
  lhist_record(&r->delivery, lat);
  lhist_record(&w->sec_h, lat);
  r->n.deliveries++;
  r->last_delivery_us = now;
  if (step < r->nsteps) {
    r->steps[step].deliveries++;
    lhist_record(&r->steps[step].delivery, lat);
  }
}

static void write_out(worker_t *w) {
  size_t off = 0;
  while (off < w->out.len && !w->write_failed) {
    ssize_t n = write(w->cfg->res_fd, w->out.data + off, w->out.len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) w->write_failed = true;
    else off += (size_t)n;
  }
  if (w->out.oom) w->write_failed = true;
  buf_reset(&w->out);
}

static void send_counts(worker_t *w, bool force) {
  wire_counts_t c = {.n = w->res->n, .sending_done = w->done_sending, .last_delivery_us = w->res->last_delivery_us};
  if (!force && memcmp(&c, &w->last_sent, sizeof c) == 0) return;
  w->last_sent = c;
  wire_put_frame(&w->out, W_COUNTS, &c, sizeof c);
  write_out(w);
}

static void send_second(worker_t *w, uint64_t sec) {
  const load_counts_t *n = &w->res->n;
  load_sec_t s = {.sec = sec,
                  .open_now = n->open_now,
                  .sends = n->sent - w->at_sec.sent,
                  .acks = n->acks - w->at_sec.acks,
                  .deliveries = n->deliveries - w->at_sec.deliveries,
                  .errors = n->errors - w->at_sec.errors};
  wire_put_sec(&w->out, &s, &w->sec_h);
  write_out(w);
  w->at_sec = *n;
  lhist_init(&w->sec_h);
}

/* ---- client callbacks ---- */

static void on_open(wsc_client_t *c, void *user) {
  wpeer_t *p = user;
  p->c = c;
  p->open = true;
  p->w->res->n.opened++;
  p->w->res->n.open_now++;
  uint64_t t = now_us() - p->start_us;
  lhist_record(&p->w->res->connect, t);
  load_step_t *s = cur_step(p->w);
  if (s) {
    s->opened++;
    lhist_record(&s->connect, t);
  }
}

static void on_text(wsc_client_t *c, void *user, const char *d, size_t n) {
  wpeer_t *p = user;
  worker_t *w = p->w;
  load_result_t *r = w->res;
  uint64_t now = wsc_read_us(c);
  msg_in_t m;
  msg_parse(d, n, &m);
  if (!p->hello) {
    if (m.kind == MSG_HELLO) {
      p->hello = true;
      r->n.helloed++;
      lhist_record(&r->hello, now - p->start_us);
      if (w->ops && w->ops->hello) w->ops->hello(w, p);
    }
    return;
  }
  if (m.kind == MSG_ERROR) {
    worker_error(w, "server error", d, n);
    return;
  }
  if (w->ops) {
    w->ops->text(w, p, &m, now);
    return;
  }
  if (!p->in_room || !m.stamped) return;
  bool broadcast = w->cfg->o->mode == LOAD_BROADCAST;
  uint64_t lat = now > m.t_us ? now - m.t_us : 0;
  if (p->sender) {
    if (broadcast ? m.kind != MSG_BROADCAST : m.kind != MSG_ACK) return;
    lhist_record(&r->ack, lat);
    r->n.acks++;
    if (m.step < r->nsteps) r->steps[m.step].acks++;
    return;
  }
  if (m.kind != (broadcast ? MSG_BROADCAST : MSG_MESSAGE)) return;
  worker_delivery(w, m.step, lat, now);
}

static void on_close(wsc_client_t *c, void *user, int code, int err) {
  wpeer_t *p = user;
  worker_t *w = p->w;
  load_result_t *r = w->res;
  bool was_hello = p->hello, on_purpose = p->closing;
  p->gone = true;
  p->active = false;
  p->c = NULL;
  if (p->open) r->n.open_now--;
  p->open = p->hello = p->closing = false;
  if (!w->stopping && !on_purpose) p->broken = true;
  if (w->ops && w->ops->closed && !w->stopping) w->ops->closed(w, p, was_hello);
  if (w->stopping || on_purpose) return;
  int cc = err == WSC_ERR_HANDSHAKE ? -code : code; /* negative: HTTP status of a refused upgrade */
  load_code_count(r, cc, 1);
  load_step_t *s = cur_step(w);
  if (s) load_step_code_count(s, cc, 1);
  if (!was_hello) r->n.failed++;
  else r->n.dropped++;
  if (s && !was_hello) s->failed++;
  else if (s) s->dropped++;
  if (r->n.failed + r->n.dropped <= 5)
    fprintf(stderr, "storm-load[w%u]: connection closed: code %d (%s)\n", w->cfg->index, code,
            err == WSC_ERR_HANDSHAKE ? "upgrade refused, code is the HTTP status"
            : err <= -1001 && err >= -1014 ? ws_error_message(err)
            : err ? uv_strerror(err) : "closed by the server");
}

/* ---- pacing ---- */

void worker_connect(worker_t *w, wpeer_t *p, const char *token) {
  char path[1200];
  if (w->cfg->o->peer) snprintf(path, sizeof path, "/ws?room=%lld", p->in_room ? w->sh->channels[p->room] : 1LL);
  else snprintf(path, sizeof path, "/ws?access_token=%s", token);
  p->start_us = now_us();
  p->gone = false;
  w->res->n.started++;
  load_step_t *s = cur_step(w);
  if (s) s->started++;
  int rc = wsc_connect(w->eng, path, p);
  if (rc == 0) p->active = true;
  if (rc < 0) {
    p->gone = p->broken = true;
    w->res->n.failed++;
    load_code_count(w->res, WS_CLOSE_ABNORMAL, 1);
    if (s) {
      s->failed++;
      load_step_code_count(s, WS_CLOSE_ABNORMAL, 1);
    }
  }
}

static void start_peer(worker_t *w, unsigned j) {
  unsigned i = w->cfg->lo + j;
  worker_connect(w, &w->peers[j], w->sh->tokens ? w->sh->tokens[w->sh->ntokens == 1 ? 0 : i] : NULL);
}

static void send_one(worker_t *w, wsender_t *s) {
  const load_opts_t *o = w->cfg->o;
  load_result_t *r = w->res;
  char m[400];
  uint64_t t = now_us();
  long long ch = w->sh->channels[s->room];
  int n = o->mode == LOAD_BROADCAST ? msg_format_broadcast(m, sizeof m, ch, s->step, t, s->index)
                                    : msg_format_send(m, sizeof m, ch, s->step, t, s->index, o->prefix,
                                                      o->random_nonces ? msg_nonce_scatter(s->index) : s->index);
  s->index++;
  s->in_step++;
  r->n.sent++;
  r->steps[s->step].sent++;
  if (!r->first_send_us) r->first_send_us = t;
  worker_send(w, s->p, m, n);
}

static void pace_sends(worker_t *w, uint64_t now) {
  const plan_t *pl = &w->sh->plan;
  double since = (double)(now - w->go_us) / 1e6;
  bool all_done = true;
  for (unsigned i = 0; i < w->nsenders; i++) {
    wsender_t *s = &w->senders[i];
    double phase = w->sh->rooms > 1 ? (double)s->room / w->sh->rooms : 0;
    while (s->step < pl->n) {
      uint64_t due = plan_due(pl, s->step, since, phase);
      while (s->in_step < due) send_one(w, s);
      if (s->in_step < pl->s[s->step].msgs || since < pl->s[s->step].start + pl->s[s->step].secs) break;
      s->step++;
      s->in_step = 0;
    }
    if (s->step < pl->n) all_done = false;
  }
  if (all_done && since >= pl->total) w->done_sending = true;
}

static void on_tick(uv_timer_t *t) {
  worker_t *w = t->data;
  uint64_t now = now_us();
  if (w->sh->kind == LOAD_KIND_DAY) { /* connects and sends by its phases */
    w->ops->tick(w, now);
    return;
  }
  double since = (double)(now - w->cfg->t0_us) / 1e6;
  uint64_t due = (uint64_t)(since * w->cfg->conn_rate) + 1;
  while (w->started < w->npeers && w->started < due) start_peer(w, w->started++);
  if (w->ops) w->ops->tick(w, now);
  else if (w->go && !w->done_sending && now >= w->go_us) pace_sends(w, now);
}

static void on_counts(uv_timer_t *t) { send_counts(t->data, false); }

static void on_second(uv_timer_t *t);

/* One-shot to the next whole second of the run's clock, so every worker's
 * "second k" covers the same wall interval. */
static void arm_second(worker_t *w) {
  uint64_t el_ms = (now_us() - w->cfg->t0_us) / 1000u, due_ms = (w->cur_sec + 1) * 1000u;
  uv_timer_start(&w->second, on_second, due_ms > el_ms ? due_ms - el_ms : 0, 0);
}

static void on_second(uv_timer_t *t) {
  worker_t *w = t->data;
  send_second(w, w->cur_sec++);
  arm_second(w);
}

/* ---- commands and the end ---- */

static void on_handle_closed(uv_handle_t *h) {}

static void stop(worker_t *w) {
  if (w->stopping) return;
  w->stopping = true;
  send_counts(w, true);
  send_second(w, w->cur_sec); /* the partial last second */
  uv_timer_stop(&w->tick);
  uv_timer_stop(&w->counts);
  uv_timer_stop(&w->second);
  uv_close((uv_handle_t *)&w->tick, on_handle_closed);
  uv_close((uv_handle_t *)&w->counts, on_handle_closed);
  uv_close((uv_handle_t *)&w->second, on_handle_closed);
  uv_close((uv_handle_t *)&w->cmd, on_handle_closed);
  for (unsigned j = 0; j < w->npeers; j++)
    if (!w->peers[j].gone && w->peers[j].c) wsc_close(w->peers[j].c, 1000);
  wsc_engine_free(w->eng);
}

static void on_cmd_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  static char rb[256];
  *b = uv_buf_init(rb, sizeof rb);
}

static void on_cmd(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  worker_t *w = st->data;
  if (nread < 0) { /* the parent is gone or done with us */
    stop(w);
    return;
  }
  buf_append(&w->in, b->base, (size_t)nread);
  for (;;) {
    uint32_t type;
    const uint8_t *pl;
    size_t plen;
    long used = wire_next((const uint8_t *)w->in.data, w->in.len, &type, &pl, &plen);
    if (used < 0 || w->in.oom) {
      stop(w);
      return;
    }
    if (used == 0) return;
    if (type == C_GO && plen == sizeof w->go_us) {
      memcpy(&w->go_us, pl, sizeof w->go_us);
      w->go = true;
      if (!w->ops && w->nsenders == 0 && w->sh->plan.n == 0) w->done_sending = true;
    } else if (type == C_STOP) {
      stop(w);
      return;
    }
    memmove(w->in.data, w->in.data + used, w->in.len - (size_t)used);
    w->in.len -= (size_t)used;
  }
}

static int setup(worker_t *w) {
  const worker_cfg_t *cfg = w->cfg;
  const load_shape_t *sh = w->sh;
  w->ops = sh->kind == LOAD_KIND_CHAT ? &worker_chat_ops : sh->kind == LOAD_KIND_DAY ? &worker_day_ops : NULL;
  w->npeers = cfg->hi - cfg->lo;
  w->res = load_result_new(sh->plan.n);
  if (!w->res) return -ENOMEM;
  if (w->ops) {
    int rc = w->ops->setup(w); /* sets npeers, allocates peers */
    if (rc < 0) return rc;
  } else {
    w->peers = calloc(w->npeers ? w->npeers : 1, sizeof *w->peers);
    if (!w->peers) return -ENOMEM;
  }
  w->senders = calloc(sh->rooms && !w->ops ? sh->rooms : 1, sizeof *w->senders);
  if (!w->senders) return -ENOMEM;
  for (unsigned j = 0; j < w->npeers; j++) {
    wpeer_t *p = &w->peers[j];
    unsigned i = cfg->lo + j;
    p->w = w;
    if (w->ops) continue;
    p->idx = i;
    if (sh->rooms) {
      p->in_room = true;
      p->room = i / sh->room_size;
      p->sender = i % sh->room_size == 0;
      if (p->sender) w->senders[w->nsenders++] = (wsender_t){.p = p, .room = p->room};
    }
  }
  lhist_init(&w->sec_h);
  static const wsc_callbacks_t cb = {on_open, on_text, on_close};
  if (uv_loop_init(&w->loop) < 0) return -ENOMEM;
  w->eng = wsc_engine_new(&w->loop, &cfg->o->target, &cb);
  if (!w->eng) return -ENOMEM;
  if (cfg->bind_src) {
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + cfg->index);
    wsc_engine_bind(w->eng, &src);
  }
  uv_timer_init(&w->loop, &w->tick);
  uv_timer_init(&w->loop, &w->counts);
  uv_timer_init(&w->loop, &w->second);
  w->tick.data = w->counts.data = w->second.data = w;
  uv_pipe_init(&w->loop, &w->cmd, 0);
  w->cmd.data = w;
  if (uv_pipe_open(&w->cmd, cfg->cmd_fd) < 0) return -EBADF;
  uv_read_start((uv_stream_t *)&w->cmd, on_cmd_alloc, on_cmd);
  uv_timer_start(&w->tick, on_tick, 0, 5);
  uv_timer_start(&w->counts, on_counts, 100, 100);
  arm_second(w);
  return 0;
}

int worker_main(const worker_cfg_t *cfg) {
  worker_t w = {.cfg = cfg, .sh = cfg->sh};
  int rc = setup(&w);
  if (rc < 0) {
    fprintf(stderr, "storm-load[w%u]: cannot start: %s\n", cfg->index, strerror(-rc));
    return 2;
  }
  uv_run(&w.loop, UV_RUN_DEFAULT);
  uv_loop_close(&w.loop);
  wire_put_result(&w.out, w.res);
  write_out(&w);
  int status = w.write_failed ? 2 : 0;
  if (w.ops) w.ops->free(&w);
  free(w.peers);
  free(w.senders);
  free(w.res);
  buf_free(&w.in);
  buf_free(&w.out);
  return status;
}
