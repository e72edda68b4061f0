/*
 * ws_frame.h — RFC 6455 frame codec: header parse/encode, masking, close
 * codes, the protocol error vocabulary, and Sec-WebSocket-Accept.
 *
 * Contract:
 * - Pure functions over caller-owned memory: nothing here allocates, keeps
 *   pointers, or touches global state, so everything is safe from any
 *   thread. (ws_accept_key uses net/sha1.h, which is pure too.)
 * - No extensions are ever negotiated, so any RSV bit is a protocol error.
 * - Errors: the parse functions return negative `enum ws_error` values.
 *   Those are disjoint from -errno values, so a caller can pass both
 *   through one int; ws_error_close_code() and ws_error_message() accept
 *   either (any -errno or unknown value maps to 1011 "internal error").
 * - Header parsing is incremental and fails fast: it returns 0 ("need more
 *   bytes") only when the bytes it has are a valid prefix, and checks run in
 *   a fixed order over byte positions, so the result for a given stream does
 *   not depend on how it was split. That lets a reader stash a partial
 *   header and retry.
 */
#ifndef STORM_NET_WS_FRAME_H
#define STORM_NET_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
  WS_OP_CONT = 0x0,
  WS_OP_TEXT = 0x1,
  WS_OP_BINARY = 0x2,
  WS_OP_CLOSE = 0x8,
  WS_OP_PING = 0x9,
  WS_OP_PONG = 0xA,
};

enum ws_close_code {
  WS_CLOSE_NORMAL = 1000,
  WS_CLOSE_GOING_AWAY = 1001,
  WS_CLOSE_PROTOCOL = 1002,
  WS_CLOSE_UNSUPPORTED = 1003,
  WS_CLOSE_NO_STATUS = 1005, /* never on the wire: "close frame had no code" */
  WS_CLOSE_ABNORMAL = 1006,  /* never on the wire: "no close frame at all" */
  WS_CLOSE_BAD_DATA = 1007,
  WS_CLOSE_POLICY = 1008,
  WS_CLOSE_TOO_BIG = 1009,
  WS_CLOSE_INTERNAL = 1011,
  WS_CLOSE_TRY_AGAIN = 1013,
};

/* Protocol violations (the close code each maps to is in brackets). */
enum ws_error {
  WS_ERR_RSV = -1001,                /* [1002] RSV1-3 set, no extension negotiated */
  WS_ERR_OPCODE = -1002,             /* [1002] reserved opcode 3-7 or B-F */
  WS_ERR_CONTROL_FRAGMENTED = -1003, /* [1002] control frame with FIN=0 */
  WS_ERR_CONTROL_TOO_BIG = -1004,    /* [1002] control payload > 125 */
  WS_ERR_UNMASKED = -1005,           /* [1002] client frame without a mask */
  WS_ERR_LEN_NOT_MINIMAL = -1006,    /* [1002] length not in its shortest form */
  WS_ERR_LEN_TOP_BIT = -1007,        /* [1002] 64-bit length with bit 63 set */
  WS_ERR_UNEXPECTED_CONT = -1008,    /* [1002] continuation, no message open */
  WS_ERR_EXPECTED_CONT = -1009,      /* [1002] TEXT/BINARY inside a fragmented message */
  WS_ERR_MESSAGE_TOO_BIG = -1010,    /* [1009] message over max_message */
  WS_ERR_BAD_UTF8 = -1011,           /* [1007] text message not valid UTF-8 */
  WS_ERR_CLOSE_REASON_UTF8 = -1012,  /* [1007] close reason not valid UTF-8 */
  WS_ERR_CLOSE_PAYLOAD = -1013,      /* [1002] close payload of exactly 1 byte */
  WS_ERR_CLOSE_CODE = -1014,         /* [1002] close code not allowed on the wire */
};

/* The close code to send for an error returned by this module or by
 * ws_reader_feed; 1011 for -errno values (e.g. -ENOMEM) and anything else. */
int ws_error_close_code(int err);
/* A static, human-readable description (for logs and close reasons; all of
 * them are short ASCII, well under the 123 bytes a close reason may hold). */
const char *ws_error_message(int err);

#define WS_MAX_HEADER 14          /* 2 + 8-byte length + 4-byte mask */
#define WS_MAX_SERVER_HEADER 10   /* server frames are not masked */
#define WS_MAX_CONTROL_PAYLOAD 125

static inline bool ws_opcode_is_control(uint8_t opcode) { return (opcode & 0x8) != 0; }

typedef struct {
  bool fin;
  uint8_t rsv;          /* RSV1..3 as bits 2..0 (always 0 on success) */
  uint8_t opcode;
  bool masked;
  uint8_t mask[4];      /* zero when !masked */
  uint64_t payload_len; /* < 2^63 */
  uint8_t header_len;   /* 2..14 */
} ws_frame_header_t;

/* Returns the header length (2..14) when a complete, valid header starts at
 * buf, 0 if more bytes are needed, or a negative enum ws_error. Masked and
 * unmasked frames are both accepted (it is a codec, usable in a client). */
int ws_frame_parse_header(const uint8_t *buf, size_t len, ws_frame_header_t *h);
/* The same for a server reading client frames: an unmasked frame is
 * WS_ERR_UNMASKED, detected from the second byte (before the length). */
int ws_frame_parse_client_header(const uint8_t *buf, size_t len, ws_frame_header_t *h);

/* Writes an unmasked (server) frame header; returns its length (2, 4 or 10).
 * payload_len must be < 2^63. RSV bits are always 0. */
size_t ws_frame_header_encode(uint8_t out[14], bool fin, uint8_t opcode, uint64_t payload_len);

/* XORs data with the masking key in place. `offset` is the position of
 * data[0] within the frame payload, so a payload can be unmasked in pieces.
 * Works 8 bytes at a time. */
void ws_mask_apply(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset);
/* dst[i] = src[i] ^ key; the copy and the unmasking in one pass (for readers
 * that must keep the bytes anyway). dst and src must not overlap. */
void ws_mask_copy(uint8_t *restrict dst, const uint8_t *restrict src, size_t len,
                  const uint8_t mask[4], size_t offset);

/* Whether a peer may send `code` in a close frame (RFC 6455 7.4.1/7.4.2
 * and the IANA registry): 1000-1003, 1007-1014 and 3000-4999. */
bool ws_close_code_valid_on_wire(unsigned code);

/* Sec-WebSocket-Accept = base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
 * key need not be NUL-terminated. Returns 0 and writes 28 chars + NUL to
 * out; -EINVAL if key is not the canonical base64 of exactly 16 bytes (24
 * chars ending in "=="), as RFC 6455 4.2.1 requires. */
int ws_accept_key(const char *key, size_t key_len, char out[29]);

#endif
