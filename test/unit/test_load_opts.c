/* Unit tests for storm-load's command line (tools/load/opts.c) and the
 * /proc readers behind --server-pid (procstat.c). */
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

#include "load/opts.h"
#include "load/procstat.h"

#define ARGS(...) ((char *[]){"storm-load", __VA_ARGS__, NULL})
#define NARGS(...) ((int)(sizeof((char *[]){"storm-load", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(o, ...) opts_parse(NARGS(__VA_ARGS__), ARGS(__VA_ARGS__), o)

static void test_rooms_ramp(void **state) {
  load_opts_t o = {0};
  assert_int_equal(PARSE(&o, "rooms", "--url", "http://127.0.0.1:9", "--rooms", "10", "--room-size", "50", "--rate-start",
                         "10", "--rate-step", "10", "--rate-max", "100", "--step-seconds", "5", "--peer", "--procs", "3",
                         "--server-pid", "10", "--server-pid", "11", "--p99-target-ms", "20"),
                   0);
  assert_string_equal(o.scenario, "rooms");
  assert_int_equal(o.rooms, 10);
  assert_int_equal(o.room_size, 50);
  assert_true(o.ramp && o.rate_start == 10 && o.rate_step == 10 && o.rate_max == 100 && o.step_seconds == 5);
  assert_true(o.peer);
  assert_int_equal(o.mode, LOAD_BROADCAST); /* --peer implies broadcast */
  assert_int_equal(o.procs, 3);
  assert_int_equal(o.npids, 2);
  assert_int_equal(o.server_pids[1], 11);
  assert_true(o.p99_target_ms == 20);
}

static void test_defaults_and_caps(void **state) {
  load_opts_t o = {0};
  assert_int_equal(PARSE(&o, "fanout", "--url", "ws://127.0.0.1:9/", "--members", "5", "--rate", "2"), 0);
  assert_int_equal(o.mode, LOAD_DURABLE);
  assert_false(o.random_nonces);
  assert_int_equal(o.procs, 1);
  memset(&o, 0, sizeof o);
  assert_int_equal(PARSE(&o, "rooms", "--url", "http://127.0.0.1:9", "--rooms", "2", "--room-size", "2",
                         "--rate", "1", "--nonces", "random"),
                   0);
  assert_true(o.random_nonces);
  assert_true(o.conn_rate == 2000 && o.p99_target_ms == 50 && o.duration == 0);
  /* More processes than connections: one connection each at most. */
  memset(&o, 0, sizeof o);
  assert_int_equal(PARSE(&o, "hold", "--url", "http://127.0.0.1:9", "--conns", "3", "--rate", "1", "--procs", "8"), 0);
  assert_int_equal(o.procs, 3);
  memset(&o, 0, sizeof o);
  assert_int_equal(PARSE(&o, "hold", "--url", "http://127.0.0.1:9", "--conns", "100000", "--rate", "1", "--procs", "6"), 0);
  memset(&o, 0, sizeof o);
  assert_int_equal(PARSE(&o, "auth", "--url", "http://127.0.0.1:9", "--vus", "4", "--iterations", "2"), 0);
  assert_int_equal(o.vus, 4);
  assert_int_equal(o.iterations, 2);
}

