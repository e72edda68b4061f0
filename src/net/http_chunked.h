/*
 * http_chunked.h — incremental decoder for the chunked transfer coding
 * (RFC 9112 7.1).
 *
 * Contract:
 * - Streaming: feed whatever bytes have arrived, split at any boundary; the
 *   decoder keeps a few words of state and never buffers or allocates.
 *   Decoded data goes to a sink callback as slices of the caller's input
 *   (valid only during the call; the sink copies what it keeps).
 * - Exact: once the last chunk and the trailer section are consumed,
 *   c->done is set and feeding stops right there, so the caller's remaining
 *   bytes are the next pipelined request.
 * - Bounded: chunk sizes up to 2^53 (at most 16 hex digits), chunk
 *   extensions and trailer lines up to 4 KiB each, trailer section up to
 *   16 KiB. Extensions and trailer fields are validated for control bytes
 *   and otherwise skipped.
 * - Errors are sticky: after a negative return every later call returns
 *   HTTP_CHUNKED_BAD; the connection is expected to answer 400 (or whatever
 *   the sink's error means) and close.
 * - One decoder per request body; no shared state, any thread.
 */
#ifndef STORM_NET_HTTP_CHUNKED_H
#define STORM_NET_HTTP_CHUNKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_CHUNKED_BAD (-1)                  /* malformed encoding: 400 */
#define HTTP_CHUNKED_MAX_SIZE (1ULL << 53)     /* per chunk */
#define HTTP_CHUNKED_MAX_DIGITS 16
#define HTTP_CHUNKED_MAX_LINE 4096             /* one extension or trailer line */
#define HTTP_CHUNKED_MAX_TRAILERS 16384        /* whole trailer section */

typedef struct {
  uint64_t n;           /* size being read, then data bytes left in the chunk */
  uint32_t line_len;    /* bytes of the current extension or trailer line */
  uint32_t trailer_len; /* bytes of the trailer section so far */
  uint8_t state;        /* private */
  uint8_t digits;       /* hex digits of the current size */
  bool done;            /* the whole body has been consumed */
} http_chunked_t;

void http_chunked_init(http_chunked_t *c);

/* Receives decoded body bytes (len > 0). Returns 0 to go on, or a negative
 * errno value (e.g. -EMSGSIZE for a body over the limit) that aborts the
 * feed and is returned by it unchanged. Avoid -1: it reads as
 * HTTP_CHUNKED_BAD. A positive return is reported as -ECANCELED. */
typedef int (*http_body_sink_fn)(void *arg, const char *data, size_t len);

/*
 * Consumes chunked bytes from src[0..len). sink may be NULL to discard the
 * data (draining a body we refuse). Returns the number of bytes consumed,
 * which is len unless the body ended inside src (then c->done is true and
 * the rest was not looked at); or HTTP_CHUNKED_BAD on malformed input
 * (non-hex or missing size, size over the limits, whitespace after the size
 * not followed by ';', missing CRLF after data, over-long extension or
 * trailer, control bytes, bare LF or CR); or the sink's error.
 * Feeding a finished decoder consumes nothing and returns 0.
 */
ssize_t http_chunked_feed(http_chunked_t *c, const char *src, size_t len, http_body_sink_fn sink,
                          void *arg);

#endif
