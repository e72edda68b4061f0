#include "core/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int buf_reserve(buf_t *b, size_t extra) {
  if (b->oom) return -ENOMEM;
  size_t need = b->len + extra + 1; /* +1 keeps room for the terminating NUL */
  if (need <= b->cap) return 0;
  /* Most texts built on the message path are 200-600 bytes: starting at
   * 512 makes them one allocation instead of four doublings. */
  size_t cap = b->cap ? b->cap : 512;
  while (cap < need) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) {
    b->oom = true;
    return -ENOMEM;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

void buf_append(buf_t *b, const void *data, size_t len) {
  if (buf_reserve(b, len) < 0) return;
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
}

void buf_append_str(buf_t *b, const char *s) { buf_append(b, s, strlen(s)); }

void buf_append_char(buf_t *b, char c) { buf_append(b, &c, 1); }

void buf_append_i64(buf_t *b, int64_t v) {
  char d[21], *p = d + sizeof d;
  uint64_t x = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do *--p = (char)('0' + x % 10);
  while ((x /= 10) != 0);
  if (v < 0) *--p = '-';
  buf_append(b, p, (size_t)(d + sizeof d - p));
}

void buf_vprintf(buf_t *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  if (n < 0) {
    va_end(ap2);
    return;
  }
  if ((size_t)n < sizeof small) {
    buf_append(b, small, (size_t)n);
  } else if (buf_reserve(b, (size_t)n) == 0) {
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n;
  }
  va_end(ap2);
}

void buf_printf(buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(b, fmt, ap);
  va_end(ap);
}

void buf_append_json_escaped(buf_t *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0; /* start of the current run of bytes that need no escape */
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    buf_append(b, s + run, i - run);
    run = i + 1;
    switch (c) {
    case '"': buf_append(b, "\\\"", 2); break;
    case '\\': buf_append(b, "\\\\", 2); break;
    case '\n': buf_append(b, "\\n", 2); break;
    case '\r': buf_append(b, "\\r", 2); break;
    case '\t': buf_append(b, "\\t", 2); break;
    default: {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      buf_append(b, e, 6);
    }
    }
  }
  buf_append(b, s + run, len - run);
}

void buf_reset(buf_t *b) {
  b->len = 0;
  b->oom = false;
  if (b->data) b->data[0] = '\0';
}

void buf_free(buf_t *b) {
  free(b->data);
  *b = (buf_t)BUF_INIT;
}

char *buf_steal(buf_t *b, size_t *len) {
  char *p = b->data;
  if (len) *len = b->len;
  *b = (buf_t)BUF_INIT;
  return p;
}
