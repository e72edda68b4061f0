/* Unit tests for core/metrics: exact exposition text, escaping, number
 * formatting, series pointer stability, the series bound and its overflow
 * series, registration rules and update semantics. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/metrics.h"

static metrics_registry_t *reg;

static int setup(void **state) {
  reg = metrics_registry_new();
  return reg ? 0 : -1;
}

static int teardown(void **state) {
  metrics_registry_free(reg);
  reg = NULL;
  return 0;
}

/* Renders reg and compares the whole text. */
static void expect_render(const char *want) {
  buf_t b = BUF_INIT;
  metrics_render(reg, &b);
  assert_false(b.oom);
  const char *got = b.data ? b.data : "";
  if (strcmp(got, want) != 0) fail_msg("render:\n%s\nwanted:\n%s", got, want);
  buf_free(&b);
}

static char *render(buf_t *b) {
  buf_reset(b);
  metrics_render(reg, b);
  assert_false(b->oom);
  return b->data ? b->data : "";
}

static void test_render_exact(void **state) {
  const char *cl[] = {"method", "code"};
  metrics_family_t *c = metrics_counter_new(reg, "http_requests_total", "Requests handled.", 2, cl);
  metrics_series_t *get200 = metrics_series(c, (const char *[]){"GET", "200"});
  metrics_series_t *post201 = metrics_series(c, (const char *[]){"POST", "201"});
  metrics_inc(get200);
  metrics_inc(get200);
  metrics_inc(get200);
  metrics_add(post201, 2);

  const char *unused_l[] = {"x"};
  assert_non_null(metrics_counter_new(reg, "unused_total", "Never used.", 1, unused_l));

  metrics_family_t *g = metrics_gauge_new(reg, "ws_connections", "Open WebSocket connections.", 0, NULL);
  metrics_set(metrics_series0(g), 5);
  metrics_dec(metrics_series0(g));

  const double bk[] = {0.1, 0.5, 1};
  const char *hl[] = {"route"};
  metrics_family_t *h =
      metrics_histogram_new(reg, "http_request_duration_seconds", "Request latency.", bk, 3, 1, hl);
  metrics_series_t *hs = metrics_series(h, (const char *[]){"/v1/users"});
  metrics_observe(hs, 0.0625);
  metrics_observe(hs, 0.5); /* on a bound: counted in le="0.5" */
  metrics_observe(hs, 0.25);
  metrics_observe(hs, 2);

  metrics_family_t *h0 = metrics_histogram_new(reg, "job_seconds", "", bk, 1, 0, NULL);
  assert_non_null(h0);

  expect_render("# HELP http_requests_total Requests handled.\n"
                "# TYPE http_requests_total counter\n"
                "http_requests_total{method=\"GET\",code=\"200\"} 3\n"
                "http_requests_total{method=\"POST\",code=\"201\"} 2\n"
                "# HELP ws_connections Open WebSocket connections.\n"
                "# TYPE ws_connections gauge\n"
                "ws_connections 4\n"
                "# HELP http_request_duration_seconds Request latency.\n"
                "# TYPE http_request_duration_seconds histogram\n"
                "http_request_duration_seconds_bucket{route=\"/v1/users\",le=\"0.1\"} 1\n"
                "http_request_duration_seconds_bucket{route=\"/v1/users\",le=\"0.5\"} 3\n"
                "http_request_duration_seconds_bucket{route=\"/v1/users\",le=\"1\"} 3\n"
                "http_request_duration_seconds_bucket{route=\"/v1/users\",le=\"+Inf\"} 4\n"
                "http_request_duration_seconds_sum{route=\"/v1/users\"} 2.8125\n"
                "http_request_duration_seconds_count{route=\"/v1/users\"} 4\n"
                "# TYPE job_seconds histogram\n"
                "job_seconds_bucket{le=\"0.1\"} 0\n"
                "job_seconds_bucket{le=\"+Inf\"} 0\n"
                "job_seconds_sum 0\n"
                "job_seconds_count 0\n");
  assert_int_equal(metrics_count(hs), 4);
  assert_true(metrics_value(hs) == 2.8125);
  assert_true(metrics_value(get200) == 3);
}

