/* Unit tests for storm-load's storm-day plan files (tools/load/dayplan.c):
 * a good plan and its ramps, every refusal with its message, the file
 * size bound, and the plans shipped in tools/load/plans/ (run from the
 * repository root, as `make unit` does). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "load/dayplan.h"
#include "load/run.h"

static day_plan_t plan;
static char err[256];

static int parse(const char *s) { return dayplan_parse(s, strlen(s), &plan, err, sizeof err); }

/* Parsing `s` fails with `rc` and a message containing `msg`. */
static void refused(const char *s, int rc, const char *msg) {
  err[0] = 0;
  int got = parse(s);
  if (got != rc || !strstr(err, msg)) fail_msg("plan %s: got %d \"%s\", want %d \"%s\"", s, got, err, rc, msg);
}

static void test_good_plan(void **state) {
  assert_int_equal(parse("{\"description\":\"x\",\"phases\":["
                         "{\"name\":\"warm-up\",\"duration_s\":10,\"conns\":1000,\"msgs_per_s\":100},"
                         "{\"name\":\"ramp\",\"duration_s\":20,\"conns\":10000,\"msgs_per_s\":1000.5},"
                         "{\"name\":\"spike\",\"duration_s\":10,\"conns\":20000,\"msgs_per_s\":0,\"ramp_s\":0},"
                         "{\"name\":\"cool-down\",\"duration_s\":10,\"conns\":0,\"msgs_per_s\":100,\"ramp_s\":5}]}"),
                   0);
  assert_int_equal(plan.n, 4);
  assert_true(plan.total == 50);
  assert_int_equal(plan.max_conns, 20000);
  assert_string_equal(plan.ph[1].name, "ramp");
  assert_true(plan.ph[1].start == 10 && plan.ph[1].ramp_s == 20 && plan.ph[1].rate == 1000.5);
  assert_true(plan.ph[3].start == 40 && plan.ph[3].ramp_s == 5);
  /* Linear ramps from the previous target; a ramp of 0 jumps. */
  assert_true(dayplan_target(&plan, 0) == 0);
  assert_true(dayplan_target(&plan, 5) == 500);
  assert_true(dayplan_target(&plan, 10) == 1000);
  assert_true(dayplan_target(&plan, 20) == 5500);
  assert_true(dayplan_target(&plan, 30) == 20000);
  assert_true(dayplan_target(&plan, 42.5) == 10000);
  assert_true(dayplan_target(&plan, 46) == 0);
  assert_true(dayplan_target(&plan, 1000) == 0); /* after the end: the last target */
  assert_int_equal(dayplan_phase_at(&plan, 0), 0);
  assert_int_equal(dayplan_phase_at(&plan, 9.99), 0);
  assert_int_equal(dayplan_phase_at(&plan, 10), 1);
  assert_int_equal(dayplan_phase_at(&plan, 49), 3);
  assert_int_equal(dayplan_phase_at(&plan, 99), 3);
  plan_t p;
  dayplan_to_plan(&plan, &p);
  assert_int_equal(p.n, 4);
  assert_true(p.total == 50);
  assert_int_equal(p.s[1].msgs, 20010);
  assert_int_equal(p.s[2].msgs, 0);
  assert_int_equal(plan_due(&p, 2, 35, 0), 0); /* a phase without messages sends none */
  assert_int_equal(plan_due(&p, 0, 0, 0), 1);
  assert_int_equal(plan_due(&p, 0, 10, 0), 1000);
}

