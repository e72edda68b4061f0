/* Unit tests for storm-load's report writer (tools/load/report.c, html.c):
 * the JSON fields and values from a known histogram and series, the
 * verdict, and an HTML page that shows the numbers and fetches nothing. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "load/report.h"

static load_opts_t opts;
static load_shape_t shape;
static long long channels[2] = {11, 12};
static load_result_t *res;
static series_t series;
static report_server_t srv;

static void near(double got, double want) {
  if (fabs(got - want) > 1e-9) fail_msg("got %.9f, want %.9f", got, want);
}

static int setup(void **state) {
  memset(&opts, 0, sizeof opts);
  opts.scenario = "rooms";
  target_parse("http://127.0.0.1:8080", &opts.target, NULL);
  opts.p99_target_ms = 50;
  opts.mode = LOAD_BROADCAST;
  opts.procs = 2;
  opts.npids = 1;
  opts.server_pids[0] = 4242;
  opts.ramp = true;
  memset(&shape, 0, sizeof shape);
  shape.conns = 20;
  shape.rooms = 2;
  shape.room_size = 10;
  shape.channels = channels;
  plan_ramp(&shape.plan, 10, 10, 20, 2);
  res = load_result_new(2);
  res->n.helloed = 20;
  /* Step 0: 40 sent, all 360 deliveries at 1..360 µs... scaled to ms below. */
  res->steps[0].sent = 40;
  res->steps[0].acks = 40;
  res->steps[0].deliveries = 360;
  for (uint64_t v = 1; v <= 360; v++) lhist_record(&res->steps[0].delivery, v * 100); /* 0.1 .. 36 ms */
  /* Step 1: 80 sent, 2 deliveries lost. */
  res->steps[1].sent = 80;
  res->steps[1].acks = 80;
  res->steps[1].deliveries = 718;
  for (uint64_t v = 0; v < 718; v++) lhist_record(&res->steps[1].delivery, 2000);
  res->n.sent = 120;
  res->n.acks = 120;
  res->n.deliveries = 1078;
  lhist_merge(&res->delivery, &res->steps[0].delivery);
  lhist_merge(&res->delivery, &res->steps[1].delivery);
  for (uint64_t v = 1; v <= 100; v++) lhist_record(&res->connect, v); /* exact: 1..100 µs */
  res->first_send_us = 1000000;
  res->last_delivery_us = 5000000; /* 4 s */
  load_code_count(res, 1006, 2);
  assert_int_equal(series_init(&series), 0);
  lhist_t *h = malloc(sizeof *h);
  lhist_init(h);
  for (uint64_t v = 1; v <= 200; v++) lhist_record(h, v); /* 1..200 µs: p50 100, p99 198 */
  load_sec_t s0 = {.sec = 0, .open_now = 20, .sends = 30, .acks = 30, .deliveries = 200, .errors = 0};
  series_add(&series, &s0, h);
  load_sec_t s1 = {.sec = 1, .open_now = 19, .sends = 90, .errors = 4};
  series_add(&series, &s1, NULL);
  series_finish(&series);
  free(h);
  memset(&srv, 0, sizeof srv);
  srv.ok = true;
  srv.npids = 1;
  srv.base[0] = (procstat_t){.cpu_s = 1.0, .rss_kb = 1000};
  srv.start[0] = (procstat_t){.cpu_s = 2.0, .rss_kb = 2000};
  srv.end[0] = (procstat_t){.cpu_s = 4.5, .rss_kb = 3000};
  return 0;
}

static int teardown(void **state) {
  free(res);
  series_free(&series);
  return 0;
}

static report_in_t input(void) {
  return (report_in_t){.o = &opts, .sh = &shape, .res = res, .series = &series, .srv = &srv, .run_s = 4.0};
}

static void test_hist_fields(void **state) {
  json_t *h = report_hist(&res->connect);
  assert_int_equal(json_integer_value(json_object_get(h, "count")), 100);
  near(json_real_value(json_object_get(h, "min")), 0.001);
  near(json_real_value(json_object_get(h, "p50")), 0.050);
  near(json_real_value(json_object_get(h, "p95")), 0.095);
  near(json_real_value(json_object_get(h, "p99")), 0.099);
  near(json_real_value(json_object_get(h, "max")), 0.100);
  near(json_real_value(json_object_get(h, "mean")), 0.0505);
  json_decref(h);
}

