/* Unit tests for net/http_chunked: decoding under every split of the
 * input, exact stop at the end of the body, every malformed-input class,
 * the limits at and one over, and the sink's abort path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "net/http_chunked.h"

typedef struct {
  char data[8192];
  size_t len;
  size_t calls;
  int fail_with; /* returned by the sink when non-zero */
} collect_t;

static int collect(void *arg, const char *data, size_t len) {
  collect_t *c = arg;
  if (len == 0) fail_msg("sink called with an empty piece");
  if (c->fail_with) return c->fail_with;
  if (c->len + len > sizeof c->data) fail_msg("sink overflow");
  memcpy(c->data + c->len, data, len);
  c->len += len;
  c->calls++;
  return 0;
}

/* Feeds s[0..n) in the pieces given by cuts (sorted offsets), checking
 * that every piece is consumed whole until the body ends. Returns total
 * bytes consumed, or the first negative result. */
static ssize_t feed_split(http_chunked_t *c, const char *s, size_t n, const size_t *cuts,
                          size_t ncuts, collect_t *out) {
  size_t at = 0, total = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    ssize_t r = http_chunked_feed(c, s + at, to - at, collect, out);
    if (r < 0) return r;
    total += (size_t)r;
    if (c->done) return (ssize_t)total;
    if ((size_t)r != to - at) fail_msg("partial consumption (%zd of %zu) before the end", r, to - at);
    at = to;
  }
  return (ssize_t)total;
}

static ssize_t feed_all(const char *s, size_t n, collect_t *out, http_chunked_t *c) {
  http_chunked_init(c);
  return feed_split(c, s, n, NULL, 0, out);
}

static const char BODY[] =
    "5\r\nhello\r\n"
    "1;name=value;flag\r\n,\r\n"
    "A \t;ext=\"quoted; \\\" \"\r\n world!!!!\r\n"
    "000f\r\n 0123456789abcd\r\n"
    "0\r\n"
    "X-Trailer: yes\r\n"
    "Another: \t trailer \xc3\xa9\r\n"
    "\r\n";
static const char DECODED[] = "hello, world!!!! 0123456789abcd";

static void test_simple(void **state) {
  (void)state;
  collect_t out = {0};
  http_chunked_t c;
  const char *s = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  assert_int_equal(feed_all(s, strlen(s), &out, &c), (ssize_t)strlen(s));
  assert_true(c.done);
  assert_int_equal(out.len, 11);
  assert_memory_equal(out.data, "hello world", 11);
}

static void test_ext_trailers_upper_hex(void **state) {
  (void)state;
  collect_t out = {0};
  http_chunked_t c;
  assert_int_equal(feed_all(BODY, sizeof BODY - 1, &out, &c), (ssize_t)(sizeof BODY - 1));
  assert_true(c.done);
  assert_int_equal(out.len, strlen(DECODED));
  assert_memory_equal(out.data, DECODED, out.len);
}

static void test_every_two_way_split(void **state) {
  (void)state;
  size_t n = sizeof BODY - 1;
  for (size_t k = 0; k <= n; k++) {
    collect_t out = {0};
    http_chunked_t c;
    http_chunked_init(&c);
    assert_int_equal(feed_split(&c, BODY, n, &k, 1, &out), (ssize_t)n);
    assert_true(c.done);
    assert_int_equal(out.len, strlen(DECODED));
    assert_memory_equal(out.data, DECODED, out.len);
  }
}

static void test_byte_by_byte(void **state) {
  (void)state;
  size_t n = sizeof BODY - 1;
  collect_t out = {0};
  http_chunked_t c;
  http_chunked_init(&c);
  for (size_t i = 0; i < n; i++) {
    assert_false(c.done);
    assert_int_equal(http_chunked_feed(&c, BODY + i, 1, collect, &out), 1);
  }
  assert_true(c.done);
  assert_int_equal(out.len, strlen(DECODED));
  assert_memory_equal(out.data, DECODED, out.len);
  assert_int_equal(out.calls, strlen(DECODED)); /* one piece per data byte */
}

