#include "net/ws_frame.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "net/sha1.h"

/* ---- errors ---------------------------------------------------------- */

static const struct {
  uint16_t close_code;
  const char *message;
} error_table[] = {
    /* indexed by WS_ERR_RSV - err */
    {WS_CLOSE_PROTOCOL, "reserved bits set without a negotiated extension"},
    {WS_CLOSE_PROTOCOL, "reserved opcode"},
    {WS_CLOSE_PROTOCOL, "fragmented control frame"},
    {WS_CLOSE_PROTOCOL, "control frame payload over 125 bytes"},
    {WS_CLOSE_PROTOCOL, "client frame not masked"},
    {WS_CLOSE_PROTOCOL, "payload length not minimally encoded"},
    {WS_CLOSE_PROTOCOL, "payload length has the most significant bit set"},
    {WS_CLOSE_PROTOCOL, "continuation frame without a message in progress"},
    {WS_CLOSE_PROTOCOL, "new data frame inside a fragmented message"},
    {WS_CLOSE_TOO_BIG, "message too big"},
    {WS_CLOSE_BAD_DATA, "text message is not valid UTF-8"},
    {WS_CLOSE_BAD_DATA, "close reason is not valid UTF-8"},
    {WS_CLOSE_PROTOCOL, "close payload of 1 byte"},
    {WS_CLOSE_PROTOCOL, "invalid close code"},
};

#define N_ERRORS (sizeof error_table / sizeof error_table[0])
_Static_assert(N_ERRORS == (size_t)(WS_ERR_RSV - WS_ERR_CLOSE_CODE) + 1, "error_table matches enum ws_error");

static int error_index(int err) {
  if (err > WS_ERR_RSV || err < WS_ERR_CLOSE_CODE) return -1;
  return WS_ERR_RSV - err;
}

int ws_error_close_code(int err) {
  int i = error_index(err);
  return i < 0 ? WS_CLOSE_INTERNAL : error_table[i].close_code;
}

const char *ws_error_message(int err) {
  int i = error_index(err);
  if (i >= 0) return error_table[i].message;
  if (err == -ENOMEM) return "out of memory";
  if (err == -EINVAL) return "invalid argument or reader used after it stopped";
  return "internal error";
}

/* ---- header ---------------------------------------------------------- */

