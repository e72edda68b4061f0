/* Unit tests for net/http_parser: valid heads, every error class, limits,
 * and the derived fields (keep-alive, Expect, Upgrade, framing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/http_parser.h"

#define BIG 65536

static http_request_head_t H;

static int parse_n(const char *s, size_t n) { return http_parse_request(s, n, BIG, &H); }
static int parse(const char *s) { return parse_n(s, strlen(s)); }

static void assert_str(str_t got, const char *want) {
  if (!str_eq_cstr(got, want))
    fail_msg("got \"%.*s\", want \"%s\"", (int)got.n, got.p ? got.p : "", want);
}

/* The parser decides on prefixes: every proper prefix of s must give
 * either INCOMPLETE or the final answer, and the whole string the final
 * answer. This is what makes re-parsing on each read safe. */
static void check_prefixes(const char *s, int want) {
  size_t n = strlen(s);
  size_t stop = want > 0 ? (size_t)want : n;
  for (size_t k = 0; k < stop; k++) {
    int r = parse_n(s, k);
    if (r != HTTP_PARSE_INCOMPLETE && r != want)
      fail_msg("prefix %zu of %zu: got %d, want %d or INCOMPLETE", k, n, r, want);
    if (want > 0 && r != HTTP_PARSE_INCOMPLETE)
      fail_msg("prefix %zu of a valid head gave %d", k, r);
  }
  assert_int_equal(parse_n(s, n), want);
}

static void expect_result(const char *s, int want) {
  int r = parse(s);
  if (r != want) fail_msg("for \"%s\": got %d, want %d", s, r, want);
  check_prefixes(s, want);
}

/* ---- valid requests ---- */

static void test_simple_get(void **state) {
  (void)state;
  const char *s = "GET /index.html HTTP/1.1\r\nHost: example.com\r\nX-Pad:   a b \t\r\n"
                  "Empty:\r\nAccept: */*\r\n\r\n";
  assert_int_equal(parse(s), (int)strlen(s));
  assert_str(H.method, "GET");
  assert_str(H.target, "/index.html");
  assert_str(H.path, "/index.html");
  assert_int_equal(H.query.n, 0);
  assert_int_equal(H.minor_version, 1);
  assert_int_equal(H.num_headers, 4);
  assert_str(H.headers[0].name, "Host");
  assert_str(H.headers[0].value, "example.com");
  assert_str(H.headers[1].value, "a b");
  assert_str(H.headers[2].name, "Empty");
  assert_int_equal(H.headers[2].value.n, 0);
  assert_int_equal(H.content_length, -1);
  assert_false(H.chunked);
  assert_true(H.keep_alive);
  assert_false(H.expect_continue);
  assert_false(H.upgrade);
  /* slices point into the caller's buffer */
  assert_ptr_equal(H.method.p, s);
  assert_ptr_equal(H.headers[0].value.p, strstr(s, "example.com"));
  check_prefixes(s, (int)strlen(s));
}