static void test_refusals(void **state) {
  load_opts_t o;
#define NO(...) (memset(&o, 0, sizeof o), assert_int_equal(PARSE(&o, __VA_ARGS__), 2))
  NO("bogus");
  NO("hold", "--url", "http://10.0.0.1:9", "--conns", "1", "--rate", "1");         /* not loopback */
  NO("hold", "--conns", "1", "--rate", "1");                                       /* no url */
  NO("hold", "--url", "http://127.0.0.1:9", "--conns", "19001", "--rate", "1");    /* needs --procs 2 */
  NO("hold", "--url", "http://127.0.0.1:9", "--conns", "100000", "--rate", "1", "--procs", "5");
  NO("hold", "--url", "http://127.0.0.1:9", "--conns", "100001", "--rate", "1", "--procs", "16");
  NO("hold", "--url", "http://127.0.0.1:9", "--conns", "1", "--rate", "1", "--procs", "17");
  NO("hold", "--url", "http://127.0.0.1:9", "--conns", "1", "--rate", "1", "--mode", "broadcast"); /* not for hold */
  NO("hold", "--url", "http://127.0.0.1:9", "--conns", "1", "--rate", "1", "--peer", "--token", "x");
  NO("hold", "--url", "http://127.0.0.1:9", "--conns", "1", "--rate", "1", "--duration", "3601");
  NO("hold", "--url", "http://127.0.0.1:9", "--conns", "1");                       /* no rate */
  NO("hold", "--url");                                                              /* no value */
  NO("fanout", "--url", "http://127.0.0.1:9", "--members", "1", "--rate", "1", "--mode", "x");
  NO("fanout", "--url", "http://127.0.0.1:9", "--members", "1", "--rate", "1", "--nonces", "uuid");
  NO("hold", "--url", "http://127.0.0.1:9", "--conns", "1", "--rate", "1", "--nonces", "random");
  NO("fanout", "--url", "http://127.0.0.1:9", "--members", "1", "--rate", "100001");
  NO("rooms", "--url", "http://127.0.0.1:9", "--rooms", "2", "--room-size", "2");  /* no rate */
  NO("rooms", "--url", "http://127.0.0.1:9", "--rooms", "2", "--room-size", "1", "--rate", "1");
  NO("rooms", "--url", "http://127.0.0.1:9", "--rooms", "2", "--room-size", "2", "--rate", "1", "--rate-start", "1",
     "--rate-max", "2", "--step-seconds", "1"); /* both */
  NO("rooms", "--url", "http://127.0.0.1:9", "--rooms", "2", "--room-size", "2", "--rate-start", "1"); /* no max */
  NO("rooms", "--url", "http://127.0.0.1:9", "--rooms", "1000", "--room-size", "101", "--rate", "1", "--procs", "16");
  NO("auth", "--url", "http://127.0.0.1:9", "--vus", "4");                          /* no iterations/duration */
  NO("auth", "--url", "http://127.0.0.1:9", "--vus", "1001", "--iterations", "1");
  NO("ws", "--url", "http://127.0.0.1:9", "--vus", "1", "--iterations", "1", "--procs", "2"); /* not for ws */
  NO("hold", "--url", "http://127.0.0.1:9", "--conns", "1", "--rate", "1", "--prefix", "Bad!");
  NO("chat", "--url", "http://127.0.0.1:9", "--users", "10", "--rate", "1");                   /* no duration */
  NO("chat", "--url", "http://127.0.0.1:9", "--users", "1", "--rate", "1", "--duration", "1"); /* one user */
  NO("chat", "--url", "http://127.0.0.1:9", "--users", "100000", "--rate", "2", "--duration", "1", "--procs", "6");
  NO("chat", "--url", "http://127.0.0.1:9", "--users", "10", "--rate", "1", "--duration", "1", "--channels", "1x11");
  NO("chat", "--url", "http://127.0.0.1:9", "--users", "10", "--rate", "1", "--duration", "1", "--weights", "x=1");
  NO("chat", "--url", "http://127.0.0.1:9", "--users", "10", "--rate", "1", "--duration", "1", "--history-limit", "101");
  NO("chat", "--url", "http://127.0.0.1:9", "--users", "10", "--rate", "1", "--duration", "1", "--peer");
  NO("chat", "--url", "http://127.0.0.1:9", "--users", "10", "--rate", "1", "--duration", "1", "--mode", "broadcast");
  NO("chat", "--url", "http://127.0.0.1:9", "--users", "20000", "--rate", "1", "--duration", "1"); /* needs --procs 2 */
  NO("storm-day", "--url", "http://127.0.0.1:9");                                                  /* no plan */
  NO("storm-day", "--url", "http://127.0.0.1:9", "--plan", "/nonexistent.json");
#undef NO
}

