/* Unit tests for storm-load's rate plans (tools/load/plan.c) and message
 * format/parse (tools/load/msg.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "load/msg.h"
#include "load/plan.h"
#include "load/run.h"

static void test_fixed(void **state) {
  plan_t p;
  assert_int_equal(plan_fixed(&p, 20, 2), 0);
  assert_int_equal(p.n, 1);
  assert_int_equal(p.s[0].msgs, 40);
  assert_true(p.total == 2.0);
  assert_int_equal(plan_due(&p, 0, -0.1), 0);
  assert_int_equal(plan_due(&p, 0, 0), 1);      /* the first at the start */
  assert_int_equal(plan_due(&p, 0, 0.5), 11);
  assert_int_equal(plan_due(&p, 0, 1.999), 40); /* capped */
  assert_int_equal(plan_due(&p, 0, 5), 40);
  assert_int_equal(plan_due(&p, 1, 5), 0);      /* no such step */
  /* round(rate x duration): 0.5 msgs/s for 3 s is 2 (1.5 rounds up). */
  assert_int_equal(plan_fixed(&p, 0.5, 3), 0);
  assert_int_equal(p.s[0].msgs, 2);
  assert_int_equal(plan_fixed(&p, 1, 0), 0);
  assert_int_equal(p.s[0].msgs, 0);
}

static void test_ramp(void **state) {
  plan_t p;
  assert_int_equal(plan_ramp(&p, 5, 5, 15, 2), 0);
  assert_int_equal(p.n, 3);
  assert_true(p.s[0].rate == 5 && p.s[1].rate == 10 && p.s[2].rate == 15);
  assert_true(p.s[2].start == 4 && p.total == 6);
  assert_int_equal(p.s[1].msgs, 20);
  assert_int_equal(plan_due(&p, 1, 1.9), 0);
  assert_int_equal(plan_due(&p, 1, 2.0), 1);
  assert_int_equal(plan_due(&p, 1, 3.0), 11);
  assert_int_equal(plan_due(&p, 0, 3.0), 10);
  /* A max between steps stops below it; a zero step is one step. */
  assert_int_equal(plan_ramp(&p, 10, 20, 45, 1), 0);
  assert_int_equal(p.n, 2);
  assert_int_equal(plan_ramp(&p, 10, 0, 100, 1), 0);
  assert_int_equal(p.n, 1);
}

static void test_bounds(void **state) {
  plan_t p;
  assert_int_equal(plan_fixed(&p, 0, 1), -EINVAL);
  assert_int_equal(plan_fixed(&p, LOAD_MAX_RATE + 1, 1), -EINVAL);
  assert_int_equal(plan_fixed(&p, 1, LOAD_MAX_DURATION_S + 1), -EINVAL);
  assert_int_equal(plan_ramp(&p, 1, 1, 100, 1), -E2BIG);          /* 100 steps */
  assert_int_equal(plan_ramp(&p, 1, 1, 60, 61), -EINVAL);        /* 60 x 61 s > 3600 s */
  assert_int_equal(plan_ramp(&p, 10, 1, 5, 1), -EINVAL);         /* max below start */
  assert_int_equal(plan_ramp(&p, 1, 1, 5, 0), -EINVAL);
  assert_int_equal(plan_ramp(&p, 1, -1, 5, 1), -EINVAL);
}

static void test_msg_roundtrip(void **state) {
  char m[400];
  int n = msg_format_send(m, sizeof m, 42, 3, 123456789, 7, "ld1_");
  assert_true(n > 0);
  assert_non_null(strstr(m, "\"op\":\"send\",\"channel_id\":42,"));
  assert_non_null(strstr(m, "\"nonce\":\"ld1_42_7\""));
  assert_non_null(strstr(m, "\"ref\":\"3_123456789\""));
  /* What the server answers: the ack echoes ref; the message echoes body. */
  msg_in_t in;
  const char *ack = "{\"op\":\"ack\",\"ref\":\"3_123456789\",\"message\":{\"id\":1}}";
  msg_parse(ack, strlen(ack), &in);
  assert_int_equal(in.kind, MSG_ACK);
  assert_true(in.stamped);
  assert_int_equal(in.step, 3);
  assert_int_equal(in.t_us, 123456789);
  const char *ev = "{\"op\":\"message\",\"message\":{\"id\":9,\"body\":\"s=3 t=123456789 i=7 storm-load\"}}";
  msg_parse(ev, strlen(ev), &in);
  assert_int_equal(in.kind, MSG_MESSAGE);
  assert_true(in.stamped && in.step == 3 && in.t_us == 123456789);
  n = msg_format_broadcast(m, sizeof m, 5, 0, 99, 1);
  assert_true(n > 0);
  assert_string_equal(m, "{\"op\":\"broadcast\",\"channel_id\":5,\"body\":\"s=0 t=99 i=1 storm-load\"}");
  /* The peer's form, with spaces after the colons (tolerated). */
  const char *bc = "{\"op\": \"broadcast\",\"channel_id\":5,\"user_id\":0,\"body\": \"s=0 t=99 i=1 storm-load\"}";
  msg_parse(bc, strlen(bc), &in);
  assert_int_equal(in.kind, MSG_BROADCAST);
  assert_true(in.stamped && in.step == 0 && in.t_us == 99);
  assert_int_equal(msg_format_send(m, 20, 42, 3, 1, 7, "p"), -ENOSPC);
  assert_int_equal(msg_format_broadcast(m, 20, 42, 3, 1, 7), -ENOSPC);
}

static void test_msg_parse_kinds_and_garbage(void **state) {
  msg_in_t in;
  const char *h = "{\"op\":\"hello\",\"user\":{}}";
  msg_parse(h, strlen(h), &in);
  assert_int_equal(in.kind, MSG_HELLO);
  assert_false(in.stamped);
  const char *e = "{\"op\":\"error\",\"code\":\"x\"}";
  msg_parse(e, strlen(e), &in);
  assert_int_equal(in.kind, MSG_ERROR);
  const char *o = "{\"op\":\"typing\",\"channel_id\":1}";
  msg_parse(o, strlen(o), &in);
  assert_int_equal(in.kind, MSG_OTHER);
  msg_parse("", 0, &in);
  assert_int_equal(in.kind, MSG_OTHER);
  /* Not ours: a body without the stamp, an ack with a numeric ref. */
  const char *b = "{\"op\":\"message\",\"body\":\"hello\"}";
  msg_parse(b, strlen(b), &in);
  assert_int_equal(in.kind, MSG_MESSAGE);
  assert_false(in.stamped);
  const char *a = "{\"op\":\"ack\",\"ref\":5}";
  msg_parse(a, strlen(a), &in);
  assert_false(in.stamped);
  /* Truncated input: the scan stops at the end (no read past it under ASan). */
  const char *t = "{\"op\":\"message\",\"body\":\"s=3 t=12";
  char *cut = malloc(strlen(t));
  memcpy(cut, t, strlen(t));
  msg_parse(cut, strlen(t), &in);
  assert_true(in.stamped && in.t_us == 12);
  msg_parse(cut, strlen(t) - 6, &in); /* ends in "s=3" */
  assert_false(in.stamped);
  free(cut);
  /* A step beyond 32 bits is not a stamp. */
  const char *big = "{\"op\":\"message\",\"body\":\"s=99999999999 t=1\"}";
  msg_parse(big, strlen(big), &in);
  assert_false(in.stamped);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixed),           cmocka_unit_test(test_ramp),
      cmocka_unit_test(test_bounds),          cmocka_unit_test(test_msg_roundtrip),
      cmocka_unit_test(test_msg_parse_kinds_and_garbage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