static void test_refusals(void **state) {
#define PH(x) "{\"phases\":[" x "]}"
#define OK1 "\"name\":\"a\",\"duration_s\":1,\"conns\":10,\"msgs_per_s\":1"
  refused("", -EINVAL, "not JSON");
  refused("{\"phases\":[", -EINVAL, "not JSON");
  refused("[]", -EINVAL, "must be a JSON object");
  refused("{}", -EINVAL, "non-empty array");
  refused(PH(""), -EINVAL, "non-empty array");
  refused("{\"phases\":{}}", -EINVAL, "non-empty array");
  refused("{\"phases\":[{" OK1 "}],\"extra\":1}", -EINVAL, "unknown top-level field \"extra\"");
  refused(PH("1"), -EINVAL, "phase 1: not an object");
  refused(PH("{" OK1 ",\"conn\":5}"), -EINVAL, "phase 1: unknown field \"conn\"");
  refused(PH("{" OK1 "},{\"duration_s\":1,\"conns\":1,\"msgs_per_s\":1}"), -EINVAL, "phase 2: missing \"name\"");
  refused(PH("{\"name\":\"a\",\"conns\":1,\"msgs_per_s\":1}"), -EINVAL, "phase 1: missing \"duration_s\"");
  refused(PH("{\"name\":\"a\",\"duration_s\":1,\"msgs_per_s\":1}"), -EINVAL, "phase 1: missing \"conns\"");
  refused(PH("{\"name\":\"a\",\"duration_s\":1,\"conns\":1}"), -EINVAL, "phase 1: missing \"msgs_per_s\"");
  refused(PH("{\"name\":\"\",\"duration_s\":1,\"conns\":1,\"msgs_per_s\":1}"), -EINVAL, "\"name\" must be a string");
  refused(PH("{\"name\":7,\"duration_s\":1,\"conns\":1,\"msgs_per_s\":1}"), -EINVAL, "\"name\" must be a string");
  refused(PH("{\"name\":\"0123456789012345678901234567890123456789012345678901234567890123\",\"duration_s\":1,"
             "\"conns\":1,\"msgs_per_s\":1}"),
          -EINVAL, "\"name\" must be a string of 1 to 63 bytes");
  refused(PH("{\"name\":\"a\",\"duration_s\":\"1\",\"conns\":1,\"msgs_per_s\":1}"), -EINVAL, "\"duration_s\" must be a number");
  refused(PH("{\"name\":\"a\",\"duration_s\":0,\"conns\":1,\"msgs_per_s\":1}"), -EINVAL, "\"duration_s\" must be above 0");
  refused(PH("{\"name\":\"a\",\"duration_s\":-1,\"conns\":1,\"msgs_per_s\":1}"), -EINVAL, "out of bounds");
  refused(PH("{\"name\":\"a\",\"duration_s\":3601,\"conns\":1,\"msgs_per_s\":1}"), -EINVAL, "\"duration_s\" is 3601, out of bounds");
  refused(PH("{\"name\":\"a\",\"duration_s\":2000,\"conns\":1,\"msgs_per_s\":1},"
             "{\"name\":\"b\",\"duration_s\":2000,\"conns\":1,\"msgs_per_s\":1}"),
          -EINVAL, "phase 2: the phases last more than 3600 s");
  refused(PH("{\"name\":\"a\",\"duration_s\":1,\"conns\":100001,\"msgs_per_s\":1}"), -EINVAL, "\"conns\" must be an integer in [0, 100000]");
  refused(PH("{\"name\":\"a\",\"duration_s\":1,\"conns\":-1,\"msgs_per_s\":1}"), -EINVAL, "\"conns\" must be an integer");
  refused(PH("{\"name\":\"a\",\"duration_s\":1,\"conns\":1.5,\"msgs_per_s\":1}"), -EINVAL, "\"conns\" must be an integer");
  refused(PH("{\"name\":\"a\",\"duration_s\":1,\"conns\":1,\"msgs_per_s\":100001}"), -EINVAL, "\"msgs_per_s\" is 100001, out of bounds");
  refused(PH("{\"name\":\"a\",\"duration_s\":1,\"conns\":1,\"msgs_per_s\":-1}"), -EINVAL, "\"msgs_per_s\"");
  refused(PH("{\"name\":\"a\",\"duration_s\":1,\"conns\":1,\"msgs_per_s\":1,\"ramp_s\":2}"), -EINVAL, "\"ramp_s\" is 2, out of bounds");
  refused(PH("{\"name\":\"a\",\"duration_s\":1,\"conns\":1,\"msgs_per_s\":null}"), -EINVAL, "must be a number");
  refused(PH("{\"name\":\"a\",\"duration_s\":1,\"conns\":0,\"msgs_per_s\":1}"), -EINVAL, "no phase opens any connection");
  refused(PH("{\"name\":\"a\",\"duration_s\":0.5,\"conns\":60000,\"msgs_per_s\":1}"), -EINVAL,
          "phase 1: ramping 0 -> 60000 connections in 0.5 s is more than 100000 per second");
  refused(PH("{" OK1 "},{\"name\":\"b\",\"duration_s\":1,\"conns\":100000,\"msgs_per_s\":1,\"ramp_s\":0.5}"), -EINVAL,
          "phase 2: ramping 10 -> 100000");
  refused(PH("{" OK1 ",\"name\":\"b\"}"), -EINVAL, "not JSON"); /* duplicate key */
  /* Too many phases. */
  char big[8192] = "{\"phases\":[";
  for (int i = 0; i <= DAY_MAX_PHASES; i++) strcat(big, i ? ",{" OK1 "}" : "{" OK1 "}");
  strcat(big, "]}");
  refused(big, -E2BIG, "33 phases, at most 32");
  /* Exactly the maximum is fine. */
  char ok[8192] = "{\"phases\":[";
  for (int i = 0; i < DAY_MAX_PHASES; i++) strcat(ok, i ? ",{" OK1 "}" : "{" OK1 "}");
  strcat(ok, "]}");
  assert_int_equal(parse(ok), 0);
  assert_int_equal(plan.n, DAY_MAX_PHASES);
#undef PH
#undef OK1
}

