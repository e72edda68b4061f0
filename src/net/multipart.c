/*
 * multipart.c — the multipart/form-data state machine (contract in
 * multipart.h).
 *
 * Delimiter search: the delimiter is "\r\n--" + boundary, and a boundary
 * may not contain CR (bchars), so '\r' occurs in it only at position 0.
 * A failed partial match therefore never overlaps a new one (the KMP
 * failure function is 0 everywhere): the matched bytes are released as
 * data — they equal delim[0..match), so they are emitted from the delimiter
 * constant and nothing has to be held back from the caller's input — and
 * the byte that broke the match is looked at again. Runs without '\r' are
 * passed through with one memchr.
 */
#include "net/multipart.h"

#include <string.h>

enum {
  S_PREAMBLE,   /* before the first delimiter: skipped */
  S_AFTER,      /* just after a delimiter: "--" or padding then CRLF */
  S_DASH,       /* saw one '-' after a delimiter */
  S_PAD,        /* transport padding (spaces, tabs) before CRLF */
  S_LF,         /* saw CR after a delimiter */
  S_HEADERS,    /* a part's header block */
  S_BODY,       /* a part's data */
  S_EPILOGUE,   /* after the close delimiter: skipped */
};

/* RFC 2046 bchars: DIGIT / ALPHA / "'()+_,-./:=?" and space (not last). */
static bool bchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         strchr("'()+_,-./:=? ", c) != NULL;
}

static bool tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void skip_ows(const char *p, size_t n, size_t *i) {
  while (*i < n && (p[*i] == ' ' || p[*i] == '\t')) (*i)++;
}

/* Reads a token or quoted-string value at p[*i..n). Quoted strings are
 * unescaped in place (p is writable here: it is our header buffer, or a
 * copy). Returns the value or STR_NULL on a syntax error. */
static str_t param_value(char *p, size_t n, size_t *i) {
  if (*i < n && p[*i] == '"') {
    size_t r = *i + 1, w = r;
    while (r < n && p[r] != '"') {
      if (p[r] == '\\' && r + 1 < n) r++;
      p[w++] = p[r++];
    }
    if (r >= n) return STR_NULL; /* unterminated */
    str_t v = {p + *i + 1, w - (*i + 1)};
    *i = r + 1;
    return v;
  }
  size_t s = *i;
  while (*i < n && p[*i] != ';' && p[*i] != ' ' && p[*i] != '\t') (*i)++;
  if (*i == s) return STR_NULL;
  return (str_t){p + s, *i - s};
}

/* Walks "type; a=b; c="d"" calling back for each parameter. p must be
 * writable (quoted values are unescaped in place). Returns the type, or
 * STR_NULL on a syntax error. */
typedef void (*param_fn)(void *arg, str_t name, str_t value);
static str_t parse_params(char *p, size_t n, param_fn fn, void *arg) {
  size_t i = 0;
  skip_ows(p, n, &i);
  size_t ts = i;
  while (i < n && p[i] != ';' && p[i] != ' ' && p[i] != '\t') i++;
  str_t type = {p + ts, i - ts};
  if (type.n == 0) return STR_NULL;
  for (;;) {
    skip_ows(p, n, &i);
    if (i == n) return type;
    if (p[i] != ';') return STR_NULL;
    i++;
    skip_ows(p, n, &i);
    if (i == n) return type; /* a trailing ';' is tolerated */
    size_t ns = i;
    while (i < n && tchar((unsigned char)p[i])) i++;
    str_t name = {p + ns, i - ns};
    skip_ows(p, n, &i);
    if (name.n == 0 || i == n || p[i] != '=') return STR_NULL;
    i++;
    skip_ows(p, n, &i);
    str_t v = param_value(p, n, &i);
    if (!v.p) return STR_NULL;
    if (fn) fn(arg, name, v);
  }
}

static void boundary_param(void *arg, str_t name, str_t value) {
  str_t *out = arg;
  if (!out->p && str_ieq(name, STR_LIT("boundary"))) *out = value;
}

