/* wsflow.c — scenario `ws`, the mirror of tests/k6/gateway-ws.js: a setup
 * user creates one channel; each VU registers and logs in once, then each
 * iteration joins the channel over HTTP, connects a WebSocket, sends 5
 * messages on hello and closes once their 5 acks are in (10 s at most).
 * Checks: join 200, upgrade 101, 5 acks. Thresholds: connect p95 < 1000 ms
 * and checks > 99%; exit 1 if violated. Each VU runs its own uv loop. */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "load/hist.h"
#include "load/report.h"
#include "load/setup.h"
#include "load/vu.h"
#include "load/wsc.h"

#define WS_MSGS 5
#define WS_ITER_TIMEOUT_MS 10000
#define WS_CONNECT_P95_MS 1000.0
#define WS_MIN_CHECKS 0.99

enum { CK_JOIN, CK_UPGRADE, CK_ACKS, CK_N };
static const char *const ck_names[CK_N] = {"join_200", "upgrade_101", "acks_5"};

typedef struct {
  const load_opts_t *o;
  vu_ctl_t ctl;
  long long channel;
  pthread_mutex_t mu;
  lhist_t connect, ack;
  uint64_t iterations, sent, acks, errors, pass[CK_N], fail[CK_N];
} ws_run_t;

typedef struct {
  ws_run_t *w;
  unsigned vu;
  uint64_t iter, start_us, sent_us[WS_MSGS];
  wsc_engine_t *eng;
  uv_timer_t timer;
  bool opened, closing;
  unsigned acked, errors;
  lhist_t *connect, *ack; /* this VU's, merged at the end */
} ws_iter_t;

static void on_done(uv_timer_t *t) {
  ws_iter_t *it = t->data;
  wsc_engine_free(it->eng);
  uv_close((uv_handle_t *)&it->timer, NULL);
}

static void on_timeout(uv_timer_t *t) {
  ws_iter_t *it = t->data;
  it->closing = true;
  on_done(t); /* closes the client too: on_close reports it */
}

static void ws_open(wsc_client_t *c, void *user) {
  ws_iter_t *it = user;
  it->opened = true;
  lhist_record(it->connect, vu_now_us() - it->start_us);
}

static void ws_text(wsc_client_t *c, void *user, const char *d, size_t n) {
  ws_iter_t *it = user;
  if (memmem(d, n, "\"op\":\"hello\"", 12)) {
    for (unsigned i = 0; i < WS_MSGS; i++) {
      char m[300];
      int len = snprintf(m, sizeof m,
                         "{\"op\":\"send\",\"channel_id\":%lld,\"body\":\"k6 %u/%" PRIu64 "/%u\",\"nonce\":\"%s%u-%" PRIu64
                         "-%u\",\"ref\":%u}",
                         it->w->channel, it->vu, it->iter, i, it->w->o->prefix, it->vu, it->iter, i, i);
      it->sent_us[i] = vu_now_us();
      if (wsc_send_text(c, m, (size_t)len) < 0) it->errors++;
    }
  } else if (memmem(d, n, "\"op\":\"ack\"", 10)) {
    const char *r = memmem(d, n, "\"ref\":", 6);
    unsigned ref = r && r + 6 < d + n ? (unsigned)(r[6] - '0') : WS_MSGS;
    if (ref < WS_MSGS) lhist_record(it->ack, vu_now_us() - it->sent_us[ref]);
    if (++it->acked == WS_MSGS) wsc_close(c, 1000);
  } else if (memmem(d, n, "\"op\":\"error\"", 12)) {
    it->errors++;
  }
}

static void ws_close(wsc_client_t *c, void *user, int code, int err) {
  ws_iter_t *it = user;
  uv_timer_stop(&it->timer);
  if (!it->closing) uv_timer_start(&it->timer, on_done, 0, 0); /* not from inside the engine's callback */
  it->closing = true;
}