static void test_empty_registry_renders_nothing(void **state) {
  expect_render("");
  metrics_render(NULL, NULL); /* tolerated */
}

static void test_escaping(void **state) {
  const char *l[] = {"path"};
  metrics_family_t *c =
      metrics_counter_new(reg, "esc_total", "line1\nline2 back\\slash \"quoted\"", 1, l);
  metrics_inc(metrics_series(c, (const char *[]){"a\\b\"c\nd"}));
  metrics_inc(metrics_series(c, (const char *[]){NULL}));
  expect_render("# HELP esc_total line1\\nline2 back\\\\slash \"quoted\"\n"
                "# TYPE esc_total counter\n"
                "esc_total{path=\"a\\\\b\\\"c\\nd\"} 1\n"
                "esc_total{path=\"\"} 1\n");
}

static void test_number_format(void **state) {
  metrics_family_t *g = metrics_gauge_new(reg, "g", "", 1, (const char *[]){"v"});
  struct {
    double v;
    const char *want;
  } cases[] = {
      {0, "0"},          {-0.0, "0"},         {7, "7"},
      {-2, "-2"},        {1.5, "1.5"},        {0.1, "0.1"},
      {0.1 + 0.2, "0.30000000000000004"},     {1e20, "100000000000000000000"},
      {1e-7, "1e-07"},   {123456.789, "123456.789"},
      {9007199254740993.0, "9007199254740992"}, {NAN, "NaN"},
      {INFINITY, "+Inf"}, {-INFINITY, "-Inf"},
  };
  buf_t b = BUF_INIT;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char label[8];
    snprintf(label, sizeof label, "%zu", i);
    metrics_set(metrics_series(g, (const char *[]){label}), cases[i].v);
  }
  char *out = render(&b);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char line[80];
    snprintf(line, sizeof line, "g{v=\"%zu\"} %s\n", i, cases[i].want);
    if (!strstr(out, line)) fail_msg("missing %s in\n%s", line, out);
  }
  buf_free(&b);
}

static void test_series_pointer_stability(void **state) {
  const char *l[] = {"a", "b"};
  metrics_family_t *c = metrics_counter_new(reg, "many_total", "h", 2, l);
  metrics_series_t *first = metrics_series(c, (const char *[]){"x", "y"});
  metrics_add(first, 41);
  metrics_series_t *ptrs[3000];
  char va[16], vb[16];
  for (int i = 0; i < 3000; i++) {
    snprintf(va, sizeof va, "%d", i);
    snprintf(vb, sizeof vb, "%d", i % 7);
    ptrs[i] = metrics_series(c, (const char *[]){va, vb});
    assert_non_null(ptrs[i]);
    metrics_add(ptrs[i], i);
  }
  /* Growth of the index moved no series. */
  assert_ptr_equal(metrics_series(c, (const char *[]){"x", "y"}), first);
  metrics_inc(first);
  assert_true(metrics_value(first) == 42);
  for (int i = 0; i < 3000; i++) {
    snprintf(va, sizeof va, "%d", i);
    snprintf(vb, sizeof vb, "%d", i % 7);
    assert_ptr_equal(metrics_series(c, (const char *[]){va, vb}), ptrs[i]);
    assert_true(metrics_value(ptrs[i]) == i);
  }
  /* Label values are separate: ("ab","") and ("a","b") differ. */
  metrics_series_t *s1 = metrics_series(c, (const char *[]){"ab", ""});
  metrics_series_t *s2 = metrics_series(c, (const char *[]){"a", "b"});
  assert_ptr_not_equal(s1, s2);
  /* Values are copied: the caller's buffer may change. */
  char tmp[8] = "tmp";
  metrics_series_t *t = metrics_series(c, (const char *[]){tmp, "z"});
  strcpy(tmp, "zzz");
  assert_ptr_equal(metrics_series(c, (const char *[]){"tmp", "z"}), t);
}

