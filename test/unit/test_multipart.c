/* Unit tests for net/multipart: boundary extraction, parts and their
 * headers under every split of the input (two pieces at each position,
 * three pieces at every pair for a short body, and byte by byte), data
 * that mimics the delimiter, preamble/epilogue/padding, truncation, and
 * every error code with its stickiness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "net/multipart.h"

#define MAXP 8

typedef struct {
  int nparts;
  char name[MAXP][64];
  char filename[MAXP][128];
  size_t filename_len[MAXP];
  char ctype[MAXP][64];
  bool has_filename[MAXP];
  char data[MAXP][4096];
  size_t len[MAXP];
  int ended;
  int fail_begin, fail_data, fail_end; /* returned when non-zero */
  bool in_part;
} coll_t;

static int on_begin(void *arg, const multipart_part_t *p) {
  coll_t *c = arg;
  if (c->fail_begin) return c->fail_begin;
  if (c->in_part) fail_msg("part began inside a part");
  if (c->nparts == MAXP) fail_msg("too many parts for the collector");
  int i = c->nparts++;
  snprintf(c->name[i], sizeof c->name[i], "%.*s", (int)p->name.n, p->name.p ? p->name.p : "");
  c->has_filename[i] = p->filename.p != NULL;
  if (p->filename.n > sizeof c->filename[i]) fail_msg("filename too long for the collector");
  if (p->filename.n) memcpy(c->filename[i], p->filename.p, p->filename.n);
  c->filename_len[i] = p->filename.n;
  snprintf(c->ctype[i], sizeof c->ctype[i], "%.*s", (int)p->content_type.n,
           p->content_type.p ? p->content_type.p : "");
  c->in_part = true;
  return 0;
}

static int on_data(void *arg, const char *d, size_t n) {
  coll_t *c = arg;
  if (n == 0) fail_msg("data callback with 0 bytes");
  if (!c->in_part) fail_msg("data outside a part");
  if (c->fail_data) return c->fail_data;
  int i = c->nparts - 1;
  if (c->len[i] + n > sizeof c->data[i]) fail_msg("collector overflow");
  memcpy(c->data[i] + c->len[i], d, n);
  c->len[i] += n;
  return 0;
}

static int on_end(void *arg) {
  coll_t *c = arg;
  if (!c->in_part) fail_msg("end outside a part");
  if (c->fail_end) return c->fail_end;
  c->in_part = false;
  c->ended++;
  return 0;
}

static const multipart_callbacks_t CB = {on_begin, on_data, on_end};
static const char CT[] = "multipart/form-data; boundary=XyZ123";

/* Feeds body in pieces cut at the given sorted offsets. Returns the first
 * negative result, else 0. */
static int feed_cuts(multipart_t *m, const char *body, size_t n, const size_t *cuts, size_t ncuts,
                     coll_t *c) {
  size_t at = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    ssize_t r = multipart_feed(m, body + at, to - at, &CB, c);
    if (r < 0) return (int)r;
    assert_int_equal(r, to - at);
    at = to;
  }
  return 0;
}

static int parse_whole(const char *ct, const char *body, size_t n, coll_t *c, multipart_t *m) {
  memset(c, 0, sizeof *c);
  int rc = multipart_init(m, str_from(ct));
  if (rc < 0) return rc;
  return feed_cuts(m, body, n, NULL, 0, c);
}

/* A body whose file part contains the tricky sequences: CR, CRLF, CRLF--,
 * CRLF--XyZ12 (a delimiter cut one short), a wrong boundary, and CRs in
 * a row. */
static const char FILE_DATA[] =
    "\r\r\n\r\n-\r\n--\r\n--X\r\n--XyZ12\r\n--XyZ124\r\n--xyz123\r\r\r\n--XyZ12\r";
