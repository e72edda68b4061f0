/* report.c — see report.h. Latencies are recorded in µs and reported in
 * ms because that is the unit people compare. */
#include "load/report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double ms(uint64_t us) { return (double)us / 1000.0; }

json_t *report_hist(const lhist_t *h) {
  return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)h->total, "min",
                   h->total ? ms(h->min) : 0.0, "p50", ms(lhist_percentile(h, 50)), "p90",
                   ms(lhist_percentile(h, 90)), "p95", ms(lhist_percentile(h, 95)), "p99",
                   ms(lhist_percentile(h, 99)), "p999", ms(lhist_percentile(h, 99.9)), "max", ms(h->max), "mean",
                   lhist_mean(h) / 1000.0);
}

static uint64_t members_of(const load_shape_t *sh) { return sh->rooms ? sh->room_size - 1 : 0; }

static json_t *codes_json(const load_code_t *c, uint32_t n, uint32_t other) {
  json_t *codes = json_object();
  for (unsigned i = 0; i < n; i++) {
    char k[16];
    snprintf(k, sizeof k, "%d", c[i].code);
    json_object_set_new(codes, k, json_integer(c[i].n));
  }
  if (other) json_object_set_new(codes, "other", json_integer(other));
  return codes;
}

static void set_int(json_t *j, const char *k, uint64_t v) { json_object_set_new(j, k, json_integer((json_int_t)v)); }
static void set_real(json_t *j, const char *k, double v) { json_object_set_new(j, k, json_real(v)); }

static json_t *series_json(const series_t *s) {
  json_t *a = json_array();
  for (unsigned i = 0; s && i < s->n; i++) {
    const series_pt_t *p = &s->pts[i];
    json_array_append_new(a, json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "t", (json_int_t)i, "conns",
                                       (json_int_t)p->open, "sends", (json_int_t)p->sends, "acks", (json_int_t)p->acks,
                                       "deliveries", (json_int_t)p->deliveries, "errors", (json_int_t)p->errors,
                                       "delivery_p50_ms", ms(p->p50_us), "delivery_p99_ms", ms(p->p99_us)));
  }
  return a;
}

static json_t *steps_json(const report_in_t *in, json_t *j) {
  const load_shape_t *sh = in->sh;
  const load_result_t *r = in->res;
  uint64_t m = members_of(sh);
  json_t *a = json_array();
  int best = -1;
  for (unsigned k = 0; k < sh->plan.n && k < r->nsteps; k++) {
    const plan_step_t *ps = &sh->plan.s[k];
    const load_step_t *s = &r->steps[k];
    uint64_t expected = s->sent * m;
    uint64_t lost = expected > s->deliveries ? expected - s->deliveries : 0;
    double p99 = ms(lhist_percentile(&s->delivery, 99));
    bool ok = s->sent > 0 && !lost && s->acks >= s->sent && p99 <= in->o->p99_target_ms;
    if (ok) best = (int)k;
    double secs = ps->secs > 0 ? ps->secs : 1;
    json_t *e = json_pack("{s:I,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:o,s:b}", "step", (json_int_t)k,
                          "rate_per_room", ps->rate, "duration_s", ps->secs, "sent", (json_int_t)s->sent, "acks",
                          (json_int_t)s->acks, "deliveries_expected", (json_int_t)expected, "deliveries",
                          (json_int_t)s->deliveries, "lost", (json_int_t)lost, "offered_deliveries_per_s",
                          (double)expected / secs, "delivered_deliveries_per_s", (double)s->deliveries / secs,
                          "delivery_ms", report_hist(&s->delivery), "ok", ok);
    json_array_append_new(a, e);
  }
  json_object_set_new(j, "p99_target_ms", json_real(in->o->p99_target_ms));
  if (best < 0) {
    json_object_set_new(j, "best_step", json_null());
  } else {
    const plan_step_t *ps = &sh->plan.s[best];
    double secs = ps->secs > 0 ? ps->secs : 1;
    json_object_set_new(j, "best_step",
                        json_pack("{s:i,s:f,s:f,s:f}", "step", best, "rate_per_room", ps->rate,
                                  "delivered_deliveries_per_s", (double)r->steps[best].deliveries / secs,
                                  "delivery_p99_ms", ms(lhist_percentile(&r->steps[best].delivery, 99))));
  }
  return a;
}

static void server_json(const report_in_t *in, json_t *j) {
  const report_server_t *s = in->srv;
  if (!s || !s->npids) return;
  json_t *pids = json_array();
  double cpu = 0;
  uint64_t base = 0, start = 0, end = 0;
  for (unsigned i = 0; i < s->npids; i++) {
    json_array_append_new(pids, json_integer(in->o->server_pids[i]));
    cpu += s->end[i].cpu_s - s->start[i].cpu_s;
    base += s->base[i].rss_kb;
    start += s->start[i].rss_kb;
    end += s->end[i].rss_kb;
  }
  json_object_set_new(j, "server_pids", pids);
  json_object_set_new(j, "server_stats_ok", json_boolean(s->ok));
  if (!s->ok) return;
  set_real(j, "server_cpu_s", cpu);
  if (in->res->n.deliveries)
    set_real(j, "server_cpu_per_million_deliveries_s", cpu / ((double)in->res->n.deliveries / 1e6));
  set_int(j, "server_rss_kb_baseline", base);
  set_int(j, "server_rss_kb_start", start);
  set_int(j, "server_rss_kb_end", end);
  if (!in->sh->rooms && in->sh->conns)
    set_real(j, "server_rss_bytes_per_conn", ((double)end - (double)base) * 1024.0 / in->sh->conns);
}