static void test_json(void **state) {
  report_in_t in = input();
  json_t *j = report_build(&in);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "scenario")), "rooms");
  assert_string_equal(json_string_value(json_object_get(j, "target")), "127.0.0.1:8080");
  assert_string_equal(json_string_value(json_object_get(j, "mode")), "broadcast");
  assert_int_equal(json_integer_value(json_object_get(j, "procs")), 2);
  assert_int_equal(json_integer_value(json_object_get(j, "rooms")), 2);
  assert_int_equal(json_integer_value(json_object_get(j, "room_size")), 10);
  assert_int_equal(json_integer_value(json_object_get(j, "deliveries_expected")), 120 * 9);
  assert_int_equal(json_integer_value(json_object_get(j, "deliveries")), 1078);
  near(json_real_value(json_object_get(j, "deliveries_per_s")), 1078 / 4.0);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "close_codes"), "1006")), 2);
  /* Steps: step 0 passes (p99 of 0.1..36 ms is 35.6 ms < 50), step 1 lost 2. */
  json_t *steps = json_object_get(j, "steps");
  assert_int_equal(json_array_size(steps), 2);
  json_t *s0 = json_array_get(steps, 0), *s1 = json_array_get(steps, 1);
  near(json_real_value(json_object_get(s0, "rate_per_room")), 10);
  assert_int_equal(json_integer_value(json_object_get(s0, "lost")), 0);
  near(json_real_value(json_object_get(s0, "offered_deliveries_per_s")), 360 / 2.0);
  near(json_real_value(json_object_get(s0, "delivered_deliveries_per_s")), 360 / 2.0);
  assert_true(json_is_true(json_object_get(s0, "ok")));
  double p99 = json_real_value(json_object_get(json_object_get(s0, "delivery_ms"), "p99"));
  assert_true(p99 >= 35.6 && p99 <= 35.6 * (1 + 1 / 128.0));
  assert_int_equal(json_integer_value(json_object_get(s1, "lost")), 2);
  assert_true(json_is_false(json_object_get(s1, "ok")));
  json_t *best = json_object_get(j, "best_step");
  assert_int_equal(json_integer_value(json_object_get(best, "step")), 0);
  near(json_real_value(json_object_get(best, "rate_per_room")), 10);
  near(json_real_value(json_object_get(j, "p99_target_ms")), 50);
  /* Server: CPU over the window, RSS, CPU per million deliveries. */
  near(json_real_value(json_object_get(j, "server_cpu_s")), 2.5);
  near(json_real_value(json_object_get(j, "server_cpu_per_million_deliveries_s")), 2.5 / (1078 / 1e6));
  assert_int_equal(json_integer_value(json_object_get(j, "server_rss_kb_baseline")), 1000);
  assert_int_equal(json_integer_value(json_object_get(j, "server_rss_kb_start")), 2000);
  assert_int_equal(json_integer_value(json_object_get(j, "server_rss_kb_end")), 3000);
  assert_null(json_object_get(j, "server_rss_bytes_per_conn")); /* hold only */
  /* Series. */
  json_t *se = json_object_get(j, "series");
  assert_int_equal(json_array_size(se), 2);
  json_t *p0 = json_array_get(se, 0), *p1 = json_array_get(se, 1);
  assert_int_equal(json_integer_value(json_object_get(p0, "t")), 0);
  assert_int_equal(json_integer_value(json_object_get(p0, "conns")), 20);
  assert_int_equal(json_integer_value(json_object_get(p0, "deliveries")), 200);
  near(json_real_value(json_object_get(p0, "delivery_p50_ms")), 0.100);
  near(json_real_value(json_object_get(p0, "delivery_p99_ms")), 0.198);
  assert_int_equal(json_integer_value(json_object_get(p1, "sends")), 90);
  assert_int_equal(json_integer_value(json_object_get(p1, "errors")), 4);
  json_decref(j);
}

