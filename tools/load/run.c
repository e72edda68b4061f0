/* run.c — the hold and fanout scenarios (see run.h). One loop, one engine;
 * a 10 ms tick paces connections and sends, a 1 s tick prints progress. */
#include "load/run.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "load/hist.h"
#include "load/report.h"
#include "load/wsc.h"
#include "net/ws_frame.h"

#define SETUP_PASSWORD "storm-load-password-1"
#define READY_TIMEOUT_MS 30000 /* all members connected, or the run fails */
#define DRAIN_TIMEOUT_MS 10000 /* after the last send, for late deliveries */
#define MAX_CODES 16

enum phase { PH_CONNECT, PH_RUN, PH_DRAIN, PH_CLOSE };

typedef struct run run_t;
typedef struct {
  run_t *run;
  wsc_client_t *c;
  uint64_t start_us;
  bool open, hello, sender, gone;
} peer_t;

struct run {
  const load_opts_t *o;
  bool fanout;
  uv_loop_t loop;
  uv_timer_t tick, progress;
  wsc_engine_t *eng;
  peer_t *peers; /* fanout: [0] is the sender */
  unsigned npeers, started, opened, helloed, failed, dropped;
  long long channel;
  char **tokens;
  enum phase phase;
  uint64_t t0_us, phase_us, run_start_us, run_end_us;
  uint64_t sent, acks, deliveries, errors, last_deliveries;
  uint64_t *send_us; /* fanout: send time per message index */
  uint64_t max_msgs;
  lhist_t connect, hello, ack, delivery;
  struct { int code; unsigned n; } codes[MAX_CODES];
  unsigned ncodes;
};

static uint64_t now_us(void) { return uv_hrtime() / 1000u; }

static void count_code(run_t *r, int code) {
  for (unsigned i = 0; i < r->ncodes; i++)
    if (r->codes[i].code == code) { r->codes[i].n++; return; }
  if (r->ncodes < MAX_CODES) {
    r->codes[r->ncodes].code = code;
    r->codes[r->ncodes++].n = 1;
  }
}

/* ---- setup over HTTP ---- */

static int http_json(const load_opts_t *o, const char *method, const char *path, const char *token,
                     const char *body, int want, json_t **out) {
  buf_t b = BUF_INIT;
  int status = 0;
  int rc = target_http(&o->target, method, path, token, body, &status, &b);
  if (rc < 0) {
    fprintf(stderr, "storm-load: %s %s: %s\n", method, path, strerror(-rc));
    buf_free(&b);
    return -1;
  }
  if (status != want) {
    fprintf(stderr, "storm-load: %s %s: HTTP %d %.300s\n", method, path, status, b.data ? b.data : "");
    buf_free(&b);
    return -1;
  }
  json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
  buf_free(&b);
  if (!j) {
    fprintf(stderr, "storm-load: %s %s: unparsable JSON\n", method, path);
    return -1;
  }
  if (out) *out = j;
  else json_decref(j);
  return 0;
}

/* Registers NAME and logs in; returns a malloc'd access token or NULL. */
static char *make_user(const load_opts_t *o, const char *name) {
  char body[256];
  snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}", name, SETUP_PASSWORD);
  json_t *j = NULL;
  if (http_json(o, "POST", "/auth/register", NULL, body, 201, NULL) < 0) return NULL;
  if (http_json(o, "POST", "/auth/login", NULL, body, 200, &j) < 0) return NULL;
  const char *t = json_string_value(json_object_get(j, "access_token"));
  char *tok = t ? strdup(t) : NULL;
  json_decref(j);
  return tok;
}

/* ---- client callbacks ---- */

static void on_open(wsc_client_t *c, void *user) {
  peer_t *p = user;
  p->c = c;
  p->open = true;
  p->run->opened++;
  lhist_record(&p->run->connect, now_us() - p->start_us);
}

static uint64_t num_after(const char *d, size_t n, const char *key) {
  const char *k = memmem(d, n, key, strlen(key));
  return k ? strtoull(k + strlen(key), NULL, 10) : UINT64_MAX;
}

