/*
 * fuzz_ws — libFuzzer driver for the WebSocket reader, frame parser and
 * UTF-8 validator.
 *
 * Input layout: bytes 0-1 and 2-3 are two big-endian cut points (taken
 * modulo the stream length + 1); the rest is the client byte stream. The
 * stream is fed to one reader in 1-3 pieces (each from its own heap copy,
 * poisoned after the call, as the server reuses its read buffer) and to a
 * second reader whole. Checked:
 * - callback invariants: text is valid UTF-8, messages <= max_message,
 *   control payloads <= 125, close codes valid on the wire or 1005, close
 *   reasons valid UTF-8, nothing after a close;
 * - memory: held bytes <= max_message + 125, and none after an error;
 * - split independence: both readers produce the same events and result;
 * - a callback that frees and zeroes the reader (as closing a connection
 *   does) and returns 1 gets rc 1 and a reader left all zeros;
 * - every error maps to close code 1002, 1007 or 1009.
 * Plus the header parser against the encoder, the streaming UTF-8
 * validator against the whole-buffer one, and the accept-key checks.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "net/ws_frame.h"
#include "net/ws_reader.h"

#define CHECK(x) \
  do {           \
    if (!(x)) __builtin_trap(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
  uint64_t max;
  uint64_t hash; /* FNV-1a over every event */
  size_t events;
  bool closed;
  size_t kill_at;      /* if nonzero: the event that frees the reader */
  ws_reader_t *reader;
} trace_t;

static void mix(trace_t *t, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) t->hash = (t->hash ^ b[i]) * 1099511628211u;
}

/* Returns what the callback returns. */
static int mix_event(trace_t *t, char kind, unsigned v, const uint8_t *p, size_t n) {
  CHECK(!t->closed);
  CHECK(p != NULL);
  t->events++;
  mix(t, &kind, 1);
  mix(t, &v, sizeof v);
  mix(t, &n, sizeof n);
  mix(t, p, n);
  if (t->events != t->kill_at) return 0;
  ws_reader_free(t->reader);
  memset(t->reader, 0, sizeof *t->reader);
  return 1;
}

static int on_message(void *arg, uint8_t op, uint8_t *p, size_t n) {
  trace_t *t = arg;
  CHECK(op == WS_OP_TEXT || op == WS_OP_BINARY);
  CHECK(n <= t->max);
  if (op == WS_OP_TEXT) CHECK(utf8_valid(p, n));
  return mix_event(t, 'M', op, p, n);
}

static int on_ping(void *arg, const uint8_t *p, size_t n) {
  CHECK(n <= WS_MAX_CONTROL_PAYLOAD);
  return mix_event(arg, 'I', 0, p, n);
}

static int on_pong(void *arg, const uint8_t *p, size_t n) {
  CHECK(n <= WS_MAX_CONTROL_PAYLOAD);
  return mix_event(arg, 'O', 0, p, n);
}

static int on_close(void *arg, unsigned code, const char *reason, size_t n) {
  trace_t *t = arg;
  CHECK(code == WS_CLOSE_NO_STATUS ? n == 0 : ws_close_code_valid_on_wire(code));
  CHECK(n <= WS_MAX_CONTROL_PAYLOAD - 2);
  CHECK(utf8_valid((const uint8_t *)reason, n));
  int rc = mix_event(t, 'C', code, (const uint8_t *)reason, n);
  t->closed = true;
  return rc;
}

static const ws_reader_events_t events = {on_message, on_ping, on_pong, on_close};

static int feed_piece(ws_reader_t *r, const uint8_t *p, size_t n, trace_t *t) {
  uint8_t *copy = malloc(n ? n : 1);
  if (!copy) abort();
  if (n) memcpy(copy, p, n);
  int rc = ws_reader_feed(r, copy, n, t->max, &events, t);
  memset(copy, 0xa5, n);
  free(copy);
  CHECK(ws_reader_buffered(r) <= t->max + WS_MAX_CONTROL_PAYLOAD);
  if (rc < 0) {
    CHECK(ws_reader_buffered(r) == 0);
    int code = ws_error_close_code(rc);
    CHECK(code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_BAD_DATA || code == WS_CLOSE_TOO_BIG);
    CHECK(ws_error_message(rc) != NULL);
  }
  CHECK(rc <= 0 || (rc == 1 && t->kill_at == t->events));
  return rc;
}