int multipart_boundary(str_t ct, str_t *out) {
  /* Copy: quoted values are unescaped in place and ct is the caller's. */
  char tmp[512];
  if (!ct.p || ct.n == 0 || ct.n >= sizeof tmp) return MULTIPART_E_BOUNDARY;
  memcpy(tmp, ct.p, ct.n);
  str_t b = STR_NULL;
  str_t type = parse_params(tmp, ct.n, boundary_param, &b);
  if (!type.p || !str_ieq(type, STR_LIT("multipart/form-data")) || !b.p) return MULTIPART_E_BOUNDARY;
  if (b.n < 1 || b.n > MULTIPART_BOUNDARY_MAX || b.p[b.n - 1] == ' ') return MULTIPART_E_BOUNDARY;
  for (size_t i = 0; i < b.n; i++)
    if (!bchar((unsigned char)b.p[i])) return MULTIPART_E_BOUNDARY;
  /* Point back into the caller's bytes. An unquoted value is the same
   * bytes; a quoted one without escapes is too (bchars have no '\\' or
   * '"'), one character further. */
  const char *at = memmem(ct.p, ct.n, b.p, b.n);
  if (!at) return MULTIPART_E_BOUNDARY;
  *out = (str_t){at, b.n};
  return 0;
}

int multipart_init(multipart_t *m, str_t content_type) {
  memset(m, 0, sizeof *m - sizeof m->hdr);
  str_t b;
  int rc = multipart_boundary(content_type, &b);
  if (rc < 0) return rc;
  memcpy(m->delim, "\r\n--", 4);
  memcpy(m->delim + 4, b.p, b.n);
  m->dlen = (uint8_t)(4 + b.n);
  /* The first delimiter may open the body, with no CRLF before it. */
  m->match = 2;
  m->state = S_PREAMBLE;
  return 0;
}

static void disp_param(void *arg, str_t name, str_t value) {
  multipart_part_t *p = arg;
  if (str_ieq(name, STR_LIT("name")) && !p->name.p)
    p->name = value;
  else if (str_ieq(name, STR_LIT("filename")) && !p->filename.p)
    p->filename = value;
}

/* Parses hdr[0..hlen) (lines ending in CRLF, the last one empty). */
static int parse_headers(multipart_t *m, multipart_part_t *part) {
  memset(part, 0, sizeof *part);
  char *p = m->hdr;
  size_t n = m->hlen - 2; /* drop the empty line's CRLF */
  size_t i = 0;
  while (i < n) {
    char *eol = memmem(p + i, n - i, "\r\n", 2);
    if (!eol) return MULTIPART_E_SYNTAX;
    size_t ls = i, le = (size_t)(eol - p);
    i = le + 2;
    size_t c = ls;
    while (c < le && tchar((unsigned char)p[c])) c++;
    if (c == ls || c == le || p[c] != ':') return MULTIPART_E_SYNTAX;
    str_t name = {p + ls, c - ls};
    size_t vs = c + 1;
    skip_ows(p, le, &vs);
    size_t ve = le;
    while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t')) ve--;
    for (size_t k = vs; k < ve; k++)
      if (p[k] == '\r' || p[k] == '\n') return MULTIPART_E_SYNTAX;
    if (str_ieq(name, STR_LIT("content-disposition"))) {
      multipart_part_t tmp = {0};
      str_t type = parse_params(p + vs, ve - vs, disp_param, &tmp);
      if (!type.p) return MULTIPART_E_SYNTAX;
      if (str_ieq(type, STR_LIT("form-data"))) {
        part->name = tmp.name;
        part->filename = tmp.filename;
      }
    } else if (str_ieq(name, STR_LIT("content-type"))) {
      part->content_type = (str_t){p + vs, ve - vs};
    }
  }
  return 0;
}

static int fail(multipart_t *m, int err) {
  m->err = err;
  return err;
}

/* The body of a part (or the preamble, where data is dropped). Returns
 * bytes consumed, or a negative error. Stops right after a delimiter.
 *
 * Bookkeeping: `prev` bytes of the current partial match came from earlier
 * inputs and were never emitted (they equal delim[0..prev)); the rest of
 * the match is in this input, just before i. d[run..) is data not yet
 * emitted; emission is lazy, so a run is passed on in one call. */