static void test_series_bound(void **state) {
  metrics_registry_set_series_limit(reg, 3);
  metrics_family_t *c = metrics_counter_new(reg, "x_total", "X.", 1, (const char *[]){"k"});
  metrics_series_t *s0 = metrics_series(c, (const char *[]){"0"});
  metrics_series_t *s1 = metrics_series(c, (const char *[]){"1"});
  metrics_series_t *s2 = metrics_series(c, (const char *[]){"2"});
  metrics_series_t *o1 = metrics_series(c, (const char *[]){"3"});
  metrics_series_t *o2 = metrics_series(c, (const char *[]){"4"});
  assert_non_null(o1);
  assert_ptr_equal(o1, o2);
  assert_ptr_not_equal(o1, s0);
  assert_ptr_not_equal(o1, s1);
  assert_ptr_not_equal(o1, s2);
  assert_ptr_equal(metrics_series(c, (const char *[]){"1"}), s1); /* old ones still found */
  metrics_inc(s1);
  metrics_inc(o1);
  metrics_inc(o2);
  expect_render("# HELP x_total X.\n"
                "# TYPE x_total counter\n"
                "x_total{k=\"0\"} 0\n"
                "x_total{k=\"1\"} 1\n"
                "x_total{k=\"2\"} 0\n"
                "x_total{k=\"_overflow\"} 2\n"
                "# HELP metrics_series_overflow_total Label sets refused because their family "
                "reached its series limit (their updates go to the series labelled _overflow).\n"
                "# TYPE metrics_series_overflow_total counter\n"
                "metrics_series_overflow_total{family=\"x_total\"} 2\n");
  /* A limit below 1 is raised to 1. */
  metrics_registry_set_series_limit(reg, 0);
  metrics_family_t *g = metrics_gauge_new(reg, "y", "", 1, (const char *[]){"k"});
  metrics_series_t *y0 = metrics_series(g, (const char *[]){"0"});
  assert_ptr_not_equal(metrics_series(g, (const char *[]){"1"}), y0);
  assert_ptr_equal(metrics_series(g, (const char *[]){"0"}), y0);
}

static void test_default_bound_is_10000(void **state) {
  metrics_family_t *c = metrics_counter_new(reg, "big_total", "", 1, (const char *[]){"k"});
  char v[16];
  metrics_series_t *last = NULL;
  for (int i = 0; i < METRICS_DEFAULT_SERIES_LIMIT; i++) {
    snprintf(v, sizeof v, "%d", i);
    last = metrics_series(c, (const char *[]){v});
  }
  metrics_series_t *over = metrics_series(c, (const char *[]){"one-more"});
  assert_ptr_not_equal(over, last);
  assert_ptr_equal(metrics_series(c, (const char *[]){"and-another"}), over);
  assert_int_equal(METRICS_DEFAULT_SERIES_LIMIT, 10000);
}

static void test_registration_rules(void **state) {
  const char *l1[] = {"a"};
  assert_null(metrics_counter_new(NULL, "x", "", 0, NULL));
  assert_null(metrics_counter_new(reg, NULL, "", 0, NULL));
  assert_null(metrics_counter_new(reg, "", "", 0, NULL));
  assert_null(metrics_counter_new(reg, "1abc", "", 0, NULL));
  assert_null(metrics_counter_new(reg, "a-b", "", 0, NULL));
  assert_non_null(metrics_counter_new(reg, "ns:sub_total", "", 0, NULL));
  assert_null(metrics_counter_new(reg, "l1", "", 1, (const char *[]){"a:b"}));
  assert_null(metrics_counter_new(reg, "l2", "", 1, (const char *[]){"__a"}));
  assert_null(metrics_counter_new(reg, "l3", "", 1, (const char *[]){"9a"}));
  assert_null(metrics_counter_new(reg, "l4", "", 2, (const char *[]){"a", "a"}));
  assert_null(metrics_counter_new(reg, "l5", "", 5, (const char *[]){"a", "b", "c", "d", "e"}));
  assert_non_null(metrics_counter_new(reg, "l6", "", 4, (const char *[]){"a", "b", "c", "d"}));
  assert_null(metrics_counter_new(reg, "l7", "", -1, NULL));
  assert_null(metrics_counter_new(reg, "l8", "", 1, NULL));
  assert_non_null(metrics_counter_new(reg, "l9", "", 1, (const char *[]){"le"}));

  /* Same shape: the same family; any difference: NULL. */
  metrics_family_t *f = metrics_counter_new(reg, "dup_total", "one", 1, l1);
  assert_non_null(f);
  assert_ptr_equal(metrics_counter_new(reg, "dup_total", "other help", 1, l1), f);
  assert_null(metrics_gauge_new(reg, "dup_total", "", 1, l1));
  assert_null(metrics_counter_new(reg, "dup_total", "", 1, (const char *[]){"b"}));
  assert_null(metrics_counter_new(reg, "dup_total", "", 0, NULL));
}