#define BODY_HEAD                                                              \
  "preamble to skip\r\n"                                                       \
  "--XyZ123\r\n"                                                               \
  "Content-Disposition: form-data; name=\"title\"\r\n"                         \
  "\r\n"                                                                       \
  "hello world\r\n"                                                            \
  "--XyZ123  \t\r\n"                                                           \
  "content-disposition: form-data; name=file; filename=\"a \\\"q\\\".png\"\r\n" \
  "Content-Type:  image/png \r\n"                                              \
  "X-Other: ignored\r\n"                                                       \
  "\r\n"
#define BODY_TAIL "\r\n--XyZ123--\r\nepilogue ignored\r\n--XyZ123\r\ngarbage"

static char body[1024];
static size_t body_len;

static void build_body(void) {
  body_len = 0;
  memcpy(body, BODY_HEAD, sizeof BODY_HEAD - 1);
  body_len += sizeof BODY_HEAD - 1;
  memcpy(body + body_len, FILE_DATA, sizeof FILE_DATA - 1);
  body_len += sizeof FILE_DATA - 1;
  memcpy(body + body_len, BODY_TAIL, sizeof BODY_TAIL - 1);
  body_len += sizeof BODY_TAIL - 1;
}

static void check_body(const coll_t *c, const multipart_t *m) {
  assert_true(m->done);
  assert_int_equal(c->nparts, 2);
  assert_int_equal(c->ended, 2);
  assert_string_equal(c->name[0], "title");
  assert_false(c->has_filename[0]);
  assert_int_equal(c->len[0], 11);
  assert_memory_equal(c->data[0], "hello world", 11);
  assert_string_equal(c->name[1], "file");
  assert_true(c->has_filename[1]);
  assert_int_equal(c->filename_len[1], 9);
  assert_memory_equal(c->filename[1], "a \"q\".png", 9);
  assert_string_equal(c->ctype[1], "image/png");
  assert_int_equal(c->len[1], sizeof FILE_DATA - 1);
  assert_memory_equal(c->data[1], FILE_DATA, sizeof FILE_DATA - 1);
}

static void test_whole(void **state) {
  (void)state;
  build_body();
  coll_t c;
  multipart_t m;
  assert_int_equal(parse_whole(CT, body, body_len, &c, &m), 0);
  check_body(&c, &m);
}

static void test_split_every_position(void **state) {
  (void)state;
  build_body();
  for (size_t k = 0; k <= body_len; k++) {
    coll_t c;
    memset(&c, 0, sizeof c);
    multipart_t m;
    assert_int_equal(multipart_init(&m, str_from(CT)), 0);
    size_t cuts[1] = {k};
    assert_int_equal(feed_cuts(&m, body, body_len, cuts, 1, &c), 0);
    check_body(&c, &m);
  }
}

static void test_split_three_pieces_around_file(void **state) {
  (void)state;
  build_body();
  /* Every pair of cuts inside and around the tricky file data. */
  size_t from = sizeof BODY_HEAD - 10, to = body_len - sizeof BODY_TAIL + 16;
  for (size_t a = from; a <= to; a++)
    for (size_t b = a; b <= to; b++) {
      coll_t c;
      memset(&c, 0, sizeof c);
      multipart_t m;
      assert_int_equal(multipart_init(&m, str_from(CT)), 0);
      size_t cuts[2] = {a, b};
      assert_int_equal(feed_cuts(&m, body, body_len, cuts, 2, &c), 0);
      check_body(&c, &m);
    }
}

static void test_byte_by_byte(void **state) {
  (void)state;
  build_body();
  coll_t c;
  memset(&c, 0, sizeof c);
  multipart_t m;
  assert_int_equal(multipart_init(&m, str_from(CT)), 0);
  for (size_t i = 0; i < body_len; i++) assert_int_equal(multipart_feed(&m, body + i, 1, &CB, &c), 1);
  check_body(&c, &m);
}

