#include "net/http_parser.h"

#include <limits.h>
#include <stdint.h>

/*
 * Character classes, one table lookup per byte on the hot loops.
 *   C_TOKEN  tchar (RFC 9110 5.6.2): method and header names
 *   C_TARGET VCHAR 0x21-0x7E: request-target (percent-encoding is the
 *            client's job; we only refuse what could break framing)
 *   C_VALUE  field-vchar / SP / HTAB / obs-text: header values
 *   C_HOST   RFC 3986 reg-name, IP-literal brackets, ':' port, '%' escapes
 */
enum { C_TOKEN = 1, C_TARGET = 2, C_VALUE = 4, C_HOST = 8 };

static const uint8_t cls[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  4,  0,  0,  0,  0,  0,  0,
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    4,  15, 6,  7,  15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 6,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14, 6,  14, 6,  6,
    6,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6,  14, 7,  15,
    7,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  7,  6,  15, 0,
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,
};

static inline bool is_class(char c, uint8_t k) { return (cls[(unsigned char)c] & k) != 0; }
static inline bool is_ows(char c) { return c == ' ' || c == '\t'; }
static inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Where the bytes ran out: decides 414 versus 431 once max_head is hit. */
enum phase { IN_REQUEST_LINE, IN_HEADERS };

/* Running out of bytes is only "incomplete" while the client may still send
 * the rest within max_head; otherwise the head can never fit. */
static int need_more(size_t len, size_t max_head, enum phase ph) {
  if (len < max_head) return HTTP_PARSE_INCOMPLETE;
  return ph == IN_REQUEST_LINE ? HTTP_PARSE_URI_TOO_LONG : HTTP_PARSE_HEAD_TOO_LARGE;
}

/* Facts gathered from individual header lines; turned into the head's
 * derived fields once the empty line is seen. */
typedef struct {
  unsigned hosts;
  bool te_present;
  bool conn_close, conn_keep_alive, conn_upgrade;
  bool upgrade_present;
  bool expect_continue;
} facts_t;

/* Content-Length = 1*DIGIT, tolerating the list form "5, 5" that some
 * intermediaries produce when merging duplicates (RFC 9110 8.6). Every
 * element of every Content-Length line must carry the same value. */
static int take_content_length(str_t v, long long *cl) {
  size_t i = 0;
  for (;;) {
    while (i < v.n && is_ows(v.p[i])) i++;
    size_t start = i;
    while (i < v.n && is_digit(v.p[i])) i++;
    unsigned long long x;
    if (str_to_u64((str_t){v.p + start, i - start}, HTTP_MAX_CONTENT_LENGTH, &x) != 0)
      return HTTP_PARSE_BAD_LENGTH;
    if (*cl >= 0 && (unsigned long long)*cl != x) return HTTP_PARSE_BAD_LENGTH;
    *cl = (long long)x;
    while (i < v.n && is_ows(v.p[i])) i++;
    if (i == v.n) return 0;
    if (v.p[i] != ',') return HTTP_PARSE_BAD_LENGTH;
    i++;
  }
}

/* We implement no content codings, so the only acceptable transfer-coding
 * list (over all Transfer-Encoding lines) is exactly one "chunked". Empty
 * list elements are ignored as the list rule allows (RFC 9110 5.6.1). */
static int take_transfer_encoding(str_t v, bool *chunked) {
  size_t i = 0;
  while (i < v.n) {
    while (i < v.n && (is_ows(v.p[i]) || v.p[i] == ',')) i++;
    size_t start = i;
    while (i < v.n && v.p[i] != ',') i++;
    size_t end = i;
    while (end > start && is_ows(v.p[end - 1])) end--;
    if (end == start) continue;
    if (!str_ieq((str_t){v.p + start, end - start}, STR_LIT("chunked")))
      return HTTP_PARSE_BAD_TRANSFER_ENCODING;
    if (*chunked) return HTTP_PARSE_BAD_REQUEST; /* chunked twice: framing is ambiguous */
    *chunked = true;
  }
  return 0;
}

