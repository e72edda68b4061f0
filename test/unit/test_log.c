/* Unit tests for core/log: level filtering, lazy arguments, JSON validity
 * (parsed back with jansson), escaping, UTF-8 repair, line cap, one write
 * per line, text format, errno preservation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/log.h"

static int cap_fd = -1;
static char cap[3 * LOG_LINE_MAX];

/* Each test logs into a fresh memfd and reads it back. */
static int setup(void **state) {
  cap_fd = memfd_create("log", 0);
  if (cap_fd < 0) return -1;
  log_set_fd(cap_fd);
  log_set_level(LOG_LEVEL_DEBUG);
  log_set_format(LOG_FORMAT_JSON);
  return 0;
}

static int teardown(void **state) {
  close(cap_fd);
  log_set_fd(2);
  log_set_level(LOG_LEVEL_INFO);
  log_set_format(LOG_FORMAT_JSON);
  return 0;
}

static size_t captured(void) {
  ssize_t n = pread(cap_fd, cap, sizeof cap - 1, 0);
  assert_true(n >= 0);
  cap[n] = '\0';
  return (size_t)n;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* Parses the only line captured; checks it is one line ending in '\n'. */
static json_t *one_line(void) {
  size_t n = captured();
  assert_true(n > 0);
  assert_int_equal(count_lines(cap), 1);
  assert_int_equal(cap[n - 1], '\n');
  json_error_t err;
  json_t *j = json_loadb(cap, n - 1, 0, &err);
  if (!j) fail_msg("not JSON (%s): %s", err.text, cap);
  assert_true(json_is_object(j));
  return j;
}

static const char *field(json_t *j, const char *k) {
  json_t *v = json_object_get(j, k);
  assert_non_null(v);
  assert_true(json_is_string(v));
  return json_string_value(v);
}

static void test_fields_and_timestamp(void **state) {
  log_info("http", "listening on %s:%d", "127.0.0.1", 8080);
  json_t *j = one_line();
  assert_int_equal(json_object_size(j), 4);
  assert_string_equal(field(j, "level"), "info");
  assert_string_equal(field(j, "component"), "http");
  assert_string_equal(field(j, "msg"), "listening on 127.0.0.1:8080");
  const char *ts = field(j, "ts");
  /* 2026-11-27T10:20:00.123Z */
  assert_int_equal(strlen(ts), 24);
  const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  for (int i = 0; i < 24; i++) {
    if (shape[i] == 'd') assert_true(ts[i] >= '0' && ts[i] <= '9');
    else assert_int_equal(ts[i], shape[i]);
  }
  /* Keys come in the documented order. */
  assert_non_null(strstr(cap, "{\"ts\":\""));
  assert_true(strstr(cap, "\"level\"") < strstr(cap, "\"component\""));
  assert_true(strstr(cap, "\"component\"") < strstr(cap, "\"msg\""));
  json_decref(j);
}

static void test_level_filtering(void **state) {
  log_set_level(LOG_LEVEL_WARN);
  assert_int_equal(log_get_level(), LOG_LEVEL_WARN);
  log_debug("t", "d");
  log_info("t", "i");
  assert_int_equal(captured(), 0);
  log_warn("t", "w");
  log_error("t", "e");
  captured();
  assert_int_equal(count_lines(cap), 2);
  assert_non_null(strstr(cap, "\"level\":\"warn\",\"component\":\"t\",\"msg\":\"w\""));
  assert_non_null(strstr(cap, "\"level\":\"error\",\"component\":\"t\",\"msg\":\"e\""));
  /* log_write itself also filters. */
  log_write(LOG_LEVEL_INFO, "t", "direct");
  assert_null(strstr((captured(), cap), "direct"));
}

static int side_effects;
static int bump(void) { return ++side_effects; }

static void test_disabled_args_not_evaluated(void **state) {
  side_effects = 0;
  log_set_level(LOG_LEVEL_ERROR);
  log_debug("t", "%d", bump());
  log_info("t", "%d", bump());
  log_warn("t", "%d", bump());
  assert_int_equal(side_effects, 0);
  log_error("t", "%d", bump());
  assert_int_equal(side_effects, 1);
  json_t *j = one_line();
  assert_string_equal(field(j, "msg"), "1");
  json_decref(j);
}

static void test_debug_level_written(void **state) {
  log_debug("db", "q=%s", "select 1");
  json_t *j = one_line();
  assert_string_equal(field(j, "level"), "debug");
  assert_string_equal(field(j, "msg"), "q=select 1");
  json_decref(j);
}

static void test_escaping_round_trips(void **state) {
  const char *msg = "quote \" backslash \\ nl \n cr \r tab \t ctl \x01\x1f utf8 \xc3\xa9\xe2\x82\xac";
  log_info("we\"ird", "%s", msg);
  json_t *j = one_line();
  assert_string_equal(field(j, "msg"), msg);
  assert_string_equal(field(j, "component"), "we\"ird");
  json_decref(j);
}

static void test_invalid_utf8_replaced(void **state) {
  /* stray continuation, bad lead, truncated 2-byte, overlong, surrogate */
  log_info("t", "a\x80" "b\xff" "c\xc3(" "d\xc0\xaf" "e\xed\xa0\x80" "f");
  json_t *j = one_line();
  assert_string_equal(field(j, "msg"), "a?b?c?(d??e???f");
  json_decref(j);
}

static void test_long_message_capped(void **state) {
  char *big = malloc(10000);
  memset(big, 'x', 9999);
  big[9999] = '\0';
  log_info("t", "%s", big);
  size_t n = captured();
  assert_true(n <= LOG_LINE_MAX);
  assert_true(n > LOG_LINE_MAX - 16); /* filled, not cut short */
  json_t *j = one_line();
  const char *m = field(j, "msg");
  assert_int_equal(strncmp(m + strlen(m) - 3, "...", 3), 0);
  assert_int_equal(m[0], 'x');
  json_decref(j);
  free(big);
}

static void test_long_escaped_message_capped(void **state) {
  /* Quotes double and control bytes grow six-fold when escaped. */
  char big[3000];
  for (size_t i = 0; i < sizeof big - 1; i++) big[i] = i % 2 ? '"' : '\x02';
  big[sizeof big - 1] = '\0';
  log_info("t", "%s", big);
  assert_true(captured() <= LOG_LINE_MAX);
  json_t *j = one_line();
  const char *m = field(j, "msg");
  assert_true(strlen(m) > 900);
  assert_int_equal(strncmp(m + strlen(m) - 3, "...", 3), 0);
  json_decref(j);
}

static void test_long_multibyte_cut_on_boundary(void **state) {
  /* 3-byte characters cut by both the format buffer and the line cap:
   * jansson rejects any split character. */
  char *big = malloc(3 * 3000 + 2);
  size_t k = 0;
  big[k++] = 'a';
  for (int i = 0; i < 3000; i++) {
    big[k++] = '\xe2';
    big[k++] = '\x82';
    big[k++] = '\xac';
  }
  big[k] = '\0';
  log_info("t", "%s", big);
  assert_true(captured() <= LOG_LINE_MAX);
  json_t *j = one_line();
  const char *m = field(j, "msg");
  assert_null(strchr(m, '?'));
  json_decref(j);
  /* Shifted by one byte, so the cut falls at another offset. */
  assert_int_equal(ftruncate(cap_fd, 0), 0);
  assert_int_equal(lseek(cap_fd, 0, SEEK_SET), 0);
  log_info("t", "xy%s", big + 1);
  j = one_line();
  assert_null(strchr(field(j, "msg"), '?'));
  json_decref(j);
  free(big);
}

static void test_one_write_per_line(void **state) {
  /* A SOCK_SEQPACKET socket keeps write boundaries: one recv = one write. */
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
  log_set_fd(sv[0]);
  char big[2000];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  log_info("t", "first %s", big);
  log_info("t", "second");
  char pkt[LOG_LINE_MAX + 16];
  ssize_t n = recv(sv[1], pkt, sizeof pkt, 0);
  assert_true(n > 2000);
  assert_int_equal(pkt[n - 1], '\n');
  assert_int_equal(memchr(pkt, '\n', (size_t)n), pkt + n - 1);
  n = recv(sv[1], pkt, sizeof pkt, 0);
  assert_true(n > 0);
  pkt[n] = '\0';
  assert_non_null(strstr(pkt, "\"msg\":\"second\"}\n"));
  close(sv[0]);
  close(sv[1]);
}

static void test_text_format(void **state) {
  log_set_format(LOG_FORMAT_TEXT);
  log_warn("http", "slow client %d\nnext", 7);
  size_t n = captured();
  assert_int_equal(count_lines(cap), 1);
  assert_int_equal(cap[n - 1], '\n');
  assert_int_equal(cap[23], 'Z');
  assert_string_equal(cap + 24, " WARN  http: slow client 7\\nnext\n");
}

static void test_errno_preserved(void **state) {
  errno = EMFILE;
  log_info("t", "x");
  assert_int_equal(errno, EMFILE);
  log_set_fd(-1); /* write fails with EBADF: dropped, errno kept */
  errno = ENOSPC;
  log_error("t", "lost");
  assert_int_equal(errno, ENOSPC);
}

static void test_null_component_and_out_of_range_level(void **state) {
  log_write(99, NULL, "hi");
  json_t *j = one_line();
  assert_string_equal(field(j, "component"), "-");
  assert_string_equal(field(j, "level"), "error");
  json_decref(j);
}

static void test_level_parse_and_names(void **state) {
  assert_int_equal(log_level_parse("debug"), LOG_LEVEL_DEBUG);
  assert_int_equal(log_level_parse("INFO"), LOG_LEVEL_INFO);
  assert_int_equal(log_level_parse("warn"), LOG_LEVEL_WARN);
  assert_int_equal(log_level_parse("Warning"), LOG_LEVEL_WARN);
  assert_int_equal(log_level_parse("error"), LOG_LEVEL_ERROR);
  assert_int_equal(log_level_parse("verbose"), -EINVAL);
  assert_int_equal(log_level_parse(""), -EINVAL);
  assert_int_equal(log_level_parse(NULL), -EINVAL);
  assert_string_equal(log_level_name(LOG_LEVEL_WARN), "warn");
  assert_string_equal(log_level_name(7), "?");
  assert_string_equal(log_level_name(-1), "?");
  log_set_level(-5);
  assert_int_equal(log_get_level(), LOG_LEVEL_DEBUG);
  log_set_level(42);
  assert_int_equal(log_get_level(), LOG_LEVEL_ERROR);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_fields_and_timestamp, setup, teardown),
      cmocka_unit_test_setup_teardown(test_level_filtering, setup, teardown),
      cmocka_unit_test_setup_teardown(test_disabled_args_not_evaluated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_debug_level_written, setup, teardown),
      cmocka_unit_test_setup_teardown(test_escaping_round_trips, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_utf8_replaced, setup, teardown),
      cmocka_unit_test_setup_teardown(test_long_message_capped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_long_escaped_message_capped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_long_multibyte_cut_on_boundary, setup, teardown),
      cmocka_unit_test_setup_teardown(test_one_write_per_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_text_format, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errno_preserved, setup, teardown),
      cmocka_unit_test_setup_teardown(test_null_component_and_out_of_range_level, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_level_parse_and_names, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