static void on_text(wsc_client_t *c, void *user, const char *d, size_t n) {
  peer_t *p = user;
  run_t *r = p->run;
  uint64_t now = now_us();
  if (!p->hello) {
    if (memmem(d, n, "\"op\":\"hello\"", 12)) {
      p->hello = true;
      r->helloed++;
      lhist_record(&r->hello, now - p->start_us);
    }
    return;
  }
  if (memmem(d, n, "\"op\":\"error\"", 12)) {
    r->errors++;
    if (r->errors <= 5) fprintf(stderr, "storm-load: server error: %.*s\n", (int)(n > 300 ? 300 : n), d);
    return;
  }
  if (!r->fanout) return;
  if (p->sender) {
    if (memmem(d, n, "\"op\":\"ack\"", 10)) {
      uint64_t ref = num_after(d, n, "\"ref\":");
      if (ref < r->sent) lhist_record(&r->ack, now - r->send_us[ref]);
      r->acks++;
    }
    return;
  }
  if (memmem(d, n, "\"op\":\"message\"", 14)) {
    uint64_t i = num_after(d, n, "\"body\":\"i=");
    if (i < r->sent) {
      lhist_record(&r->delivery, now - r->send_us[i]);
      r->deliveries++;
    }
  }
}

static void on_close(wsc_client_t *c, void *user, int code, int err) {
  peer_t *p = user;
  run_t *r = p->run;
  p->gone = true;
  p->c = NULL;
  if (r->phase == PH_CLOSE) return;
  count_code(r, err == WSC_ERR_HANDSHAKE ? -code : code); /* negative: HTTP status of a refused upgrade */
  if (!p->hello) r->failed++;
  else r->dropped++;
  if (r->failed + r->dropped <= 5)
    fprintf(stderr, "storm-load: connection closed: code %d (%s)\n", code,
            err == WSC_ERR_HANDSHAKE ? "upgrade refused, code is the HTTP status"
            : err <= -1001 && err >= -1014 ? ws_error_message(err)
            : err ? uv_strerror(err) : "closed by the server");
}

/* ---- pacing ---- */

static void start_peer(run_t *r, unsigned i) {
  peer_t *p = &r->peers[i];
  p->run = r;
  p->start_us = now_us();
  const char *tok = r->tokens[r->fanout ? i : 0];
  int rc = wsc_connect(r->eng, tok, p);
  r->started++;
  if (rc < 0) {
    p->gone = true;
    r->failed++;
    count_code(r, WS_CLOSE_ABNORMAL);
  }
}

static void send_one(run_t *r) {
  peer_t *s = &r->peers[0];
  char m[256];
  uint64_t i = r->sent;
  int n = snprintf(m, sizeof m, "{\"op\":\"send\",\"channel_id\":%lld,\"body\":\"i=%" PRIu64
                   " storm-load\",\"nonce\":\"%s%" PRIu64 "\",\"ref\":%" PRIu64 "}",
                   r->channel, i, r->o->prefix, i, i);
  r->send_us[i] = now_us();
  r->sent++;
  if (s->gone || !s->c || wsc_send_text(s->c, m, (size_t)n) < 0) r->errors++;
}

static void begin_close(run_t *r) {
  r->phase = PH_CLOSE;
  uv_timer_stop(&r->tick);
  uv_timer_stop(&r->progress);
  uv_close((uv_handle_t *)&r->tick, NULL);
  uv_close((uv_handle_t *)&r->progress, NULL);
  for (unsigned i = 0; i < r->npeers; i++)
    if (!r->peers[i].gone && r->peers[i].c) wsc_close(r->peers[i].c, 1000);
  wsc_engine_free(r->eng);
}