static bool valid_host(str_t v) {
  for (size_t i = 0; i < v.n; i++)
    if (!is_class(v.p[i], C_HOST)) return false;
  return true;
}

/* Records what the server needs from one header line. Names are matched by
 * length first so that ordinary headers cost one switch. */
static int take_header(str_t name, str_t value, facts_t *f, http_request_head_t *out) {
  switch (name.n) {
    case 4:
      if (str_ieq(name, STR_LIT("host"))) {
        /* RFC 9112 3.2: more than one Host or an invalid one is a 400. */
        if (++f->hosts > 1 || !valid_host(value)) return HTTP_PARSE_BAD_REQUEST;
      }
      break;
    case 6:
      if (str_ieq(name, STR_LIT("expect")) && str_ieq(value, STR_LIT("100-continue")))
        f->expect_continue = true;
      break;
    case 7:
      if (str_ieq(name, STR_LIT("upgrade")) && value.n > 0) f->upgrade_present = true;
      break;
    case 10:
      if (str_ieq(name, STR_LIT("connection"))) {
        f->conn_close |= str_list_has_token(value, "close");
        f->conn_keep_alive |= str_list_has_token(value, "keep-alive");
        f->conn_upgrade |= str_list_has_token(value, "upgrade");
      }
      break;
    case 14:
      if (str_ieq(name, STR_LIT("content-length")))
        return take_content_length(value, &out->content_length);
      break;
    case 17:
      if (str_ieq(name, STR_LIT("transfer-encoding"))) {
        f->te_present = true;
        return take_transfer_encoding(value, &out->chunked);
      }
      break;
    default:
      break;
  }
  return 0;
}

/* Turns the facts into the head's fields and applies the rules that need
 * the whole header section. */
static int finish_head(const facts_t *f, http_request_head_t *out) {
  /* RFC 9112 6.1: CL next to TE is the classic smuggling vector. */
  if (f->te_present && out->content_length >= 0) return HTTP_PARSE_BAD_LENGTH;
  if (f->te_present && !out->chunked) return HTTP_PARSE_BAD_REQUEST; /* empty list */
  /* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
   * framing; refusing it is simpler than reading it and closing. */
  if (f->te_present && out->minor_version == 0) return HTTP_PARSE_BAD_REQUEST;
  if (out->minor_version == 1 && f->hosts == 0) return HTTP_PARSE_BAD_REQUEST;

  if (out->minor_version == 1) {
    out->keep_alive = !f->conn_close;
    out->expect_continue = f->expect_continue;
    out->upgrade = f->conn_upgrade && f->upgrade_present;
  } else {
    out->keep_alive = f->conn_keep_alive && !f->conn_close;
  }
  return 0;
}

/* Parses "HTTP/" DIGIT [ "." DIGIT ] CRLF at p. The bare-major form is
 * only recognised so that "HTTP/2" and "HTTP/3" get a 505, not a 400. */
static int parse_version(const char **pp, const char *end, size_t len, size_t max_head,
                         int *minor) {
  static const char prefix[] = "HTTP/";
  const char *p = *pp;
  for (size_t i = 0; i < sizeof prefix - 1; i++, p++) {
    if (p == end) return need_more(len, max_head, IN_REQUEST_LINE);
    if (*p != prefix[i]) return HTTP_PARSE_BAD_REQUEST;
  }
  if (p == end) return need_more(len, max_head, IN_REQUEST_LINE);
  if (!is_digit(*p)) return HTTP_PARSE_BAD_REQUEST;
  int major = *p++ - '0';
  int mnr = -1;
  if (p == end) return need_more(len, max_head, IN_REQUEST_LINE);
  if (*p == '.') {
    p++;
    if (p == end) return need_more(len, max_head, IN_REQUEST_LINE);
    if (!is_digit(*p)) return HTTP_PARSE_BAD_REQUEST;
    mnr = *p++ - '0';
    if (p == end) return need_more(len, max_head, IN_REQUEST_LINE);
  }
  if (*p != '\r') return HTTP_PARSE_BAD_REQUEST;
  if (mnr < 0 && major == 1) return HTTP_PARSE_BAD_REQUEST; /* "HTTP/1" */
  p++;
  if (p == end) return need_more(len, max_head, IN_REQUEST_LINE);
  if (*p != '\n') return HTTP_PARSE_BAD_REQUEST;
  p++;
  if (major != 1) return HTTP_PARSE_BAD_VERSION;
  *minor = mnr >= 1 ? 1 : 0;
  *pp = p;
  return 0;
}