static void test_binary_all_bytes(void **state) {
  (void)state;
  char b[2048];
  size_t n = 0;
  const char head[] = "--XyZ123\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\n";
  memcpy(b, head, sizeof head - 1);
  n += sizeof head - 1;
  for (int r = 0; r < 3; r++)
    for (int v = 0; v < 256; v++) b[n++] = (char)v;
  const char tail[] = "\r\n--XyZ123--";
  memcpy(b + n, tail, sizeof tail - 1);
  n += sizeof tail - 1;
  coll_t c;
  multipart_t m;
  assert_int_equal(parse_whole(CT, b, n, &c, &m), 0);
  assert_true(m.done);
  assert_int_equal(c.len[0], 768);
  for (int v = 0; v < 768; v++) assert_int_equal((unsigned char)c.data[0][v], v % 256);
}

static void test_boundary_extraction(void **state) {
  (void)state;
  str_t b;
  assert_int_equal(multipart_boundary(STR_LIT("multipart/form-data; boundary=abc"), &b), 0);
  assert_true(str_eq_cstr(b, "abc"));
  assert_int_equal(multipart_boundary(STR_LIT("Multipart/Form-Data;charset=x;BOUNDARY=\"a b'()+_,-./:=?\""), &b), 0);
  assert_true(str_eq_cstr(b, "a b'()+_,-./:=?"));
  assert_int_equal(multipart_boundary(STR_LIT("multipart/form-data ; boundary=q;"), &b), 0);
  assert_true(str_eq_cstr(b, "q"));
  char seventy[128] = "multipart/form-data; boundary=";
  size_t l = strlen(seventy);
  memset(seventy + l, 'a', 70);
  seventy[l + 70] = '\0';
  assert_int_equal(multipart_boundary(str_from(seventy), &b), 0);
  assert_int_equal(b.n, 70);
  /* Refused: */
  seventy[l + 70] = 'a';
  seventy[l + 71] = '\0';
  assert_int_equal(multipart_boundary(str_from(seventy), &b), MULTIPART_E_BOUNDARY); /* 71 */
  const char *bad[] = {
      "",
      "multipart/form-data",
      "multipart/form-data; boundary=",
      "multipart/form-data; boundary=\"\"",
      "multipart/mixed; boundary=abc",
      "application/json; boundary=abc",
      "multipart/form-data; boundary=a\rb",
      "multipart/form-data; boundary=\"a\\\"b\"",
      "multipart/form-data; boundary=\"abc ",
      "multipart/form-data; boundary=\"abc \"",
      "multipart/form-data; boundary=ab{c",
      "multipart/form-data; bound ary=abc",
      "multipart/form-data; =abc",
      "multipart/form-data x; boundary=abc",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    if (multipart_boundary(str_from(bad[i]), &b) != MULTIPART_E_BOUNDARY)
      fail_msg("accepted boundary in \"%s\"", bad[i]);
    multipart_t m;
    assert_int_equal(multipart_init(&m, str_from(bad[i])), MULTIPART_E_BOUNDARY);
  }
  assert_int_equal(multipart_boundary(STR_NULL, &b), MULTIPART_E_BOUNDARY);
}

static void test_missing_final_boundary(void **state) {
  (void)state;
  const char *bodies[] = {
      "",                                                      /* nothing at all */
      "no delimiter anywhere",                                 /* preamble only */
      "--XyZ123\r\nContent-Disposition: form-data; name=a\r\n", /* headers cut */
      "--XyZ123\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue", /* data cut */
      "--XyZ123\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue\r\n--XyZ12", /* delimiter cut */
      "--XyZ123\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue\r\n--XyZ123", /* no -- */
      "--XyZ123\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue\r\n--XyZ123-", /* one - */
  };
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    coll_t c;
    multipart_t m;
    assert_int_equal(parse_whole(CT, bodies[i], strlen(bodies[i]), &c, &m), 0);
    if (m.done) fail_msg("body %zu counted as complete", i);
  }
  /* The held bytes of a cut delimiter are not delivered as data. */
  coll_t c;
  multipart_t m;
  const char *b = bodies[4];
  assert_int_equal(parse_whole(CT, b, strlen(b), &c, &m), 0);
  assert_int_equal(c.len[0], 5);
}

