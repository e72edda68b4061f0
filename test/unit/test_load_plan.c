/* Unit tests for storm-load's rate plans (tools/load/plan.c) and message
 * format/parse (tools/load/msg.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
  assert_int_equal(plan_due(&p, 0, -0.1, 0), 0);
  assert_int_equal(plan_due(&p, 0, 0, 0), 1);      /* the first at the start */
  assert_int_equal(plan_due(&p, 0, 0.5, 0), 11);
  assert_int_equal(plan_due(&p, 0, 1.999, 0), 40); /* capped */
  assert_int_equal(plan_due(&p, 0, 5, 0), 40);
  assert_int_equal(plan_due(&p, 1, 5, 0), 0);      /* no such step */
  /* A phase of 0.5 delays each message by half an interval (25 ms at 20/s):
   * none at the start, the first at 25 ms, the same total by the end. */
  assert_int_equal(plan_due(&p, 0, 0, 0.5), 0);
  assert_int_equal(plan_due(&p, 0, 0.024, 0.5), 0);
  assert_int_equal(plan_due(&p, 0, 0.026, 0.5), 1);
  assert_int_equal(plan_due(&p, 0, 0.5, 0.5), 10);
  assert_int_equal(plan_due(&p, 0, 1.999, 0.5), 40);
  assert_int_equal(plan_due(&p, 0, 2, 0.5), 40);
  /* 4 senders with phases 0, .25, .5, .75 at 20/s: over any 12.5 ms, one
   * of them has a message due, never all four at once. */
  for (int ms = 0; ms < 200; ms++) {
    double t = ms / 1000.0, t2 = (ms + 12.5) / 1000.0;
    uint64_t total = 0;
    for (int i = 0; i < 4; i++) total += plan_due(&p, 0, t2, i / 4.0) - plan_due(&p, 0, t, i / 4.0);
    assert_true(total <= 1);
  }
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
  assert_int_equal(plan_due(&p, 1, 1.9, 0), 0);
  assert_int_equal(plan_due(&p, 1, 2.0, 0), 1);
  assert_int_equal(plan_due(&p, 1, 3.0, 0), 11);
  assert_int_equal(plan_due(&p, 0, 3.0, 0), 10);
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
  int n = msg_format_send(m, sizeof m, 42, 3, 123456789, 7, "ld1_", 7);
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
  assert_int_equal(msg_format_send(m, 20, 42, 3, 1, 7, "p", 7), -ENOSPC);
  /* --nonces random: the body keeps the index, the nonce is scattered. */
  n = msg_format_send(m, sizeof m, 42, 3, 1, 2, "p", msg_nonce_scatter(2));
  assert_true(n > 0);
  assert_non_null(strstr(m, "i=2 storm-load"));
  assert_non_null(strstr(m, "\"nonce\":\"p42_4354685564936845354\""));
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
  const char *o = "{\"op\":\"presence\",\"channel_id\":1}";
  msg_parse(o, strlen(o), &in);
  assert_int_equal(in.kind, MSG_OTHER);
  const char *ty = "{\"op\":\"typing\",\"channel_id\":12,\"user_id\":3}";
  msg_parse(ty, strlen(ty), &in);
  assert_int_equal(in.kind, MSG_TYPING);
  assert_int_equal(in.channel, 12);
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

/* chat: the sender's user index travels in the body; history and read
 * answers carry their request time in the ref; channel and seq are read. */
static void test_msg_chat(void **state) {
  char m[512];
  msg_in_t in;
  int n = msg_format_chat_send(m, sizeof m, 42, 0, 123456789, 7, 31, "ld1_");
  assert_true(n > 0);
  assert_non_null(strstr(m, "\"nonce\":\"ld1_u31_7\""));
  /* The server's message event echoes body, adds seq (and a channel_id outside the message). */
  char ev[600];
  snprintf(ev, sizeof ev,
           "{\"op\":\"message\",\"channel_id\":42,\"message\":{\"id\":\"9\",\"seq\":17,\"author_id\":5,"
           "\"body\":\"s=0 t=123456789 i=7 u=31 storm-load\",\"nonce\":\"ld1_u31_7\"}}");
  msg_parse(ev, strlen(ev), &in);
  assert_int_equal(in.kind, MSG_MESSAGE);
  assert_true(in.stamped && in.t_us == 123456789 && in.step == 0);
  assert_true(in.has_user);
  assert_int_equal(in.user, 31);
  assert_int_equal(in.channel, 42);
  assert_int_equal(in.seq, 17);
  /* A rooms body has no user. */
  const char *rb = "{\"op\":\"message\",\"message\":{\"body\":\"s=1 t=5 i=2 storm-load\"}}";
  msg_parse(rb, strlen(rb), &in);
  assert_true(in.stamped && !in.has_user);
  const char *ack = "{\"op\":\"ack\",\"ref\":\"0_99\",\"channel_id\":42,\"id\":\"9\",\"seq\":18}";
  msg_parse(ack, strlen(ack), &in);
  assert_true(in.kind == MSG_ACK && in.stamped && in.t_us == 99 && in.channel == 42 && in.seq == 18);
  assert_true(msg_format_history(m, sizeof m, 42, 20, 555) > 0);
  assert_string_equal(m, "{\"op\":\"history\",\"channel_id\":42,\"limit\":20,\"ref\":\"0_555\"}");
  const char *h = "{\"op\":\"history\",\"ref\":\"0_555\",\"channel_id\":42,\"messages\":[],\"more\":false}";
  msg_parse(h, strlen(h), &in);
  assert_true(in.kind == MSG_HISTORY && in.stamped && in.t_us == 555);
  assert_true(msg_format_read(m, sizeof m, 42, 18, 777) > 0);
  assert_string_equal(m, "{\"op\":\"read\",\"channel_id\":42,\"seq\":18,\"ref\":\"0_777\"}");
  const char *r = "{\"op\":\"read_ack\",\"ref\":\"0_777\",\"channel_id\":42,\"last_read_seq\":18}";
  msg_parse(r, strlen(r), &in);
  assert_true(in.kind == MSG_READ_ACK && in.stamped && in.t_us == 777);
  assert_true(msg_format_typing(m, sizeof m, 42) > 0);
  assert_string_equal(m, "{\"op\":\"typing\",\"channel_id\":42}");
  assert_int_equal(msg_format_typing(m, 10, 42), -ENOSPC);
  assert_int_equal(msg_format_chat_send(m, 40, 42, 0, 1, 1, 1, "p"), -ENOSPC);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixed),           cmocka_unit_test(test_ramp),
      cmocka_unit_test(test_bounds),          cmocka_unit_test(test_msg_roundtrip),
      cmocka_unit_test(test_msg_parse_kinds_and_garbage), cmocka_unit_test(test_msg_chat),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