static void test_histogram_rules(void **state) {
  const double ok[] = {1, 2, INFINITY};
  const double unsorted[] = {1, 3, 2};
  const double dupb[] = {1, 1};
  const double nan[] = {1, NAN};
  const double ninf[] = {-INFINITY, 1};
  double many[METRICS_MAX_BUCKETS + 1];
  for (int i = 0; i <= METRICS_MAX_BUCKETS; i++) many[i] = i;
  assert_null(metrics_histogram_new(reg, "h1", "", unsorted, 3, 0, NULL));
  assert_null(metrics_histogram_new(reg, "h2", "", dupb, 2, 0, NULL));
  assert_null(metrics_histogram_new(reg, "h3", "", nan, 2, 0, NULL));
  assert_null(metrics_histogram_new(reg, "h4", "", ninf, 2, 0, NULL));
  assert_null(metrics_histogram_new(reg, "h5", "", many, METRICS_MAX_BUCKETS + 1, 0, NULL));
  assert_null(metrics_histogram_new(reg, "h6", "", NULL, 2, 0, NULL));
  assert_null(metrics_histogram_new(reg, "h7", "", ok, -1, 0, NULL));
  assert_null(metrics_histogram_new(reg, "h8", "", ok, 2, 1, (const char *[]){"le"}));
  assert_non_null(metrics_histogram_new(reg, "h9", "", many, METRICS_MAX_BUCKETS, 0, NULL));
  /* A trailing +Inf is the implied one. */
  metrics_family_t *h = metrics_histogram_new(reg, "h10", "", ok, 3, 0, NULL);
  assert_non_null(h);
  assert_ptr_equal(metrics_histogram_new(reg, "h10", "", ok, 2, 0, NULL), h);
  assert_null(metrics_histogram_new(reg, "h10", "", ok, 1, 0, NULL));
  /* Only +Inf. */
  metrics_family_t *hi = metrics_histogram_new(reg, "h11", "", NULL, 0, 0, NULL);
  metrics_observe(metrics_series0(hi), 3);
  metrics_family_t *d = metrics_histogram_new(reg, "dur", "", METRICS_DURATION_BUCKETS,
                                              METRICS_DURATION_NBUCKETS, 0, NULL);
  assert_non_null(d);
  assert_int_equal(METRICS_DURATION_NBUCKETS, 14);
  assert_true(METRICS_DURATION_BUCKETS[0] == 0.0005);
  assert_true(METRICS_DURATION_BUCKETS[METRICS_DURATION_NBUCKETS - 1] == 10);
  buf_t b = BUF_INIT;
  char *out = render(&b);
  assert_non_null(strstr(out, "h11_bucket{le=\"+Inf\"} 1\nh11_sum 3\nh11_count 1\n"));
  assert_non_null(strstr(out, "dur_bucket{le=\"0.0005\"} 0\n"));
  assert_non_null(strstr(out, "dur_bucket{le=\"0.0025\"} 0\n"));
  assert_non_null(strstr(out, "dur_bucket{le=\"10\"} 0\n"));
  buf_free(&b);
}