/* sent, acks, deliveries and their latencies: chat and storm-day. */
static void durable_json(const report_in_t *in, json_t *j) {
  const load_result_t *r = in->res;
  set_int(j, "sent", r->n.sent);
  set_int(j, "acks", r->n.acks);
  set_int(j, "deliveries_expected", r->n.expected);
  set_int(j, "deliveries", r->n.deliveries);
  double dsecs = r->last_delivery_us > r->first_send_us ? (double)(r->last_delivery_us - r->first_send_us) / 1e6 : 0;
  set_real(j, "deliveries_per_s", dsecs > 0 ? (double)r->n.deliveries / dsecs : 0);
  json_object_set_new(j, "ack_ms", report_hist(&r->ack));
  json_object_set_new(j, "delivery_ms", report_hist(&r->delivery));
}

static void chat_json(const report_in_t *in, json_t *j) {
  const load_opts_t *o = in->o;
  const chat_layout_t *l = in->sh->chat;
  const load_result_t *r = in->res;
  set_int(j, "users", l->users);
  set_int(j, "channels", l->nchannels);
  set_int(j, "dms", l->nconvs - l->nchannels);
  json_t *cls = json_array();
  for (unsigned k = 0; k < o->nclasses; k++)
    json_array_append_new(cls, json_pack("{s:i,s:i}", "count", (int)o->classes[k].count, "size",
                                         (int)(o->classes[k].all ? l->users : o->classes[k].size)));
  json_object_set_new(j, "channel_classes", cls);
  set_real(j, "rate_per_user", o->rate);
  json_t *w = json_object();
  for (int a = 0; a < CHAT_NACTIONS; a++) json_object_set_new(w, chat_action_names[a], json_integer(o->weights.w[a]));
  json_object_set_new(j, "weights", w);
  json_object_set_new(j, "actions", json_pack("{s:I,s:I,s:I,s:I}", "send", (json_int_t)r->n.sent, "typing",
                                              (json_int_t)r->n.typing, "history", (json_int_t)r->n.history, "read",
                                              (json_int_t)r->n.reads));
  durable_json(in, j);
  set_int(j, "typing_sent", r->n.typing);
  set_int(j, "typing_received", r->n.typing_rx);
  set_int(j, "history_sent", r->n.history);
  set_int(j, "history_answered", r->n.history_rx);
  json_object_set_new(j, "history_ms", report_hist(&r->history));
  set_int(j, "read_sent", r->n.reads);
  set_int(j, "read_answered", r->n.reads_rx);
  json_object_set_new(j, "read_ms", report_hist(&r->read));
}

static void day_json(const report_in_t *in, json_t *j) {
  const load_shape_t *sh = in->sh;
  const load_result_t *r = in->res;
  const day_plan_t *dp = sh->day;
  uint64_t m = sh->room_size - 1;
  if (in->o->plan_path) json_object_set_new(j, "plan", json_string(in->o->plan_path));
  set_int(j, "rooms", sh->rooms);
  set_int(j, "room_size", sh->room_size);
  set_int(j, "room_users", sh->room_users);
  set_int(j, "devices", sh->devices);
  set_int(j, "accounts", (uint64_t)sh->rooms * sh->room_users);
  durable_json(in, j);
  set_int(j, "skipped", r->n.skipped);
  json_t *a = json_array();
  for (unsigned k = 0; k < dp->n && k < r->nsteps; k++) {
    const day_phase_t *ph = &dp->ph[k];
    const load_step_t *s = &r->steps[k];
    uint64_t expected = s->acks * m, lost = expected > s->deliveries ? expected - s->deliveries : 0;
    json_t *e = json_pack("{s:i,s:s,s:f,s:f,s:f,s:i,s:f,s:I,s:I,s:I,s:I,s:I,s:I}", "phase", (int)k, "name", ph->name,
                          "start_s", ph->start, "duration_s", ph->secs, "ramp_s", ph->ramp_s, "target_conns",
                          (int)ph->conns, "msgs_per_s", ph->rate, "conns_reached", (json_int_t)s->conns_end,
                          "conns_peak", (json_int_t)s->conns_peak, "started", (json_int_t)s->started, "opened",
                          (json_int_t)s->opened, "failed", (json_int_t)s->failed, "dropped", (json_int_t)s->dropped);
    set_int(e, "planned", sh->plan.s[k].msgs);
    set_int(e, "sent", s->sent);
    set_int(e, "skipped", s->skipped);
    set_int(e, "acks", s->acks);
    set_int(e, "deliveries_expected", expected);
    set_int(e, "deliveries", s->deliveries);
    set_int(e, "lost", lost);
    set_real(e, "deliveries_per_s", (double)s->deliveries / ph->secs);
    set_int(e, "errors", s->errors);
    json_object_set_new(e, "connect_ms", report_hist(&s->connect));
    json_object_set_new(e, "delivery_ms", report_hist(&s->delivery));
    json_object_set_new(e, "close_codes", codes_json(s->codes, s->ncodes, s->codes_other));
    json_array_append_new(a, e);
  }
  json_object_set_new(j, "phases", a);
}