static void test_random_splits(void **state) {
  (void)state;
  /* a longer body: many chunks of varying sizes */
  static char enc[16384];
  static char want[8192];
  size_t en = 0, wn = 0;
  uint32_t seed = 12345;
  for (int i = 0; i < 60; i++) {
    seed = seed * 1103515245u + 12345u;
    size_t sz = (seed >> 16) % 100 + 1;
    en += (size_t)snprintf(enc + en, sizeof enc - en, i % 3 ? "%zx\r\n" : "%zX;i=%d\r\n", sz, i);
    for (size_t j = 0; j < sz; j++) want[wn + j] = enc[en + j] = (char)('a' + (i + j) % 26);
    en += sz;
    wn += sz;
    memcpy(enc + en, "\r\n", 2);
    en += 2;
  }
  en += (size_t)snprintf(enc + en, sizeof enc - en, "0\r\nT: 1\r\n\r\nGET /next");
  size_t body_len = en - strlen("GET /next");

  for (int round = 0; round < 500; round++) {
    size_t cuts[12];
    size_t nc = 0;
    for (size_t i = 0; i < 12; i++) {
      seed = seed * 1103515245u + 12345u;
      cuts[nc++] = (seed >> 8) % (en + 1);
    }
    for (size_t i = 1; i < nc; i++) /* insertion sort */
      for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
        size_t t = cuts[j];
        cuts[j] = cuts[j - 1];
        cuts[j - 1] = t;
      }
    collect_t out = {0};
    http_chunked_t c;
    http_chunked_init(&c);
    assert_int_equal(feed_split(&c, enc, en, cuts, nc, &out), (ssize_t)body_len);
    assert_true(c.done);
    assert_int_equal(out.len, wn);
    assert_memory_equal(out.data, want, wn);
  }
}

/* The body ends in the middle of the input: the rest is the next request. */
static void test_stops_at_end(void **state) {
  (void)state;
  const char *s = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
  size_t body = strlen("3\r\nabc\r\n0\r\n\r\n");
  collect_t out = {0};
  http_chunked_t c;
  assert_int_equal(feed_all(s, strlen(s), &out, &c), (ssize_t)body);
  assert_true(c.done);
  assert_int_equal(out.len, 3);
  /* a finished decoder consumes nothing more */
  assert_int_equal(http_chunked_feed(&c, s + body, 5, collect, &out), 0);
  assert_int_equal(out.len, 3);
  /* an empty body */
  http_chunked_init(&c);
  assert_int_equal(http_chunked_feed(&c, "0\r\n\r\nX", 6, collect, &out), 5);
  assert_true(c.done);
}

static void expect_bad(const char *s, size_t n) {
  collect_t out = {0};
  http_chunked_t c;
  http_chunked_init(&c);
  ssize_t r = http_chunked_feed(&c, s, n, collect, &out);
  if (r != HTTP_CHUNKED_BAD) fail_msg("for \"%.*s\": got %zd", (int)(n > 60 ? 60 : n), s, r);
  assert_false(c.done);
  /* errors are sticky */
  assert_int_equal(http_chunked_feed(&c, "0\r\n\r\n", 5, collect, &out), HTTP_CHUNKED_BAD);
  /* and the same input split byte by byte fails too */
  http_chunked_init(&c);
  ssize_t last = 0;
  for (size_t i = 0; i < n && last >= 0; i++) last = http_chunked_feed(&c, s + i, 1, collect, &out);
  assert_int_equal(last, HTTP_CHUNKED_BAD);
}

