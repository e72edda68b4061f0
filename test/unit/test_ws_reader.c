/* Tests for net/ws_reader: messages, fragmentation with interleaved control
 * frames, every error with its close code, every split of the input giving
 * the same events, length boundaries, max_message, memory held, callback
 * stops and allocation failure.
 *
 * Each piece is fed from its own heap copy that is poisoned right after
 * the call, like the server's shared read buffer being reused: a reader
 * that kept a pointer into it would deliver garbage and fail the
 * comparisons (and ASan would see any overread). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/utf8.h"
#include "net/ws_frame.h"
#include "net/ws_reader.h"

/* ---- allocation failure injection (not under ASan, which owns malloc) -- */

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_REALLOC_HOOK 0
#else
#define HAVE_REALLOC_HOOK 1
extern void *__libc_realloc(void *p, size_t n);
static int realloc_failures; /* number of coming realloc calls that fail */
void *realloc(void *p, size_t n) {
  if (realloc_failures > 0) {
    realloc_failures--;
    return NULL;
  }
  return __libc_realloc(p, n);
}
#endif

/* ---- event recorder ---------------------------------------------------- */

typedef struct {
  buf_t log;        /* one entry per event; compared across splits */
  uint64_t max;     /* the max_message in force, to check lengths */
  int ret_message;  /* what the callbacks return */
  int ret_ping;
  int ret_close;
  int n_msg, n_ping, n_pong, n_close;
  uint8_t last_op;
  uint8_t *last;    /* copy of the last message */
  size_t last_len;
  const uint8_t *last_ptr;
  unsigned close_code;
  char close_reason[128];
  size_t close_reason_len;
} rec_t;

static void rec_init(rec_t *r, uint64_t max) {
  memset(r, 0, sizeof *r);
  r->log = (buf_t)BUF_INIT;
  r->max = max;
}

static void rec_free(rec_t *r) {
  buf_free(&r->log);
  free(r->last);
}

