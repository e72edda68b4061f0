/* Unit tests for storm-load's chat mix (tools/load/chatmix.c): the action
 * picker's weights, the channel-class and weight specs, and the layout. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "load/chatmix.h"

static void test_pick_boundaries(void **state) {
  chat_weights_t w = {.w = {1, 1, 1, 1}, .total = 4};
  /* r is scaled to [0, total): each quarter of the 32-bit range is one action. */
  assert_int_equal(chat_pick(&w, 0), CHAT_SEND);
  assert_int_equal(chat_pick(&w, 0x3fffffffu), CHAT_SEND);
  assert_int_equal(chat_pick(&w, 0x40000000u), CHAT_TYPING);
  assert_int_equal(chat_pick(&w, 0x7fffffffu), CHAT_TYPING);
  assert_int_equal(chat_pick(&w, 0x80000000u), CHAT_HISTORY);
  assert_int_equal(chat_pick(&w, 0xc0000000u), CHAT_READ);
  assert_int_equal(chat_pick(&w, 0xffffffffu), CHAT_READ);
  /* A zero weight is never picked, whatever r. */
  chat_weights_t z = {.w = {0, 5, 0, 5}, .total = 10};
  for (uint64_t r = 0; r <= 0xffffffffu; r += 0x00100001u) {
    enum chat_action a = chat_pick(&z, (uint32_t)r);
    assert_true(a == CHAT_TYPING || a == CHAT_READ);
  }
  chat_weights_t only = {.w = {0, 0, 7, 0}, .total = 7};
  assert_int_equal(chat_pick(&only, 0), CHAT_HISTORY);
  assert_int_equal(chat_pick(&only, 0xffffffffu), CHAT_HISTORY);
}

static void test_pick_distribution(void **state) {
  chat_weights_t w;
  chat_default_weights(&w);
  assert_int_equal(w.total, 100);
  unsigned n[CHAT_NACTIONS] = {0};
  uint64_t rs = 42;
  const unsigned N = 200000;
  for (unsigned i = 0; i < N; i++) n[chat_pick(&w, (uint32_t)(chat_rand(&rs) >> 32))]++;
  /* 50/30/10/10 within 1% of N (binomial sd is about 0.1%). */
  assert_in_range(n[CHAT_SEND], N / 2 - N / 100, N / 2 + N / 100);
  assert_in_range(n[CHAT_TYPING], N * 3 / 10 - N / 100, N * 3 / 10 + N / 100);
  assert_in_range(n[CHAT_HISTORY], N / 10 - N / 100, N / 10 + N / 100);
  assert_in_range(n[CHAT_READ], N / 10 - N / 100, N / 10 + N / 100);
}

static void test_weights_spec(void **state) {
  chat_weights_t w;
  char err[200];
  assert_int_equal(chat_parse_weights("send=3,read=1", &w, err, sizeof err), 0);
  assert_int_equal(w.w[CHAT_SEND], 3);
  assert_int_equal(w.w[CHAT_TYPING], 0);
  assert_int_equal(w.w[CHAT_READ], 1);
  assert_int_equal(w.total, 4);
  assert_int_equal(chat_parse_weights("history=1000,typing=0", &w, err, sizeof err), 0);
  assert_int_equal(w.total, 1000);
  assert_int_equal(chat_parse_weights("send=0,typing=0", &w, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "all 0"));
  assert_int_equal(chat_parse_weights("send=1001", &w, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "send must be 0..1000"));
  assert_int_equal(chat_parse_weights("shout=1", &w, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "expected send="));
  assert_int_equal(chat_parse_weights("send=1,send=2", &w, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "twice"));
  assert_int_equal(chat_parse_weights("send=1;read=2", &w, err, sizeof err), -EINVAL);
  assert_int_equal(chat_parse_weights("send=", &w, err, sizeof err), -EINVAL);
  assert_int_equal(chat_parse_weights("send=1,", &w, err, sizeof err), -EINVAL);
  assert_int_equal(chat_parse_weights("", &w, err, sizeof err), -EINVAL);
}

static void test_classes_spec(void **state) {
  chat_class_t c[CHAT_MAX_CLASSES];
  unsigned n = 0;
  char err[200];
  assert_int_equal(chat_parse_classes("1x*,4x50,40x5", 200, c, &n, err, sizeof err), 0);
  assert_int_equal(n, 3);
  assert_true(c[0].all && c[0].count == 1);
  assert_true(!c[1].all && c[1].count == 4 && c[1].size == 50);
  assert_true(c[2].count == 40 && c[2].size == 5);
  assert_int_equal(chat_parse_classes("2x201", 200, c, &n, err, sizeof err), -EINVAL); /* bigger than the users */
  assert_non_null(strstr(err, "SIZE must be 2..200"));
  assert_int_equal(chat_parse_classes("2x1", 200, c, &n, err, sizeof err), -EINVAL);
  assert_int_equal(chat_parse_classes("0x5", 200, c, &n, err, sizeof err), -EINVAL);
  assert_int_equal(chat_parse_classes("x5", 200, c, &n, err, sizeof err), -EINVAL);
  assert_int_equal(chat_parse_classes("3y5", 200, c, &n, err, sizeof err), -EINVAL);
  assert_int_equal(chat_parse_classes("3x5,", 200, c, &n, err, sizeof err), -EINVAL);
  assert_int_equal(chat_parse_classes("3x5 ", 200, c, &n, err, sizeof err), -EINVAL);
  assert_int_equal(chat_parse_classes("1x2,1x2,1x2,1x2,1x2,1x2,1x2,1x2,1x2", 200, c, &n, err, sizeof err), -E2BIG);
  assert_int_equal(chat_parse_classes("100000x100", 200, c, &n, err, sizeof err), -E2BIG); /* memberships */
  assert_int_equal(chat_parse_classes("1x*", 1, c, &n, err, sizeof err), -EINVAL);
  /* Defaults: everyone, 50s from 100 users, 5s. */
  chat_default_classes(1000, c, &n);
  assert_int_equal(n, 3);
  assert_true(c[0].all && c[1].count == 20 && c[1].size == 50 && c[2].count == 200 && c[2].size == 5);
  chat_default_classes(30, c, &n);
  assert_int_equal(n, 2);
  assert_true(c[0].all && c[1].count == 6 && c[1].size == 5);
  chat_default_classes(3, c, &n);
  assert_true(c[1].count == 1 && c[1].size == 3);
}