static int parse_request_line(const char **pp, const char *end, size_t len, size_t max_head,
                              http_request_head_t *out) {
  const char *p = *pp;

  const char *m = p;
  while (p < end && is_class(*p, C_TOKEN)) p++;
  if (p == end) return need_more(len, max_head, IN_REQUEST_LINE);
  if (*p != ' ' || p == m) return HTTP_PARSE_BAD_REQUEST;
  out->method = (str_t){m, (size_t)(p - m)};
  p++;

  const char *t = p;
  while (p < end && is_class(*p, C_TARGET)) p++;
  if (p == end) return need_more(len, max_head, IN_REQUEST_LINE);
  if (*p != ' ' || p == t) return HTTP_PARSE_BAD_REQUEST;
  out->target = (str_t){t, (size_t)(p - t)};
  p++;

  /* The version first: an HTTP/2 preface ("PRI * HTTP/2.0") deserves a
   * 505 rather than a 400 for its target. */
  int r = parse_version(&p, end, len, max_head, &out->minor_version);
  if (r != 0) return r;

  if (*t == '/') {
    const char *q = memchr(t, '?', out->target.n);
    const char *te = t + out->target.n;
    if (q) {
      out->path = (str_t){t, (size_t)(q - t)};
      out->query = (str_t){q + 1, (size_t)(te - q - 1)};
    } else {
      out->path = out->target;
      out->query = (str_t){te, 0};
    }
  } else if (out->target.n == 1 && *t == '*' && str_eq(out->method, STR_LIT("OPTIONS"))) {
    out->path = out->target;
    out->query = (str_t){t + 1, 0};
  } else {
    /* absolute-form and authority-form: we are not a proxy. */
    return HTTP_PARSE_BAD_REQUEST;
  }
  *pp = p;
  return 0;
}

int http_parse_request(const char *buf, size_t len, size_t max_head, http_request_head_t *out) {
  if (max_head > INT_MAX) max_head = INT_MAX;
  const char *p = buf;
  const char *end = buf + (len < max_head ? len : max_head);

  out->num_headers = 0;
  out->content_length = -1;
  out->chunked = false;
  out->keep_alive = false;
  out->expect_continue = false;
  out->upgrade = false;

  for (;;) { /* empty lines before the request line */
    if (p == end) return need_more(len, max_head, IN_REQUEST_LINE);
    if (*p != '\r') break;
    if (p + 1 == end) return need_more(len, max_head, IN_REQUEST_LINE);
    if (p[1] != '\n') return HTTP_PARSE_BAD_REQUEST;
    p += 2;
  }

  int r = parse_request_line(&p, end, len, max_head, out);
  if (r != 0) return r;

  facts_t f = {0};
  for (;;) {
    if (p == end) return need_more(len, max_head, IN_HEADERS);
    if (*p == '\r') {
      if (p + 1 == end) return need_more(len, max_head, IN_HEADERS);
      if (p[1] != '\n') return HTTP_PARSE_BAD_REQUEST;
      p += 2;
      break;
    }
    if (out->num_headers == HTTP_MAX_HEADERS) return HTTP_PARSE_TOO_MANY_HEADERS;

    /* A name that is not a token covers obs-fold (leading SP/HTAB, RFC 9112
     * 5.2) and whitespace before the colon (RFC 9112 5.1) alike. */
    const char *n = p;
    while (p < end && is_class(*p, C_TOKEN)) p++;
    if (p == end) return need_more(len, max_head, IN_HEADERS);
    if (*p != ':' || p == n) return HTTP_PARSE_BAD_REQUEST;
    str_t name = {n, (size_t)(p - n)};
    p++;
    while (p < end && is_ows(*p)) p++;

    /* memchr finds the line end at memory speed; the class check then
     * rejects bare LF, NUL and other controls, also in a partial line. */
    const char *v = p;
    size_t rest = p < end ? (size_t)(end - p) : 0; /* always end - p; tells GCC it is >= 0 */
    const char *cr = memchr(p, '\r', rest);
    const char *stop = cr ? cr : end;
    for (; p < stop; p++)
      if (!is_class(*p, C_VALUE)) return HTTP_PARSE_BAD_REQUEST;
    if (!cr || cr + 1 == end) return need_more(len, max_head, IN_HEADERS);
    if (cr[1] != '\n') return HTTP_PARSE_BAD_REQUEST;
    const char *ve = cr;
    while (ve > v && is_ows(ve[-1])) ve--;
    str_t value = {v, (size_t)(ve - v)};
    p = cr + 2;

    out->headers[out->num_headers++] = (http_header_t){name, value};
    r = take_header(name, value, &f, out);
    if (r != 0) return r;
  }

  r = finish_head(&f, out);
  if (r != 0) return r;
  return (int)(p - buf);
}

