/* auth.c — scenario `auth`, the mirror of tests/k6/auth.js: each VU
 * iteration registers a fresh user, logs in, refreshes and logs out (four
 * requests), then thinks for --think-ms (k6's sleep(1): 1000 by default).
 * Thresholds as in the k6 script: request p95 < 500 ms and failed
 * requests < 1%; the report says whether each held, exit 1 if not. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/hist.h"
#include "load/report.h"
#include "load/run.h"
#include "load/vu.h"

#define AUTH_P95_MS 500.0
#define AUTH_MAX_ERROR_RATE 0.01

enum { EP_REGISTER, EP_LOGIN, EP_REFRESH, EP_LOGOUT, EP_N };
static const char *const ep_names[EP_N] = {"register", "login", "refresh", "logout"};

typedef struct {
  const load_opts_t *o;
  vu_ctl_t ctl;
  pthread_mutex_t mu;
  lhist_t all, ep[EP_N];
  uint64_t requests, failed, iterations, ok_iterations;
  uint64_t ep_failed[EP_N];
} auth_run_t;

/* One request; returns the parsed body on the wanted status (or an empty
 * object for a body-less answer), NULL on failure. Records it either way. */
static json_t *request(auth_run_t *a, int ep, const char *path, const char *body, int want) {
  buf_t b = BUF_INIT;
  int status = 0;
  uint64_t t = vu_now_us();
  int rc = target_http(&a->o->target, "POST", path, NULL, body, &status, &b);
  uint64_t us = vu_now_us() - t;
  json_t *j = NULL;
  bool ok = rc == 0 && status == want;
  if (ok) j = b.len ? json_loadb(b.data, b.len, 0, NULL) : json_object();
  if (ok && !j) ok = false;
  buf_free(&b);
  pthread_mutex_lock(&a->mu);
  lhist_record(&a->all, us);
  lhist_record(&a->ep[ep], us);
  a->requests++;
  if (!ok) {
    a->failed++;
    if (++a->ep_failed[ep] <= 3)
      fprintf(stderr, "storm-load: %s: %s\n", path, rc < 0 ? strerror(-rc) : "unexpected status");
  }
  pthread_mutex_unlock(&a->mu);
  return j;
}

static void token_body(char *out, size_t cap, json_t *j) {
  const char *t = json_string_value(json_object_get(j, "refresh_token"));
  snprintf(out, cap, "{\"refresh_token\":\"%s\"}", t ? t : "");
}

static void vu_main(unsigned vu, void *arg) {
  auth_run_t *a = arg;
  uint64_t iter;
  while (vu_next(&a->ctl, &iter)) {
    char cred[160], tok[1200];
    snprintf(cred, sizeof cred, "{\"username\":\"%sa%u_%llu\",\"password\":\"k6-password-123\"}", a->o->prefix, vu,
             (unsigned long long)iter);
    bool ok = false;
    json_t *r = request(a, EP_REGISTER, "/auth/register", cred, 201);
    json_t *l = request(a, EP_LOGIN, "/auth/login", cred, 200);
    if (l) {
      token_body(tok, sizeof tok, l);
      json_t *f = request(a, EP_REFRESH, "/auth/refresh", tok, 200);
      if (f) {
        token_body(tok, sizeof tok, f);
        json_t *o = request(a, EP_LOGOUT, "/auth/logout", tok, 204);
        ok = r && o;
        json_decref(o);
      }
      json_decref(f);
    }
    json_decref(r);
    json_decref(l);
    pthread_mutex_lock(&a->mu);
    a->iterations++;
    a->ok_iterations += ok;
    pthread_mutex_unlock(&a->mu);
    if (a->o->think_ms) vu_sleep_ms(&a->ctl, a->o->think_ms);
  }
}

int load_run_auth(const load_opts_t *o) {
  auth_run_t *a = calloc(1, sizeof *a);
  if (!a) return 2;
  a->o = o;
  a->ctl.iterations = o->iterations;
  uint64_t t0 = vu_now_us();
  if (o->duration > 0) a->ctl.deadline_us = t0 + (uint64_t)(o->duration * 1e6);
  pthread_mutex_init(&a->mu, NULL);
  lhist_init(&a->all);
  for (int i = 0; i < EP_N; i++) lhist_init(&a->ep[i]);
  json_object_seed(0); /* before threads: jansson seeds its hash once */
  int rc = vu_run(o->vus, vu_main, a);
  double secs = (double)(vu_now_us() - t0) / 1e6;
  if (rc < 0) {
    fprintf(stderr, "storm-load: cannot start the VUs: %s\n", strerror(-rc));
    free(a);
    return 2;
  }
  double p95 = (double)lhist_percentile(&a->all, 95) / 1000.0;
  double err_rate = a->requests ? (double)a->failed / (double)a->requests : 1.0;
  bool p95_ok = a->requests && p95 < AUTH_P95_MS, err_ok = err_rate < AUTH_MAX_ERROR_RATE;
  json_t *eps = json_object();
  for (int i = 0; i < EP_N; i++) {
    json_t *h = report_hist(&a->ep[i]);
    json_object_set_new(h, "failed", json_integer((json_int_t)a->ep_failed[i]));
    json_object_set_new(eps, ep_names[i], h);
  }
  json_t *j = json_pack("{s:s,s:s,s:i,s:f,s:I,s:I,s:I,s:I,s:f,s:f,s:o,s:o,s:{s:{s:f,s:f,s:b},s:{s:f,s:f,s:b}},s:[]}",
                        "scenario", "auth", "target", o->target.host, "vus", (int)o->vus, "duration_s", secs,
                        "iterations", (json_int_t)a->iterations, "iterations_ok", (json_int_t)a->ok_iterations,
                        "requests", (json_int_t)a->requests, "failed_requests", (json_int_t)a->failed, "error_rate",
                        err_rate, "requests_per_s", secs > 0 ? (double)a->requests / secs : 0.0, "http_req_ms",
                        report_hist(&a->all), "endpoints", eps, "thresholds", "http_req_p95_ms", "limit", AUTH_P95_MS,
                        "value", p95, "ok", p95_ok, "error_rate", "limit", AUTH_MAX_ERROR_RATE, "value", err_rate, "ok",
                        err_ok, "series");
  pthread_mutex_destroy(&a->mu);
  free(a);
  if (!j) return 2;
  int orc = report_output(o, j);
  json_decref(j);
  if (orc) return orc;
  if (!p95_ok || !err_ok)
    fprintf(stderr, "storm-load: thresholds violated: p95 %.1f ms (limit %.0f), error rate %.4f (limit %.2f)\n", p95,
            AUTH_P95_MS, err_rate, AUTH_MAX_ERROR_RATE);
  return p95_ok && err_ok ? 0 : 1;
}
