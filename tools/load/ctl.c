/* ctl.c — see ctl.h. The parent runs its own uv loop: one pipe handle per
 * worker for results, a 20 ms control tick and the 1 s progress line.
 * Commands to the workers are a few bytes, written blocking. */
#include "load/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "load/procstat.h"
#include "load/report.h"
#include "load/series.h"
#include "load/stats.h"
#include "load/wire.h"
#include "load/worker.h"

#define READY_TIMEOUT_MS 30000 /* plus the connect ramp: all ready, or the run stops */
#define DRAIN_TIMEOUT_MS 10000 /* after the last send, for late deliveries */
#define STOP_TIMEOUT_MS 20000  /* workers must report within this after C_STOP */
#define GO_DELAY_US 20000      /* lets every worker receive C_GO before it is due */

enum phase { PH_CONNECT, PH_RUN, PH_DRAIN, PH_STOP };

typedef struct ctl ctl_t;
typedef struct {
  ctl_t *ctl;
  unsigned k;
  pid_t pid;
  int cmd_fd;
  uv_pipe_t res;
  buf_t in;
  unsigned assigned;
  wire_counts_t counts;
  load_result_t *final;
  bool got_final, eof, closed;
} wproc_t;

struct ctl {
  const load_opts_t *o;
  const load_shape_t *sh;
  unsigned nw, live_handles;
  wproc_t *w;
  uv_loop_t loop;
  uv_timer_t tick, progress;
  enum phase phase;
  uint64_t t0_us, phase_us, go_us, run_end_us, stop_us;
  double window_s; /* the run phase's planned length */
  load_counts_t tot;
  bool all_sent, not_ready, died;
  uint64_t last_deliveries;
  series_t series;
  report_server_t srv;
};

static uint64_t now_us(void) { return uv_hrtime() / 1000u; }

static void sample(ctl_t *c, procstat_t *out) {
  for (unsigned i = 0; i < c->o->npids; i++) {
    int rc = procstat_read(c->o->server_pids[i], &out[i]);
    if (rc < 0) {
      if (c->srv.ok) fprintf(stderr, "storm-load: cannot read /proc/%d: %s\n", c->o->server_pids[i], strerror(-rc));
      c->srv.ok = false;
    }
  }
}

static void command(ctl_t *c, uint32_t type, const void *p, size_t len) {
  buf_t b = BUF_INIT;
  wire_put_frame(&b, type, p, len);
  for (unsigned k = 0; k < c->nw; k++) {
    if (c->w[k].cmd_fd < 0) continue;
    ssize_t n;
    do n = write(c->w[k].cmd_fd, b.data, b.len);
    while (n < 0 && errno == EINTR);
    /* A failed write means the worker is gone; its pipe's EOF reports it. */
  }
  buf_free(&b);
}

static void on_closed(uv_handle_t *h) {
  ctl_t *c = h->data;
  c->live_handles--;
}

static void close_handle(ctl_t *c, uv_handle_t *h) {
  if (uv_is_closing(h)) return;
  h->data = c;
  uv_close(h, on_closed);
}

static void begin_stop(ctl_t *c) {
  if (c->phase == PH_STOP) return;
  if (c->phase == PH_RUN || c->phase == PH_DRAIN) {
    if (!c->run_end_us) c->run_end_us = now_us();
    sample(c, c->srv.end);
  }
  c->phase = PH_STOP;
  c->stop_us = now_us();
  command(c, C_STOP, NULL, 0);
  for (unsigned k = 0; k < c->nw; k++) {
    close(c->w[k].cmd_fd);
    c->w[k].cmd_fd = -1;
  }
}

static void sum_counts(ctl_t *c) {
  memset(&c->tot, 0, sizeof c->tot);
  c->all_sent = true;
  for (unsigned k = 0; k < c->nw; k++) {
    load_counts_add(&c->tot, &c->w[k].counts.n);
    if (!c->w[k].counts.sending_done) c->all_sent = false;
  }
}

/* Connections per second while connecting: hold paces by --rate. */
static double conn_rate(const load_opts_t *o, const load_shape_t *sh) {
  return sh->kind == LOAD_KIND_ROOMS && !sh->rooms ? o->rate : o->conn_rate;
}