static void test_chat_and_day(void **state) {
  load_opts_t o = {0};
  assert_int_equal(PARSE(&o, "chat", "--url", "http://127.0.0.1:9", "--users", "300", "--rate", "0.5", "--duration", "10"), 0);
  assert_string_equal(o.scenario, "chat");
  assert_int_equal(o.users, 300);
  assert_int_equal(o.dms, 150); /* users / 2 */
  assert_int_equal(o.nclasses, 3);
  assert_true(o.classes[0].all && o.classes[1].size == 50 && o.classes[2].size == 5);
  assert_int_equal(o.weights.total, 100);
  assert_int_equal(o.history_limit, 20);
  memset(&o, 0, sizeof o);
  assert_int_equal(PARSE(&o, "chat", "--url", "http://127.0.0.1:9", "--users", "30", "--rate", "1", "--duration", "2",
                         "--channels", "1x*,5x6", "--dms", "0", "--weights", "send=1,history=1", "--seed", "9",
                         "--procs", "2", "--history-limit", "5"),
                   0);
  assert_int_equal(o.nclasses, 2);
  assert_int_equal(o.dms, 0);
  assert_int_equal(o.weights.w[CHAT_TYPING], 0);
  assert_int_equal(o.seed, 9);
  assert_int_equal(o.procs, 2);
  /* storm-day: the plan is read and bounded here. */
  char path[] = "/tmp/storm-opts-plan-XXXXXX";
  int fd = mkstemp(path);
  const char *pl = "{\"phases\":[{\"name\":\"a\",\"duration_s\":1,\"conns\":40000,\"msgs_per_s\":10}]}";
  assert_int_equal(write(fd, pl, strlen(pl)), (ssize_t)strlen(pl));
  close(fd);
  memset(&o, 0, sizeof o);
  assert_int_equal(PARSE(&o, "storm-day", "--url", "http://127.0.0.1:9", "--plan", path, "--procs", "3"), 0);
  assert_int_equal(o.day.max_conns, 40000);
  assert_true(o.room_users == 5 && o.devices == 20 && o.conn_rate == 5000);
  memset(&o, 0, sizeof o); /* 40,000 connections need 3 processes */
  assert_int_equal(PARSE(&o, "storm-day", "--url", "http://127.0.0.1:9", "--plan", path, "--procs", "2"), 2);
  memset(&o, 0, sizeof o); /* rooms of 1000: 40 rooms, 14 in the busiest of 3 workers: 14,000 */
  assert_int_equal(PARSE(&o, "storm-day", "--url", "http://127.0.0.1:9", "--plan", path, "--procs", "3",
                         "--room-users", "10", "--devices", "100"),
                   0);
  memset(&o, 0, sizeof o);
  assert_int_equal(PARSE(&o, "storm-day", "--url", "http://127.0.0.1:9", "--plan", path, "--procs", "3",
                         "--room-users", "11", "--devices", "100"),
                   2); /* a room of 1,100 */
  memset(&o, 0, sizeof o);
  assert_int_equal(PARSE(&o, "storm-day", "--url", "http://127.0.0.1:9", "--plan", path, "--procs", "3",
                         "--room-users", "1", "--devices", "1"),
                   2); /* a room of 1 */
  memset(&o, 0, sizeof o);
  assert_int_equal(PARSE(&o, "storm-day", "--url", "http://127.0.0.1:9", "--plan", path, "--procs", "3",
                         "--duration", "5"),
                   2); /* the plan has the durations */
  unlink(path);
  memset(&o, 0, sizeof o);
  assert_int_equal(PARSE(&o, "storm-day", "--url", "http://127.0.0.1:9", "--plan", path), 2); /* gone */
}

static void test_pids_bound(void **state) {
  char *argv[32] = {"storm-load", "hold", "--url", "http://127.0.0.1:9", "--conns", "1", "--rate", "1"};
  int n = 8;
  for (int i = 0; i < LOAD_MAX_PIDS; i++) {
    argv[n++] = "--server-pid";
    argv[n++] = "1";
  }
  load_opts_t o = {0};
  assert_int_equal(opts_parse(n, argv, &o), 0);
  assert_int_equal(o.npids, LOAD_MAX_PIDS);
  argv[n++] = "--server-pid";
  argv[n++] = "1";
  memset(&o, 0, sizeof o);
  assert_int_equal(opts_parse(n, argv, &o), 2);
}

