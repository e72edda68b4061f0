/* libFuzzer driver for the multipart/form-data parser (net/multipart.h),
 * with its invariants checked on every input:
 *   - the event stream (part begins with their name/filename/type, data
 *     bytes, part ends with their byte counts, done, error) is the same whether the body is fed
 *     in one piece, split in two at a position taken from the input, or
 *     byte by byte;
 *   - data callbacks never get 0 bytes or arrive outside a part;
 *   - every slice handed to on_part_begin lies inside the parser;
 *   - after an error every later feed returns the same error.
 * Input: an optional first line "CT:<content type>\n" (else the boundary
 * is "b"), then the body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/multipart.h"

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);  \
      abort();                                                                       \
    }                                                                                \
  } while (0)

/* The event stream, serialized into a bounded log; data events append
 * their bytes, so split feeds must produce identical logs. */
typedef struct {
  unsigned char log[1 << 16];
  size_t len;
  bool overflow, in_part;
  uint64_t part_bytes;
  const multipart_t *m;
} events_t;

static void put(events_t *e, const void *p, size_t n) {
  if (e->len + n > sizeof e->log) {
    e->overflow = true;
    return;
  }
  memcpy(e->log + e->len, p, n);
  e->len += n;
}

static bool in_parser(const events_t *e, str_t s) {
  if (!s.p) return s.n == 0;
  const char *lo = (const char *)e->m, *hi = lo + sizeof *e->m;
  return s.p >= lo && s.p + s.n <= hi;
}

static void put_str(events_t *e, str_t s) {
  CHECK(in_parser(e, s));
  uint32_t n = s.p ? (uint32_t)s.n : UINT32_MAX;
  put(e, &n, sizeof n);
  if (s.p) put(e, s.p, s.n);
}

static int on_begin(void *arg, const multipart_part_t *p) {
  events_t *e = arg;
  CHECK(!e->in_part);
  e->in_part = true;
  put(e, "B", 1);
  put_str(e, p->name);
  put_str(e, p->filename);
  put_str(e, p->content_type);
  /* A name of "fail" exercises the callback error path. */
  return str_eq_cstr(p->name, "fail") ? -77 : 0;
}

/* Data is logged raw (how it is split differs between feeds, what it is
 * must not); each part's end logs its byte count, so the log is
 * unambiguous. */
static int on_data(void *arg, const char *d, size_t n) {
  events_t *e = arg;
  CHECK(n > 0);
  CHECK(e->in_part);
  e->part_bytes += n;
  put(e, d, n);
  return 0;
}

static int on_end(void *arg) {
  events_t *e = arg;
  CHECK(e->in_part);
  e->in_part = false;
  put(e, "E", 1);
  put(e, &e->part_bytes, sizeof e->part_bytes);
  e->part_bytes = 0;
  return 0;
}

static const multipart_callbacks_t CB = {on_begin, on_data, on_end};

static int run(str_t ct, const uint8_t *body, size_t n, const size_t *cuts, size_t ncuts,
               events_t *e, multipart_t *m) {
  memset(e, 0, sizeof *e);
  e->m = m;
  int rc = multipart_init(m, ct);
  if (rc < 0) return rc;
  size_t at = 0;
  int err = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    ssize_t r = multipart_feed(m, (const char *)body + at, to - at, &CB, e);
    if (r < 0) {
      err = (int)r;
      CHECK(multipart_feed(m, "x", 1, &CB, e) == r); /* sticky */
      break;
    }
    CHECK((size_t)r == to - at);
    at = to;
  }
  put(e, m->done ? "Y" : "N", 1);
  put(e, &err, sizeof err);
  return err;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static multipart_t m1, m2;
  static events_t e1, e2;
  str_t ct = STR_LIT("multipart/form-data; boundary=b");
  if (size >= 3 && memcmp(data, "CT:", 3) == 0) {
    const uint8_t *nl = memchr(data, '\n', size < 300 ? size : 300);
    if (!nl) return 0;
    ct = (str_t){(const char *)data + 3, (size_t)(nl - data) - 3};
    size -= (size_t)(nl - data) + 1;
    data = nl + 1;
  }
  int rc1 = run(ct, data, size, NULL, 0, &e1, &m1);
  if (rc1 == MULTIPART_E_BOUNDARY && e1.len == 0) return 0;
  /* Split in two at a position derived from the input. */
  size_t cut = size ? (data[0] * 131u + data[size - 1]) % (size + 1) : 0;
  run(ct, data, size, &cut, 1, &e2, &m2);
  if (!e1.overflow && !e2.overflow) {
    CHECK(e1.len == e2.len);
    CHECK(memcmp(e1.log, e2.log, e1.len) == 0);
  }
  /* Byte by byte, for small inputs. */
  if (size <= 2048) {
    static size_t cuts[2048];
    for (size_t i = 0; i + 1 < size; i++) cuts[i] = i + 1;
    run(ct, data, size, cuts, size ? size - 1 : 0, &e2, &m2);
    if (!e1.overflow && !e2.overflow) {
      CHECK(e1.len == e2.len);
      CHECK(memcmp(e1.log, e2.log, e1.len) == 0);
    }
  }
  return 0;
}
