/*
 * http_parser.h — bounded, zero-copy HTTP/1.1 request-head parser.
 *
 * Contract:
 * - http_parse_request() looks at the bytes received so far and either
 *   returns the length of a complete head (request line + header fields +
 *   the empty line) or a negative http_parse_result. It keeps no state: the
 *   caller re-parses from the start of its buffer when more bytes arrive
 *   (picohttpparser style), which is cheap because heads are small and the
 *   scan is bounded by max_head.
 * - Nothing is allocated or copied. Every str_t in the output points into
 *   `buf` and is valid as long as the caller keeps those bytes in place.
 *   After a negative result the contents of *out are unspecified.
 * - Errors are decided on the prefix seen so far: a malformed byte is
 *   reported as soon as it arrives, never only once the head is complete,
 *   and a later call with more bytes gives the same answer.
 * - Strict by design (request smuggling and desync live in lenient
 *   parsers): CRLF line endings only, no obs-fold, no whitespace before the
 *   colon, header names must be tokens, no control characters in values,
 *   only origin-form targets (plus "*" for OPTIONS), a Content-Length next
 *   to a Transfer-Encoding is refused, and the only transfer coding we
 *   implement is "chunked".
 * - Pure functions on their arguments: safe from any thread.
 */
#ifndef STORM_NET_HTTP_PARSER_H
#define STORM_NET_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/str.h"

/* Enough for real browsers behind proxies (they send 10-25); more is an
 * attack or a bug and costs us a 431. */
#define HTTP_MAX_HEADERS 64

/* Largest Content-Length accepted: 2^53, the largest integer a JSON number
 * (a double) holds exactly, so the value survives any metrics/JSON path. */
#define HTTP_MAX_CONTENT_LENGTH (1ULL << 53)

typedef struct {
  str_t name;
  str_t value; /* leading and trailing OWS (SP, HTAB) removed */
} http_header_t;

typedef struct {
  str_t method;      /* a token; the router decides 405/501 */
  str_t target;      /* as sent: "/path?query", or "*" (OPTIONS only) */
  str_t path;        /* target up to the first '?' (raw, not percent-decoded) */
  str_t query;       /* after the first '?', without it; empty if none */
  int minor_version; /* 0 or 1 (HTTP/1.2+ is answered as 1.1, RFC 9110 2.5) */
  http_header_t headers[HTTP_MAX_HEADERS];
  size_t num_headers;
  /* Derived while parsing, so that the server never re-scans the headers. */
  long long content_length; /* -1 when absent */
  bool chunked;             /* Transfer-Encoding: chunked */
  bool keep_alive;          /* 1.1: unless "close"; 1.0: only with "keep-alive" */
  bool expect_continue;     /* Expect: 100-continue (ignored in 1.0, RFC 9110 10.1.1) */
  bool upgrade;             /* 1.1, Connection lists "upgrade" and Upgrade is present */
} http_request_head_t;

enum http_parse_result {
  HTTP_PARSE_INCOMPLETE = -1,            /* need more bytes; fewer than max_head so far */
  HTTP_PARSE_BAD_REQUEST = -2,           /* 400: syntax, framing or Host errors */
  HTTP_PARSE_HEAD_TOO_LARGE = -3,        /* 431: no end of head within max_head */
  HTTP_PARSE_TOO_MANY_HEADERS = -4,      /* 431: more than HTTP_MAX_HEADERS fields */
  HTTP_PARSE_BAD_VERSION = -5,           /* 505: a well-formed version other than 1.x */
  HTTP_PARSE_BAD_LENGTH = -6,            /* 400: bad/conflicting Content-Length, or CL with TE */
  HTTP_PARSE_BAD_TRANSFER_ENCODING = -7, /* 501: a transfer coding other than chunked */
  HTTP_PARSE_URI_TOO_LONG = -8,          /* 414: no end of request line within max_head */
};

/*
 * Parses the request head at the start of buf[0..len). At most max_head
 * bytes are examined (values above INT_MAX are clamped): a head of exactly
 * max_head bytes is accepted, one byte more is HEAD_TOO_LARGE (or
 * URI_TOO_LONG while still in the request line).
 *
 * Empty lines before the request line are skipped (RFC 9112 2.2: some
 * clients send a CRLF after a POST body) and count in the returned length.
 *
 * Returns the head length (> 0; bytes after it are the body or the next
 * pipelined request) or a negative enum http_parse_result.
 *
 * 400 cases: bad request-line syntax (one SP between parts, token method,
 * VCHAR target that starts with '/', or "*" with OPTIONS); bare CR or LF;
 * header line starting with whitespace (obs-fold) or whitespace before
 * the colon; non-token name; CTL other than HTAB in a value; HTTP/1.1
 * without Host, more than one Host, a Host with characters outside
 * RFC 3986 host[:port]; "chunked" listed twice; an empty Transfer-Encoding;
 * any Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1 says its
 * framing cannot be trusted).
 */
int http_parse_request(const char *buf, size_t len, size_t max_head, http_request_head_t *out);

/* HTTP status to answer for a negative result (400, 414, 431, 501, 505);
 * 0 for INCOMPLETE or a non-negative value (nothing to answer). */
int http_parse_status(int result);

/* Stable machine-readable code for JSON error bodies: "bad_request",
 * "uri_too_long", "header_too_large", "too_many_headers",
 * "http_version_not_supported", "bad_content_length",
 * "unsupported_transfer_encoding"; "incomplete" and "ok" otherwise. */
const char *http_parse_code(int result);

/* One-line human-readable message for the same results. */
const char *http_parse_message(int result);

/* First value of header `name` (ASCII case-insensitive), or STR_NULL. */
str_t http_head_get(const http_request_head_t *h, const char *name);

/* Reason phrase for every status STORM sends ("OK", "Not Found", ...);
 * "Unknown" for any other code (the phrase is advisory, RFC 9112 4). */
const char *http_status_reason(int status);

#endif
