/*
 * buf.h — a growable byte buffer.
 *
 * Used where output is assembled before it is written or handed on (HTTP
 * responses, metrics text, JSON). Growth doubles; an allocation failure is
 * sticky (buf->oom) so that a long chain of appends can be checked once at
 * the end instead of after every call.
 */
#ifndef STORM_CORE_BUF_H
#define STORM_CORE_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *data;   /* NUL-terminated whenever len < cap (always after an append) */
  size_t len;
  size_t cap;
  bool oom;     /* an append failed; contents are truncated */
} buf_t;

#define BUF_INIT {NULL, 0, 0, false}

/* Makes room for `extra` more bytes. Returns 0 or -ENOMEM (and sets oom). */
int buf_reserve(buf_t *b, size_t extra);
void buf_append(buf_t *b, const void *data, size_t len);
void buf_append_str(buf_t *b, const char *s);
void buf_append_char(buf_t *b, char c);
/* The decimal text of v (what printf's %lld writes, without its cost on
 * the message path). */
void buf_append_i64(buf_t *b, int64_t v);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf_t *b, const char *fmt, va_list ap);
/* Appends s as the body of a JSON string (without the quotes), escaping
 * quotes, backslashes and control characters. Bytes >= 0x80 are copied. */
void buf_append_json_escaped(buf_t *b, const char *s, size_t len);
void buf_reset(buf_t *b);            /* len = 0, keeps the allocation */
void buf_free(buf_t *b);             /* frees and re-initialises */
/* Hands the allocation to the caller (who frees it) and re-initialises b. */
char *buf_steal(buf_t *b, size_t *len);

#endif
