/* libFuzzer driver for the HTTP/1.1 request path: head parser, chunked
 * decoder and router, with their invariants checked on every input.
 *   - a parsed head lies inside the input and every slice inside the head;
 *   - the answer does not depend on how much of the input follows the head,
 *     and no proper prefix of the head parses;
 *   - the chunked decoder gives the same result (consumed bytes, end,
 *     error, decoded data) fed in one piece or split in two;
 *   - router parameters are non-empty slices of the path. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_chunked.h"
#include "net/http_parser.h"
#include "net/http_router.h"

#define MAX_HEAD 16384

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                           \
    }                                                                    \
  } while (0)

static bool inside(str_t s, const char *lo, const char *hi) {
  if (s.n == 0) return s.p == NULL || (s.p >= lo && s.p <= hi);
  return s.p >= lo && s.p + s.n <= hi;
}

typedef struct {
  char *data;
  size_t len, cap;
  const char *lo, *hi; /* the input the pieces must come from */
} sink_t;

static int sink(void *arg, const char *data, size_t len) {
  sink_t *s = arg;
  CHECK(len > 0);
  CHECK(data >= s->lo && data + len <= s->hi);
  CHECK(s->len + len <= s->cap);
  memcpy(s->data + s->len, data, len);
  s->len += len;
  return 0;
}

static void check_chunked(const char *rest, size_t n, size_t split) {
  char *a = malloc(n + 1), *b = malloc(n + 1);
  CHECK(a && b);
  sink_t sa = {a, 0, n, rest, rest + n}, sb = {b, 0, n, rest, rest + n};

  http_chunked_t whole;
  http_chunked_init(&whole);
  ssize_t rw = http_chunked_feed(&whole, rest, n, sink, &sa);
  CHECK(rw == HTTP_CHUNKED_BAD || (rw >= 0 && (size_t)rw <= n));
  CHECK(rw < 0 || whole.done || (size_t)rw == n);

  http_chunked_t parts;
  http_chunked_init(&parts);
  ssize_t r1 = http_chunked_feed(&parts, rest, split, sink, &sb);
  ssize_t rp = r1;
  if (r1 >= 0 && !parts.done) {
    CHECK((size_t)r1 == split);
    ssize_t r2 = http_chunked_feed(&parts, rest + split, n - split, sink, &sb);
    rp = r2 < 0 ? r2 : r1 + r2;
  }
  CHECK(rp == rw);
  CHECK(parts.done == whole.done);
  CHECK(sa.len == sb.len && memcmp(a, b, sa.len) == 0);
  if (whole.done) /* a finished decoder takes nothing more */
    CHECK(http_chunked_feed(&whole, rest, n, sink, &sa) == 0);
  free(a);
  free(b);
}

static http_router_t *router;

static void build_router(void) {
  static const char *const routes[][2] = {
      {"GET", "/"},
      {"GET", "/health"},
      {"GET", "/users/me"},
      {"GET", "/users/{name}"},
      {"DELETE", "/users/{name}"},
      {"GET", "/channels/{id}/messages"},
      {"POST", "/channels/{id}/messages"},
      {"GET", "/channels/{cid}/messages/{mid}/"},
      {"HEAD", "/h/{x}"},
  };
  router = http_router_new();
  CHECK(router);
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
    CHECK(http_router_add(router, routes[i][0], routes[i][1], (void *)(uintptr_t)(i + 1)) == 0);
}

static void check_route(const http_request_head_t *h) {
  if (!router) build_router();
  http_route_match_t m;
  int r = http_router_match(router, h->method, h->path, &m);
  CHECK(r == HTTP_ROUTE_FOUND || r == HTTP_ROUTE_NOT_FOUND || r == HTTP_ROUTE_METHOD_NOT_ALLOWED);
  char allow[128];
  size_t an = http_router_allow(router, h->path, allow, sizeof allow);
  CHECK(an < sizeof allow && strlen(allow) == an);
  if (r == HTTP_ROUTE_NOT_FOUND) CHECK(an == 0);
  if (r == HTTP_ROUTE_METHOD_NOT_ALLOWED) CHECK(an > 0);
  if (r != HTTP_ROUTE_FOUND) return;
  CHECK(m.data != NULL && m.pattern != NULL && m.nparams <= HTTP_MAX_PARAMS);
  CHECK(an > 0);
  for (size_t i = 0; i < m.nparams; i++) {
    CHECK(m.params[i].value.n > 0);
    CHECK(inside(m.params[i].value, h->path.p, h->path.p + h->path.n));
    CHECK(memchr(m.params[i].value.p, '/', m.params[i].value.n) == NULL);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  static http_request_head_t h, h2;
  int r = http_parse_request(buf, size, MAX_HEAD, &h);
  CHECK(r != 0 && r >= HTTP_PARSE_URI_TOO_LONG);
  if (r < 0) {
    CHECK((r == HTTP_PARSE_INCOMPLETE) == (http_parse_status(r) == 0));
    CHECK(r != HTTP_PARSE_INCOMPLETE || size < MAX_HEAD);
    return 0;
  }

  const char *end = buf + r;
  CHECK((size_t)r <= size && r <= MAX_HEAD);
  CHECK(r >= 4 && memcmp(end - 4, "\r\n\r\n", 4) == 0);
  CHECK(inside(h.method, buf, end) && h.method.n > 0);
  CHECK(inside(h.target, buf, end) && h.target.n > 0);
  CHECK(inside(h.path, buf, end) && inside(h.query, buf, end));
  CHECK(h.path.p == h.target.p && h.path.n <= h.target.n);
  CHECK(memchr(h.path.p, '?', h.path.n) == NULL);
  CHECK(h.minor_version == 0 || h.minor_version == 1);
  CHECK(h.num_headers <= HTTP_MAX_HEADERS);
  for (size_t i = 0; i < h.num_headers; i++) {
    CHECK(inside(h.headers[i].name, buf, end) && h.headers[i].name.n > 0);
    CHECK(inside(h.headers[i].value, buf, end));
    str_t v = h.headers[i].value;
    CHECK(memchr(v.p, '\r', v.n) == NULL && memchr(v.p, '\n', v.n) == NULL);
    CHECK(v.n == 0 || (v.p[0] != ' ' && v.p[0] != '\t' && v.p[v.n - 1] != ' ' && v.p[v.n - 1] != '\t'));
  }
  CHECK(h.content_length >= -1 && h.content_length <= (long long)HTTP_MAX_CONTENT_LENGTH);
  CHECK(!(h.chunked && h.content_length >= 0));
  CHECK(!(h.upgrade && h.minor_version == 0));

  /* The head alone parses to the same length; one byte less does not. */
  CHECK(http_parse_request(buf, (size_t)r, MAX_HEAD, &h2) == r);
  CHECK(http_parse_request(buf, (size_t)r - 1, MAX_HEAD, &h2) == HTTP_PARSE_INCOMPLETE);
  /* ... and a limit of exactly the head length is enough. */
  CHECK(http_parse_request(buf, size, (size_t)r, &h2) == r);

  check_route(&h);

  if (h.chunked) {
    size_t n = size - (size_t)r;
    /* a split point derived from the input, so that it is reproducible */
    uint32_t x = 2166136261u;
    for (size_t i = 0; i < size; i++) x = (x ^ data[i]) * 16777619u;
    check_chunked(end, n, n ? x % (n + 1) : 0);
  }
  return 0;
}
