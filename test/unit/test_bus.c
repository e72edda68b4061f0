/* Unit tests for bus/bus (subject grammar) and bus/bus_local: the shared
 * contract suite (bus_suite.h) run against the local engine, plus what only
 * the local engine promises (immediate delivery in the next loop iteration,
 * drain batches, matching at delivery time, its max_payload parameter). Each
 * test runs on a real uv loop that must close with no handle left behind. */
#include "bus_suite.h"

#include "bus/bus_local.h"

static bus_t *local_open(uv_loop_t *loop) { return bus_local_new(loop, 0); }

/* The local bus only works when the loop runs, and an idle one keeps the
 * loop neither alive nor awake: a dry loop means nothing more is coming. */
static void local_settle(fx_t *f) { uv_run(&f->loop, UV_RUN_DEFAULT); }

static const suite_engine_t local_engine = {"local", local_open, local_settle};

static void run(fx_t *f) { uv_run(&f->loop, UV_RUN_DEFAULT); }

/* ---- subject grammar ---- */

static void test_subject_valid(void **state) {
  static const struct {
    const char *s;
    bool wild_ok; /* valid as a pattern */
    bool lit_ok;  /* valid as a published subject */
  } t[] = {
      {"a", true, true},
      {"a.b.c", true, true},
      {"chan.1234.events", true, true},
      {"_INBOX.abc.1", true, true},
      {"caf\xc3\xa9.x", true, true}, /* UTF-8 allowed, as in NATS */
      {"a-b_c:d/e", true, true},
      {"*", true, false},
      {">", true, false},
      {"a.*", true, false},
      {"a.*.c", true, false},
      {"a.>", true, false},
      {"*.*.>", true, false},
      {"", false, false},
      {".", false, false},
      {"a.", false, false},
      {".a", false, false},
      {"a..b", false, false},
      {"a b", false, false},
      {"a\tb", false, false},
      {"a\nb", false, false},
      {"a\rb", false, false},
      {"a\x7f", false, false},
      {"a\x01.b", false, false},
      {"a*", false, false},
      {"*a", false, false},
      {"a.b*.c", false, false},
      {"a>", false, false},
      {"a.>b", false, false},
      {">.a", false, false},
      {"a.>.b", false, false},
      {"**", false, false},
      {">>", false, false},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    if (bus_subject_valid(t[i].s, true) != t[i].wild_ok) fail_msg("pattern '%s'", t[i].s);
    if (bus_subject_valid(t[i].s, false) != t[i].lit_ok) fail_msg("subject '%s'", t[i].s);
  }
  assert_false(bus_subject_valid(NULL, true));

  char s[BUS_SUBJECT_MAX + 2];
  memset(s, 'x', sizeof s);
  s[BUS_SUBJECT_MAX] = '\0';
  assert_true(bus_subject_valid(s, false));
  s[BUS_SUBJECT_MAX] = 'x';
  s[BUS_SUBJECT_MAX + 1] = '\0';
  assert_false(bus_subject_valid(s, false));
  s[BUS_SUBJECT_MAX - 1] = '.'; /* a trailing dot past the limit is still invalid */
  s[BUS_SUBJECT_MAX] = 'x';
  assert_false(bus_subject_valid(s, true));
}