/* Runs whose members must all be ready before the first message. */
static bool strict(const load_shape_t *sh) {
  return sh->kind == LOAD_KIND_CHAT || (sh->kind == LOAD_KIND_ROOMS && sh->rooms);
}

/* Everything sent has been answered and delivered. */
static bool complete(const ctl_t *c) {
  const load_shape_t *sh = c->sh;
  const load_counts_t *n = &c->tot;
  if (sh->kind == LOAD_KIND_ROOMS) {
    uint64_t members = sh->rooms ? sh->room_size - 1 : 0;
    return !sh->rooms || (c->all_sent && n->acks >= n->sent && n->deliveries >= n->sent * members);
  }
  return c->all_sent && n->acks >= n->sent && n->deliveries >= n->expected && n->history_rx >= n->history &&
         n->reads_rx >= n->reads;
}

static void on_tick(uv_timer_t *t) {
  ctl_t *c = t->data;
  uint64_t now = now_us();
  double since = (double)(now - c->phase_us) / 1e6;
  const load_shape_t *sh = c->sh;
  sum_counts(c);
  if (c->phase == PH_CONNECT) {
    /* storm-day connects during its phases: it goes at once. */
    bool resolved = sh->kind == LOAD_KIND_DAY || c->tot.helloed + c->tot.failed >= sh->conns;
    bool broken = strict(sh) && (c->tot.failed || c->tot.dropped);
    bool timeout = since * 1000 > READY_TIMEOUT_MS + sh->conns * 1000.0 / conn_rate(c->o, sh);
    if (!resolved && !broken && !timeout) return;
    if (strict(sh) && (c->tot.helloed - c->tot.dropped < sh->conns)) {
      fprintf(stderr, "storm-load: only %" PRIu64 " of %u connections ready; stopping\n",
              c->tot.helloed - c->tot.dropped, sh->conns);
      c->not_ready = true;
      begin_stop(c);
      return;
    }
    sample(c, c->srv.start);
    c->go_us = now + GO_DELAY_US;
    command(c, C_GO, &c->go_us, sizeof c->go_us);
    c->phase = PH_RUN;
    c->phase_us = c->go_us;
    return;
  }
  if (c->phase == PH_RUN) {
    if (now < c->go_us || since < c->window_s) return;
    c->phase = PH_DRAIN;
    c->phase_us = c->run_end_us = now;
    sample(c, c->srv.end);
    return;
  }
  if (c->phase == PH_DRAIN) {
    if (complete(c) || since * 1000 > DRAIN_TIMEOUT_MS) begin_stop(c);
    return;
  }
  if (c->phase == PH_STOP && (now - c->stop_us) / 1000 > STOP_TIMEOUT_MS) {
    for (unsigned k = 0; k < c->nw; k++) {
      wproc_t *w = &c->w[k];
      if (w->closed) continue;
      fprintf(stderr, "storm-load: worker %u (pid %d) did not report within %d s of the stop; killing it\n", k,
              (int)w->pid, STOP_TIMEOUT_MS / 1000);
      kill(w->pid, SIGKILL);
      c->died = true;
      w->closed = true;
      close_handle(c, (uv_handle_t *)&w->res);
    }
  }
  bool all = true;
  for (unsigned k = 0; k < c->nw; k++) all = all && c->w[k].closed;
  if (all) {
    uv_timer_stop(&c->tick);
    uv_timer_stop(&c->progress);
    close_handle(c, (uv_handle_t *)&c->tick);
    close_handle(c, (uv_handle_t *)&c->progress);
  }
}