static void test_size_bound_and_files(void **state) {
  /* Oversize text: refused before parsing. */
  size_t n = DAY_MAX_FILE + 1;
  char *s = malloc(n + 1);
  memset(s, ' ', n);
  memcpy(s, "{\"phases\":[{\"name\":\"a\",\"duration_s\":1,\"conns\":1,\"msgs_per_s\":1}]}", 65);
  assert_int_equal(dayplan_parse(s, n, &plan, err, sizeof err), -E2BIG);
  assert_non_null(strstr(err, "more than 65536"));
  assert_int_equal(dayplan_parse(s, n - 1, &plan, err, sizeof err), 0); /* exactly the bound: fine */
  /* The same through a file. */
  char path[] = "/tmp/storm-dayplan-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, s, n), (ssize_t)n);
  close(fd);
  assert_int_equal(dayplan_load(path, &plan, err, sizeof err), -E2BIG);
  assert_non_null(strstr(err, "bytes, more than 65536"));
  truncate(path, (off_t)(n - 1));
  assert_int_equal(dayplan_load(path, &plan, err, sizeof err), 0);
  assert_int_equal(plan.n, 1);
  unlink(path);
  free(s);
  assert_int_equal(dayplan_load("/nonexistent/plan.json", &plan, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, "/nonexistent/plan.json"));
  assert_int_equal(dayplan_load("/tmp", &plan, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "not a regular file"));
}

static void test_shipped_plans(void **state) {
  assert_int_equal(dayplan_load("tools/load/plans/smoke.json", &plan, err, sizeof err), 0);
  assert_true(plan.n >= 4 && plan.total <= 10 && plan.max_conns <= 500);
  assert_int_equal(dayplan_load("tools/load/plans/storm-day.json", &plan, err, sizeof err), 0);
  assert_int_equal(plan.max_conns, 100000);
  bool k10 = false, k50 = false;
  for (unsigned i = 0; i < plan.n; i++) {
    k10 = k10 || plan.ph[i].conns == 10000;
    k50 = k50 || plan.ph[i].conns == 50000;
  }
  assert_true(k10 && k50);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_plan),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_size_bound_and_files),
      cmocka_unit_test(test_shipped_plans),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