static void on_tick(uv_timer_t *t) {
  run_t *r = t->data;
  uint64_t now = now_us();
  double since = (double)(now - r->phase_us) / 1e6;
  if (r->phase == PH_CONNECT) {
    double crate = r->fanout ? r->o->conn_rate : r->o->rate;
    uint64_t due = (uint64_t)(since * crate) + 1;
    while (r->started < r->npeers && r->started < due) start_peer(r, r->started);
    bool done = r->started == r->npeers && r->helloed + r->failed + r->dropped >= r->npeers;
    if (r->fanout && (r->failed || r->dropped)) done = true;
    if (done || (r->fanout && since * 1000 > READY_TIMEOUT_MS + r->npeers * 1000.0 / crate)) {
      if (r->fanout && r->helloed < r->npeers) {
        fprintf(stderr, "storm-load: only %u of %u connections ready; stopping\n", r->helloed, r->npeers);
        r->errors++;
        begin_close(r);
        return;
      }
      r->phase = PH_RUN;
      r->phase_us = r->run_start_us = now;
    }
    return;
  }
  if (r->phase == PH_RUN) {
    if (r->fanout) {
      uint64_t due = (uint64_t)(since * r->o->rate) + 1;
      if (due > r->max_msgs) due = r->max_msgs;
      while (r->sent < due) send_one(r);
    }
    if (since >= r->o->duration) {
      r->phase = PH_DRAIN;
      r->phase_us = r->run_end_us = now;
    }
    return;
  }
  if (r->phase == PH_DRAIN) {
    uint64_t members = r->npeers - 1;
    bool complete = !r->fanout || (r->acks >= r->sent && r->deliveries >= r->sent * members);
    if (complete || since * 1000 > DRAIN_TIMEOUT_MS) begin_close(r);
  }
}

static void on_progress(uv_timer_t *t) {
  run_t *r = t->data;
  double el = (double)(now_us() - r->t0_us) / 1e6;
  fprintf(stderr, "[%6.1fs] %-7s conns %u/%u ready %u failed %u dropped %u", el,
          r->phase == PH_CONNECT ? "connect" : r->phase == PH_RUN ? "run" : "drain", r->opened,
          r->npeers, r->helloed, r->failed, r->dropped);
  if (r->fanout)
    fprintf(stderr, " | sent %" PRIu64 " acks %" PRIu64 " deliveries %" PRIu64 " (%" PRIu64 "/s) errors %" PRIu64,
            r->sent, r->acks, r->deliveries, r->deliveries - r->last_deliveries, r->errors);
  fputc('\n', stderr);
  r->last_deliveries = r->deliveries;
}

/* ---- report ---- */

static int finish_report(run_t *r) {
  double secs = r->run_end_us > r->run_start_us ? (double)(r->run_end_us - r->run_start_us) / 1e6 : 0;
  uint64_t members = r->fanout ? r->npeers - 1 : 0;
  json_t *codes = json_object();
  for (unsigned i = 0; i < r->ncodes; i++) {
    char k[16];
    snprintf(k, sizeof k, "%d", r->codes[i].code);
    json_object_set_new(codes, k, json_integer(r->codes[i].n));
  }
  json_t *j = json_pack("{s:s,s:s,s:I,s:f,s:f,s:I,s:I,s:I,s:I,s:o,s:o,s:o}", "scenario",
                        r->fanout ? "fanout" : "hold", "target", r->o->target.host, "connections",
                        (json_int_t)r->npeers, "rate", r->o->rate, "duration_s", secs, "connected",
                        (json_int_t)r->helloed, "failed", (json_int_t)r->failed, "dropped",
                        (json_int_t)r->dropped, "errors", (json_int_t)r->errors, "close_codes", codes,
                        "connect_ms", report_hist(&r->connect), "hello_ms", report_hist(&r->hello));
  if (!j) return 2;
  if (r->fanout) {
    uint64_t expected = r->sent * members;
    double dsecs = (double)(now_us() - r->run_start_us) / 1e6;
    json_object_set_new(j, "members", json_integer((json_int_t)members));
    json_object_set_new(j, "channel_id", json_integer(r->channel));
    json_object_set_new(j, "sent", json_integer((json_int_t)r->sent));
    json_object_set_new(j, "acks", json_integer((json_int_t)r->acks));
    json_object_set_new(j, "deliveries_expected", json_integer((json_int_t)expected));
    json_object_set_new(j, "deliveries", json_integer((json_int_t)r->deliveries));
    json_object_set_new(j, "deliveries_per_s", json_real(dsecs > 0 ? (double)r->deliveries / dsecs : 0));
    json_object_set_new(j, "ack_ms", report_hist(&r->ack));
    json_object_set_new(j, "delivery_ms", report_hist(&r->delivery));
  }
  char *s = json_dumps(j, JSON_INDENT(2));
  if (s) printf("%s\n", s);
  free(s);
  int rc = 0;
  if (r->o->report && (rc = report_write(r->o->report, j)) < 0)
    fprintf(stderr, "storm-load: cannot write %s: %s\n", r->o->report, strerror(-rc));
  json_decref(j);
  if (rc < 0) return 2;
  bool bad = r->errors || r->failed || r->dropped ||
             (r->fanout && (r->acks != r->sent || r->deliveries != r->sent * members));
  return bad ? 1 : 0;
}