static ssize_t scan(multipart_t *m, const char *d, size_t len, const multipart_callbacks_t *cb,
                    void *arg) {
  bool emit = m->state == S_BODY;
  size_t prev = m->match;
  size_t i = 0, run = 0;
#define EMIT(ptr, cnt)                                       \
  do {                                                       \
    if (emit && (cnt) > 0) {                                 \
      int rc_ = cb->on_part_data(arg, (ptr), (cnt));         \
      if (rc_ < 0) return fail(m, rc_);                      \
    }                                                        \
  } while (0)
  while (i < len) {
    if (m->match == 0) {
      const char *cr = memchr(d + i, '\r', len - i);
      if (!cr) {
        i = len;
        break;
      }
      i = (size_t)(cr - d) + 1;
      m->match = 1;
      continue;
    }
    if (d[i] == m->delim[m->match]) {
      m->match++;
      i++;
      if (m->match == m->dlen) {
        size_t start = i - (m->dlen - prev); /* the delimiter's first byte here */
        if (start > run) EMIT(d + run, start - run);
        m->match = 0;
        if (emit && cb->on_part_end) {
          int rc = cb->on_part_end(arg);
          if (rc < 0) return fail(m, rc);
        }
        m->state = S_AFTER;
        return (ssize_t)i;
      }
      continue;
    }
    /* Mismatch: the held prefix was data after all. Bytes held from
     * earlier inputs come first in the stream (run is 0 then: nothing of
     * this input was passed yet); the ones in this input stay pending. */
    if (prev) {
      EMIT(m->delim, prev);
      prev = 0;
    }
    m->match = 0;
    /* d[i] is looked at again: it may start a new match. */
  }
  /* End of input: hold back the part of a partial match that is here. */
  size_t held_here = m->match - prev;
  if (len - held_here > run) EMIT(d + run, len - held_here - run);
#undef EMIT
  return (ssize_t)len;
}

ssize_t multipart_feed(multipart_t *m, const char *data, size_t len,
                       const multipart_callbacks_t *cb, void *arg) {
  if (m->err) return m->err;
  size_t i = 0;
  while (i < len) {
    switch (m->state) {
    case S_PREAMBLE:
    case S_BODY: {
      ssize_t n = scan(m, data + i, len - i, cb, arg);
      if (n < 0) return n;
      i += (size_t)n;
      break;
    }
    case S_AFTER:
      if (data[i] == '-')
        m->state = S_DASH;
      else if (data[i] == ' ' || data[i] == '\t')
        m->state = S_PAD;
      else if (data[i] == '\r')
        m->state = S_LF;
      else
        return fail(m, MULTIPART_E_SYNTAX);
      i++;
      break;
    case S_DASH:
      if (data[i] != '-') return fail(m, MULTIPART_E_SYNTAX);
      m->state = S_EPILOGUE;
      m->done = true;
      i++;
      break;
    case S_PAD:
      if (data[i] == '\r')
        m->state = S_LF;
      else if (data[i] != ' ' && data[i] != '\t')
        return fail(m, MULTIPART_E_SYNTAX);
      i++;
      break;
    case S_LF:
      if (data[i] != '\n') return fail(m, MULTIPART_E_SYNTAX);
      if (++m->parts > MULTIPART_MAX_PARTS) return fail(m, MULTIPART_E_PARTS);
      m->state = S_HEADERS;
      m->hlen = 0;
      i++;
      break;
    case S_HEADERS: {
      /* Copy up to the end of the header block, byte-wise checks only at
       * line ends: the block is small and bounded. */
      while (i < len) {
        if (m->hlen == sizeof m->hdr) return fail(m, MULTIPART_E_HEADER_SIZE);
        char c = data[i++];
        m->hdr[m->hlen++] = c;
        if (c != '\n') continue;
        if (m->hlen < 2 || m->hdr[m->hlen - 2] != '\r') return fail(m, MULTIPART_E_SYNTAX);
        if (m->hlen == 2 || (m->hlen >= 4 && m->hdr[m->hlen - 3] == '\n')) {
          multipart_part_t part;
          int rc = parse_headers(m, &part);
          if (rc < 0) return fail(m, rc);
          if (cb->on_part_begin) {
            rc = cb->on_part_begin(arg, &part);
            if (rc < 0) return fail(m, rc);
          }
          m->state = S_BODY;
          m->match = 0;
          break;
        }
      }
      break;
    }
    case S_EPILOGUE:
      i = len;
      break;
    }
  }
  return (ssize_t)len;
}

const char *multipart_strerror(int err) {
  switch (err) {
  case MULTIPART_E_BOUNDARY: return "Content-Type must be multipart/form-data with a valid boundary";
  case MULTIPART_E_SYNTAX: return "malformed multipart body";
  case MULTIPART_E_HEADER_SIZE: return "multipart part headers too large";
  case MULTIPART_E_PARTS: return "too many multipart parts";
  default: return "multipart body rejected";
  }
}