static void on_progress(uv_timer_t *t) {
  ctl_t *c = t->data;
  const load_shape_t *sh = c->sh;
  sum_counts(c);
  uint64_t now = now_us();
  double el = (double)(now - c->t0_us) / 1e6;
  fprintf(stderr, "[%6.1fs] %-7s conns %" PRIu64 "/%u ready %" PRIu64 " failed %" PRIu64 " dropped %" PRIu64, el,
          c->phase == PH_CONNECT ? "connect" : c->phase == PH_RUN ? "run" : c->phase == PH_DRAIN ? "drain" : "stop",
          c->tot.open_now, sh->conns, c->tot.helloed, c->tot.failed, c->tot.dropped);
  if (sh->kind == LOAD_KIND_DAY && c->phase == PH_RUN && now > c->go_us) {
    double s = (double)(now - c->go_us) / 1e6;
    const day_phase_t *ph = &sh->day->ph[dayplan_phase_at(sh->day, s)];
    fprintf(stderr, " | phase \"%s\" target %.0f", ph->name, dayplan_target(sh->day, s));
  }
  if (sh->rooms || sh->kind != LOAD_KIND_ROOMS)
    fprintf(stderr, " | sent %" PRIu64 " acks %" PRIu64 " deliveries %" PRIu64 " (%" PRIu64 "/s) errors %" PRIu64,
            c->tot.sent, c->tot.acks, c->tot.deliveries, c->tot.deliveries - c->last_deliveries, c->tot.errors);
  if (sh->kind == LOAD_KIND_CHAT)
    fprintf(stderr, " typing %" PRIu64 " history %" PRIu64 "/%" PRIu64 " read %" PRIu64 "/%" PRIu64, c->tot.typing,
            c->tot.history_rx, c->tot.history, c->tot.reads_rx, c->tot.reads);
  fputc('\n', stderr);
  c->last_deliveries = c->tot.deliveries;
}

/* ---- results from the workers ---- */

static void worker_gone(wproc_t *w, const char *why) {
  ctl_t *c = w->ctl;
  if (!w->got_final) {
    int st = 0;
    pid_t p = waitpid(w->pid, &st, 0);
    char how[64] = "";
    if (p == w->pid && WIFSIGNALED(st)) snprintf(how, sizeof how, " (killed by signal %d)", WTERMSIG(st));
    else if (p == w->pid && WIFEXITED(st)) snprintf(how, sizeof how, " (exit status %d)", WEXITSTATUS(st));
    w->pid = -1;
    fprintf(stderr, "storm-load: worker %u died before reporting: %s%s; the run failed\n", w->k, why, how);
    c->died = true;
    begin_stop(c);
  }
  w->closed = true;
  close_handle(c, (uv_handle_t *)&w->res);
}

