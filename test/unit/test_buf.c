/* core/buf.h: appends, the NUL after the text, printf, JSON escaping,
 * decimal integers, steal and reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"

static void test_append_and_printf(void **state) {
  (void)state;
  buf_t b = BUF_INIT;
  buf_append_str(&b, "ab");
  buf_append_char(&b, 'c');
  buf_printf(&b, "-%d-%s", 42, "x");
  assert_string_equal(b.data, "abc-42-x");
  assert_int_equal(b.len, 8);
  /* longer than printf's small stack buffer, and than the first block */
  char big[2000];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  buf_printf(&b, "%s", big);
  assert_int_equal(b.len, 8 + sizeof big - 1);
  assert_int_equal(b.data[b.len], '\0');
  assert_false(b.oom);
  size_t n;
  char *s = buf_steal(&b, &n);
  assert_int_equal(n, 8 + sizeof big - 1);
  assert_null(b.data);
  free(s);
  buf_free(&b);
}

static void test_i64(void **state) {
  (void)state;
  const int64_t vals[] = {0, 7, -7, 10, 99, 100, 1234567890123LL, INT64_MAX, INT64_MIN, -1};
  buf_t b = BUF_INIT;
  for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)vals[i]);
    buf_reset(&b);
    buf_append_i64(&b, vals[i]);
    assert_string_equal(b.data, want);
    assert_int_equal(b.len, strlen(want));
  }
  buf_free(&b);
}

static void test_json_escaped(void **state) {
  (void)state;
  buf_t b = BUF_INIT;
  const char in[] = "q\"b\\n\n\r\t\x01\x1f\x7f \xc3\xa9";
  buf_append_json_escaped(&b, in, sizeof in - 1);
  assert_string_equal(b.data, "q\\\"b\\\\n\\n\\r\\t\\u0001\\u001f\x7f \xc3\xa9");
  buf_reset(&b);
  buf_append_json_escaped(&b, "a\0b", 3);
  assert_int_equal(b.len, 8);
  assert_memory_equal(b.data, "a\\u0000b", 8);
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_append_and_printf),
      cmocka_unit_test(test_i64),
      cmocka_unit_test(test_json_escaped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
