/* Unit tests for storm-load's target URL parsing (tools/load/target.c):
 * the loopback-only rule and every error path. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "load/target.h"

static void test_accepts_loopback(void **state) {
  target_t t;
  const char *err = NULL;
  assert_int_equal(target_parse("http://127.0.0.1:8080", &t, &err), 0);
  assert_int_equal(ntohs(t.addr.sin_port), 8080);
  assert_string_equal(t.host, "127.0.0.1:8080");
  assert_int_equal(target_parse("ws://127.1.2.3:1/", &t, &err), 0);
  assert_string_equal(t.host, "127.1.2.3:1");
}

static void test_refuses_non_loopback(void **state) {
  target_t t;
  const char *err = NULL;
  assert_int_equal(target_parse("http://10.0.0.1:80", &t, &err), -EPERM);
  assert_non_null(strstr(err, "loopback"));
  assert_int_equal(target_parse("http://128.0.0.1:80", &t, &err), -EPERM);
  assert_int_equal(target_parse("http://localhost:80", &t, &err), -EPERM);
  assert_int_equal(target_parse("http://example.com:80", &t, NULL), -EPERM);
}

static void test_malformed(void **state) {
  target_t t;
  const char *err = NULL;
  const char *bad[] = {"https://127.0.0.1:80", "127.0.0.1:80", "http://127.0.0.1", "http://:80",
                       "http://127.0.0.1:0", "http://127.0.0.1:65536", "http://127.0.0.1:80x",
                       "http://127.0.0.1:80/ws", "http://1234567890123456:80", "http://127.0.0.1:"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err = NULL;
    assert_int_equal(target_parse(bad[i], &t, &err), -EINVAL);
    assert_non_null(err);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accepts_loopback),
      cmocka_unit_test(test_refuses_non_loopback),
      cmocka_unit_test(test_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
