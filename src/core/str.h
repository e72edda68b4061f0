/*
 * str.h — borrowed byte slices.
 *
 * A str_t points into memory owned by someone else (the read buffer, a
 * parsed request, a literal) and never owns it: the owner's lifetime bounds
 * the slice's. Parsers hand these out so that nothing is copied until a
 * caller decides to keep it.
 */
#ifndef STORM_CORE_STR_H
#define STORM_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

typedef struct {
  const char *p;
  size_t n;
} str_t;

#define STR_LIT(s) ((str_t){(s), sizeof(s) - 1})
#define STR_NULL ((str_t){NULL, 0})

static inline str_t str_from(const char *s) { return (str_t){s, s ? strlen(s) : 0}; }

static inline bool str_eq(str_t a, str_t b) {
  return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* ASCII case-insensitive equality: header names and tokens (RFC 9110 5.1). */
static inline bool str_ieq(str_t a, str_t b) {
  return a.n == b.n && (a.n == 0 || strncasecmp(a.p, b.p, a.n) == 0);
}

static inline bool str_eq_cstr(str_t a, const char *b) { return str_eq(a, str_from(b)); }
static inline bool str_ieq_cstr(str_t a, const char *b) { return str_ieq(a, str_from(b)); }

/* True if the comma-separated token list `list` contains `tok` (case-insensitive),
 * as in `Connection: keep-alive, Upgrade`. */
bool str_list_has_token(str_t list, const char *tok);

/* Parses a non-negative decimal integer that spans the whole slice.
 * Returns 0 and sets *out, or -EINVAL (empty, non-digit) / -ERANGE (> max). */
int str_to_u64(str_t s, unsigned long long max, unsigned long long *out);

#endif