static uint32_t fnv(const uint8_t *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

static int on_message(void *arg, uint8_t op, uint8_t *data, size_t len) {
  rec_t *r = arg;
  assert_non_null(data);
  assert_true(op == WS_OP_TEXT || op == WS_OP_BINARY);
  assert_true(len <= r->max);
  if (op == WS_OP_TEXT) assert_true(utf8_valid(data, len));
  buf_printf(&r->log, "M%u:%zu:%08x|", op, len, fnv(data, len));
  r->n_msg++;
  r->last_op = op;
  free(r->last);
  r->last = malloc(len + 1);
  assert_non_null(r->last);
  memcpy(r->last, data, len);
  r->last_len = len;
  r->last_ptr = data;
  return r->ret_message;
}

static int on_ping(void *arg, const uint8_t *data, size_t len) {
  rec_t *r = arg;
  assert_non_null(data);
  assert_true(len <= WS_MAX_CONTROL_PAYLOAD);
  buf_printf(&r->log, "PI:%zu:%08x|", len, fnv(data, len));
  r->n_ping++;
  return r->ret_ping;
}

static int on_pong(void *arg, const uint8_t *data, size_t len) {
  rec_t *r = arg;
  assert_non_null(data);
  assert_true(len <= WS_MAX_CONTROL_PAYLOAD);
  buf_printf(&r->log, "PO:%zu:%08x|", len, fnv(data, len));
  r->n_pong++;
  return 0;
}

static int on_close(void *arg, unsigned code, const char *reason, size_t reason_len) {
  rec_t *r = arg;
  assert_non_null(reason);
  assert_true(code == WS_CLOSE_NO_STATUS || ws_close_code_valid_on_wire(code));
  assert_true(reason_len <= 123);
  assert_true(utf8_valid((const uint8_t *)reason, reason_len));
  buf_printf(&r->log, "C%u:%.*s|", code, (int)reason_len, reason);
  r->n_close++;
  r->close_code = code;
  memcpy(r->close_reason, reason, reason_len);
  r->close_reason_len = reason_len;
  return r->ret_close;
}

static const ws_reader_events_t events = {on_message, on_ping, on_pong, on_close};

/* ---- building client frames ------------------------------------------- */

static unsigned key_counter;

/* Appends a frame with first byte b0 (FIN/RSV/opcode), masked with a key
 * that changes from frame to frame, or unmasked. */
static void put_frame_ex(buf_t *b, uint8_t b0, bool masked, const void *payload, size_t n) {
  uint8_t hdr[14];
  size_t hl = ws_frame_header_encode(hdr, true, 0, n);
  hdr[0] = b0;
  if (masked) hdr[1] |= 0x80;
  buf_append(b, hdr, hl);
  uint8_t key[4] = {0};
  if (masked) {
    key_counter++;
    for (int i = 0; i < 4; i++) key[i] = (uint8_t)(key_counter * 37u + (unsigned)i * 101u + 1u);
    buf_append(b, key, 4);
  }
  size_t at = b->len;
  buf_append(b, payload, n);
  assert_false(b->oom);
  if (masked) ws_mask_apply((uint8_t *)b->data + at, n, key, 0);
}

static void put_frame(buf_t *b, uint8_t b0, const void *payload, size_t n) {
  put_frame_ex(b, b0, true, payload, n);
}

static void put_str(buf_t *b, uint8_t b0, const char *s) { put_frame(b, b0, s, strlen(s)); }

static void put_close(buf_t *b, unsigned code, const char *reason) {
  uint8_t p[128];
  p[0] = (uint8_t)(code >> 8);
  p[1] = (uint8_t)code;
  size_t rl = strlen(reason);
  memcpy(p + 2, reason, rl);
  put_frame(b, 0x88, p, rl + 2);
}

#define FIN 0x80
#define DATA(b) ((const uint8_t *)(b).data)
#define STREAM(b) DATA(b), (b).len

/* ---- feeding ------------------------------------------------------------ */

/* Feeds p[0..n) from a private heap copy, poisoned afterwards. */
static int feed_copy(ws_reader_t *r, const uint8_t *p, size_t n, uint64_t max, rec_t *rec) {
  uint8_t *copy = malloc(n ? n : 1);
  assert_non_null(copy);
  if (n) memcpy(copy, p, n);
  int rc = ws_reader_feed(r, copy, n, max, &events, rec);
  memset(copy, 0xa5, n);
  free(copy);
  assert_true(ws_reader_buffered(r) <= max + WS_MAX_CONTROL_PAYLOAD);
  return rc;
}

/* Runs the stream cut at cuts[0..ncuts) (non-decreasing) through a fresh
 * reader and returns the event log ending in "rc=<last result>". */
static char *run_cuts(const uint8_t *s, size_t n, const size_t *cuts, size_t ncuts, uint64_t max) {
  rec_t rec;
  rec_init(&rec, max);
  ws_reader_t r;
  ws_reader_init(&r);
  size_t prev = 0;
  int rc = 0;
  for (size_t i = 0; i <= ncuts && rc == 0; i++) {
    size_t end = i < ncuts ? cuts[i] : n;
    rc = feed_copy(&r, s + prev, end - prev, max, &rec);
    prev = end;
  }
  buf_printf(&rec.log, "rc=%d", rc);
  if (rc < 0) assert_int_equal(ws_reader_buffered(&r), 0); /* errors free at once */
  ws_reader_free(&r);
  assert_int_equal(ws_reader_buffered(&r), 0);
  char *log = buf_steal(&rec.log, NULL);
  rec_free(&rec);
  return log;
}

static char *run_whole(const uint8_t *s, size_t n, uint64_t max) { return run_cuts(s, n, NULL, 0, max); }

/* The stream must give the same log whole, byte by byte, at every 2-way
 * split and at many 3-way splits. Returns the log (caller frees). */
static char *check_all_splits(const uint8_t *s, size_t n, uint64_t max) {
  char *ref = run_whole(s, n, max);
  size_t *cuts = malloc((n + 1) * sizeof *cuts);
  assert_non_null(cuts);
  for (size_t i = 0; i + 1 < n; i++) cuts[i] = i + 1;
  char *log = run_cuts(s, n, cuts, n ? n - 1 : 0, max);
  assert_string_equal(log, ref);
  free(log);
  for (size_t c = 0; c <= n; c++) {
    log = run_cuts(s, n, &c, 1, max);
    assert_string_equal(log, ref);
    free(log);
  }
  size_t step = n / 40 + 1;
  for (size_t a = 0; a <= n; a += step) {
    for (size_t b = a; b <= n; b += step) {
      size_t two[2] = {a, b};
      log = run_cuts(s, n, two, 2, max);
      assert_string_equal(log, ref);
      free(log);
    }
  }
  free(cuts);
  return ref;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_size_and_idle(void **state) {
  (void)state;
  assert_true(sizeof(ws_reader_t) <= 48);
  ws_reader_t r;
  ws_reader_init(&r);
  assert_int_equal(ws_reader_buffered(&r), 0);
  rec_t rec;
  rec_init(&rec, 100);
  assert_int_equal(ws_reader_feed(&r, NULL, 0, 100, &events, &rec), 0);
  assert_int_equal(rec.log.len, 0);
  assert_int_equal(ws_reader_buffered(&r), 0);
  ws_reader_free(&r);
  rec_free(&rec);
}

static void test_rfc_hello_zero_copy(void **state) {
  (void)state;
  /* RFC 6455 5.7: a single-frame masked text message "Hello". */
  uint8_t in[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  rec_t rec;
  rec_init(&rec, 1000);
  ws_reader_t r;
  ws_reader_init(&r);
  assert_int_equal(ws_reader_feed(&r, in, sizeof in, 1000, &events, &rec), 0);
  assert_int_equal(rec.n_msg, 1);
  assert_int_equal(rec.last_op, WS_OP_TEXT);
  assert_int_equal(rec.last_len, 5);
  assert_memory_equal(rec.last, "Hello", 5);
  /* Delivered from the caller's buffer, unmasked in place: no copy. */
  assert_ptr_equal(rec.last_ptr, in + 6);
  assert_memory_equal(in + 6, "Hello", 5);
  assert_int_equal(ws_reader_buffered(&r), 0);
  ws_reader_free(&r);
  rec_free(&rec);
}

static void test_partial_frame_is_copied(void **state) {
  (void)state;
  buf_t s = BUF_INIT;
  put_str(&s, FIN | WS_OP_BINARY, "0123456789");
  rec_t rec;
  rec_init(&rec, 1000);
  ws_reader_t r;
  ws_reader_init(&r);
  uint8_t *a = malloc(s.len);
  assert_non_null(a);
  memcpy(a, s.data, s.len);
  assert_int_equal(ws_reader_feed(&r, a, 9, 1000, &events, &rec), 0); /* header + 3 bytes */
  assert_int_equal(rec.n_msg, 0);
  assert_true(ws_reader_buffered(&r) > 0);
  memset(a, 0, 9); /* the read buffer is reused */
  assert_int_equal(ws_reader_feed(&r, a + 9, s.len - 9, 1000, &events, &rec), 0);
  assert_int_equal(rec.n_msg, 1);
  assert_int_equal(rec.last_len, 10);
  assert_memory_equal(rec.last, "0123456789", 10);
  assert_true(rec.last_ptr < a || rec.last_ptr >= a + s.len); /* from the reader's copy */
  assert_int_equal(ws_reader_buffered(&r), 0);                /* freed on delivery */
  free(a);
  ws_reader_free(&r);
  rec_free(&rec);
  buf_free(&s);
}

static void test_fragmented_with_ping(void **state) {
  (void)state;
  buf_t s = BUF_INIT;
  put_str(&s, WS_OP_TEXT, "Hel");
  size_t after_first = s.len;
  put_str(&s, FIN | WS_OP_PING, "are you there");
  size_t after_ping = s.len;
  put_str(&s, WS_OP_CONT, "lo, ");
  put_str(&s, FIN | WS_OP_CONT, "world");

  rec_t rec;
  rec_init(&rec, 1000);
  ws_reader_t r;
  ws_reader_init(&r);
  assert_int_equal(feed_copy(&r, DATA(s), after_first, 1000, &rec), 0);
  assert_int_equal(rec.n_msg, 0);
  assert_true(ws_reader_buffered(&r) >= 3); /* the first fragment is held */
  /* The ping is delivered at once, before the message is complete. */
  assert_int_equal(feed_copy(&r, DATA(s) + after_first, after_ping - after_first, 1000, &rec), 0);
  assert_int_equal(rec.n_ping, 1);
  assert_int_equal(rec.n_msg, 0);
  assert_int_equal(feed_copy(&r, DATA(s) + after_ping, s.len - after_ping, 1000, &rec), 0);
  assert_int_equal(rec.n_msg, 1);
  assert_int_equal(rec.last_op, WS_OP_TEXT);
  assert_int_equal(rec.last_len, 12);
  assert_memory_equal(rec.last, "Hello, world", 12);
  assert_int_equal(ws_reader_buffered(&r), 0);
  ws_reader_free(&r);
  rec_free(&rec);

  char *log = check_all_splits(STREAM(s), 1000);
  char want[128];
  snprintf(want, sizeof want, "PI:13:%08x|M1:12:%08x|rc=0", fnv((const uint8_t *)"are you there", 13),
           fnv((const uint8_t *)"Hello, world", 12));
  assert_string_equal(log, want);
  free(log);
  buf_free(&s);
}

static void test_mixed_stream_all_splits(void **state) {
  (void)state;
  uint8_t bin[300];
  for (size_t i = 0; i < sizeof bin; i++) bin[i] = (uint8_t)(i * 13);
  uint8_t ping[125];
  memset(ping, 'p', sizeof ping);
  buf_t s = BUF_INIT;
  put_str(&s, FIN | WS_OP_TEXT, "hi");
  put_frame(&s, FIN | WS_OP_BINARY, bin, sizeof bin); /* 16-bit length */
  /* Multi-byte characters cut across fragments: é = C3|A9, 😀 = F0 9F|98 80. */
  put_frame(&s, WS_OP_TEXT, "caf\xc3", 4);
  put_frame(&s, FIN | WS_OP_PONG, "x", 1);
  put_frame(&s, WS_OP_CONT, "\xa9 \xf0\x9f", 4);
  put_frame(&s, WS_OP_CONT, "", 0);
  put_frame(&s, FIN | WS_OP_CONT, "\x98\x80!", 3);
  put_frame(&s, FIN | WS_OP_PING, ping, sizeof ping);
  put_str(&s, FIN | WS_OP_TEXT, "");
  put_frame(&s, WS_OP_BINARY, bin, 7);
  put_frame(&s, FIN | WS_OP_PING, "", 0);
  put_frame(&s, WS_OP_CONT, "", 0);
  put_frame(&s, FIN | WS_OP_CONT, bin + 7, 200);
  put_close(&s, 1000, "bye");
  put_str(&s, FIN | WS_OP_TEXT, "after close: ignored");

  char *log = check_all_splits(STREAM(s), 1000);
  char want[512];
  snprintf(want, sizeof want,
           "M1:2:%08x|M2:300:%08x|PO:1:%08x|M1:11:%08x|PI:125:%08x|M1:0:%08x|PI:0:%08x|"
           "M2:207:%08x|C1000:bye|rc=0",
           fnv((const uint8_t *)"hi", 2), fnv(bin, 300), fnv((const uint8_t *)"x", 1),
           fnv((const uint8_t *)"caf\xc3\xa9 \xf0\x9f\x98\x80!", 11), fnv(ping, 125), fnv(NULL, 0),
           fnv(NULL, 0), fnv(bin, 207));
  assert_string_equal(log, want);
  free(log);
  buf_free(&s);
}

static void test_zero_length_frames(void **state) {
  (void)state;
  buf_t s = BUF_INIT;
  put_frame(&s, FIN | WS_OP_TEXT, "", 0);
  put_frame(&s, FIN | WS_OP_BINARY, "", 0);
  put_frame(&s, FIN | WS_OP_PING, "", 0);
  put_frame(&s, FIN | WS_OP_PONG, "", 0);
  put_frame(&s, WS_OP_TEXT, "", 0);
  put_frame(&s, FIN | WS_OP_CONT, "", 0);
  put_frame(&s, FIN | WS_OP_CLOSE, "", 0);
  char *log = check_all_splits(STREAM(s), 0);
  char want[256];
  uint32_t e = fnv(NULL, 0);
  snprintf(want, sizeof want, "M1:0:%08x|M2:0:%08x|PI:0:%08x|PO:0:%08x|M1:0:%08x|C1005:|rc=0", e, e, e, e, e);
  assert_string_equal(log, want);
  free(log);
  buf_free(&s);
}

static void test_length_boundaries(void **state) {
  (void)state;
  static const size_t lens[] = {125, 126, 127, 65535, 65536, 70000};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    size_t n = lens[i];
    uint8_t *p = malloc(n);
    assert_non_null(p);
    for (size_t k = 0; k < n; k++) p[k] = (uint8_t)('a' + k % 26); /* ASCII: valid as text too */
    for (uint8_t op = WS_OP_TEXT; op <= WS_OP_BINARY; op++) {
      buf_t s = BUF_INIT;
      put_frame(&s, FIN | op, p, n);
      size_t hl = n < 126 ? 6 : n <= 65535 ? 8 : 14;
      assert_int_equal(s.len, hl + n);
      char want[64];
      snprintf(want, sizeof want, "M%u:%zu:%08x|rc=0", op, n, fnv(p, n));
      char *log = run_whole(STREAM(s), 70000);
      assert_string_equal(log, want);
      free(log);
      /* Byte by byte and at the interesting cut points. */
      size_t *cuts = malloc(s.len * sizeof *cuts);
      assert_non_null(cuts);
      for (size_t k = 0; k + 1 < s.len; k++) cuts[k] = k + 1;
      log = run_cuts(STREAM(s), cuts, s.len - 1, 70000);
      assert_string_equal(log, want);
      free(log);
      free(cuts);
      size_t points[] = {1, 2, hl - 1, hl, hl + 1, hl + n / 2, s.len - 1};
      for (size_t k = 0; k < sizeof points / sizeof points[0]; k++) {
        log = run_cuts(STREAM(s), &points[k], 1, 70000);
        assert_string_equal(log, want);
        free(log);
      }
      buf_free(&s);
    }
    free(p);
  }
}

static void test_max_message(void **state) {
  (void)state;
  uint8_t p[101];
  memset(p, 'z', sizeof p);
  char *log;
  char want[64];
  /* Exactly max: delivered. */
  buf_t s = BUF_INIT;
  put_frame(&s, FIN | WS_OP_BINARY, p, 100);
  snprintf(want, sizeof want, "M2:100:%08x|rc=0", fnv(p, 100));
  log = check_all_splits(STREAM(s), 100);
  assert_string_equal(log, want);
  free(log);
  /* max + 1: refused from the header alone, before any payload. */
  buf_reset(&s);
  put_frame(&s, FIN | WS_OP_TEXT, p, 101);
  log = run_cuts(STREAM(s), (size_t[]){6}, 1, 100);
  assert_string_equal(log, "rc=-1010");
  free(log);
  log = check_all_splits(STREAM(s), 100);
  assert_string_equal(log, "rc=-1010");
  free(log);
  assert_int_equal(ws_error_close_code(WS_ERR_MESSAGE_TOO_BIG), WS_CLOSE_TOO_BIG);
  /* Fragments adding up to exactly max, then to max + 1. */
  buf_reset(&s);
  put_frame(&s, WS_OP_BINARY, p, 60);
  put_frame(&s, WS_OP_CONT, p, 0);
  put_frame(&s, FIN | WS_OP_CONT, p, 40);
  snprintf(want, sizeof want, "M2:100:%08x|rc=0", fnv(p, 100));
  log = check_all_splits(STREAM(s), 100);
  assert_string_equal(log, want);
  free(log);
  buf_reset(&s);
  put_frame(&s, WS_OP_BINARY, p, 60);
  size_t second_header_end = s.len + 6;
  put_frame(&s, FIN | WS_OP_CONT, p, 41);
  log = run_cuts(STREAM(s), &second_header_end, 1, 100);
  assert_string_equal(log, "rc=-1010");
  free(log);
  log = check_all_splits(STREAM(s), 100);
  assert_string_equal(log, "rc=-1010");
  free(log);
  /* max 0: only empty messages. */
  buf_reset(&s);
  put_frame(&s, FIN | WS_OP_TEXT, p, 0);
  put_frame(&s, FIN | WS_OP_TEXT, p, 1);
  snprintf(want, sizeof want, "M1:0:%08x|rc=-1010", fnv(NULL, 0));
  log = check_all_splits(STREAM(s), 0);
  assert_string_equal(log, want);
  free(log);
  /* A 64-bit length far above max is refused the same way. */
  buf_reset(&s);
  buf_append(&s, "\x82\xff\x00\x00\x01\x00\x00\x00\x00\x00\x01\x02\x03\x04", 14);
  log = check_all_splits(STREAM(s), 100);
  assert_string_equal(log, "rc=-1010");
  free(log);
  buf_free(&s);
}

struct err_case {
  const char *name;
  int err;
  int close_code;
};

/* Builds the stream for error case i after a valid ping (whose event must
 * come out before the error). */
static void build_error_case(buf_t *s, int i) {
  uint8_t big[130];
  memset(big, 'b', sizeof big);
  put_str(s, FIN | WS_OP_PING, "first");
  switch (i) {
  case 0: put_str(s, FIN | 0x40 | WS_OP_TEXT, "rsv1"); break;
  case 1: put_str(s, FIN | 0x20 | WS_OP_TEXT, "rsv2"); break;
  case 2: put_str(s, FIN | 0x10 | WS_OP_BINARY, "rsv3"); break;
  case 3: put_str(s, FIN | 0x3, "op3"); break;
  case 4: put_str(s, FIN | 0x7, "op7"); break;
  case 5: put_str(s, FIN | 0xB, "opB"); break;
  case 6: put_str(s, FIN | 0xF, "opF"); break;
  case 7: put_str(s, WS_OP_PING, "unfinished ping"); break;
  case 8: put_str(s, WS_OP_CLOSE, "\x03\xe8"); break;
  case 9: put_frame(s, FIN | WS_OP_PING, big, 126); break;
  case 10: put_frame(s, FIN | WS_OP_CLOSE, big, 130); break;
  case 11: put_frame_ex(s, FIN | WS_OP_TEXT, false, "Hello", 5); break;
  case 12: put_frame_ex(s, FIN | WS_OP_PING, false, "", 0); break;
  case 13: buf_append(s, "\x82\xfe\x00\x7d\x01\x02\x03\x04", 8); break; /* 125 in 16 bits */
  case 14: buf_append(s, "\x82\xff\x00\x00\x00\x00\x00\x00\xff\xff\x01\x02\x03\x04", 14); break;
  case 15: buf_append(s, "\x82\xff\x80\x00\x00\x00\x00\x00\x00\x01\x01\x02\x03\x04", 14); break;
  case 16: put_str(s, FIN | WS_OP_CONT, "orphan"); break;
  case 17: put_str(s, WS_OP_CONT, "orphan"); break;
  case 18: put_str(s, WS_OP_TEXT, "a"); put_str(s, FIN | WS_OP_TEXT, "b"); break;
  case 19: put_str(s, WS_OP_BINARY, "a"); put_str(s, WS_OP_TEXT, "b"); break;
  case 20: put_frame(s, FIN | WS_OP_BINARY, big, 11); break; /* max is 10 */
  case 21: put_str(s, FIN | WS_OP_TEXT, "bad \xff byte"); break;
  case 22: put_str(s, FIN | WS_OP_TEXT, "ovl \xc0\x80"); break;
  case 23: put_str(s, FIN | WS_OP_TEXT, "\xed\xa0\x80"); break;
  case 24: put_str(s, FIN | WS_OP_TEXT, "\xf4\x90\x80\x80"); break;
  case 25: put_str(s, FIN | WS_OP_TEXT, "cut \xe2\x82"); break;
  case 26: put_str(s, WS_OP_TEXT, "ok"); put_str(s, FIN | WS_OP_CONT, "\xe2\x82"); break;
  case 27: put_str(s, WS_OP_TEXT, "\xe0"); put_str(s, FIN | WS_OP_CONT, "\x80\x80"); break;
  case 28: put_str(s, WS_OP_TEXT, "\x80"); put_str(s, FIN | WS_OP_CONT, "never read"); break;
  case 29: put_close(s, 1000, "\xff"); break;
  case 30: put_close(s, 1001, "\xed\xbf\xbf"); break;
  case 31: put_frame(s, FIN | WS_OP_CLOSE, "\x03", 1); break;
  case 32: put_close(s, 1005, ""); break;
  case 33: put_close(s, 1006, "x"); break;
  case 34: put_close(s, 999, ""); break;
  case 35: put_close(s, 1004, ""); break;
  case 36: put_close(s, 1015, ""); break;
  case 37: put_close(s, 2999, ""); break;
  case 38: put_close(s, 5000, ""); break;
  case 39: put_close(s, 0, ""); break;
  }
}

static const struct err_case err_cases[] = {
    {"rsv1", WS_ERR_RSV, 1002},
    {"rsv2", WS_ERR_RSV, 1002},
    {"rsv3", WS_ERR_RSV, 1002},
    {"op3", WS_ERR_OPCODE, 1002},
    {"op7", WS_ERR_OPCODE, 1002},
    {"opB", WS_ERR_OPCODE, 1002},
    {"opF", WS_ERR_OPCODE, 1002},
    {"ping fin=0", WS_ERR_CONTROL_FRAGMENTED, 1002},
    {"close fin=0", WS_ERR_CONTROL_FRAGMENTED, 1002},
    {"ping 126", WS_ERR_CONTROL_TOO_BIG, 1002},
    {"close 130", WS_ERR_CONTROL_TOO_BIG, 1002},
    {"unmasked text", WS_ERR_UNMASKED, 1002},
    {"unmasked ping", WS_ERR_UNMASKED, 1002},
    {"len16 not minimal", WS_ERR_LEN_NOT_MINIMAL, 1002},
    {"len64 not minimal", WS_ERR_LEN_NOT_MINIMAL, 1002},
    {"len64 top bit", WS_ERR_LEN_TOP_BIT, 1002},
    {"orphan cont fin", WS_ERR_UNEXPECTED_CONT, 1002},
    {"orphan cont", WS_ERR_UNEXPECTED_CONT, 1002},
    {"text in text", WS_ERR_EXPECTED_CONT, 1002},
    {"text in binary", WS_ERR_EXPECTED_CONT, 1002},
    {"too big", WS_ERR_MESSAGE_TOO_BIG, 1009},
    {"utf8 ff", WS_ERR_BAD_UTF8, 1007},
    {"utf8 overlong", WS_ERR_BAD_UTF8, 1007},
    {"utf8 surrogate", WS_ERR_BAD_UTF8, 1007},
    {"utf8 > 10FFFF", WS_ERR_BAD_UTF8, 1007},
    {"utf8 truncated", WS_ERR_BAD_UTF8, 1007},
    {"utf8 truncated fragmented", WS_ERR_BAD_UTF8, 1007},
    {"utf8 overlong across fragments", WS_ERR_BAD_UTF8, 1007},
    {"utf8 bad first fragment", WS_ERR_BAD_UTF8, 1007},
    {"close reason ff", WS_ERR_CLOSE_REASON_UTF8, 1007},
    {"close reason surrogate", WS_ERR_CLOSE_REASON_UTF8, 1007},
    {"close 1 byte", WS_ERR_CLOSE_PAYLOAD, 1002},
    {"close 1005", WS_ERR_CLOSE_CODE, 1002},
    {"close 1006", WS_ERR_CLOSE_CODE, 1002},
    {"close 999", WS_ERR_CLOSE_CODE, 1002},
    {"close 1004", WS_ERR_CLOSE_CODE, 1002},
    {"close 1015", WS_ERR_CLOSE_CODE, 1002},
    {"close 2999", WS_ERR_CLOSE_CODE, 1002},
    {"close 5000", WS_ERR_CLOSE_CODE, 1002},
    {"close 0", WS_ERR_CLOSE_CODE, 1002},
};

static void test_errors(void **state) {
  (void)state;
  for (int i = 0; i < (int)(sizeof err_cases / sizeof err_cases[0]); i++) {
    const struct err_case *c = &err_cases[i];
    buf_t s = BUF_INIT;
    build_error_case(&s, i);
    /* A trailing valid frame that must never be seen. */
    put_str(&s, FIN | WS_OP_TEXT, "unreached");
    char want[64];
    snprintf(want, sizeof want, "PI:5:%08x|rc=%d", fnv((const uint8_t *)"first", 5), c->err);
    char *log = check_all_splits(STREAM(s), 10);
    if (strcmp(log, want) != 0) fail_msg("case %s: got %s, want %s", c->name, log, want);
    free(log);
    assert_int_equal(ws_error_close_code(c->err), c->close_code);

    /* The reader is finished: no memory held, later feeds refused. */
    rec_t rec;
    rec_init(&rec, 10);
    ws_reader_t r;
    ws_reader_init(&r);
    assert_int_equal(feed_copy(&r, STREAM(s), 10, &rec), c->err);
    assert_int_equal(ws_reader_buffered(&r), 0);
    assert_int_equal(feed_copy(&r, (const uint8_t *)"\x89\x80\0\0\0\0", 6, 10, &rec), -EINVAL);
    assert_int_equal(rec.n_ping, 1);
    ws_reader_free(&r);
    rec_free(&rec);
    buf_free(&s);
  }
}

/* A bad byte ends the reader when it arrives, not when the message ends. */
static void test_utf8_fail_fast(void **state) {
  (void)state;
  rec_t rec;
  rec_init(&rec, 1 << 20);
  ws_reader_t r;
  ws_reader_init(&r);
  buf_t s = BUF_INIT;
  put_str(&s, WS_OP_TEXT, "valid start \xc3");
  assert_int_equal(feed_copy(&r, STREAM(s), 1 << 20, &rec), 0);
  buf_reset(&s);
  put_str(&s, WS_OP_CONT, "\xa9 then \xed\xa0\x80 surrogate");
  assert_int_equal(feed_copy(&r, STREAM(s), 1 << 20, &rec), WS_ERR_BAD_UTF8);
  assert_int_equal(ws_reader_buffered(&r), 0);
  ws_reader_free(&r);

  /* Inside one large frame, after the header and a few bytes. */
  ws_reader_init(&r);
  uint8_t *p = malloc(100000);
  assert_non_null(p);
  memset(p, 'a', 100000);
  p[3] = 0xff;
  buf_reset(&s);
  put_frame(&s, FIN | WS_OP_TEXT, p, 100000);
  assert_int_equal(feed_copy(&r, DATA(s), 100, 1 << 20, &rec), WS_ERR_BAD_UTF8);
  assert_int_equal(rec.n_msg, 0);
  ws_reader_free(&r);
  free(p);
  buf_free(&s);
  rec_free(&rec);
}

static void test_close_then_ignore(void **state) {
  (void)state;
  buf_t s = BUF_INIT;
  put_close(&s, 1001, "going away \xc3\xa9");
  buf_append(&s, "\xff\xff garbage that would be an error", 33);
  rec_t rec;
  rec_init(&rec, 100);
  ws_reader_t r;
  ws_reader_init(&r);
  assert_int_equal(feed_copy(&r, STREAM(s), 100, &rec), 0);
  assert_int_equal(rec.n_close, 1);
  assert_int_equal(rec.close_code, 1001);
  assert_int_equal(rec.close_reason_len, 13);
  assert_memory_equal(rec.close_reason, "going away \xc3\xa9", 13);
  assert_int_equal(ws_reader_buffered(&r), 0);
  assert_int_equal(feed_copy(&r, (const uint8_t *)"\xff", 1, 100, &rec), 0);
  assert_int_equal(rec.n_close, 1);
  ws_reader_free(&r);

  /* Codes at the edges of the valid ranges are delivered. */
  static const unsigned ok[] = {1000, 1003, 1007, 1011, 1014, 3000, 4999};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    buf_reset(&s);
    put_close(&s, ok[i], "");
    ws_reader_init(&r);
    assert_int_equal(feed_copy(&r, STREAM(s), 100, &rec), 0);
    assert_int_equal(rec.close_code, ok[i]);
    assert_int_equal(rec.close_reason_len, 0);
    ws_reader_free(&r);
  }
  /* The longest close payload (125) with a multi-byte reason, all splits. */
  char reason[124];
  memset(reason, 'r', 121);
  memcpy(reason + 121, "\xc3\xa9", 3); /* 121 + 2 = 123 bytes */
  buf_reset(&s);
  put_close(&s, 4000, reason);
  char *log = check_all_splits(STREAM(s), 100);
  char want[256];
  snprintf(want, sizeof want, "C4000:%s|rc=0", reason);
  assert_string_equal(log, want);
  free(log);
  /* A close in the middle of a fragmented message ends it; the partial
   * message is freed. */
  buf_reset(&s);
  put_str(&s, WS_OP_BINARY, "part");
  put_close(&s, 1000, "");
  ws_reader_init(&r);
  assert_int_equal(feed_copy(&r, STREAM(s), 100, &rec), 0);
  assert_int_equal(rec.close_code, 1000);
  assert_int_equal(ws_reader_buffered(&r), 0);
  ws_reader_free(&r);
  rec_free(&rec);
  buf_free(&s);
}

static void test_callback_stop(void **state) {
  (void)state;
  buf_t s = BUF_INIT;
  put_str(&s, FIN | WS_OP_TEXT, "one");
  put_str(&s, FIN | WS_OP_TEXT, "two");
  rec_t rec;
  rec_init(&rec, 100);
  rec.ret_message = 7;
  ws_reader_t r;
  ws_reader_init(&r);
  assert_int_equal(feed_copy(&r, STREAM(s), 100, &rec), 7);
  assert_int_equal(rec.n_msg, 1); /* the second frame is not parsed */
  assert_memory_equal(rec.last, "one", 3);
  assert_int_equal(ws_reader_buffered(&r), 0);
  ws_reader_free(&r);

  /* A stop from a buffered message: the message is freed after delivery. */
  rec.n_msg = 0;
  ws_reader_init(&r);
  assert_int_equal(feed_copy(&r, DATA(s), 5, 100, &rec), 0);
  assert_true(ws_reader_buffered(&r) > 0);
  assert_int_equal(feed_copy(&r, DATA(s) + 5, s.len - 5, 100, &rec), 7);
  assert_int_equal(rec.n_msg, 1);
  assert_int_equal(ws_reader_buffered(&r), 0);
  ws_reader_free(&r);

  /* A negative value from a callback is passed through and is not taken
   * for a reader error: the fragment stays until ws_reader_free. */
  buf_reset(&s);
  put_str(&s, WS_OP_TEXT, "frag");
  put_str(&s, FIN | WS_OP_PING, "");
  put_str(&s, FIN | WS_OP_CONT, "ment");
  rec.ret_ping = -42;
  ws_reader_init(&r);
  assert_int_equal(feed_copy(&r, STREAM(s), 100, &rec), -42);
  assert_int_equal(rec.n_msg, 1);
  assert_true(ws_reader_buffered(&r) >= 4);
  ws_reader_free(&r);
  assert_int_equal(ws_reader_buffered(&r), 0);

  /* on_close's value is returned; the reader stays closed. */
  buf_reset(&s);
  put_close(&s, 1000, "");
  rec.ret_close = 1;
  ws_reader_init(&r);
  assert_int_equal(feed_copy(&r, STREAM(s), 100, &rec), 1);
  assert_int_equal(feed_copy(&r, STREAM(s), 100, &rec), 0);
  assert_int_equal(rec.n_close, 1);
  ws_reader_free(&r);
  rec_free(&rec);
  buf_free(&s);
}

/* A connection closed from inside a callback: the server frees the reader
 * and zeroes the union that holds it, then the callback returns nonzero.
 * The reader must not write anything but zeros into it afterwards (nor
 * free twice, which ASan would report). */
typedef struct {
  uint64_t canary1;
  ws_reader_t r;
  uint64_t canary2;
  int calls;
} fake_conn_t;

static int kill_conn(fake_conn_t *c) {
  c->calls++;
  ws_reader_free(&c->r);
  memset(&c->r, 0, sizeof c->r);
  return 1;
}
static int kill_on_message(void *arg, uint8_t op, uint8_t *d, size_t n) { return kill_conn(arg); }
static int kill_on_control(void *arg, const uint8_t *d, size_t n) { return kill_conn(arg); }
static int kill_on_close(void *arg, unsigned code, const char *reason, size_t n) { return kill_conn(arg); }

static void test_callback_frees_reader(void **state) {
  (void)state;
  static const ws_reader_events_t kill = {kill_on_message, kill_on_control, kill_on_control, kill_on_close};
  buf_t streams[6];
  for (int i = 0; i < 6; i++) streams[i] = (buf_t)BUF_INIT;
  put_str(&streams[0], FIN | WS_OP_TEXT, "zero-copy");
  put_str(&streams[1], WS_OP_BINARY, "frag");
  put_str(&streams[1], FIN | WS_OP_CONT, "mented");
  put_str(&streams[2], WS_OP_BINARY, "frag");
  put_str(&streams[2], FIN | WS_OP_PING, "mid-message ping");
  put_str(&streams[3], WS_OP_TEXT, "frag");
  put_str(&streams[3], FIN | WS_OP_PONG, "");
  put_close(&streams[4], 1000, "zero-copy close");
  put_str(&streams[5], WS_OP_BINARY, "frag");
  put_close(&streams[5], 1001, "close inside a message");
  for (int i = 0; i < 6; i++) {
    for (size_t cut = 0; cut <= streams[i].len; cut++) {
      fake_conn_t c = {.canary1 = 0x1111, .canary2 = 0x2222};
      ws_reader_init(&c.r);
      uint8_t *copy = malloc(streams[i].len);
      assert_non_null(copy);
      memcpy(copy, streams[i].data, streams[i].len);
      int rc = ws_reader_feed(&c.r, copy, cut, 100, &kill, &c);
      if (rc == 0) rc = ws_reader_feed(&c.r, copy + cut, streams[i].len - cut, 100, &kill, &c);
      assert_int_equal(rc, 1);
      assert_int_equal(c.calls, 1);
      static const ws_reader_t zero;
      assert_memory_equal(&c.r, &zero, sizeof zero);
      assert_int_equal(c.canary1, 0x1111);
      assert_int_equal(c.canary2, 0x2222);
      free(copy);
    }
    buf_free(&streams[i]);
  }
}

static void test_memory_accounting(void **state) {
  (void)state;
  rec_t rec;
  rec_init(&rec, 1 << 20);
  ws_reader_t r;
  ws_reader_init(&r);
  buf_t s = BUF_INIT;
  /* A partial header is held, then released once its frame is delivered. */
  put_str(&s, FIN | WS_OP_TEXT, "x");
  assert_int_equal(feed_copy(&r, DATA(s), 1, 1 << 20, &rec), 0);
  assert_true(ws_reader_buffered(&r) > 0 && ws_reader_buffered(&r) <= WS_MAX_HEADER);
  assert_int_equal(feed_copy(&r, DATA(s) + 1, s.len - 1, 1 << 20, &rec), 0);
  assert_int_equal(rec.n_msg, 1);
  assert_int_equal(ws_reader_buffered(&r), 0);

  /* A peer announcing a large frame and sending little costs little. */
  size_t n = 600000;
  uint8_t *p = malloc(n);
  assert_non_null(p);
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 7);
  buf_reset(&s);
  put_frame(&s, FIN | WS_OP_BINARY, p, n);
  assert_int_equal(feed_copy(&r, DATA(s), s.len - n + 100, 1 << 20, &rec), 0);
  assert_true(ws_reader_buffered(&r) > 0 && ws_reader_buffered(&r) < 1024);
  size_t at = s.len - n + 100;
  while (at < s.len) {
    size_t k = s.len - at < 1000 ? s.len - at : 1000;
    assert_int_equal(feed_copy(&r, DATA(s) + at, k, 1 << 20, &rec), 0);
    at += k;
    /* Geometric growth capped at the frame's end: at most 2x received. */
    if (at < s.len) assert_true(ws_reader_buffered(&r) <= 2 * (at - 14) + 256);
  }
  assert_int_equal(rec.n_msg, 2);
  assert_int_equal(rec.last_len, n);
  assert_memory_equal(rec.last, p, n);
  assert_int_equal(ws_reader_buffered(&r), 0);

  /* A partial control frame between fragments sits after the message. */
  buf_reset(&s);
  put_frame(&s, WS_OP_BINARY, p, 1000);
  size_t mid = s.len + 6 + 2; /* inside the ping's payload */
  put_str(&s, FIN | WS_OP_PING, "ping!");
  put_frame(&s, FIN | WS_OP_CONT, p + 1000, 24);
  assert_int_equal(feed_copy(&r, DATA(s), mid, 1 << 20, &rec), 0);
  assert_true(ws_reader_buffered(&r) >= 1002);
  assert_int_equal(rec.n_ping, 0);
  assert_int_equal(feed_copy(&r, DATA(s) + mid, s.len - mid, 1 << 20, &rec), 0);
  assert_int_equal(rec.n_ping, 1);
  assert_int_equal(rec.n_msg, 3);
  assert_int_equal(rec.last_len, 1024);
  assert_memory_equal(rec.last, p, 1024);
  assert_int_equal(ws_reader_buffered(&r), 0);

  /* ws_reader_free drops a partial message; the reader can be reused. */
  buf_reset(&s);
  put_frame(&s, WS_OP_BINARY, p, 50);
  assert_int_equal(feed_copy(&r, STREAM(s), 1 << 20, &rec), 0);
  assert_true(ws_reader_buffered(&r) >= 50);
  ws_reader_free(&r);
  assert_int_equal(ws_reader_buffered(&r), 0);
  ws_reader_init(&r);
  buf_reset(&s);
  put_str(&s, FIN | WS_OP_TEXT, "again");
  assert_int_equal(feed_copy(&r, STREAM(s), 1 << 20, &rec), 0);
  assert_memory_equal(rec.last, "again", 5);
  ws_reader_free(&r);
  free(p);
  rec_free(&rec);
  buf_free(&s);
}