static bool opcode_defined(uint8_t op) {
  return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

/* Checks run in order of the byte positions they need, and "need more"
 * is returned only when the next check lacks its bytes; so a prefix that
 * yields an error yields the same error however much more is appended. */
static int parse_header(const uint8_t *b, size_t len, ws_frame_header_t *h, bool require_mask) {
  if (len < 1) return 0;
  uint8_t b0 = b[0];
  uint8_t op = b0 & 0x0F;
  bool fin = (b0 & 0x80) != 0;
  if (b0 & 0x70) return WS_ERR_RSV;
  if (!opcode_defined(op)) return WS_ERR_OPCODE;
  if (ws_opcode_is_control(op) && !fin) return WS_ERR_CONTROL_FRAGMENTED;
  if (len < 2) return 0;

  uint8_t b1 = b[1];
  bool masked = (b1 & 0x80) != 0;
  uint8_t len7 = b1 & 0x7F;
  if (ws_opcode_is_control(op) && len7 > WS_MAX_CONTROL_PAYLOAD) return WS_ERR_CONTROL_TOO_BIG;
  if (require_mask && !masked) return WS_ERR_UNMASKED;

  size_t pos = 2;
  uint64_t plen = len7;
  if (len7 == 126) {
    if (len < 4) return 0;
    plen = (uint64_t)b[2] << 8 | b[3];
    if (plen < 126) return WS_ERR_LEN_NOT_MINIMAL;
    pos = 4;
  } else if (len7 == 127) {
    if (len < 10) return 0;
    plen = 0;
    for (int i = 0; i < 8; i++) plen = plen << 8 | b[2 + i];
    if (plen >> 63) return WS_ERR_LEN_TOP_BIT;
    if (plen <= 0xFFFF) return WS_ERR_LEN_NOT_MINIMAL;
    pos = 10;
  }
  if (masked) {
    if (len < pos + 4) return 0;
    memcpy(h->mask, b + pos, 4);
    pos += 4;
  } else {
    memset(h->mask, 0, 4);
  }
  h->fin = fin;
  h->rsv = 0;
  h->opcode = op;
  h->masked = masked;
  h->payload_len = plen;
  h->header_len = (uint8_t)pos;
  return (int)pos;
}

int ws_frame_parse_header(const uint8_t *buf, size_t len, ws_frame_header_t *h) {
  return parse_header(buf, len, h, false);
}

int ws_frame_parse_client_header(const uint8_t *buf, size_t len, ws_frame_header_t *h) {
  return parse_header(buf, len, h, true);
}

size_t ws_frame_header_encode(uint8_t out[14], bool fin, uint8_t opcode, uint64_t payload_len) {
  assert(payload_len >> 63 == 0);
  out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
  if (payload_len < 126) {
    out[1] = (uint8_t)payload_len;
    return 2;
  }
  if (payload_len <= 0xFFFF) {
    out[1] = 126;
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
  return 10;
}

/* ---- masking --------------------------------------------------------- */

/* The key repeated to 8 bytes, rotated so that byte 0 applies at `offset`.
 * Built byte-wise in memory order, so it is right on any endianness. */
static uint64_t mask_word(const uint8_t mask[4], size_t offset, uint8_t m8[8]) {
  for (int i = 0; i < 8; i++) m8[i] = mask[(offset + (size_t)i) & 3];
  uint64_t w;
  memcpy(&w, m8, 8);
  return w;
}

void ws_mask_apply(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset) {
  uint8_t m8[8];
  uint64_t w = mask_word(mask, offset, m8);
  size_t i = 0;
  for (; len - i >= 8; i += 8) {
    uint64_t x;
    memcpy(&x, data + i, 8);
    x ^= w;
    memcpy(data + i, &x, 8);
  }
  /* i is a multiple of 8, so the key phase at i is the phase at 0. */
  for (; i < len; i++) data[i] ^= m8[i & 7];
}

void ws_mask_copy(uint8_t *restrict dst, const uint8_t *restrict src, size_t len,
                  const uint8_t mask[4], size_t offset) {
  uint8_t m8[8];
  uint64_t w = mask_word(mask, offset, m8);
  size_t i = 0;
  for (; len - i >= 8; i += 8) {
    uint64_t x;
    memcpy(&x, src + i, 8);
    x ^= w;
    memcpy(dst + i, &x, 8);
  }
  for (; i < len; i++) dst[i] = src[i] ^ m8[i & 7];
}

/* ---- close codes ----------------------------------------------------- */

bool ws_close_code_valid_on_wire(unsigned code) {
  /* 1004 is reserved, 1005/1006/1015 are for local reporting only, and
   * 1016-2999 are unassigned in the IANA registry. */
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

/* ---- handshake ------------------------------------------------------- */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int ws_accept_key(const char *key, size_t key_len, char out[29]) {
  enum { KEY_LEN = 24, GUID_LEN = sizeof ws_guid - 1 };
  if (!key || key_len != KEY_LEN || key[22] != '=' || key[23] != '=') return -EINVAL;
  /* Decoding checks the alphabet and that the 4 spare bits of the last
   * symbol are zero, i.e. the key is the canonical encoding of 16 bytes. */
  unsigned char raw[16];
  size_t raw_len = 0;
  if (sodium_base642bin(raw, sizeof raw, key, key_len, NULL, &raw_len, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      raw_len != sizeof raw)
    return -EINVAL;

  char joined[KEY_LEN + GUID_LEN];
  memcpy(joined, key, KEY_LEN);
  memcpy(joined + KEY_LEN, ws_guid, GUID_LEN);
  uint8_t md[SHA1_DIGEST_LEN];
  sha1(joined, sizeof joined, md);
  sodium_bin2base64(out, 29, md, sizeof md, sodium_base64_VARIANT_ORIGINAL);
  return 0;
}