static void test_hold_and_verdict(void **state) {
  load_opts_t o = opts;
  load_shape_t sh = {.conns = 100};
  o.scenario = "hold";
  o.ramp = false;
  report_in_t in = input();
  in.o = &o;
  in.sh = &sh;
  json_t *j = report_build(&in);
  /* (3000 - 1000) KiB over 100 connections. */
  near(json_real_value(json_object_get(j, "server_rss_bytes_per_conn")), 2000.0 * 1024 / 100);
  assert_null(json_object_get(j, "sent"));
  json_decref(j);
  in = input();
  assert_int_equal(report_verdict(&in), 0); /* a ramp reports losses per step */
  opts.ramp = false;
  assert_int_equal(report_verdict(&in), 1); /* a fixed rate must deliver everything */
  opts.ramp = true;
  res->n.errors = 1;
  assert_int_equal(report_verdict(&in), 1);
  res->n.errors = 0;
  in.not_ready = true;
  assert_int_equal(report_verdict(&in), 1);
  /* Unreadable /proc: only the pids and the flag. */
  srv.ok = false;
  in = input();
  j = report_build(&in);
  assert_true(json_is_false(json_object_get(j, "server_stats_ok")));
  assert_null(json_object_get(j, "server_cpu_s"));
  json_decref(j);
  srv.ok = true;
}

static void test_html(void **state) {
  report_in_t in = input();
  json_t *j = report_build(&in);
  json_object_set_new(j, "note", json_string("<script>x</script>"));
  buf_t b = BUF_INIT;
  assert_int_equal(report_html(&b, j), 0);
  const char *h = b.data;
  assert_non_null(strstr(h, "<!DOCTYPE html>"));
  assert_non_null(strstr(h, "<th>deliveries</th><td>1078</td>"));
  assert_non_null(strstr(h, "<th>target</th><td>127.0.0.1:8080</td>"));
  assert_non_null(strstr(h, "<th>server_cpu_s</th><td>2.500</td>"));
  assert_non_null(strstr(h, "<h2>Steps</h2>"));
  assert_non_null(strstr(h, "<td>718</td>")); /* step 1's deliveries */
  assert_non_null(strstr(h, "Delivery latency per second"));
  assert_non_null(strstr(h, "Throughput"));
  assert_non_null(strstr(h, "Connections open"));
  assert_non_null(strstr(h, "<polyline"));
  assert_non_null(strstr(h, "&lt;script&gt;")); /* escaped */
  assert_null(strstr(h, "<script"));           /* nothing runs */
  assert_null(strstr(h, "http://"));           /* nothing is fetched */
  assert_null(strstr(h, "https://"));
  assert_null(strstr(h, "src="));
  assert_null(strstr(h, "nan"));
  buf_free(&b);
  /* Written to a file (write then rename), and a path that cannot be. */
  char path[] = "/tmp/test_load_report_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(report_write_html(path, j), 0);
  FILE *f = fopen(path, "r");
  char head[16] = {0};
  assert_non_null(f);
  assert_int_equal(fread(head, 1, 15, f), 15);
  fclose(f);
  assert_string_equal(head, "<!DOCTYPE html>");
  unlink(path);
  assert_int_equal(report_write(path, j), 0);
  json_t *back = json_load_file(path, 0, NULL);
  assert_non_null(back);
  assert_int_equal(json_integer_value(json_object_get(back, "deliveries")), 1078);
  json_decref(back);
  unlink(path);
  assert_int_equal(report_write_html("/nonexistent-dir/x.html", j), -ENOENT);
  assert_int_equal(report_write("/nonexistent-dir/x.json", j), -EIO);
  json_decref(j);
}

static void test_html_without_series(void **state) {
  json_t *j = json_pack("{s:s,s:i,s:[]}", "scenario", "auth", "requests", 12, "series");
  buf_t b = BUF_INIT;
  assert_int_equal(report_html(&b, j), 0);
  assert_non_null(strstr(b.data, "<th>requests</th><td>12</td>"));
  assert_null(strstr(b.data, "<svg"));
  buf_free(&b);
  json_decref(j);
}

