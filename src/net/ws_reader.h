/*
 * ws_reader.h — incremental RFC 6455 message reader for a server: bytes in,
 * messages and control frames out. No sockets; the caller feeds whatever it
 * read.
 *
 * Ownership and lifetimes:
 * - ws_reader_t is embedded by value in the connection. It owns at most one
 *   heap block, which exists only while something is incomplete: a partial
 *   frame header, a partial frame, or a fragmented message. The block is
 *   freed as soon as that is delivered, so an idle reader holds no heap
 *   memory. The block never exceeds max_message + 125 bytes (a message at
 *   the limit plus a partial control frame arriving between its fragments).
 * - `data` passed to ws_reader_feed belongs to the caller (typically the
 *   loop's shared read buffer) and is only used during the call; it is
 *   unmasked in place, so its contents are modified.
 * - Pointers handed to callbacks are valid only during the callback. They
 *   point into `data` when a whole unfragmented frame was in it (zero-copy)
 *   and into the reader's block otherwise. Message data is writable (a
 *   callback may e.g. parse JSON in place); the close reason is not
 *   NUL-terminated.
 * - Not thread-safe: one reader is used by one loop thread.
 *
 * Errors: ws_reader_feed returns a negative `enum ws_error` on a protocol
 * violation (reply with ws_error_close_code(err)) or -ENOMEM. That ends the
 * reader: any partial message is freed at once and later feeds return
 * -EINVAL. Once a close frame has been delivered, later bytes are ignored
 * and feeds return 0.
 *
 * Callbacks: a nonzero return stops parsing and is returned as is (it may
 * be negative; it is never confused with a reader error because the reader
 * does not look at it). The rest of `data` is dropped, so the caller must
 * not feed again; it closes the connection and calls ws_reader_free (a
 * fragmented message may still be held until then). A callback MAY free
 * the reader — ws_reader_free, or zeroing the struct that embeds it, as
 * closing a connection does — provided it then returns nonzero: after such
 * a return the reader only ever writes zeros (its initial state) into r.
 * Freeing the reader from on_message invalidates `data` if it was buffered.
 */
#ifndef STORM_NET_WS_READER_H
#define STORM_NET_WS_READER_H

#include <stddef.h>
#include <stdint.h>

#include "core/utf8.h"
#include "net/ws_frame.h"

/* Private fields: read them only through the functions below. Kept to 48
 * bytes because ~18,000 of these live in each process (the partial header
 * goes to the heap block instead of a 14-byte array here). */
struct ws_reader {
  uint8_t *buf;       /* [message so far][scratch: partial header or control payload] */
  size_t cap;         /* bytes allocated at buf */
  size_t msg_len;     /* bytes of the data message in progress held at buf */
  uint64_t remaining; /* payload bytes of the current frame still to arrive */
  uint8_t mask[4];    /* current frame's key, rotated so mask[0] applies to the next byte */
  uint8_t frame_op;   /* current frame: opcode | 0x80 if FIN */
  uint8_t msg_op;     /* WS_OP_TEXT/BINARY while a message is being buffered, else 0 */
  uint8_t scratch_len;
  uint8_t phase;
  utf8_stream_t utf8; /* validation state of a buffered text message */
};
typedef struct ws_reader ws_reader_t;

typedef struct {
  /* data is unmasked and, for WS_OP_TEXT, valid UTF-8. opcode is
   * WS_OP_TEXT or WS_OP_BINARY. Return 0 to go on, nonzero to stop (that
   * value is then returned by ws_reader_feed). NULL callbacks are skipped. */
  int (*on_message)(void *arg, uint8_t opcode, uint8_t *data, size_t len);
  int (*on_ping)(void *arg, const uint8_t *data, size_t len);
  int (*on_pong)(void *arg, const uint8_t *data, size_t len);
  /* code is 1005 (and reason_len 0) when the frame had no payload; else a
   * code valid on the wire and a valid UTF-8 reason. */
  int (*on_close)(void *arg, unsigned code, const char *reason, size_t reason_len);
} ws_reader_events_t;

void ws_reader_init(ws_reader_t *r);

/* Parses data[0..len) (len may be 0; data may then be NULL). Returns 0 when
 * all bytes were consumed (or ignored after a close), a negative reader
 * error (see above), or the nonzero value a callback returned. max_message bounds a message's total size
 * (sum of its fragments); a frame that would exceed it is rejected from its
 * header, before any of its payload is buffered. Pass the same max_message
 * on every call. */
int ws_reader_feed(ws_reader_t *r, uint8_t *data, size_t len, uint64_t max_message,
                   const ws_reader_events_t *ev, void *arg);

/* Frees any partial message and re-initialises r. */
void ws_reader_free(ws_reader_t *r);

/* Heap bytes held between calls (the allocated block), for memory
 * accounting; 0 whenever nothing is incomplete. */
size_t ws_reader_buffered(const ws_reader_t *r);

#endif