static void test_procstat_parse(void **state) {
  double cpu = 0;
  uint64_t kb = 0;
  /* A command name with spaces and parentheses; utime 250, stime 50 ticks. */
  const char *stat = "1234 (my (odd) srv) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 10 1000 50";
  assert_int_equal(procstat_parse_stat(stat, 100, &cpu), 0);
  assert_true(cpu == 3.0);
  assert_int_equal(procstat_parse_stat("1234 no paren", 100, &cpu), -EPROTO);
  assert_int_equal(procstat_parse_stat("1 (x) S 1 2", 100, &cpu), -EPROTO);
  assert_int_equal(procstat_parse_stat(stat, 0, &cpu), -EPROTO);
  const char *status = "Name:\tstorm\nVmPeak:\t 9000 kB\nVmRSS:\t   61412 kB\nRssAnon:\t 1 kB\n";
  assert_int_equal(procstat_parse_status(status, &kb), 0);
  assert_int_equal(kb, 61412);
  assert_int_equal(procstat_parse_status("Name:\tx\n", &kb), -EPROTO);
  assert_int_equal(procstat_parse_status("Name:\tx\nVmRSS:\t kB\n", &kb), -EPROTO);
}

static void test_procstat_read(void **state) {
  procstat_t p = {0};
  assert_int_equal(procstat_read(getpid(), &p), 0);
  assert_true(p.rss_kb > 0);
  assert_true(p.cpu_s >= 0);
  assert_int_equal(procstat_read(0x7ffffff0, &p), -ENOENT);
}

static void test_media(void **state) {
  load_opts_t o = {0};
  assert_int_equal(PARSE(&o, "media", "--url", "http://127.0.0.1:9", "--vus", "30", "--iterations", "300"), 0);
  assert_string_equal(o.scenario, "media");
  assert_int_equal(o.vus, 30);
  assert_int_equal(o.iterations, 300);
  assert_true(o.duration == 0);
  memset(&o, 0, sizeof o);
  assert_int_equal(PARSE(&o, "media", "--url", "http://127.0.0.1:9", "--vus", "1000", "--duration", "2.5", "--report",
                         "r.json", "--html", "r.html", "--prefix", "mx_"),
                   0);
  assert_int_equal(o.vus, LOAD_MAX_VUS);
  assert_int_equal(o.iterations, 0);
  assert_true(o.duration == 2.5);
  assert_string_equal(o.report, "r.json");
  assert_string_equal(o.prefix, "mx_");
#define NO(...) (memset(&o, 0, sizeof o), assert_int_equal(PARSE(&o, __VA_ARGS__), 2))
  NO("media", "--url", "http://127.0.0.1:9", "--vus", "4");                          /* no iterations/duration */
  NO("media", "--url", "http://127.0.0.1:9", "--vus", "4", "--duration", "0");       /* a run of 0 s */
  NO("media", "--url", "http://127.0.0.1:9", "--iterations", "4");                   /* no vus */
  NO("media", "--url", "http://127.0.0.1:9", "--vus", "1001", "--iterations", "1");
  NO("media", "--url", "http://127.0.0.1:9", "--vus", "0", "--iterations", "1");
  NO("media", "--url", "http://127.0.0.1:9", "--vus", "1", "--iterations", "0");
  NO("media", "--url", "http://127.0.0.1:9", "--vus", "1", "--iterations", "1000001");
  NO("media", "--url", "http://127.0.0.1:9", "--vus", "1", "--duration", "3601");
  NO("media", "--url", "http://10.0.0.1:9", "--vus", "1", "--iterations", "1");      /* not loopback */
  NO("media", "--vus", "1", "--iterations", "1");                                    /* no url */
  NO("media", "--url", "http://127.0.0.1:9", "--vus", "1", "--iterations", "1", "--think-ms", "0"); /* auth only */
  NO("media", "--url", "http://127.0.0.1:9", "--vus", "1", "--iterations", "1", "--procs", "2");
  NO("media", "--url", "http://127.0.0.1:9", "--vus", "1", "--iterations", "1", "--rate", "1");
  NO("media", "--url", "http://127.0.0.1:9", "--vus", "1", "--iterations", "1", "--peer");
  NO("medi", "--url", "http://127.0.0.1:9", "--vus", "1", "--iterations", "1");      /* no such scenario */
#undef NO
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rooms_ramp),    cmocka_unit_test(test_defaults_and_caps),
      cmocka_unit_test(test_refusals),      cmocka_unit_test(test_pids_bound),
      cmocka_unit_test(test_chat_and_day),    cmocka_unit_test(test_media),
      cmocka_unit_test(test_procstat_parse), cmocka_unit_test(test_procstat_read),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