static void test_subject_match(void **state) {
  static const struct {
    const char *p, *s;
    bool m;
  } t[] = {
      {"a.b.c", "a.b.c", true},
      {"a.b.c", "a.b", false},
      {"a.b", "a.b.c", false},
      {"a.b.c", "a.b.cd", false},
      {"a.b.cd", "a.b.c", false},
      {"a.b", "ab", false},
      {"foo", "foobar", false},
      {"foobar", "foo", false},
      {"a.*.c", "a.b.c", true},
      {"a.*.c", "a.bbb.c", true},
      {"a.*.c", "a.b.d", false},
      {"a.*.c", "a.c", false},
      {"a.*.c", "a.b.c.d", false},
      {"a.*", "a.b", true},
      {"a.*", "a", false},
      {"a.*", "a.b.c", false},
      {"*", "a", true},
      {"*", "a.b", false},
      {"*.*", "a.b", true},
      {"a.>", "a.b", true},
      {"a.>", "a.b.c.d", true},
      {"a.>", "a", false},
      {"a.>", "ab.c", false},
      {"a.>", "b.a.c", false},
      {">", "a", true},
      {">", "a.b.c", true},
      {"*.>", "a", false},
      {"*.>", "a.b", true},
      {"a.*.>", "a.b.c", true},
      {"a.*.>", "a.b", false},
      {"chan.*.events", "chan.1234.events", true},
      {"chan.*.events", "chan.1234.event", false},
      {"chan.*.events", "chan.1234.eventsx", false},
      /* invalid operands never match */
      {"a.*", "a.*", false},
      {"a.>", "a.>", false},
      {"a..b", "a..b", false},
      {"a>", "a>", false},
      {"", "", false},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (bus_subject_match(t[i].p, t[i].s) != t[i].m)
      fail_msg("'%s' vs '%s': expected %d", t[i].p, t[i].s, t[i].m);
  assert_false(bus_subject_match(NULL, "a"));
  assert_false(bus_subject_match("a", NULL));
}

/* ---- local only ---- */

static void test_max_payload_param(void **state) {
  fx_t f;
  assert_int_equal(uv_loop_init(&f.loop), 0);
  f.bus = bus_local_new(&f.loop, 16);
  assert_non_null(f.bus);
  f.closed = 0;
  uv_timer_init(&f.loop, &f.tick);
  assert_int_equal(bus_max_payload(f.bus), 16);
  rec_t r = {0};
  assert_int_equal(bus_subscribe(f.bus, "big", NULL, rec_cb, &r, NULL), 0);
  char buf[17];
  memset(buf, 'z', sizeof buf);
  assert_int_equal(bus_publish(f.bus, "big", NULL, buf, 17), -EMSGSIZE);
  assert_int_equal(bus_request(f.bus, "big", buf, 17, 100, noreply_cb, NULL, NULL), -EMSGSIZE);
  bus_msg_t m = {"x", "big", NULL, 0};
  assert_int_equal(bus_respond(f.bus, &m, buf, 17), -EMSGSIZE);
  assert_int_equal(bus_publish(f.bus, "big", NULL, buf, 16), 0);
  run(&f);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.len, 16);
  fx_done(&f);
}

/* Matching happens at delivery: a queue member removed by an earlier
 * callback of the same message is not picked (NATS picks at publish). */
static void test_queue_member_removed_before_delivery(void **state) {
  fx_t f;
  fx_init(&f);
  unsub_t p = {0};
  int q1 = 0, q2 = 0;
  bus_sub_t *sq1;
  assert_int_equal(bus_subscribe(f.bus, "z", NULL, unsub_other_cb, &p, &p.self), 0);
  assert_int_equal(bus_subscribe(f.bus, "z", "grp", count_cb, &q1, &sq1), 0);
  assert_int_equal(bus_subscribe(f.bus, "z", "grp", count_cb, &q2, NULL), 0);
  p.victim = sq1;
  for (int i = 0; i < 20; i++) assert_int_equal(bus_publish(f.bus, "z", NULL, NULL, 0), 0);
  run(&f);
  assert_int_equal(p.n, 20);
  assert_int_equal(q1, 0);
  assert_int_equal(q2, 20);
  fx_done(&f);
}

typedef struct {
  int n;
  int late;
  bus_sub_t *added;
} adder_t;

static void add_sub_cb(bus_t *bus, const bus_msg_t *msg, void *arg) {
  adder_t *a = arg;
  if (a->n++ == 0)
    assert_int_equal(bus_subscribe(bus, msg->subject, NULL, count_cb, &a->late, &a->added), 0);
}

static void test_subscribe_in_callback(void **state) {
  fx_t f;
  fx_init(&f);
  adder_t a = {0};
  assert_int_equal(bus_subscribe(f.bus, "s", NULL, add_sub_cb, &a, NULL), 0);
  assert_int_equal(bus_publish(f.bus, "s", NULL, NULL, 0), 0);
  assert_int_equal(bus_publish(f.bus, "s", NULL, NULL, 0), 0);
  run(&f);
  assert_int_equal(a.n, 2);
  assert_int_equal(a.late, 1); /* not the message being delivered, the next one */
  fx_done(&f);
}

/* One FIFO per bus: order across subjects and subscriptions too. */
static int g_seen[4];
static int g_seen_n;
static void seq_cb(bus_t *bus, const bus_msg_t *msg, void *arg) {
  if (g_seen_n < 4) g_seen[g_seen_n++] = (int)(intptr_t)arg * 10 + ((const char *)msg->data)[0] - '0';
}