int http_parse_status(int result) {
  switch (result) {
    case HTTP_PARSE_BAD_REQUEST:
    case HTTP_PARSE_BAD_LENGTH: return 400;
    case HTTP_PARSE_URI_TOO_LONG: return 414;
    case HTTP_PARSE_HEAD_TOO_LARGE:
    case HTTP_PARSE_TOO_MANY_HEADERS: return 431;
    case HTTP_PARSE_BAD_TRANSFER_ENCODING: return 501;
    case HTTP_PARSE_BAD_VERSION: return 505;
    default: return result < 0 && result != HTTP_PARSE_INCOMPLETE ? 400 : 0;
  }
}

const char *http_parse_code(int result) {
  switch (result) {
    case HTTP_PARSE_INCOMPLETE: return "incomplete";
    case HTTP_PARSE_BAD_REQUEST: return "bad_request";
    case HTTP_PARSE_HEAD_TOO_LARGE: return "header_too_large";
    case HTTP_PARSE_TOO_MANY_HEADERS: return "too_many_headers";
    case HTTP_PARSE_BAD_VERSION: return "http_version_not_supported";
    case HTTP_PARSE_BAD_LENGTH: return "bad_content_length";
    case HTTP_PARSE_BAD_TRANSFER_ENCODING: return "unsupported_transfer_encoding";
    case HTTP_PARSE_URI_TOO_LONG: return "uri_too_long";
    default: return result >= 0 ? "ok" : "bad_request";
  }
}

const char *http_parse_message(int result) {
  switch (result) {
    case HTTP_PARSE_INCOMPLETE: return "request head is incomplete";
    case HTTP_PARSE_BAD_REQUEST: return "malformed request line or header field";
    case HTTP_PARSE_HEAD_TOO_LARGE: return "request header section is too large";
    case HTTP_PARSE_TOO_MANY_HEADERS: return "too many header fields";
    case HTTP_PARSE_BAD_VERSION: return "only HTTP/1.0 and HTTP/1.1 are supported";
    case HTTP_PARSE_BAD_LENGTH:
      return "invalid or conflicting Content-Length, or Content-Length with Transfer-Encoding";
    case HTTP_PARSE_BAD_TRANSFER_ENCODING: return "only the chunked transfer coding is supported";
    case HTTP_PARSE_URI_TOO_LONG: return "request target is too long";
    default: return result >= 0 ? "ok" : "malformed request";
  }
}

str_t http_head_get(const http_request_head_t *h, const char *name) {
  str_t want = str_from(name);
  for (size_t i = 0; i < h->num_headers; i++)
    if (str_ieq(h->headers[i].name, want)) return h->headers[i].value;
  return STR_NULL;
}

const char *http_status_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}