static int run(run_t *r) {
  static const wsc_callbacks_t cb = {on_open, on_text, on_close};
  uv_loop_init(&r->loop);
  r->eng = wsc_engine_new(&r->loop, &r->o->target, &cb);
  if (!r->eng) {
    uv_loop_close(&r->loop);
    return 2;
  }
  lhist_init(&r->connect);
  lhist_init(&r->hello);
  lhist_init(&r->ack);
  lhist_init(&r->delivery);
  r->t0_us = r->phase_us = now_us();
  uv_timer_init(&r->loop, &r->tick);
  uv_timer_init(&r->loop, &r->progress);
  r->tick.data = r->progress.data = r;
  uv_timer_start(&r->tick, on_tick, 0, 10);
  uv_timer_start(&r->progress, on_progress, 1000, 1000);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  uv_loop_close(&r->loop);
  if (!r->run_end_us) r->run_end_us = now_us();
  return finish_report(r);
}

static void free_tokens(run_t *r, unsigned n) {
  for (unsigned i = 0; i < n; i++) free(r->tokens[i]);
  free(r->tokens);
}

int load_run_hold(const load_opts_t *o) {
  run_t r = {.o = o, .npeers = o->conns};
  r.tokens = calloc(1, sizeof *r.tokens);
  r.peers = calloc(o->conns, sizeof *r.peers);
  if (!r.tokens || !r.peers) return 2;
  char name[40];
  snprintf(name, sizeof name, "%sh", o->prefix);
  r.tokens[0] = o->token ? strdup(o->token) : make_user(o, name);
  int rc = 2;
  if (r.tokens[0]) rc = run(&r);
  free_tokens(&r, 1);
  free(r.peers);
  return rc;
}

int load_run_fanout(const load_opts_t *o) {
  run_t r = {.o = o, .fanout = true, .npeers = o->conns + 1};
  r.max_msgs = (uint64_t)(o->rate * o->duration + 0.5); /* exactly rate x duration */
  r.tokens = calloc(r.npeers, sizeof *r.tokens);
  r.peers = calloc(r.npeers, sizeof *r.peers);
  r.send_us = calloc(r.max_msgs + 1, sizeof *r.send_us);
  int rc = 2;
  unsigned made = 0;
  if (!r.tokens || !r.peers || !r.send_us) goto out;
  r.peers[0].sender = true;
  char name[40], path[64], body[128];
  fprintf(stderr, "storm-load: creating %u users (prefix %s)...\n", r.npeers, o->prefix);
  for (; made < r.npeers; made++) {
    snprintf(name, sizeof name, made ? "%sm%u" : "%ss", o->prefix, made);
    if (!(r.tokens[made] = make_user(o, name))) goto out;
  }
  json_t *ch = NULL;
  snprintf(body, sizeof body, "{\"name\":\"%sroom\"}", o->prefix);
  if (http_json(o, "POST", "/channels", r.tokens[0], body, 201, &ch) < 0) goto out;
  r.channel = (long long)json_integer_value(json_object_get(json_object_get(ch, "channel"), "id"));
  json_decref(ch);
  if (r.channel <= 0) {
    fprintf(stderr, "storm-load: POST /channels: no channel id\n");
    goto out;
  }
  snprintf(path, sizeof path, "/channels/%lld/join", r.channel);
  for (unsigned i = 1; i < r.npeers; i++)
    if (http_json(o, "POST", path, r.tokens[i], NULL, 200, NULL) < 0) goto out;
  rc = run(&r);
out:
  free_tokens(&r, made);
  free(r.peers);
  free(r.send_us);
  return rc;
}
