/* core/json_scan.h: the values found, and every malformed form refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/json_scan.h"

static jscan_val_t parse(const char *s) {
  jscan_val_t v;
  assert_true(jscan_parse(s, strlen(s), &v));
  return v;
}

static void test_event_fields(void **state) {
  (void)state;
  const char *ev = " {\"op\":\"message\",\"channel_id\":7,\"message\":{\"id\":\"9\",\"body\":"
                   "\"a \\\"quoted\\\" }{ \\u00e9\",\"seq\":42,\"tags\":[1,{\"seq\":5}]}} ";
  jscan_val_t v = parse(ev), op, m, seq, ch, body;
  assert_int_equal(v.type, JSCAN_OBJECT);
  assert_true(jscan_member(v, "op", &op));
  assert_true(jscan_str_eq(op, "message"));
  assert_false(jscan_str_eq(op, "messag"));
  assert_true(jscan_member(v, "channel_id", &ch));
  int64_t x = 0;
  assert_true(jscan_int64(ch, &x));
  assert_int_equal(x, 7);
  assert_true(jscan_member(v, "message", &m));
  assert_int_equal(m.type, JSCAN_OBJECT);
  assert_true(jscan_member(m, "seq", &seq)); /* not the nested one */
  assert_true(jscan_int64(seq, &x));
  assert_int_equal(x, 42);
  assert_true(jscan_member(m, "body", &body));
  assert_int_equal(body.type, JSCAN_STRING);
  assert_false(jscan_member(v, "seq", &seq)); /* only at the top level */
  assert_false(jscan_member(v, "missing", &seq));
  assert_false(jscan_member(op, "op", &seq)); /* not an object */
}

static void test_array_iteration(void **state) {
  (void)state;
  jscan_val_t a = parse("[ 1 , \"two\" ,[3],{\"k\":null} ,true,false,null,-0.5e3 ]"), el;
  static const jscan_type_t want[] = {JSCAN_NUMBER, JSCAN_STRING, JSCAN_ARRAY, JSCAN_OBJECT,
                                      JSCAN_TRUE,   JSCAN_FALSE,  JSCAN_NULL,  JSCAN_NUMBER};
  size_t pos = 0, n = 0;
  while (jscan_next(a, &pos, &el)) {
    assert_true(n < 8);
    assert_int_equal(el.type, want[n]);
    n++;
  }
  assert_int_equal(n, 8);
  pos = 0;
  assert_false(jscan_next(parse("[]"), &pos, &el));
  pos = 0;
  assert_false(jscan_next(parse("{}"), &pos, &el));
}

static void test_integers(void **state) {
  (void)state;
  int64_t x;
  assert_true(jscan_int64(parse("9223372036854775807"), &x));
  assert_true(x == INT64_MAX);
  assert_true(jscan_int64(parse("-9223372036854775808"), &x));
  assert_true(x == INT64_MIN);
  assert_true(jscan_int64(parse("0"), &x));
  assert_int_equal(x, 0);
  assert_false(jscan_int64(parse("9223372036854775808"), &x));
  assert_false(jscan_int64(parse("-9223372036854775809"), &x));
  assert_false(jscan_int64(parse("1.5"), &x));
  assert_false(jscan_int64(parse("1e3"), &x));
  assert_false(jscan_int64(parse("\"1\""), &x));
}

static void test_malformed(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",        " ",       "{",          "}",          "[1,]",        "[,1]",      "{\"a\"}",
      "{\"a\":}", "{\"a\" 1}", "{a:1}",     "{\"a\":1,}",  "{\"a\":1 \"b\":2}", "[1 2]",
      "\"open",  "\"bad \\x escape\"", "\"\\u12g4\"", "\"ctl \x01\"", "tru", "nul", "falsey",
      "01",      "-",       "1.",         ".5",         "1e",          "+1",        "[1]]",
      "{}{}",    "[}",      "{]",         "\"\\",       "\"\\u12",     "1 2",       "[\"a\":1]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    jscan_val_t v;
    if (jscan_parse(bad[i], strlen(bad[i]), &v)) fail_msg("accepted %s", bad[i]);
  }
  jscan_val_t v;
  assert_false(jscan_parse(NULL, 0, &v));
  /* a NUL inside the given length is just an invalid byte */
  assert_false(jscan_parse("[1]\0", 4, &v));
  assert_true(jscan_parse("[1]\0", 3, &v));
}

static void test_depth(void **state) {
  (void)state;
  char deep[2 * (JSCAN_DEPTH_MAX + 1) + 1];
  for (int i = 0; i <= JSCAN_DEPTH_MAX; i++) {
    deep[i] = '[';
    deep[2 * (JSCAN_DEPTH_MAX + 1) - 1 - i] = ']';
  }
  jscan_val_t v;
  assert_false(jscan_parse(deep, 2 * (JSCAN_DEPTH_MAX + 1), &v));
  assert_true(jscan_parse(deep + 1, 2 * JSCAN_DEPTH_MAX, &v)); /* exactly the limit */
}

static void test_members_and_strings(void **state) {
  (void)state;
  jscan_val_t o = parse("{\"a\":1, \"b\" : [2] ,\"c\":\"x\"}"), k, v;
  size_t pos = 0;
  const char *names[] = {"a", "b", "c"};
  for (int i = 0; i < 3; i++) {
    assert_true(jscan_next_member(o, &pos, &k, &v));
    assert_true(jscan_str_eq(k, names[i]));
  }
  assert_false(jscan_next_member(o, &pos, &k, &v));
  char out[64];
  /* every escape, a 2-, 3- and 4-byte character (the last a surrogate pair) */
  jscan_val_t str = parse("\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t \\u00e9\\u20AC\\ud83d\\ude00 \xc3\xa9\"");
  ssize_t n = jscan_string(str, out);
  const char want[] = "q\"b\\s/\b\f\n\r\t \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xc3\xa9";
  assert_int_equal(n, sizeof want - 1);
  assert_memory_equal(out, want, sizeof want - 1);
  assert_int_equal(jscan_string(str, NULL), n);
  assert_int_equal(jscan_string(parse("\"\""), out), 0);
  static const char *const refused[] = {
      "\"\\u0000\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800x\"",
      "\"\xc3\"", "\"\xff\"", "\"\xed\xa0\x80\"",
  };
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
    if (jscan_string(parse(refused[i]), out) != -1) fail_msg("decoded %s", refused[i]);
  assert_int_equal(jscan_string(parse("1"), out), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_event_fields), cmocka_unit_test(test_array_iteration),
      cmocka_unit_test(test_integers),     cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_depth),        cmocka_unit_test(test_members_and_strings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