/* One WebSocket session; returns true when it got its 5 acks. */
static bool session(ws_iter_t *it, const char *token) {
  static const wsc_callbacks_t cb = {ws_open, ws_text, ws_close};
  uv_loop_t loop;
  if (uv_loop_init(&loop) < 0) return false;
  it->eng = wsc_engine_new(&loop, &it->w->o->target, &cb);
  if (!it->eng) {
    uv_loop_close(&loop);
    return false;
  }
  uv_timer_init(&loop, &it->timer);
  it->timer.data = it;
  uv_timer_start(&it->timer, on_timeout, WS_ITER_TIMEOUT_MS, 0);
  char path[1200];
  snprintf(path, sizeof path, "/ws?access_token=%s", token);
  it->start_us = vu_now_us();
  if (wsc_connect(it->eng, path, it) < 0) {
    uv_timer_stop(&it->timer);
    it->closing = true;
    uv_timer_start(&it->timer, on_done, 0, 0);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return it->acked == WS_MSGS;
}

static void check(ws_run_t *w, int ck, bool ok) {
  pthread_mutex_lock(&w->mu);
  if (ok) w->pass[ck]++;
  else w->fail[ck]++;
  pthread_mutex_unlock(&w->mu);
}

static void vu_main(unsigned vu, void *arg) {
  ws_run_t *w = arg;
  char name[48], path[64];
  snprintf(name, sizeof name, "%sw%u", w->o->prefix, vu);
  char *token = setup_user(&w->o->target, name);
  lhist_t *hc = malloc(sizeof *hc), *ha = malloc(sizeof *ha);
  if (!hc || !ha) goto out;
  lhist_init(hc);
  lhist_init(ha);
  snprintf(path, sizeof path, "/channels/%lld/join", w->channel);
  uint64_t iter;
  while (vu_next(&w->ctl, &iter)) {
    ws_iter_t it = {.w = w, .vu = vu, .iter = iter, .connect = hc, .ack = ha};
    check(w, CK_JOIN, token && setup_json(&w->o->target, "POST", path, token, NULL, 200, NULL) == 0);
    bool acked = token && session(&it, token);
    check(w, CK_UPGRADE, it.opened);
    check(w, CK_ACKS, acked);
    pthread_mutex_lock(&w->mu);
    w->iterations++;
    w->sent += it.opened ? WS_MSGS : 0;
    w->acks += it.acked;
    w->errors += it.errors;
    pthread_mutex_unlock(&w->mu);
    if (!token) break; /* nothing more this VU can do */
  }
  pthread_mutex_lock(&w->mu);
  lhist_merge(&w->connect, hc);
  lhist_merge(&w->ack, ha);
  pthread_mutex_unlock(&w->mu);
out:
  free(hc);
  free(ha);
  free(token);
}

int load_run_ws(const load_opts_t *o) {
  if (sodium_init() < 0) return 2;
  json_object_seed(0);
  ws_run_t *w = calloc(1, sizeof *w);
  if (!w) return 2;
  w->o = o;
  lhist_init(&w->connect);
  lhist_init(&w->ack);
  pthread_mutex_init(&w->mu, NULL);
  int rc = 2;
  char name[48], body[96];
  snprintf(name, sizeof name, "%sowner", o->prefix);
  char *owner = setup_user(&o->target, name);
  json_t *ch = NULL;
  snprintf(body, sizeof body, "{\"name\":\"%sk6\"}", o->prefix);
  if (!owner || setup_json(&o->target, "POST", "/channels", owner, body, 201, &ch) < 0) goto out;
  w->channel = (long long)json_integer_value(json_object_get(json_object_get(ch, "channel"), "id"));
  json_decref(ch);
  if (w->channel <= 0) goto out;
  w->ctl.iterations = o->iterations;
  uint64_t t0 = vu_now_us();
  if (o->duration > 0) w->ctl.deadline_us = t0 + (uint64_t)(o->duration * 1e6);
  int vrc = vu_run(o->vus, vu_main, w);
  if (vrc < 0) {
    fprintf(stderr, "storm-load: cannot start the VUs: %s\n", strerror(-vrc));
    goto out;
  }
  double secs = (double)(vu_now_us() - t0) / 1e6;
  uint64_t passes = 0, total = 0;
  json_t *checks = json_object();
  for (int i = 0; i < CK_N; i++) {
    passes += w->pass[i];
    total += w->pass[i] + w->fail[i];
    json_object_set_new(checks, ck_names[i], json_pack("{s:I,s:I}", "passes", (json_int_t)w->pass[i], "fails",
                                                       (json_int_t)w->fail[i]));
  }
  double rate = total ? (double)passes / (double)total : 0;
  double p95 = (double)lhist_percentile(&w->connect, 95) / 1000.0;
  bool p95_ok = w->connect.total && p95 < WS_CONNECT_P95_MS, ck_ok = rate > WS_MIN_CHECKS;
  json_t *j = json_pack("{s:s,s:s,s:i,s:f,s:I,s:I,s:I,s:I,s:I,s:o,s:f,s:o,s:o,s:{s:{s:f,s:f,s:b},s:{s:f,s:f,s:b}},s:[]}",
                        "scenario", "ws", "target", o->target.host, "vus", (int)o->vus, "duration_s", secs,
                        "channel_id", (json_int_t)w->channel, "iterations", (json_int_t)w->iterations, "sent",
                        (json_int_t)w->sent, "acks", (json_int_t)w->acks, "errors", (json_int_t)w->errors, "checks",
                        checks, "checks_rate", rate, "ws_connecting_ms", report_hist(&w->connect), "ack_ms",
                        report_hist(&w->ack), "thresholds", "ws_connecting_p95_ms", "limit", WS_CONNECT_P95_MS, "value",
                        p95, "ok", p95_ok, "checks_rate", "limit", WS_MIN_CHECKS, "value", rate, "ok", ck_ok, "series");
  if (!j) goto out;
  rc = report_output(o, j);
  json_decref(j);
  if (rc == 0 && (!p95_ok || !ck_ok || w->errors)) {
    fprintf(stderr, "storm-load: thresholds violated or errors: connect p95 %.1f ms (limit %.0f), checks %.4f (min %.2f), %" PRIu64 " errors\n",
            p95, WS_CONNECT_P95_MS, rate, WS_MIN_CHECKS, w->errors);
    rc = 1;
  }
out:
  free(owner);
  pthread_mutex_destroy(&w->mu);
  free(w);
  return rc;
}