static void on_frame(wproc_t *w, uint32_t type, const uint8_t *p, size_t len) {
  ctl_t *c = w->ctl;
  if (type == W_COUNTS && len == sizeof w->counts) {
    memcpy(&w->counts, p, len);
  } else if (type == W_SEC) {
    load_sec_t s;
    lhist_t *h = malloc(sizeof *h);
    if (h && wire_get_sec(p, len, &s, h) == 0) series_add(&c->series, &s, h);
    free(h);
  } else if (type == W_FINAL && !w->got_final) {
    if (wire_get_result(p, len, w->final) == 0) w->got_final = true;
    else fprintf(stderr, "storm-load: worker %u sent a malformed result\n", w->k);
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  wproc_t *w = h->data;
  if (buf_reserve(&w->in, 65536) < 0) {
    *b = uv_buf_init(NULL, 0);
    return;
  }
  *b = uv_buf_init(w->in.data + w->in.len, (unsigned)(w->in.cap - w->in.len - 1));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  wproc_t *w = s->data;
  if (nread < 0) {
    worker_gone(w, nread == UV_EOF ? "its pipe closed" : uv_strerror((int)nread));
    return;
  }
  w->in.len += (size_t)nread;
  size_t off = 0;
  for (;;) {
    uint32_t type;
    const uint8_t *pl;
    size_t plen;
    long used = wire_next((const uint8_t *)w->in.data + off, w->in.len - off, &type, &pl, &plen);
    if (used < 0) {
      uv_read_stop(s);
      worker_gone(w, "it sent an oversized frame");
      return;
    }
    if (used == 0) break;
    on_frame(w, type, pl, plen);
    off += (size_t)used;
  }
  memmove(w->in.data, w->in.data + off, w->in.len - off);
  w->in.len -= off;
}

/* ---- processes ---- */

static int fork_workers(ctl_t *c) {
  int (*fds)[4] = calloc(c->nw, sizeof *fds); /* res r/w, cmd r/w */
  if (!fds) return -ENOMEM;
  for (unsigned k = 0; k < c->nw; k++) {
    if (pipe2(fds[k], O_CLOEXEC) < 0 || pipe2(fds[k] + 2, O_CLOEXEC) < 0) {
      free(fds);
      return -errno;
    }
  }
  fflush(stdout);
  fflush(stderr);
  unsigned n = c->sh->conns;
  double crate = conn_rate(c->o, c->sh);
  for (unsigned k = 0; k < c->nw; k++) {
    wproc_t *w = &c->w[k];
    w->ctl = c;
    w->k = k;
    unsigned lo = (unsigned)((uint64_t)n * k / c->nw), hi = (unsigned)((uint64_t)n * (k + 1) / c->nw);
    w->assigned = hi - lo;
    pid_t pid = fork();
    if (pid < 0) {
      free(fds);
      return -errno;
    }
    if (pid == 0) {
      for (unsigned j = 0; j < c->nw; j++) {
        if (j == k) continue;
        for (int f = 0; f < 4; f++) close(fds[j][f]);
      }
      close(fds[k][0]);
      close(fds[k][3]);
      worker_cfg_t cfg = {.o = c->o, .sh = c->sh, .index = k, .lo = lo, .hi = hi,
                          .conn_rate = crate / c->nw, .bind_src = c->nw > 1, .t0_us = c->t0_us,
                          .res_fd = fds[k][1], .cmd_fd = fds[k][2]};
      _exit(worker_main(&cfg));
    }
    w->pid = pid;
  }
  for (unsigned k = 0; k < c->nw; k++) {
    wproc_t *w = &c->w[k];
    close(fds[k][1]);
    close(fds[k][2]);
    w->cmd_fd = fds[k][3];
    uv_pipe_init(&c->loop, &w->res, 0);
    w->res.data = w;
    c->live_handles++;
    uv_pipe_open(&w->res, fds[k][0]);
    uv_read_start((uv_stream_t *)&w->res, on_alloc, on_read);
  }
  free(fds);
  return 0;
}

int ctl_run(const load_opts_t *o, const load_shape_t *sh) {
  ctl_t c = {.o = o, .sh = sh, .nw = o->procs ? o->procs : 1};
  c.window_s = sh->kind == LOAD_KIND_CHAT ? o->duration : sh->rooms ? sh->plan.total : o->duration;
  c.w = calloc(c.nw, sizeof *c.w);
  load_result_t *total = load_result_new(sh->plan.n);
  int rc = 2;
  if (!c.w || !total || series_init(&c.series) < 0) goto out;
  for (unsigned k = 0; k < c.nw; k++) {
    c.w[k].cmd_fd = -1;
    c.w[k].pid = -1;
    if (!(c.w[k].final = load_result_new(sh->plan.n))) goto out;
  }
  signal(SIGPIPE, SIG_IGN);
  c.srv.ok = o->npids > 0;
  c.srv.npids = o->npids;
  sample(&c, c.srv.base);
  uv_loop_init(&c.loop);
  c.t0_us = c.phase_us = now_us();
  int frc = fork_workers(&c);
  if (frc < 0) {
    fprintf(stderr, "storm-load: cannot start the workers: %s\n", strerror(-frc));
    c.died = true;
    begin_stop(&c);
  }
  uv_timer_init(&c.loop, &c.tick);
  uv_timer_init(&c.loop, &c.progress);
  c.tick.data = c.progress.data = &c;
  c.live_handles += 2;
  uv_timer_start(&c.tick, on_tick, 20, 20);
  uv_timer_start(&c.progress, on_progress, 1000, 1000);
  uv_run(&c.loop, UV_RUN_DEFAULT);
  uv_loop_close(&c.loop);
  for (unsigned k = 0; k < c.nw; k++) {
    if (c.w[k].pid > 0) waitpid(c.w[k].pid, NULL, 0);
    if (c.w[k].got_final) load_result_merge(total, c.w[k].final);
  }
  if (c.died) goto out;
  series_finish(&c.series);
  report_in_t in = {.o = o, .sh = sh, .res = total, .series = &c.series, .srv = &c.srv,
                    .run_s = c.run_end_us > c.go_us ? (double)(c.run_end_us - c.go_us) / 1e6 : 0,
                    .not_ready = c.not_ready};
  rc = report_emit(&in);
out:
  for (unsigned k = 0; c.w && k < c.nw; k++) {
    free(c.w[k].final);
    buf_free(&c.w[k].in);
    if (c.w[k].cmd_fd >= 0) close(c.w[k].cmd_fd);
  }
  free(c.w);
  free(total);
  series_free(&c.series);
  return rc;
}
