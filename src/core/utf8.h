/*
 * utf8.h — strict UTF-8 validation (RFC 3629), whole-buffer and streaming.
 *
 * Contract:
 * - "Valid" means RFC 3629 well-formed: no overlong forms (C0 80, E0 80 80,
 *   F0 80 80 80, ...), no UTF-16 surrogates (U+D800..U+DFFF), nothing above
 *   U+10FFFF, no stray continuation bytes, no truncated sequence at the end.
 *   Noncharacters (U+FFFE, ...) and NUL are valid: RFC 6455 text frames and
 *   JSON accept them, and rejecting them would break legitimate clients.
 * - The streaming validator exists for text split over WebSocket fragments:
 *   a code point may straddle two fragments. It fails fast — feed() returns
 *   false at the first byte that cannot continue any valid text — so a
 *   server can close with 1007 before buffering the rest of the message.
 *   Once a stream has failed it stays failed.
 * - No allocation, no global state; safe from any thread. Inputs are only
 *   read; `s` may be NULL when `len` is 0.
 * - Speed: runs of ASCII are skipped 16/8 bytes at a time; only non-ASCII
 *   bytes go through the byte-at-a-time DFA.
 */
#ifndef STORM_CORE_UTF8_H
#define STORM_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The DFA state (private). One byte so that it can sit in ws_reader_t,
 * which is embedded in every connection. */
typedef struct {
  uint8_t state;
} utf8_stream_t;

bool utf8_valid(const uint8_t *s, size_t len);

void utf8_stream_init(utf8_stream_t *u);
/* Returns false as soon as the bytes fed so far (over all calls) cannot be
 * a prefix of valid UTF-8; every later call then returns false too. */
bool utf8_stream_feed(utf8_stream_t *u, const uint8_t *s, size_t len);
/* True when the bytes fed so far are complete valid UTF-8 (not failed and
 * not inside a multi-byte sequence). */
bool utf8_stream_complete(const utf8_stream_t *u);

#endif