/* storm-day: one entry per phase; the verdict wants every ack's deliveries. */
static void test_day_phases_and_verdict(void **state) {
  day_plan_t dp;
  char err[200];
  const char *txt = "{\"phases\":[{\"name\":\"warm-up\",\"duration_s\":2,\"conns\":40,\"msgs_per_s\":10},"
                    "{\"name\":\"cool\",\"duration_s\":4,\"conns\":20,\"msgs_per_s\":5}]}";
  assert_int_equal(dayplan_parse(txt, strlen(txt), &dp, err, sizeof err), 0);
  load_opts_t o = opts;
  o.scenario = "storm-day";
  o.ramp = false;
  load_shape_t sh = {.conns = 40, .rooms = 2, .room_size = 20, .kind = LOAD_KIND_DAY, .day = &dp, .room_users = 2,
                     .devices = 10, .channels = channels};
  dayplan_to_plan(&dp, &sh.plan);
  load_result_t *r = load_result_new(2);
  r->n.helloed = 40;
  r->n.sent = r->n.acks = 30;
  r->n.expected = r->n.deliveries = 30 * 19;
  r->steps[0].sent = r->steps[0].acks = 18;
  r->steps[0].skipped = 2;
  r->steps[0].deliveries = 18 * 19;
  r->steps[0].conns_end = 40;
  r->steps[0].opened = 40;
  lhist_record(&r->steps[0].connect, 3000);
  r->steps[1].sent = r->steps[1].acks = 12;
  r->steps[1].deliveries = 12 * 19 - 1;
  r->steps[1].errors = 1;
  load_step_code_count(&r->steps[1], 1006, 1);
  report_in_t in = {.o = &o, .sh = &sh, .res = r, .run_s = 6};
  json_t *j = report_build(&in);
  assert_int_equal(json_integer_value(json_object_get(j, "connections")), 40);
  assert_int_equal(json_integer_value(json_object_get(j, "accounts")), 4);
  assert_int_equal(json_integer_value(json_object_get(j, "deliveries_expected")), 570);
  json_t *ph = json_object_get(j, "phases");
  assert_int_equal(json_array_size(ph), 2);
  json_t *p0 = json_array_get(ph, 0), *p1 = json_array_get(ph, 1);
  assert_string_equal(json_string_value(json_object_get(p0, "name")), "warm-up");
  assert_int_equal(json_integer_value(json_object_get(p0, "planned")), 20);
  assert_int_equal(json_integer_value(json_object_get(p0, "skipped")), 2);
  assert_int_equal(json_integer_value(json_object_get(p0, "conns_reached")), 40);
  near(json_real_value(json_object_get(json_object_get(p0, "connect_ms"), "p99")), 3.0);
  near(json_real_value(json_object_get(p0, "deliveries_per_s")), 18 * 19 / 2.0);
  assert_int_equal(json_integer_value(json_object_get(p1, "lost")), 1);
  assert_int_equal(json_integer_value(json_object_get(p1, "errors")), 1);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(p1, "close_codes"), "1006")), 1);
  near(json_real_value(json_object_get(p1, "start_s")), 2.0);
  assert_int_equal(report_verdict(&in), 0);
  buf_t b = BUF_INIT;
  assert_int_equal(report_html(&b, j), 0);
  assert_non_null(strstr(b.data, "<h2>Phases</h2>"));
  assert_non_null(strstr(b.data, "<td>warm-up</td>"));
  buf_free(&b);
  json_decref(j);
  r->n.deliveries--; /* one delivery missing */
  assert_int_equal(report_verdict(&in), 1);
  r->n.deliveries++;
  r->n.acks--; /* one send unacked */
  assert_int_equal(report_verdict(&in), 1);
  r->n.acks++;
  /* chat: an unanswered history request fails the run too. */
  sh.kind = LOAD_KIND_CHAT;
  r->n.history = 3;
  r->n.history_rx = 2;
  assert_int_equal(report_verdict(&in), 1);
  r->n.history_rx = 3;
  r->n.reads = 1;
  assert_int_equal(report_verdict(&in), 1);
  r->n.reads_rx = 1;
  assert_int_equal(report_verdict(&in), 0);
  free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hist_fields), cmocka_unit_test(test_json),
      cmocka_unit_test(test_hold_and_verdict), cmocka_unit_test(test_html),
      cmocka_unit_test(test_html_without_series), cmocka_unit_test(test_day_phases_and_verdict),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