static void test_global_order(void **state) {
  fx_t f;
  fx_init(&f);
  g_seen_n = 0;
  assert_int_equal(bus_subscribe(f.bus, "p", NULL, seq_cb, (void *)(intptr_t)1, NULL), 0);
  assert_int_equal(bus_subscribe(f.bus, "q", NULL, seq_cb, (void *)(intptr_t)2, NULL), 0);
  assert_int_equal(bus_publish(f.bus, "q", NULL, "1", 1), 0);
  assert_int_equal(bus_publish(f.bus, "p", NULL, "2", 1), 0);
  assert_int_equal(bus_publish(f.bus, "q", NULL, "3", 1), 0);
  assert_int_equal(bus_publish(f.bus, "p", NULL, "4", 1), 0);
  run(&f);
  assert_int_equal(g_seen_n, 4);
  assert_int_equal(g_seen[0], 21);
  assert_int_equal(g_seen[1], 12);
  assert_int_equal(g_seen[2], 23);
  assert_int_equal(g_seen[3], 14);
  fx_done(&f);
}

/* A subscriber that unsubscribed before delivery is no responder either. */
static void test_no_responders_after_unsubscribe(void **state) {
  fx_t f;
  fx_init(&f);
  int n = 0;
  bus_sub_t *s;
  assert_int_equal(bus_subscribe(f.bus, "gone", NULL, count_cb, &n, &s), 0);
  reply_t r2 = {0};
  assert_int_equal(bus_request(f.bus, "gone", NULL, 0, 10000, reply_cb, &r2, NULL), 0);
  assert_int_equal(bus_unsubscribe(s), 0);
  run(&f);
  assert_int_equal(r2.calls, 1);
  assert_int_equal(r2.status, BUS_ENORESPONDERS);
  assert_int_equal(n, 0);
  fx_done(&f);
}

/* ---- loop integration ---- */

static void never_timer_cb(uv_timer_t *t) { fail_msg("timer fired before delivery"); }

typedef struct {
  int n;
  uv_timer_t *timer;
} stopper_t;

static void stop_timer_cb(bus_t *bus, const bus_msg_t *msg, void *arg) {
  stopper_t *s = arg;
  s->n++;
  uv_close((uv_handle_t *)s->timer, NULL);
}

/* Delivery happens in the next loop iteration, before the loop sleeps: a
 * far timer (or a socket with nothing to read) does not delay it. */
static void test_delivery_does_not_wait(void **state) {
  fx_t f;
  fx_init(&f);
  uv_timer_t t;
  stopper_t s = {0, &t};
  assert_int_equal(bus_subscribe(f.bus, "now", NULL, stop_timer_cb, &s, NULL), 0);
  /* an idle bus keeps the loop neither alive nor awake */
  assert_int_equal(uv_loop_alive(&f.loop), 0);
  uv_timer_init(&f.loop, &t);
  uv_timer_start(&t, never_timer_cb, 60000, 0);
  assert_int_equal(bus_publish(f.bus, "now", NULL, NULL, 0), 0);
  assert_int_not_equal(uv_loop_alive(&f.loop), 0);
  uint64_t t0 = uv_hrtime();
  run(&f);
  assert_int_equal(s.n, 1);
  assert_true(uv_hrtime() - t0 < 1000000000ULL);
  assert_int_equal(uv_loop_alive(&f.loop), 0);
  fx_done(&f);
}

static void test_drain_batch_yields(void **state) {
  fx_t f;
  fx_init(&f);
  int n = 0;
  assert_int_equal(bus_subscribe(f.bus, "storm", NULL, count_cb, &n, NULL), 0);
  for (int i = 0; i < BUS_LOCAL_DRAIN_BATCH + 10; i++)
    assert_int_equal(bus_publish(f.bus, "storm", NULL, NULL, 0), 0);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  assert_int_equal(n, BUS_LOCAL_DRAIN_BATCH);
  assert_int_not_equal(uv_loop_alive(&f.loop), 0);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  assert_int_equal(n, BUS_LOCAL_DRAIN_BATCH + 10);
  fx_done(&f);
}

int main(void) {
  g_engine = &local_engine;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_subject_valid),
      cmocka_unit_test(test_subject_match),
      BUS_SUITE_TESTS,
      cmocka_unit_test(test_max_payload_param),
      cmocka_unit_test(test_queue_member_removed_before_delivery),
      cmocka_unit_test(test_subscribe_in_callback),
      cmocka_unit_test(test_global_order),
      cmocka_unit_test(test_no_responders_after_unsubscribe),
      cmocka_unit_test(test_delivery_does_not_wait),
      cmocka_unit_test(test_drain_batch_yields),
  };
  return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