static void test_empty_and_no_parts(void **state) {
  (void)state;
  coll_t c;
  multipart_t m;
  const char *b = "--XyZ123--";
  assert_int_equal(parse_whole(CT, b, strlen(b), &c, &m), 0);
  assert_true(m.done);
  assert_int_equal(c.nparts, 0);
  b = "--XyZ123\r\n\r\n\r\n--XyZ123\r\nContent-Disposition: form-data; name=f; filename=\"\"\r\n\r\n"
      "\r\n--XyZ123--";
  assert_int_equal(parse_whole(CT, b, strlen(b), &c, &m), 0);
  assert_true(m.done);
  assert_int_equal(c.nparts, 2);
  assert_string_equal(c.name[0], ""); /* no Content-Disposition: no name */
  assert_int_equal(c.len[0], 0);
  assert_true(c.has_filename[1]);
  assert_int_equal(c.filename_len[1], 0);
  assert_int_equal(c.len[1], 0);
  assert_int_equal(c.ended, 2);
  /* A non-form-data disposition gives no name. */
  b = "--XyZ123\r\nContent-Disposition: attachment; name=f\r\n\r\nx\r\n--XyZ123--";
  assert_int_equal(parse_whole(CT, b, strlen(b), &c, &m), 0);
  assert_string_equal(c.name[0], "");
  /* Raw bytes in a filename (NUL, traversal) arrive as is: the caller sanitizes. */
  static const char nul_body[] = "--XyZ123\r\nContent-Disposition: form-data; name=file; "
                                 "filename=\"../../etc/\0passwd\"\r\n\r\nx\r\n--XyZ123--";
  assert_int_equal(parse_whole(CT, nul_body, sizeof nul_body - 1, &c, &m), 0);
  assert_int_equal(c.filename_len[0], 17);
  assert_memory_equal(c.filename[0], "../../etc/\0passwd", 17);
}

static void test_header_size_limit(void **state) {
  (void)state;
  static char b[MULTIPART_MAX_HEADER + 200];
  const char *head = "--XyZ123\r\nX-Pad: ";
  /* A header block of exactly the limit is accepted. */
  for (int over = 0; over <= 1; over++) {
    size_t n = strlen(head);
    memcpy(b, head, n);
    size_t block = MULTIPART_MAX_HEADER + (size_t)over; /* bytes after "--XyZ123\r\n" */
    size_t pad = block - strlen("X-Pad: ") - 4;
    memset(b + n, 'p', pad);
    n += pad;
    memcpy(b + n, "\r\n\r\nx\r\n--XyZ123--", 17);
    n += 17;
    coll_t c;
    multipart_t m;
    int rc = parse_whole(CT, b, n, &c, &m);
    if (over) {
      assert_int_equal(rc, MULTIPART_E_HEADER_SIZE);
    } else {
      assert_int_equal(rc, 0);
      assert_true(m.done);
    }
  }
}

static void test_syntax_errors(void **state) {
  (void)state;
  const char *bad[] = {
      "--XyZ123x\r\n\r\n",                                   /* junk after delimiter */
      "--XyZ123 x\r\n\r\n",                                  /* junk in padding */
      "--XyZ123\rx",                                         /* CR not followed by LF */
      "--XyZ123-x",                                          /* single dash */
      "--XyZ123\r\nNoColon\r\n\r\n",                         /* header line without ':' */
      "--XyZ123\r\n: empty-name\r\n\r\n",                    /* empty header name */
      "--XyZ123\r\nBad Name: v\r\n\r\n",                     /* space in the name */
      "--XyZ123\r\nX: a\nb\r\n\r\n",                         /* bare LF */
      "--XyZ123\r\nX: a\rb\r\n\r\n",                         /* bare CR in a value */
      "--XyZ123\r\n folded: v\r\n\r\n",                      /* obs-fold */
      "--XyZ123\r\nContent-Disposition: form-data; name=\"open\r\n\r\n", /* unterminated quote */
      "--XyZ123\r\nContent-Disposition: form-data; name\r\n\r\n",        /* param without = */
      "--XyZ123\r\nContent-Disposition: form-data name=x\r\n\r\n",       /* missing ; */
      "--XyZ123\r\nContent-Disposition: ;name=x\r\n\r\n",                /* missing type */
      "--XyZ123\r\nContent-Disposition: form-data; name=\r\n\r\n",       /* empty value */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    coll_t c;
    multipart_t m;
    int rc = parse_whole(CT, bad[i], strlen(bad[i]), &c, &m);
    if (rc != MULTIPART_E_SYNTAX) fail_msg("case %zu: got %d, want MULTIPART_E_SYNTAX", i, rc);
    /* Sticky. */
    assert_int_equal(multipart_feed(&m, "x", 1, &CB, &c), MULTIPART_E_SYNTAX);
  }
}