json_t *report_build(const report_in_t *in) {
  const load_opts_t *o = in->o;
  const load_shape_t *sh = in->sh;
  const load_result_t *r = in->res;
  json_t *codes = codes_json(r->codes, r->ncodes, r->codes_other);
  json_t *j = json_pack("{s:s,s:s,s:s,s:b,s:i,s:I,s:f,s:f,s:I,s:I,s:I,s:I,s:o,s:o,s:o}", "scenario", o->scenario,
                        "target", o->target.host, "mode", o->mode == LOAD_BROADCAST ? "broadcast" : "durable", "peer",
                        o->peer, "procs", (int)(o->procs ? o->procs : 1), "connections",
                        (json_int_t)(sh->kind == LOAD_KIND_DAY ? sh->day->max_conns : sh->conns),
                        "rate", o->rate, "duration_s", in->run_s, "connected", (json_int_t)r->n.helloed, "failed",
                        (json_int_t)r->n.failed, "dropped", (json_int_t)r->n.dropped, "errors", (json_int_t)r->n.errors,
                        "close_codes", codes, "connect_ms", report_hist(&r->connect), "hello_ms",
                        report_hist(&r->hello));
  if (!j) return NULL;
  if (sh->kind == LOAD_KIND_CHAT) chat_json(in, j);
  else if (sh->kind == LOAD_KIND_DAY) day_json(in, j);
  else if (sh->rooms) {
    uint64_t m = members_of(sh);
    if (sh->rooms == 1 && !strcmp(o->scenario, "fanout")) {
      set_int(j, "members", m);
      json_object_set_new(j, "channel_id", json_integer(sh->channels[0]));
    } else {
      set_int(j, "rooms", sh->rooms);
      set_int(j, "room_size", sh->room_size);
    }
    set_int(j, "sent", r->n.sent);
    set_int(j, "acks", r->n.acks);
    set_int(j, "deliveries_expected", r->n.sent * m);
    set_int(j, "deliveries", r->n.deliveries);
    double dsecs = r->last_delivery_us > r->first_send_us ? (double)(r->last_delivery_us - r->first_send_us) / 1e6 : 0;
    set_real(j, "deliveries_per_s", dsecs > 0 ? (double)r->n.deliveries / dsecs : 0);
    json_object_set_new(j, "ack_ms", report_hist(&r->ack));
    json_object_set_new(j, "delivery_ms", report_hist(&r->delivery));
    if (!strcmp(o->scenario, "rooms")) json_object_set_new(j, "steps", steps_json(in, j));
  }
  server_json(in, j);
  json_object_set_new(j, "series", series_json(in->series));
  return j;
}

int report_verdict(const report_in_t *in) {
  const load_result_t *r = in->res;
  const load_shape_t *sh = in->sh;
  if (r->n.errors || r->n.failed || r->n.dropped || in->not_ready) return 1;
  if (sh->kind != LOAD_KIND_ROOMS) /* every ack's deliveries, every request answered */
    return r->n.acks != r->n.sent || r->n.deliveries != r->n.expected || r->n.history_rx != r->n.history ||
           r->n.reads_rx != r->n.reads;
  if (sh->rooms && !in->o->ramp && (r->n.acks != r->n.sent || r->n.deliveries != r->n.sent * members_of(sh)))
    return 1;
  return 0;
}

int report_write(const char *path, json_t *report) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -ENAMETOOLONG;
  if (json_dump_file(report, tmp, JSON_INDENT(2)) < 0) return -EIO;
  if (rename(tmp, path) < 0) return -errno;
  return 0;
}

int report_output(const load_opts_t *o, json_t *j) {
  char *s = json_dumps(j, JSON_INDENT(2));
  if (s) printf("%s\n", s);
  free(s);
  fflush(stdout);
  int rc = 0;
  if (o->report && (rc = report_write(o->report, j)) < 0) {
    fprintf(stderr, "storm-load: cannot write %s: %s\n", o->report, strerror(-rc));
    return 2;
  }
  if (o->html && (rc = report_write_html(o->html, j)) < 0) {
    fprintf(stderr, "storm-load: cannot write %s: %s\n", o->html, strerror(-rc));
    return 2;
  }
  return 0;
}

int report_emit(const report_in_t *in) {
  json_t *j = report_build(in);
  if (!j) return 2;
  int rc = report_output(in->o, j);
  json_decref(j);
  return rc ? rc : report_verdict(in);
}
