#include "net/http_chunked.h"

#include <errno.h>

/* One state per position in the grammar
 *   chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk = 1*"0" [ chunk-ext ] CRLF, trailer-section, CRLF
 * so that any split of the input resumes exactly where it stopped. */
enum {
  ST_SIZE,         /* hex digits */
  ST_SIZE_WS,      /* BWS after the size: only ';' may follow */
  ST_EXT,          /* skipping a chunk extension up to CR */
  ST_SIZE_LF,      /* CR seen after the size line */
  ST_DATA,         /* c->n data bytes left */
  ST_DATA_CR,      /* CRLF that closes the data */
  ST_DATA_LF,
  ST_TRAILER,      /* start of a trailer line, or the final CRLF */
  ST_TRAILER_LINE, /* skipping a trailer field up to CR */
  ST_TRAILER_LF,
  ST_END_LF,       /* CR of the final empty line seen */
  ST_DONE,
  ST_ERROR,
};

void http_chunked_init(http_chunked_t *c) { *c = (http_chunked_t){.state = ST_SIZE}; }

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Bytes allowed inside extensions and trailer lines: HTAB, SP, VCHAR,
 * obs-text. Everything else, notably a bare LF, is a framing error. */
static bool line_byte_ok(char ch) {
  unsigned char u = (unsigned char)ch;
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

ssize_t http_chunked_feed(http_chunked_t *c, const char *src, size_t len, http_body_sink_fn sink,
                          void *arg) {
  size_t i = 0;
  if (c->state == ST_ERROR) return HTTP_CHUNKED_BAD;
  while (i < len && c->state != ST_DONE) {
    char ch = src[i];
    switch (c->state) {
      case ST_SIZE: {
        int h = hexval(ch);
        if (h >= 0) {
          if (++c->digits > HTTP_CHUNKED_MAX_DIGITS) goto bad;
          c->n = c->n * 16 + (uint64_t)h;
          if (c->n > HTTP_CHUNKED_MAX_SIZE) goto bad;
          break;
        }
        if (c->digits == 0) goto bad;
        c->line_len = 1; /* the extension is counted from its first byte to CR */
        if (ch == '\r') c->state = ST_SIZE_LF;
        else if (ch == ';') c->state = ST_EXT;
        else if (ch == ' ' || ch == '\t') c->state = ST_SIZE_WS;
        else goto bad;
        break;
      }
      case ST_SIZE_WS:
        if (++c->line_len > HTTP_CHUNKED_MAX_LINE) goto bad;
        if (ch == ';') c->state = ST_EXT;
        else if (ch != ' ' && ch != '\t') goto bad;
        break;
      case ST_EXT:
        if (ch == '\r') {
          c->state = ST_SIZE_LF;
          break;
        }
        if (++c->line_len > HTTP_CHUNKED_MAX_LINE || !line_byte_ok(ch)) goto bad;
        break;
      case ST_SIZE_LF:
        if (ch != '\n') goto bad;
        c->digits = 0;
        c->state = c->n == 0 ? ST_TRAILER : ST_DATA;
        break;
      case ST_DATA: {
        size_t avail = len - i;
        size_t take = c->n < avail ? (size_t)c->n : avail;
        if (sink) {
          int r = sink(arg, src + i, take);
          if (r != 0) {
            c->state = ST_ERROR;
            return r < 0 ? r : -ECANCELED;
          }
        }
        c->n -= take;
        i += take;
        if (c->n == 0) c->state = ST_DATA_CR;
        continue; /* i already advanced */
      }
      case ST_DATA_CR:
        if (ch != '\r') goto bad;
        c->state = ST_DATA_LF;
        break;
      case ST_DATA_LF:
        if (ch != '\n') goto bad;
        c->state = ST_SIZE;
        break;
      case ST_TRAILER: /* the final empty line does not count as a trailer */
        if (ch == '\r') {
          c->state = ST_END_LF;
          break;
        }
        if (++c->trailer_len > HTTP_CHUNKED_MAX_TRAILERS || !line_byte_ok(ch)) goto bad;
        c->line_len = 1;
        c->state = ST_TRAILER_LINE;
        break;
      case ST_TRAILER_LINE:
        if (++c->trailer_len > HTTP_CHUNKED_MAX_TRAILERS) goto bad;
        if (ch == '\r') {
          c->state = ST_TRAILER_LF;
          break;
        }
        if (++c->line_len > HTTP_CHUNKED_MAX_LINE || !line_byte_ok(ch)) goto bad;
        break;
      case ST_TRAILER_LF:
        if (ch != '\n') goto bad;
        if (++c->trailer_len > HTTP_CHUNKED_MAX_TRAILERS) goto bad;
        c->state = ST_TRAILER;
        break;
      case ST_END_LF:
        if (ch != '\n') goto bad;
        c->state = ST_DONE;
        c->done = true;
        break;
      default:
        goto bad;
    }
    i++;
  }
  return (ssize_t)i;

bad:
  c->state = ST_ERROR;
  return HTTP_CHUNKED_BAD;
}