static void test_too_many_parts(void **state) {
  (void)state;
  static char b[8192];
  size_t n = 0;
  for (int i = 0; i < MULTIPART_MAX_PARTS + 1; i++) n += (size_t)sprintf(b + n, "--XyZ123\r\n\r\n\r\n");
  n += (size_t)sprintf(b + n, "--XyZ123--");
  multipart_t m;
  assert_int_equal(multipart_init(&m, str_from(CT)), 0);
  /* A collector that counts only. */
  static const multipart_callbacks_t none = {NULL, NULL, NULL};
  assert_int_equal(multipart_feed(&m, b, n, &none, NULL), MULTIPART_E_PARTS);
  /* Exactly the limit passes. */
  n = 0;
  for (int i = 0; i < MULTIPART_MAX_PARTS; i++) n += (size_t)sprintf(b + n, "--XyZ123\r\n\r\n\r\n");
  n += (size_t)sprintf(b + n, "--XyZ123--");
  assert_int_equal(multipart_init(&m, str_from(CT)), 0);
  assert_int_equal(multipart_feed(&m, b, n, &none, NULL), (ssize_t)n);
  assert_true(m.done);
}

static void test_callback_errors_propagate(void **state) {
  (void)state;
  build_body();
  int *fields[3];
  for (int which = 0; which < 3; which++) {
    coll_t c;
    memset(&c, 0, sizeof c);
    fields[0] = &c.fail_begin;
    fields[1] = &c.fail_data;
    fields[2] = &c.fail_end;
    *fields[which] = -(100 + which);
    multipart_t m;
    assert_int_equal(multipart_init(&m, str_from(CT)), 0);
    assert_int_equal(multipart_feed(&m, body, body_len, &CB, &c), -(100 + which));
    assert_int_equal(multipart_feed(&m, body, body_len, &CB, &c), -(100 + which));
  }
}

static void test_strerror(void **state) {
  (void)state;
  assert_non_null(strstr(multipart_strerror(MULTIPART_E_BOUNDARY), "boundary"));
  assert_non_null(strstr(multipart_strerror(MULTIPART_E_SYNTAX), "malformed"));
  assert_non_null(strstr(multipart_strerror(MULTIPART_E_HEADER_SIZE), "headers"));
  assert_non_null(strstr(multipart_strerror(MULTIPART_E_PARTS), "parts"));
  assert_non_null(strstr(multipart_strerror(-5), "rejected"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whole),
      cmocka_unit_test(test_split_every_position),
      cmocka_unit_test(test_split_three_pieces_around_file),
      cmocka_unit_test(test_byte_by_byte),
      cmocka_unit_test(test_binary_all_bytes),
      cmocka_unit_test(test_boundary_extraction),
      cmocka_unit_test(test_missing_final_boundary),
      cmocka_unit_test(test_empty_and_no_parts),
      cmocka_unit_test(test_header_size_limit),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_too_many_parts),
      cmocka_unit_test(test_callback_errors_propagate),
      cmocka_unit_test(test_strerror),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