static void test_layout(void **state) {
  chat_class_t c[3] = {{.count = 1, .all = true}, {.count = 4, .size = 10}, {.count = 12, .size = 5}};
  chat_layout_t l, l2;
  char err[200];
  assert_int_equal(chat_layout_build(&l, 60, c, 3, 25, 7, err, sizeof err), 0);
  assert_int_equal(l.nchannels, 17);
  assert_int_equal(l.nconvs, 42);
  assert_int_equal(chat_conv_size(&l, 0), 60);
  assert_int_equal(chat_conv_size(&l, 1), 10);
  assert_int_equal(chat_conv_size(&l, 16), 5);
  assert_int_equal(chat_conv_size(&l, 41), 2);
  /* Members of a conversation are distinct; DM pairs are distinct. */
  for (unsigned cv = 0; cv < l.nconvs; cv++) {
    const uint32_t *m = &l.members[l.conv_off[cv]];
    for (unsigned i = 0; i < chat_conv_size(&l, cv); i++) {
      assert_true(m[i] < 60);
      for (unsigned k = 0; k < i; k++) assert_int_not_equal(m[i], m[k]);
    }
  }
  for (unsigned a = l.nchannels; a < l.nconvs; a++)
    for (unsigned b = l.nchannels; b < a; b++) {
      uint32_t a0 = l.members[l.conv_off[a]], a1 = l.members[l.conv_off[a] + 1];
      uint32_t b0 = l.members[l.conv_off[b]], b1 = l.members[l.conv_off[b] + 1];
      assert_false((a0 == b0 && a1 == b1) || (a0 == b1 && a1 == b0));
    }
  /* The inverse index: every membership appears once in its user's list. */
  uint64_t total = 0;
  for (unsigned u = 0; u < 60; u++) {
    assert_true(l.user_off[u + 1] - l.user_off[u] >= 2); /* the big channel and a 5 (12x5 = 60 covers everyone) */
    for (uint32_t i = l.user_off[u]; i < l.user_off[u + 1]; i++) {
      unsigned cv = l.user_convs[i];
      bool found = false;
      for (uint32_t k = l.conv_off[cv]; k < l.conv_off[cv + 1]; k++) found = found || l.members[k] == u;
      assert_true(found);
    }
    total += l.user_off[u + 1] - l.user_off[u];
  }
  assert_int_equal(total, l.conv_off[l.nconvs]);
  /* Deterministic for a seed, different for another. */
  assert_int_equal(chat_layout_build(&l2, 60, c, 3, 25, 7, err, sizeof err), 0);
  assert_memory_equal(l.members, l2.members, l.conv_off[l.nconvs] * sizeof *l.members);
  chat_layout_free(&l2);
  assert_int_equal(chat_layout_build(&l2, 60, c, 3, 25, 8, err, sizeof err), 0);
  assert_memory_not_equal(l.members + 60, l2.members + 60, 40 * sizeof *l.members);
  chat_layout_free(&l2);
  chat_layout_free(&l);
  /* Refusals. */
  assert_int_equal(chat_layout_build(&l, 1, c, 1, 0, 1, err, sizeof err), -EINVAL);
  assert_int_equal(chat_layout_build(&l, 4, c, 0, 7, 1, err, sizeof err), -EINVAL); /* 6 pairs exist */
  assert_non_null(strstr(err, "one per pair"));
  assert_int_equal(chat_layout_build(&l, 4, c, 0, 6, 1, err, sizeof err), 0); /* every pair */
  assert_int_equal(l.nconvs, 6);
  chat_layout_free(&l);
  chat_class_t many = {.count = 1001, .size = 3};
  assert_int_equal(chat_layout_build(&l, 3, &many, 1, 0, 1, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "more than the 1000"));
  chat_class_t big = {.count = 3, .size = 10};
  assert_int_equal(chat_layout_build(&l, 5, &big, 1, 0, 1, err, sizeof err), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pick_boundaries), cmocka_unit_test(test_pick_distribution),
      cmocka_unit_test(test_weights_spec),    cmocka_unit_test(test_classes_spec),
      cmocka_unit_test(test_layout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