static void test_malformed(void **state) {
  (void)state;
  static const char *const bad[] = {
      "g\r\n",                      /* non-hex */
      "\r\n",                       /* no size */
      ";ext\r\n",                   /* extension without size */
      "-5\r\n",
      "0x5\r\nhello\r\n",
      "5 \r\nhello\r\n",            /* BWS must lead to ';' */
      "5\nhello\r\n",               /* bare LF after the size */
      "5\rhello\r\n",               /* CR without LF */
      "5\r\nhelloX\r\n",            /* data longer than announced */
      "5\r\nhello\n0\r\n\r\n",      /* bare LF after data */
      "5\r\nhello\rX",
      "5;a\nb\r\nhello\r\n",        /* bare LF in an extension */
      "5;a\x01\r\nhello\r\n",       /* control byte in an extension */
      "0\r\nX: 1\n\r\n",            /* bare LF in a trailer */
      "0\r\nX: \x7f\r\n\r\n",       /* DEL in a trailer */
      "0\r\nX: 1\rY\r\n",           /* CR without LF in a trailer */
      "0\r\n\rX",                   /* final CRLF broken */
      "0\r\n\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_bad(bad[i], strlen(bad[i]));
  static const char nul[] = "0\r\nX: \0\r\n\r\n";
  expect_bad(nul, sizeof nul - 1);
}

static void test_size_limits(void **state) {
  (void)state;
  collect_t out = {0};
  http_chunked_t c;
  /* 16 hex digits are fine, 17 are not, even as leading zeros */
  const char *s16 = "0000000000000005\r\nhello\r\n0\r\n\r\n";
  assert_int_equal(feed_all(s16, strlen(s16), &out, &c), (ssize_t)strlen(s16));
  assert_true(c.done);
  expect_bad("00000000000000005\r\n", 19);
  /* 2^53 is the largest chunk: accepted (then waits for data), one more is not */
  const char *max = "20000000000000\r\nabc";
  http_chunked_init(&c);
  out.len = 0;
  assert_int_equal(http_chunked_feed(&c, max, strlen(max), collect, &out), (ssize_t)strlen(max));
  assert_false(c.done);
  assert_int_equal(out.len, 3);
  assert_int_equal(c.n, (1ULL << 53) - 3);
  expect_bad("20000000000001\r\n", 16);
  expect_bad("FFFFFFFFFFFFFFFF\r\n", 18); /* would wrap 64 bits without the check */
}

/* Builds "1;" + ext of ext_len bytes + "\r\nx\r\n0\r\n\r\n". */
static void test_extension_limit(void **state) {
  (void)state;
  static char s[8192];
  for (size_t ext = HTTP_CHUNKED_MAX_LINE - 1; ext <= HTTP_CHUNKED_MAX_LINE; ext++) {
    /* the extension runs from ';' to CR: ';' plus ext - 1 bytes */
    size_t n = 0;
    s[n++] = '1';
    s[n++] = ';';
    memset(s + n, 'e', ext - 1);
    n += ext - 1;
    memcpy(s + n, "\r\nx\r\n0\r\n\r\n", 10);
    n += 10;
    collect_t out = {0};
    http_chunked_t c;
    assert_int_equal(feed_all(s, n, &out, &c), (ssize_t)n);
    assert_true(c.done);
  }
  size_t n = 0;
  s[n++] = '1';
  s[n++] = ';';
  memset(s + n, 'e', HTTP_CHUNKED_MAX_LINE);
  n += HTTP_CHUNKED_MAX_LINE;
  memcpy(s + n, "\r\n", 2);
  expect_bad(s, n + 2);
  /* whitespace before ';' counts too */
  n = 0;
  s[n++] = '1';
  memset(s + n, ' ', HTTP_CHUNKED_MAX_LINE + 1);
  n += HTTP_CHUNKED_MAX_LINE + 1;
  expect_bad(s, n);
}

static void test_trailer_limits(void **state) {
  (void)state;
  static char s[32768];
  /* one trailer line of exactly 4096 bytes is fine, 4097 is not */
  for (size_t len = HTTP_CHUNKED_MAX_LINE; len <= HTTP_CHUNKED_MAX_LINE + 1; len++) {
    size_t n = 0;
    memcpy(s, "0\r\nX:", 5);
    n = 5;
    memset(s + n, 'v', len - 2);
    n += len - 2;
    memcpy(s + n, "\r\n\r\n", 4);
    n += 4;
    if (len == HTTP_CHUNKED_MAX_LINE) {
      collect_t out = {0};
      http_chunked_t c;
      assert_int_equal(feed_all(s, n, &out, &c), (ssize_t)n);
      assert_true(c.done);
    } else {
      expect_bad(s, n);
    }
  }
  /* the whole trailer section: lines of 1000 bytes + CRLF, 16 of them fit in
   * 16 KiB, 17 do not */
  for (int lines = 16; lines <= 17; lines++) {
    size_t n = 3;
    memcpy(s, "0\r\n", 3);
    for (int i = 0; i < lines; i++) {
      memset(s + n, 'a', 1000);
      s[n] = 'T';
      s[n + 1] = ':';
      n += 1000;
      memcpy(s + n, "\r\n", 2);
      n += 2;
    }
    memcpy(s + n, "\r\n", 2);
    n += 2;
    if (lines == 16) {
      collect_t out = {0};
      http_chunked_t c;
      assert_int_equal(feed_all(s, n, &out, &c), (ssize_t)n);
      assert_true(c.done);
    } else {
      expect_bad(s, n);
    }
  }
}

static void test_sink_abort(void **state) {
  (void)state;
  const char *s = "5\r\nhello\r\n0\r\n\r\n";
  collect_t out = {.fail_with = -EMSGSIZE};
  http_chunked_t c;
  http_chunked_init(&c);
  assert_int_equal(http_chunked_feed(&c, s, strlen(s), collect, &out), -EMSGSIZE);
  assert_false(c.done);
  /* sticky */
  assert_int_equal(http_chunked_feed(&c, s, strlen(s), collect, &out), HTTP_CHUNKED_BAD);

  out.fail_with = 7; /* a positive return is not a byte count */
  http_chunked_init(&c);
  assert_int_equal(http_chunked_feed(&c, s, strlen(s), collect, &out), -ECANCELED);
}

static void test_null_sink_discards(void **state) {
  (void)state;
  http_chunked_t c;
  http_chunked_init(&c);
  assert_int_equal(http_chunked_feed(&c, BODY, sizeof BODY - 1, NULL, NULL), (ssize_t)(sizeof BODY - 1));
  assert_true(c.done);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple),
      cmocka_unit_test(test_ext_trailers_upper_hex),
      cmocka_unit_test(test_every_two_way_split),
      cmocka_unit_test(test_byte_by_byte),
      cmocka_unit_test(test_random_splits),
      cmocka_unit_test(test_stops_at_end),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_size_limits),
      cmocka_unit_test(test_extension_limit),
      cmocka_unit_test(test_trailer_limits),
      cmocka_unit_test(test_sink_abort),
      cmocka_unit_test(test_null_sink_discards),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