static void test_update_semantics(void **state) {
  metrics_series_t *c = metrics_series0(metrics_counter_new(reg, "c_total", "", 0, NULL));
  metrics_series_t *g = metrics_series0(metrics_gauge_new(reg, "g", "", 0, NULL));
  const double bk[] = {1};
  metrics_series_t *h = metrics_series0(metrics_histogram_new(reg, "h", "", bk, 1, 0, NULL));

  metrics_inc(c);
  metrics_add(c, 2.5);
  metrics_add(c, -10); /* counters never go down */
  metrics_add(c, NAN);
  metrics_dec(c);
  metrics_observe(c, 100);
  assert_true(metrics_value(c) == 3.5);
  metrics_set(c, 100); /* totals kept elsewhere */
  assert_true(metrics_value(c) == 100);

  metrics_inc(g);
  metrics_add(g, -3);
  metrics_dec(g);
  assert_true(metrics_value(g) == -3);
  metrics_set(g, 0.5);
  metrics_observe(g, 9);
  assert_true(metrics_value(g) == 0.5);

  metrics_inc(h);
  metrics_add(h, 5);
  metrics_set(h, 5);
  metrics_dec(h);
  assert_int_equal(metrics_count(h), 0);
  metrics_observe(h, NAN); /* not <= any bound: +Inf only */
  metrics_observe(h, 1);
  assert_int_equal(metrics_count(h), 2);
  assert_true(isnan(metrics_value(h)));
  buf_t b = BUF_INIT;
  char *out = render(&b);
  assert_non_null(strstr(out, "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum NaN\n"));
  buf_free(&b);

  /* NULL is tolerated everywhere on the update path. */
  metrics_inc(NULL);
  metrics_dec(NULL);
  metrics_add(NULL, 1);
  metrics_set(NULL, 1);
  metrics_observe(NULL, 1);
  assert_true(metrics_value(NULL) == 0);
  assert_int_equal(metrics_count(NULL), 0);
  assert_null(metrics_series(NULL, NULL));
  assert_null(metrics_series0(NULL));
}

static void test_series_lookup_variants(void **state) {
  metrics_family_t *l = metrics_counter_new(reg, "l_total", "", 2, (const char *[]){"a", "b"});
  assert_null(metrics_series0(l)); /* labeled family has no unlabeled series */
  metrics_series_t *e = metrics_series(l, NULL);
  assert_non_null(e);
  assert_ptr_equal(metrics_series(l, (const char *[]){"", NULL}), e);
  metrics_family_t *u = metrics_counter_new(reg, "u_total", "", 0, NULL);
  assert_ptr_equal(metrics_series(u, NULL), metrics_series0(u));
  assert_ptr_equal(metrics_series(u, (const char *[]){"ignored"}), metrics_series0(u));
  expect_render("# TYPE l_total counter\n"
                "l_total{a=\"\",b=\"\"} 0\n"
                "# TYPE u_total counter\n"
                "u_total 0\n");
}

static void test_default_registry(void **state) {
  metrics_registry_t *d = metrics_default();
  assert_non_null(d);
  assert_ptr_equal(metrics_default(), d);
  assert_non_null(metrics_counter_new(d, "test_default_total", "", 0, NULL));
  assert_string_equal(METRICS_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_render_exact, setup, teardown),
      cmocka_unit_test_setup_teardown(test_empty_registry_renders_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
      cmocka_unit_test_setup_teardown(test_number_format, setup, teardown),
      cmocka_unit_test_setup_teardown(test_series_pointer_stability, setup, teardown),
      cmocka_unit_test_setup_teardown(test_series_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_default_bound_is_10000, setup, teardown),
      cmocka_unit_test_setup_teardown(test_registration_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_histogram_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_update_semantics, setup, teardown),
      cmocka_unit_test_setup_teardown(test_series_lookup_variants, setup, teardown),
      cmocka_unit_test_setup_teardown(test_default_registry, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