static int run(const uint8_t *s, size_t n, const size_t *cuts, size_t ncuts, trace_t *t) {
  ws_reader_t r;
  ws_reader_init(&r);
  t->reader = &r;
  size_t prev = 0;
  int rc = 0;
  for (size_t i = 0; i <= ncuts && rc == 0; i++) {
    size_t end = i < ncuts ? cuts[i] : n;
    rc = feed_piece(&r, s + prev, end - prev, t);
    prev = end;
  }
  if (rc < 0) CHECK(ws_reader_feed(&r, NULL, 0, t->max, &events, t) == -EINVAL);
  if (rc == 1) {
    static const ws_reader_t zero;
    CHECK(memcmp(&r, &zero, sizeof r) == 0);
  }
  ws_reader_free(&r);
  CHECK(ws_reader_buffered(&r) == 0);
  return rc;
}

static void check_header_codec(const uint8_t *s, size_t n) {
  ws_frame_header_t h;
  int rc = ws_frame_parse_header(s, n, &h);
  CHECK(rc <= WS_MAX_HEADER && (size_t)(rc > 0 ? rc : 0) <= n);
  if (rc <= 0) return;
  CHECK(rc == h.header_len && h.rsv == 0 && (h.payload_len >> 63) == 0);
  if (ws_opcode_is_control(h.opcode)) CHECK(h.fin && h.payload_len <= WS_MAX_CONTROL_PAYLOAD);
  /* The encoder writes the same frame unmasked, in the same (minimal)
   * length form, so the lengths agree up to the mask key. */
  uint8_t out[14];
  size_t hl = ws_frame_header_encode(out, h.fin, h.opcode, h.payload_len);
  CHECK(hl + (h.masked ? 4 : 0) == (size_t)rc);
  ws_frame_header_t h2;
  CHECK(ws_frame_parse_header(out, hl, &h2) == (int)hl);
  CHECK(h2.fin == h.fin && h2.opcode == h.opcode && h2.payload_len == h.payload_len && !h2.masked);
}

static void check_utf8(const uint8_t *s, size_t n, size_t cut) {
  bool whole = utf8_valid(s, n);
  utf8_stream_t u;
  utf8_stream_init(&u);
  bool a = utf8_stream_feed(&u, s, cut);
  bool b = a && utf8_stream_feed(&u, s + cut, n - cut);
  CHECK((b && utf8_stream_complete(&u)) == whole);
  if (!a) CHECK(!whole);
}

static void check_accept_key(const uint8_t *s, size_t n) {
  char out[29];
  size_t kl = n < 24 ? n : 24;
  int rc = ws_accept_key((const char *)s, kl, out);
  CHECK(rc == 0 || rc == -EINVAL);
  if (rc == 0) {
    CHECK(kl == 24 && s[22] == '=' && s[23] == '=');
    CHECK(strlen(out) == 28 && out[27] == '=');
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  const uint8_t *s = data + 4;
  size_t n = size - 4;
  size_t cuts[2] = {((size_t)data[0] << 8 | data[1]) % (n + 1), ((size_t)data[2] << 8 | data[3]) % (n + 1)};
  if (cuts[0] > cuts[1]) {
    size_t tmp = cuts[0];
    cuts[0] = cuts[1];
    cuts[1] = tmp;
  }

  trace_t split = {.max = 65536, .hash = 14695981039346656037u};
  trace_t whole = split;
  int rc_split = run(s, n, cuts, 2, &split);
  int rc_whole = run(s, n, NULL, 0, &whole);
  CHECK(rc_split == rc_whole);
  CHECK(split.events == whole.events && split.hash == whole.hash && split.closed == whole.closed);

  /* A small limit reaches the message-size paths with short inputs. */
  trace_t small = {.max = 100, .hash = 0};
  trace_t small_whole = small;
  int rc_small = run(s, n, cuts, 2, &small);
  CHECK(run(s, n, NULL, 0, &small_whole) == rc_small);
  CHECK(small.hash == small_whole.hash && small.events == small_whole.events);

  /* Stop at one of the first events by freeing the reader from inside. */
  if (whole.events > 0) {
    trace_t killer = {.max = 65536, .kill_at = 1 + data[3] % whole.events};
    CHECK(run(s, n, cuts, 2, &killer) == 1);
    CHECK(killer.events == killer.kill_at);
  }

  check_header_codec(s, n);
  check_accept_key(s, n);
  check_utf8(s, n, cuts[0]);
  return 0;
}
