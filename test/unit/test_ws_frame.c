/* Tests for net/ws_frame: header parse (every error, every prefix),
 * encode round trips at the length boundaries, masking in pieces, close
 * code rules, error mapping, and Sec-WebSocket-Accept. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/ws_frame.h"

static int parse(const uint8_t *b, size_t n, ws_frame_header_t *h) {
  return ws_frame_parse_header(b, n, h);
}

/* Every strict prefix of a complete header must ask for more bytes; the
 * whole header (and the header followed by payload) parses to `hl`. */
static void check_prefixes(const uint8_t *b, size_t hl) {
  ws_frame_header_t h;
  for (size_t i = 0; i < hl; i++) assert_int_equal(parse(b, i, &h), 0);
  assert_int_equal(parse(b, hl, &h), (int)hl);
  assert_int_equal(parse(b, hl + 3, &h), (int)hl);
}

static void test_parse_small_masked(void **state) {
  (void)state;
  const uint8_t b[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  /* RFC 6455 5.7: masked "Hello". */
  ws_frame_header_t h;
  assert_int_equal(parse(b, sizeof b, &h), 6);
  assert_true(h.fin);
  assert_int_equal(h.rsv, 0);
  assert_int_equal(h.opcode, WS_OP_TEXT);
  assert_true(h.masked);
  assert_memory_equal(h.mask, "\x37\xfa\x21\x3d", 4);
  assert_int_equal(h.payload_len, 5);
  assert_int_equal(h.header_len, 6);
  assert_int_equal(ws_frame_parse_client_header(b, sizeof b, &h), 6);
  check_prefixes(b, 6);
  uint8_t p[5];
  memcpy(p, b + 6, 5);
  ws_mask_apply(p, 5, h.mask, 0);
  assert_memory_equal(p, "Hello", 5);
}

static void test_parse_unmasked_and_fragment(void **state) {
  (void)state;
  ws_frame_header_t h;
  const uint8_t a[] = {0x01, 0x03, 'H', 'e', 'l'}; /* RFC 5.7 fragment 1 */
  assert_int_equal(parse(a, sizeof a, &h), 2);
  assert_false(h.fin);
  assert_false(h.masked);
  assert_memory_equal(h.mask, "\0\0\0\0", 4);
  assert_int_equal(h.opcode, WS_OP_TEXT);
  assert_int_equal(h.payload_len, 3);
  /* The client variant refuses it, from the second byte alone. */
  assert_int_equal(ws_frame_parse_client_header(a, sizeof a, &h), WS_ERR_UNMASKED);
  assert_int_equal(ws_frame_parse_client_header(a, 2, &h), WS_ERR_UNMASKED);
  assert_int_equal(ws_frame_parse_client_header(a, 1, &h), 0);
  const uint8_t big[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}; /* unmasked 64-bit */
  assert_int_equal(ws_frame_parse_client_header(big, 2, &h), WS_ERR_UNMASKED);
}

static void test_parse_lengths(void **state) {
  (void)state;
  ws_frame_header_t h;
  /* 125: 7-bit form. */
  const uint8_t l125[] = {0x82, 0x80 | 125, 1, 2, 3, 4};
  assert_int_equal(parse(l125, sizeof l125, &h), 6);
  assert_int_equal(h.payload_len, 125);
  check_prefixes(l125, 6);
  /* 126 and 65535: 16-bit form. */
  const uint8_t l126[] = {0x82, 0x80 | 126, 0x00, 0x7e, 1, 2, 3, 4};
  assert_int_equal(parse(l126, sizeof l126, &h), 8);
  assert_int_equal(h.payload_len, 126);
  check_prefixes(l126, 8);
  const uint8_t l65535[] = {0x02, 126, 0xff, 0xff};
  assert_int_equal(parse(l65535, sizeof l65535, &h), 4);
  assert_int_equal(h.payload_len, 65535);
  assert_false(h.fin);
  check_prefixes(l65535, 4);
  /* 65536 and the largest legal length: 64-bit form. */
  const uint8_t l65536[] = {0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9};
  assert_int_equal(parse(l65536, sizeof l65536, &h), 14);
  assert_int_equal(h.payload_len, 65536);
  assert_int_equal(h.header_len, 14);
  check_prefixes(l65536, 14);
  const uint8_t lmax[] = {0x82, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  assert_int_equal(parse(lmax, sizeof lmax, &h), 10);
  assert_int_equal(h.payload_len, UINT64_C(0x7fffffffffffffff));
}

static void test_parse_errors(void **state) {
  (void)state;
  ws_frame_header_t h;
  /* Each RSV bit alone, detected from the first byte. */
  for (int bit = 4; bit <= 6; bit++) {
    uint8_t b[] = {(uint8_t)(0x81 | 1 << bit), 0x80, 1, 2, 3, 4};
    assert_int_equal(parse(b, 1, &h), WS_ERR_RSV);
    assert_int_equal(parse(b, sizeof b, &h), WS_ERR_RSV);
  }
  /* Every reserved opcode. */
  for (uint8_t op = 0; op < 16; op++) {
    uint8_t b[] = {(uint8_t)(0x80 | op), 0x80, 1, 2, 3, 4};
    bool reserved = (op >= 3 && op <= 7) || op >= 0xB;
    assert_int_equal(parse(b, sizeof b, &h), reserved ? WS_ERR_OPCODE : 6);
    if (reserved) assert_int_equal(parse(b, 1, &h), WS_ERR_OPCODE);
  }
  /* Control frames must not be fragmented... */
  for (uint8_t op = WS_OP_CLOSE; op <= WS_OP_PONG; op++) {
    uint8_t b[] = {op, 0x80, 1, 2, 3, 4};
    assert_int_equal(parse(b, 1, &h), WS_ERR_CONTROL_FRAGMENTED);
    assert_int_equal(parse(b, sizeof b, &h), WS_ERR_CONTROL_FRAGMENTED);
    /* ...nor longer than 125, in any length form. */
    uint8_t c[] = {(uint8_t)(0x80 | op), 0x80 | 126, 0, 126, 1, 2, 3, 4};
    assert_int_equal(parse(c, 2, &h), WS_ERR_CONTROL_TOO_BIG);
    c[1] = 0x80 | 127;
    assert_int_equal(parse(c, 2, &h), WS_ERR_CONTROL_TOO_BIG);
    c[1] = 0x80 | 125;
    assert_int_equal(parse(c, 6, &h), 6);
  }
  /* Non-minimal lengths. */
  const uint8_t nm16[] = {0x82, 0x80 | 126, 0x00, 0x7d, 1, 2, 3, 4};
  assert_int_equal(parse(nm16, 3, &h), 0);
  assert_int_equal(parse(nm16, 4, &h), WS_ERR_LEN_NOT_MINIMAL); /* before the key */
  const uint8_t nm16z[] = {0x82, 126, 0, 0};
  assert_int_equal(parse(nm16z, 4, &h), WS_ERR_LEN_NOT_MINIMAL);
  const uint8_t nm64[] = {0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4};
  assert_int_equal(parse(nm64, 9, &h), 0);
  assert_int_equal(parse(nm64, 10, &h), WS_ERR_LEN_NOT_MINIMAL);
  const uint8_t nm64s[] = {0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5};
  assert_int_equal(parse(nm64s, sizeof nm64s, &h), WS_ERR_LEN_NOT_MINIMAL);
  /* Bit 63 set. */
  const uint8_t top[] = {0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  assert_int_equal(parse(top, 10, &h), WS_ERR_LEN_TOP_BIT);
  assert_int_equal(parse(top, sizeof top, &h), WS_ERR_LEN_TOP_BIT);
  const uint8_t topall[] = {0x82, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  assert_int_equal(parse(topall, sizeof topall, &h), WS_ERR_LEN_TOP_BIT);
  /* Nothing at all. */
  assert_int_equal(parse(NULL, 0, &h), 0);
}

static void test_encode_round_trip(void **state) {
  (void)state;
  static const struct {
    uint64_t len;
    size_t hl;
  } cases[] = {{0, 2},       {1, 2},          {125, 2},           {126, 4},
               {127, 4},     {65535, 4},      {65536, 10},        {UINT64_C(1) << 32, 10},
               {UINT64_C(0x7fffffffffffffff), 10}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t out[14];
    memset(out, 0xee, sizeof out);
    size_t hl = ws_frame_header_encode(out, true, WS_OP_BINARY, cases[i].len);
    assert_int_equal(hl, cases[i].hl);
    assert_int_equal(out[hl], 0xee); /* nothing written past the header */
    ws_frame_header_t h;
    assert_int_equal(ws_frame_parse_header(out, hl, &h), (int)hl);
    assert_true(h.fin);
    assert_false(h.masked);
    assert_int_equal(h.opcode, WS_OP_BINARY);
    assert_int_equal(h.payload_len, cases[i].len);
  }
  uint8_t out[14];
  assert_int_equal(ws_frame_header_encode(out, false, WS_OP_TEXT, 3), 2);
  assert_int_equal(out[0], 0x01);
  assert_int_equal(out[1], 0x03);
  assert_int_equal(ws_frame_header_encode(out, true, WS_OP_CLOSE, 2), 2);
  assert_int_equal(out[0], 0x88);
  assert_int_equal(ws_frame_header_encode(out, true, WS_OP_BINARY, 256), 4);
  assert_memory_equal(out, "\x82\x7e\x01\x00", 4); /* RFC 6455 5.7 */
  assert_int_equal(ws_frame_header_encode(out, true, WS_OP_BINARY, 65536), 10);
  assert_memory_equal(out, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
}

static void test_mask(void **state) {
  (void)state;
  const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  enum { N = 70 };
  uint8_t orig[N + 8], buf[N + 8], copy[N + 8], want[N + 8];
  for (size_t i = 0; i < sizeof orig; i++) orig[i] = (uint8_t)(i * 7 + 3);
  /* Every length, offset and (via start) alignment against the naive XOR. */
  for (size_t start = 0; start < 8; start++) {
    for (size_t len = 0; len <= N; len++) {
      for (size_t off = 0; off < 9; off++) {
        memcpy(buf, orig, sizeof buf);
        memcpy(want, orig, sizeof want);
        for (size_t i = 0; i < len; i++) want[start + i] ^= key[(off + i) & 3];
        ws_mask_apply(buf + start, len, key, off);
        assert_memory_equal(buf, want, sizeof buf); /* including untouched edges */
        memcpy(copy, orig, sizeof copy);
        ws_mask_copy(copy + start, orig + start, len, key, off);
        assert_memory_equal(copy, want, sizeof copy);
      }
    }
  }
  /* Unmasking in pieces with running offsets equals unmasking at once. */
  for (size_t cut1 = 0; cut1 <= N; cut1 += 3) {
    for (size_t cut2 = cut1; cut2 <= N; cut2 += 5) {
      memcpy(buf, orig, N);
      memcpy(want, orig, N);
      ws_mask_apply(want, N, key, 0);
      ws_mask_apply(buf, cut1, key, 0);
      ws_mask_apply(buf + cut1, cut2 - cut1, key, cut1);
      ws_mask_apply(buf + cut2, N - cut2, key, cut2);
      assert_memory_equal(buf, want, N);
    }
  }
  /* Masking twice is the identity. */
  memcpy(buf, orig, N);
  ws_mask_apply(buf, N, key, 1);
  ws_mask_apply(buf, N, key, 1);
  assert_memory_equal(buf, orig, N);
}

static void test_close_codes(void **state) {
  (void)state;
  for (unsigned c = 0; c < 70000; c++) {
    bool expect = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
    assert_int_equal(ws_close_code_valid_on_wire(c), expect);
  }
  assert_true(ws_close_code_valid_on_wire(1000));
  assert_true(ws_close_code_valid_on_wire(1011));
  assert_true(ws_close_code_valid_on_wire(1014));
  assert_true(ws_close_code_valid_on_wire(3000));
  assert_true(ws_close_code_valid_on_wire(4999));
  assert_false(ws_close_code_valid_on_wire(999));
  assert_false(ws_close_code_valid_on_wire(1004));
  assert_false(ws_close_code_valid_on_wire(1005));
  assert_false(ws_close_code_valid_on_wire(1006));
  assert_false(ws_close_code_valid_on_wire(1015));
  assert_false(ws_close_code_valid_on_wire(1016));
  assert_false(ws_close_code_valid_on_wire(2999));
  assert_false(ws_close_code_valid_on_wire(5000));
  assert_false(ws_close_code_valid_on_wire(65535));
}

static void test_error_mapping(void **state) {
  (void)state;
  static const struct {
    int err, code;
  } map[] = {
      {WS_ERR_RSV, 1002},
      {WS_ERR_OPCODE, 1002},
      {WS_ERR_CONTROL_FRAGMENTED, 1002},
      {WS_ERR_CONTROL_TOO_BIG, 1002},
      {WS_ERR_UNMASKED, 1002},
      {WS_ERR_LEN_NOT_MINIMAL, 1002},
      {WS_ERR_LEN_TOP_BIT, 1002},
      {WS_ERR_UNEXPECTED_CONT, 1002},
      {WS_ERR_EXPECTED_CONT, 1002},
      {WS_ERR_MESSAGE_TOO_BIG, 1009},
      {WS_ERR_BAD_UTF8, 1007},
      {WS_ERR_CLOSE_REASON_UTF8, 1007},
      {WS_ERR_CLOSE_PAYLOAD, 1002},
      {WS_ERR_CLOSE_CODE, 1002},
  };
  size_t n = sizeof map / sizeof map[0];
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(ws_error_close_code(map[i].err), map[i].code);
    const char *m = ws_error_message(map[i].err);
    assert_non_null(m);
    assert_true(strlen(m) > 0 && strlen(m) <= 123);
    for (size_t j = 0; j < i; j++) assert_string_not_equal(m, ws_error_message(map[j].err));
  }
  /* Outside the enum: internal error. */
  assert_int_equal(ws_error_close_code(-ENOMEM), 1011);
  assert_int_equal(ws_error_close_code(-EINVAL), 1011);
  assert_int_equal(ws_error_close_code(WS_ERR_RSV + 1), 1011);
  assert_int_equal(ws_error_close_code(WS_ERR_CLOSE_CODE - 1), 1011);
  assert_int_equal(ws_error_close_code(0), 1011);
  assert_string_equal(ws_error_message(-ENOMEM), "out of memory");
  assert_non_null(ws_error_message(-EINVAL));
  assert_string_equal(ws_error_message(WS_ERR_CLOSE_CODE - 1), "internal error");
  assert_string_equal(ws_error_message(12345), "internal error");
}

static void test_accept_key(void **state) {
  (void)state;
  char out[29];
  const char *k = "dGhlIHNhbXBsZSBub25jZQ==";
  memset(out, 'x', sizeof out);
  assert_int_equal(ws_accept_key(k, strlen(k), out), 0);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  /* Not NUL-terminated input: only key_len bytes are read. */
  char nonul[32];
  memcpy(nonul, k, 24);
  memcpy(nonul + 24, "JUNK", 4);
  assert_int_equal(ws_accept_key(nonul, 24, out), 0);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  /* The example of RFC 6455 section 1.2, and an all-zero nonce. */
  assert_int_equal(ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out), 0);
  assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  assert_int_equal(ws_accept_key("AAAAAAAAAAAAAAAAAAAAAA==", 24, out), 0);
  assert_string_equal(out, "ICX+Yqv66kxgM0FcWaLWlFLwTAI=");

  static const char *bad[] = {
      "",
      "dGhlIHNhbXBsZSBub25jZQ=",    /* 23 chars */
      "dGhlIHNhbXBsZSBub25jZQ===",  /* 25 chars */
      "dGhlIHNhbXBsZSBub25jZQAA",   /* no padding: 18 bytes */
      "dGhlIHNhbXBsZSBub25jZ===",   /* 24 chars, 3 '=' */
      "dGhlIHNhbXBsZSBub25jZR==",   /* non-canonical: spare bits set */
      "dGhlIHNhbXBsZSBub25j*Q==",   /* outside the alphabet */
      "dGhlIHNhbXBsZSBub25j-Q==",   /* URL-safe alphabet */
      "dGhlIHNh bXBsZSBub25jQ==",   /* space */
      "dGhl=HNhbXBsZSBub25jZQ==",   /* '=' inside */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(ws_accept_key(bad[i], strlen(bad[i]), out), -EINVAL);
  assert_int_equal(ws_accept_key(NULL, 24, out), -EINVAL);
  char withnul[24];
  memcpy(withnul, k, 24);
  withnul[5] = '\0';
  assert_int_equal(ws_accept_key(withnul, 24, out), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_small_masked),
      cmocka_unit_test(test_parse_unmasked_and_fragment),
      cmocka_unit_test(test_parse_lengths),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_encode_round_trip),
      cmocka_unit_test(test_mask),
      cmocka_unit_test(test_close_codes),
      cmocka_unit_test(test_error_mapping),
      cmocka_unit_test(test_accept_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