static void test_query_split(void **state) {
  (void)state;
  assert_true(parse("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
  assert_str(H.target, "/a/b?x=1&y=2");
  assert_str(H.path, "/a/b");
  assert_str(H.query, "x=1&y=2");

  assert_true(parse("GET /a? HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
  assert_str(H.path, "/a");
  assert_int_equal(H.query.n, 0);

  assert_true(parse("GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
  assert_str(H.path, "/a");
  assert_str(H.query, "b?c");

  assert_true(parse("GET /?q HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
  assert_str(H.path, "/");
  assert_str(H.query, "q");
}

static void test_target_forms(void **state) {
  (void)state;
  assert_true(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
  assert_str(H.target, "*");
  assert_str(H.path, "*");
  assert_int_equal(H.query.n, 0);
  expect_result("GET * HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_PARSE_BAD_REQUEST);
  expect_result("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_PARSE_BAD_REQUEST);
  expect_result("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_PARSE_BAD_REQUEST);
  expect_result("CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_PARSE_BAD_REQUEST);
  /* any token is a method; the router answers 405/501 */
  assert_true(parse("BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
  assert_str(H.method, "BREW");
}

static void test_pipelined(void **state) {
  (void)state;
  const char *a = "POST /m HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
  const char *b = "GET /n HTTP/1.1\r\nHost: h\r\n\r\n";
  char buf[512];
  snprintf(buf, sizeof buf, "%shello%s", a, b);
  int n = parse(buf);
  assert_int_equal(n, (int)strlen(a));
  assert_int_equal(H.content_length, 5);
  assert_str(H.path, "/m");
  const char *rest = buf + n + 5;
  assert_int_equal(parse(rest), (int)strlen(b));
  assert_str(H.path, "/n");

  /* two heads back to back: only the first is taken */
  snprintf(buf, sizeof buf, "%s%s", b, b);
  assert_int_equal(parse(buf), (int)strlen(b));
}

static void test_leading_empty_lines(void **state) {
  (void)state;
  const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
  assert_int_equal(parse(s), (int)strlen(s));
  assert_str(H.method, "GET");
  check_prefixes(s, (int)strlen(s));
  expect_result("\r\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_PARSE_BAD_REQUEST);
  expect_result("\n", HTTP_PARSE_BAD_REQUEST);
}

static void test_obs_text_value(void **state) {
  (void)state;
  assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9\r\n\r\n") > 0);
  assert_str(H.headers[1].value, "caf\xc3\xa9");
}

static void test_head_get(void **state) {
  (void)state;
  assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n") > 0);
  assert_str(http_head_get(&H, "x-A"), "1");
  assert_str(http_head_get(&H, "HOST"), "h");
  str_t none = http_head_get(&H, "X-B");
  assert_null(none.p);
  assert_int_equal(none.n, 0);
}

/* ---- errors ---- */

static void test_bad_request_line(void **state) {
  (void)state;
  static const char *const bad[] = {
      "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",       /* two spaces */
      " GET / HTTP/1.1\r\nHost: h\r\n\r\n",       /* empty method */
      "G(T / HTTP/1.1\r\nHost: h\r\n\r\n",        /* non-token method */
      "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",       /* HTAB separator */
      "GET /\r\n\r\n",                            /* HTTP/0.9 */
      "GET / \r\nHost: h\r\n\r\n",                /* empty version */
      "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",     /* space in target */
      "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n",   /* CTL in target */
      "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", /* raw non-ASCII in target */
      "GET / http/1.1\r\nHost: h\r\n\r\n",        /* version is case-sensitive */
      "GET / HTTP/1.x\r\nHost: h\r\n\r\n",
      "GET / HTTP/1\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.\r\nHost: h\r\n\r\n",
      "GET / HTTP/11.1\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
      "GET / HTTP/1.1\nHost: h\r\n\r\n",          /* bare LF */
      "GET / HTTP/1.1\rHost: h\r\n\r\n",          /* bare CR */
      "GET / HTTP/1.1\r\nHost: h\r\n\n",          /* bare LF ending the head */
      "GET / HTTP/1.1\r\nHost: h\r\n\rX",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_result(bad[i], HTTP_PARSE_BAD_REQUEST);
}

static void test_bad_header_lines(void **state) {
  (void)state;
  static const char *const bad[] = {
      "GET / HTTP/1.1\r\nHost : h\r\n\r\n",              /* space before colon */
      "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",  /* obs-fold */
      "GET / HTTP/1.1\r\n\tHost: h\r\n\r\n",             /* leading whitespace */
      "GET / HTTP/1.1\r\nHost: h\r\nX@Y: 1\r\n\r\n",     /* non-token name */
      "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n",        /* empty name */
      "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n",         /* bare LF in a header */
      "GET / HTTP/1.1\r\nHost: h\r\r\n\r\n",             /* bare CR */
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n",   /* DEL */
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n",  /* CTL */
      "GET / HTTP/1.1\r\nHost: h\r\nX: \x1b[0m\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_result(bad[i], HTTP_PARSE_BAD_REQUEST);

  /* NUL inside a value (strlen cannot express it) */
  static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
  assert_int_equal(parse_n(nul, sizeof nul - 1), HTTP_PARSE_BAD_REQUEST);
  /* ... and it is caught before the line is complete */
  assert_int_equal(parse_n(nul, (size_t)(strchr(nul + 20, 'a') - nul) + 2), HTTP_PARSE_BAD_REQUEST);
}

static void test_host_rules(void **state) {
  (void)state;
  expect_result("GET / HTTP/1.1\r\nX: 1\r\n\r\n", HTTP_PARSE_BAD_REQUEST);
  expect_result("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", HTTP_PARSE_BAD_REQUEST);
  expect_result("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", HTTP_PARSE_BAD_REQUEST);
  expect_result("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HTTP_PARSE_BAD_REQUEST);
  expect_result("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", HTTP_PARSE_BAD_REQUEST);
  const char *ok[] = {
      "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
      "GET / HTTP/1.1\r\nHOST: [::1]:80\r\n\r\n",
      "GET / HTTP/1.1\r\nHost:\r\n\r\n", /* empty Host is allowed (RFC 9112 3.2) */
      "GET / HTTP/1.0\r\n\r\n",          /* 1.0 needs no Host */
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) expect_result(ok[i], (int)strlen(ok[i]));
}

static void test_versions(void **state) {
  (void)state;
  assert_true(parse("GET / HTTP/1.0\r\n\r\n") > 0);
  assert_int_equal(H.minor_version, 0);
  assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
  assert_int_equal(H.minor_version, 1);
  /* a higher 1.x minor is answered as 1.1 (RFC 9110 2.5) */
  assert_true(parse("GET / HTTP/1.7\r\nHost: h\r\n\r\n") > 0);
  assert_int_equal(H.minor_version, 1);
  expect_result("GET / HTTP/2.0\r\nHost: h\r\n\r\n", HTTP_PARSE_BAD_VERSION);
  expect_result("GET / HTTP/3\r\nHost: h\r\n\r\n", HTTP_PARSE_BAD_VERSION);
  expect_result("GET / HTTP/2\r\n\r\n", HTTP_PARSE_BAD_VERSION);
  expect_result("GET / HTTP/0.9\r\n\r\n", HTTP_PARSE_BAD_VERSION);
  /* the HTTP/2 prior-knowledge preface gets a 505, not a 400 for its "*" */
  expect_result("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HTTP_PARSE_BAD_VERSION);
  /* 505 is known once the request line is: no need to wait for headers */
  assert_int_equal(parse("GET / HTTP/2.0\r\n"), HTTP_PARSE_BAD_VERSION);
}

static void test_keep_alive(void **state) {
  (void)state;
  struct { const char *s; bool ka; } cases[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: x\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", true},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nKeep-Alive: 1\r\n\r\n", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(parse(cases[i].s), (int)strlen(cases[i].s));
    if (H.keep_alive != cases[i].ka) fail_msg("case %zu: keep_alive %d", i, H.keep_alive);
  }
}

static void test_expect(void **state) {
  (void)state;
  assert_true(parse("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n") > 0);
  assert_true(H.expect_continue);
  assert_true(parse("POST / HTTP/1.1\r\nHost: h\r\nexpect: 100-Continue\r\nContent-Length: 3\r\n\r\n") > 0);
  assert_true(H.expect_continue);
  assert_true(parse("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\n") > 0);
  assert_false(H.expect_continue);
  /* RFC 9110 10.1.1: ignored in HTTP/1.0 */
  assert_true(parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n") > 0);
  assert_false(H.expect_continue);
}

static void test_upgrade(void **state) {
  (void)state;
  const char *ws = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  assert_int_equal(parse(ws), (int)strlen(ws));
  assert_true(H.upgrade);
  assert_true(H.keep_alive);
  assert_str(http_head_get(&H, "upgrade"), "websocket");

  assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, upgrade\r\nUpgrade: websocket\r\n\r\n") > 0);
  assert_true(H.upgrade);
  assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n") > 0);
  assert_false(H.upgrade); /* no Upgrade header */
  assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade:\r\n\r\n") > 0);
  assert_false(H.upgrade); /* empty Upgrade header */
  assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n") > 0);
  assert_false(H.upgrade); /* Connection lacks the token */
  assert_true(parse("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n") > 0);
  assert_false(H.upgrade); /* RFC 9110 7.8: ignored in 1.0 */
}

static void test_content_length(void **state) {
  (void)state;
  struct { const char *cl; long long want; } ok[] = {
      {"Content-Length: 0\r\n", 0},
      {"Content-Length: 5\r\n", 5},
      {"content-length:007\r\n", 7},
      {"Content-Length: 5, 5\r\n", 5},
      {"Content-Length: 5,5 ,5\r\n", 5},
      {"Content-Length: 5\r\nContent-Length: 5\r\n", 5},
      {"Content-Length: 9007199254740992\r\n", 9007199254740992LL}, /* 2^53 */
  };
  char buf[256];
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\nHost: h\r\n%s\r\n", ok[i].cl);
    assert_int_equal(parse(buf), (int)strlen(buf));
    assert_int_equal(H.content_length, ok[i].want);
  }
  static const char *const bad[] = {
      "Content-Length: 5\r\nContent-Length: 6\r\n",
      "Content-Length: 5, 6\r\n",
      "Content-Length: abc\r\n",
      "Content-Length:\r\n",
      "Content-Length: -1\r\n",
      "Content-Length: +5\r\n",
      "Content-Length: 5 5\r\n",
      "Content-Length: 0x5\r\n",
      "Content-Length: 5,\r\n",
      "Content-Length: ,5\r\n",
      "Content-Length: 9007199254740993\r\n",      /* 2^53 + 1 */
      "Content-Length: 99999999999999999999999\r\n", /* overflows 64 bits */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\nHost: h\r\n%s\r\n", bad[i]);
    expect_result(buf, HTTP_PARSE_BAD_LENGTH);
  }
}

static void test_transfer_encoding(void **state) {
  (void)state;
  const char *ok[] = {
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding:  Chunked \r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked,\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    expect_result(ok[i], (int)strlen(ok[i]));
    assert_true(H.chunked);
    assert_int_equal(H.content_length, -1);
  }
  /* request smuggling: both framings present, in either order */
  expect_result("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                HTTP_PARSE_BAD_LENGTH);
  expect_result("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                HTTP_PARSE_BAD_LENGTH);
  /* codings we do not implement */
  static const char *const te501[] = {"gzip", "gzip, chunked", "chunked, gzip", "identity",
                                      "chunked;q=1", "chunked x"};
  char buf[256];
  for (size_t i = 0; i < sizeof te501 / sizeof te501[0]; i++) {
    snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n", te501[i]);
    expect_result(buf, HTTP_PARSE_BAD_TRANSFER_ENCODING);
  }
  /* chunked twice, on one line or two; an empty list; TE in HTTP/1.0 */
  expect_result("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                HTTP_PARSE_BAD_REQUEST);
  expect_result("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                HTTP_PARSE_BAD_REQUEST);
  expect_result("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", HTTP_PARSE_BAD_REQUEST);
  expect_result("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_PARSE_BAD_REQUEST);
}

/* ---- limits ---- */

/* Builds a complete head of exactly `total` bytes (padding an X-Pad header). */
static char *make_head(size_t total) {
  const char *pre = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
  const char *post = "\r\n\r\n";
  size_t fixed = strlen(pre) + strlen(post);
  assert_true(total > fixed);
  char *s = malloc(total + 1);
  assert_non_null(s);
  memcpy(s, pre, strlen(pre));
  memset(s + strlen(pre), 'a', total - fixed);
  memcpy(s + total - strlen(post), post, strlen(post) + 1);
  assert_int_equal(strlen(s), total);
  return s;
}

static void test_max_head_exact(void **state) {
  (void)state;
  char *s = make_head(1000);
  assert_int_equal(http_parse_request(s, 1000, 1000, &H), 1000);   /* exactly at the limit */
  assert_int_equal(http_parse_request(s, 1000, 999, &H), HTTP_PARSE_HEAD_TOO_LARGE);
  assert_int_equal(http_parse_request(s, 999, 1000, &H), HTTP_PARSE_INCOMPLETE);
  assert_int_equal(http_parse_request(s, 999, 999, &H), HTTP_PARSE_HEAD_TOO_LARGE);
  assert_int_equal(http_parse_request(s, 500, 999, &H), HTTP_PARSE_INCOMPLETE);
  /* a huge max_head is clamped, not overflowed */
  assert_int_equal(http_parse_request(s, 1000, SIZE_MAX, &H), 1000);
  free(s);
}

/* The scan never goes past max_head: a head whose end lies beyond it is
 * too large even though the whole head is already in the buffer. */
static void test_max_head_bounds_scan(void **state) {
  (void)state;
  char *s = make_head(4000);
  assert_int_equal(http_parse_request(s, 4000, 100, &H), HTTP_PARSE_HEAD_TOO_LARGE);
  free(s);
  /* headers that go on without ever ending: bounded slow-loris */
  char big[3000];
  int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: h\r\n");
  while ((size_t)n + 80 < sizeof big) /* fewer than HTTP_MAX_HEADERS lines */
    n += snprintf(big + n, sizeof big - (size_t)n, "X: %070d\r\n", n);
  assert_int_equal(http_parse_request(big, (size_t)n, 2048, &H), HTTP_PARSE_HEAD_TOO_LARGE);
  assert_int_equal(http_parse_request(big, 1000, 2048, &H), HTTP_PARSE_INCOMPLETE);
}

static void test_uri_too_long(void **state) {
  (void)state;
  char s[400];
  memcpy(s, "GET /", 5);
  memset(s + 5, 'x', 300);
  strcpy(s + 305, " HTTP/1.1\r\nHost: h\r\n\r\n");
  size_t n = strlen(s);
  assert_int_equal(http_parse_request(s, n, 100, &H), HTTP_PARSE_URI_TOO_LONG);
  assert_int_equal(http_parse_request(s, 100, 100, &H), HTTP_PARSE_URI_TOO_LONG);
  assert_int_equal(http_parse_request(s, 99, 100, &H), HTTP_PARSE_INCOMPLETE);
  /* request line ends exactly at the limit: the headers are what is too large */
  size_t line = (size_t)(strstr(s, "\r\n") - s) + 2;
  assert_int_equal(http_parse_request(s, n, line, &H), HTTP_PARSE_HEAD_TOO_LARGE);
  assert_int_equal(http_parse_request(s, n, line - 1, &H), HTTP_PARSE_URI_TOO_LONG);
  assert_int_equal(http_parse_request(s, n, n, &H), (int)n);
}

static void test_too_many_headers(void **state) {
  (void)state;
  char buf[4096];
  int n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: h\r\n");
  for (int i = 1; i < HTTP_MAX_HEADERS; i++) n += snprintf(buf + n, sizeof buf - (size_t)n, "X-%d: v\r\n", i);
  strcpy(buf + n, "\r\n");
  assert_int_equal(parse(buf), n + 2);
  assert_int_equal(H.num_headers, HTTP_MAX_HEADERS);
  assert_str(H.headers[HTTP_MAX_HEADERS - 1].name, "X-63");

  n += snprintf(buf + n, sizeof buf - (size_t)n, "X-extra: v\r\n\r\n");
  expect_result(buf, HTTP_PARSE_TOO_MANY_HEADERS);
}

/* ---- result mapping ---- */

static void test_result_mapping(void **state) {
  (void)state;
  struct { int r, status; const char *code; } m[] = {
      {HTTP_PARSE_BAD_REQUEST, 400, "bad_request"},
      {HTTP_PARSE_HEAD_TOO_LARGE, 431, "header_too_large"},
      {HTTP_PARSE_TOO_MANY_HEADERS, 431, "too_many_headers"},
      {HTTP_PARSE_BAD_VERSION, 505, "http_version_not_supported"},
      {HTTP_PARSE_BAD_LENGTH, 400, "bad_content_length"},
      {HTTP_PARSE_BAD_TRANSFER_ENCODING, 501, "unsupported_transfer_encoding"},
      {HTTP_PARSE_URI_TOO_LONG, 414, "uri_too_long"},
  };
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
    assert_int_equal(http_parse_status(m[i].r), m[i].status);
    assert_string_equal(http_parse_code(m[i].r), m[i].code);
    const char *msg = http_parse_message(m[i].r);
    assert_true(strlen(msg) > 0);
    /* messages are distinct so a client can tell the errors apart */
    for (size_t j = 0; j < i; j++) assert_string_not_equal(msg, http_parse_message(m[j].r));
  }
  assert_int_equal(http_parse_status(HTTP_PARSE_INCOMPLETE), 0);
  assert_int_equal(http_parse_status(42), 0);
  assert_int_equal(http_parse_status(-99), 400);
  assert_string_equal(http_parse_code(HTTP_PARSE_INCOMPLETE), "incomplete");
  assert_string_equal(http_parse_code(10), "ok");
  assert_string_equal(http_parse_code(-99), "bad_request");
  assert_string_equal(http_parse_message(10), "ok");
  assert_string_equal(http_parse_message(-99), "malformed request");
}

static void test_status_reason(void **state) {
  (void)state;
  static const int sent[] = {100, 101, 200, 201, 204, 206, 304, 400, 401, 403, 404, 405, 408, 409,
                             411, 413, 414, 415, 416, 426, 429, 431, 500, 501, 502, 503, 504, 505};
  for (size_t i = 0; i < sizeof sent / sizeof sent[0]; i++)
    if (strcmp(http_status_reason(sent[i]), "Unknown") == 0) fail_msg("no reason for %d", sent[i]);
  assert_string_equal(http_status_reason(200), "OK");
  assert_string_equal(http_status_reason(404), "Not Found");
  assert_string_equal(http_status_reason(431), "Request Header Fields Too Large");
  assert_string_equal(http_status_reason(999), "Unknown");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple_get),
      cmocka_unit_test(test_query_split),
      cmocka_unit_test(test_target_forms),
      cmocka_unit_test(test_pipelined),
      cmocka_unit_test(test_leading_empty_lines),
      cmocka_unit_test(test_obs_text_value),
      cmocka_unit_test(test_head_get),
      cmocka_unit_test(test_bad_request_line),
      cmocka_unit_test(test_bad_header_lines),
      cmocka_unit_test(test_host_rules),
      cmocka_unit_test(test_versions),
      cmocka_unit_test(test_keep_alive),
      cmocka_unit_test(test_expect),
      cmocka_unit_test(test_upgrade),
      cmocka_unit_test(test_content_length),
      cmocka_unit_test(test_transfer_encoding),
      cmocka_unit_test(test_max_head_exact),
      cmocka_unit_test(test_max_head_bounds_scan),
      cmocka_unit_test(test_uri_too_long),
      cmocka_unit_test(test_too_many_headers),
      cmocka_unit_test(test_result_mapping),
      cmocka_unit_test(test_status_reason),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