static void test_null_callbacks(void **state) {
  (void)state;
  static const ws_reader_events_t none = {NULL, NULL, NULL, NULL};
  buf_t s = BUF_INIT;
  put_str(&s, FIN | WS_OP_TEXT, "t");
  put_str(&s, WS_OP_BINARY, "b");
  put_str(&s, FIN | WS_OP_PING, "p");
  put_str(&s, FIN | WS_OP_CONT, "b");
  put_str(&s, FIN | WS_OP_PONG, "p");
  put_close(&s, 1000, "");
  buf_append(&s, "\xff", 1);
  for (size_t cut = 0; cut <= s.len; cut++) {
    ws_reader_t r;
    ws_reader_init(&r);
    uint8_t *copy = malloc(s.len);
    assert_non_null(copy);
    memcpy(copy, s.data, s.len);
    assert_int_equal(ws_reader_feed(&r, copy, cut, 100, &none, NULL), 0);
    assert_int_equal(ws_reader_feed(&r, copy + cut, s.len - cut, 100, &none, NULL), 0);
    assert_int_equal(ws_reader_buffered(&r), 0);
    ws_reader_free(&r);
    free(copy);
  }
  buf_free(&s);
}

static void test_out_of_memory(void **state) {
  (void)state;
#if HAVE_REALLOC_HOOK
  buf_t s = BUF_INIT;
  put_str(&s, WS_OP_TEXT, "fragment");
  rec_t rec;
  rec_init(&rec, 100);
  ws_reader_t r;
  ws_reader_init(&r);
  realloc_failures = 1;
  assert_int_equal(feed_copy(&r, STREAM(s), 100, &rec), -ENOMEM);
  realloc_failures = 0;
  assert_int_equal(ws_error_close_code(-ENOMEM), WS_CLOSE_INTERNAL);
  assert_int_equal(ws_reader_buffered(&r), 0);
  assert_int_equal(feed_copy(&r, STREAM(s), 100, &rec), -EINVAL);
  ws_reader_free(&r);
  /* Failing while stashing a partial header. */
  ws_reader_init(&r);
  realloc_failures = 1;
  assert_int_equal(feed_copy(&r, DATA(s), 4, 100, &rec), -ENOMEM);
  realloc_failures = 0;
  ws_reader_free(&r);
  /* Failing on growth, with a message already held. */
  ws_reader_init(&r);
  uint8_t p[300];
  memset(p, 'q', sizeof p);
  buf_reset(&s);
  put_frame(&s, WS_OP_BINARY, p, 10);
  put_frame(&s, FIN | WS_OP_CONT, p, 290);
  assert_int_equal(feed_copy(&r, DATA(s), s.len - 290, 1000, &rec), 0);
  realloc_failures = 1;
  assert_int_equal(feed_copy(&r, DATA(s) + s.len - 290, 290, 1000, &rec), -ENOMEM);
  realloc_failures = 0;
  assert_int_equal(ws_reader_buffered(&r), 0);
  assert_int_equal(rec.n_msg, 0);
  ws_reader_free(&r);
  rec_free(&rec);
  buf_free(&s);
#else
  skip();
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_size_and_idle),
      cmocka_unit_test(test_rfc_hello_zero_copy),
      cmocka_unit_test(test_partial_frame_is_copied),
      cmocka_unit_test(test_fragmented_with_ping),
      cmocka_unit_test(test_mixed_stream_all_splits),
      cmocka_unit_test(test_zero_length_frames),
      cmocka_unit_test(test_length_boundaries),
      cmocka_unit_test(test_max_message),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_utf8_fail_fast),
      cmocka_unit_test(test_close_then_ignore),
      cmocka_unit_test(test_callback_stop),
      cmocka_unit_test(test_callback_frees_reader),
      cmocka_unit_test(test_memory_accounting),
      cmocka_unit_test(test_null_callbacks),
      cmocka_unit_test(test_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
