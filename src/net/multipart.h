/*
 * multipart.h — incremental multipart/form-data parser (RFC 7578, RFC 2046
 * section 5.1).
 *
 * Contract:
 * - Streaming: feed the body as it arrives, split anywhere; part data is
 *   handed to on_part_data as slices of the caller's input (or of the
 *   delimiter constant, for bytes that looked like the start of a
 *   delimiter and were not), valid only during the call. The parser never
 *   copies part data and never allocates: its state is the multipart_t
 *   itself (about 9 KiB, most of it the part-header buffer).
 * - Bounded: the boundary is 1..70 characters of RFC 2046's bchars; the
 *   header block of one part is at most MULTIPART_MAX_HEADER bytes; at most
 *   MULTIPART_MAX_PARTS parts. Preamble and epilogue are skipped without
 *   being stored (the caller's body limit bounds them).
 * - Part headers: Content-Disposition (form-data, name, filename) and
 *   Content-Type are extracted; other headers are checked for syntax and
 *   ignored. Parameter values may be tokens or quoted strings (backslash
 *   escapes honoured). `filename*` (RFC 5987) is not decoded: browsers
 *   send `filename`. Values are raw bytes: sanitizing a filename is the
 *   caller's job.
 * - Errors are sticky negative codes (MULTIPART_E_*) or whatever negative
 *   value a callback returned, unchanged; after one every later feed
 *   returns it again. `done` is set once the close delimiter has been
 *   seen; a body that ends before that is truncated (the caller's 400).
 * - One parser per body; no shared state, any thread.
 */
#ifndef STORM_NET_MULTIPART_H
#define STORM_NET_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/str.h"

#define MULTIPART_BOUNDARY_MAX 70
#define MULTIPART_MAX_HEADER 8192 /* one part's header block, CRLFs included */
#define MULTIPART_MAX_PARTS 64

enum {
  MULTIPART_E_BOUNDARY = -1001,  /* Content-Type is not multipart/form-data with a valid boundary */
  MULTIPART_E_SYNTAX = -1002,    /* malformed delimiter line or header line */
  MULTIPART_E_HEADER_SIZE = -1003, /* a part's header block over MULTIPART_MAX_HEADER */
  MULTIPART_E_PARTS = -1004,     /* more than MULTIPART_MAX_PARTS parts */
};

/* What on_part_begin sees; the slices point into the parser and live
 * until the callback returns. Absent values are STR_NULL (p == NULL). */
typedef struct {
  str_t name;          /* form field name */
  str_t filename;      /* raw filename parameter (unsanitized) */
  str_t content_type;  /* the part's Content-Type, as sent (never trusted) */
} multipart_part_t;

/* Each returns 0 to go on or a negative value, which stops the feed and
 * is returned by it (and by every later feed). */
typedef struct {
  int (*on_part_begin)(void *arg, const multipart_part_t *part);
  int (*on_part_data)(void *arg, const char *data, size_t len); /* len > 0 */
  int (*on_part_end)(void *arg);
} multipart_callbacks_t;

typedef struct {
  char delim[4 + MULTIPART_BOUNDARY_MAX]; /* "\r\n--" boundary */
  uint8_t dlen;
  uint8_t match;    /* bytes of delim matched so far */
  uint8_t state;    /* private */
  bool done;        /* close delimiter seen: the rest is epilogue */
  int err;          /* sticky error, 0 if none */
  uint32_t parts;
  uint32_t hlen;    /* bytes in hdr */
  char hdr[MULTIPART_MAX_HEADER];
} multipart_t;

/* Extracts the boundary from a Content-Type header value
 * ("multipart/form-data; boundary=xyz", type case-insensitive, boundary
 * quoted or not) into *out (a slice of ct). Returns 0, or
 * MULTIPART_E_BOUNDARY. */
int multipart_boundary(str_t content_type, str_t *out);

/* Initialises m for the body of a request with this Content-Type value.
 * Returns 0 or MULTIPART_E_BOUNDARY. */
int multipart_init(multipart_t *m, str_t content_type);

/* Consumes data[0..len). Returns len (everything is consumed: once done,
 * the epilogue is skipped), or a negative error (see above). */
ssize_t multipart_feed(multipart_t *m, const char *data, size_t len,
                       const multipart_callbacks_t *cb, void *arg);

/* A static description of a MULTIPART_E_* code, for error messages. */
const char *multipart_strerror(int err);

#endif
