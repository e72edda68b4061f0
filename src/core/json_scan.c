/* json_scan.c — see json_scan.h. Every function takes an end pointer and
 * returns NULL rather than read past it; nesting is bounded by
 * JSCAN_DEPTH_MAX, so the recursion is too. */
#include "core/json_scan.h"

#include <string.h>

static const char *ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* p at the opening quote; returns past the closing one. */
static const char *skip_string(const char *p, const char *e) {
  p++;
  while (p < e) {
    unsigned char c = (unsigned char)*p++;
    if (c == '"') return p;
    if (c < 0x20) return NULL;
    if (c != '\\') continue;
    if (p >= e) return NULL;
    c = (unsigned char)*p++;
    if (c == 'u') {
      for (int i = 0; i < 4; i++, p++)
        if (p >= e || !is_hex(*p)) return NULL;
    } else if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' &&
               c != 'r' && c != 't') {
      return NULL;
    }
  }
  return NULL;
}

static const char *skip_digits(const char *p, const char *e) {
  const char *s = p;
  while (p < e && *p >= '0' && *p <= '9') p++;
  return p > s ? p : NULL;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static const char *skip_number(const char *p, const char *e) {
  if (p < e && *p == '-') p++;
  if (p >= e) return NULL;
  if (*p == '0') p++;
  else if (!(p = skip_digits(p, e))) return NULL;
  if (p < e && *p == '.' && !(p = skip_digits(p + 1, e))) return NULL;
  if (p < e && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < e && (*p == '+' || *p == '-')) p++;
    if (!(p = skip_digits(p, e))) return NULL;
  }
  return p;
}

static const char *skip_lit(const char *p, const char *e, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(e - p) < n || memcmp(p, lit, n) != 0) return NULL;
  return p + n;
}

static const char *skip_value(const char *p, const char *e, int depth, jscan_type_t *t);

/* p past '{' or '['; returns past the matching close. */
static const char *skip_members(const char *p, const char *e, int depth, bool object) {
  char close = object ? '}' : ']';
  p = ws(p, e);
  if (p < e && *p == close) return p + 1;
  for (;;) {
    jscan_type_t t;
    if (object) {
      if (p >= e || *p != '"' || !(p = skip_string(p, e))) return NULL;
      p = ws(p, e);
      if (p >= e || *p != ':') return NULL;
      p = ws(p + 1, e);
    }
    if (!(p = skip_value(p, e, depth + 1, &t))) return NULL;
    p = ws(p, e);
    if (p >= e) return NULL;
    if (*p == close) return p + 1;
    if (*p != ',') return NULL;
    p = ws(p + 1, e);
  }
}

static const char *skip_value(const char *p, const char *e, int depth, jscan_type_t *t) {
  if (p >= e) return NULL;
  switch (*p) {
    case '"':
      *t = JSCAN_STRING;
      return skip_string(p, e);
    case '{':
    case '[':
      if (depth >= JSCAN_DEPTH_MAX) return NULL;
      *t = *p == '{' ? JSCAN_OBJECT : JSCAN_ARRAY;
      return skip_members(p + 1, e, depth, *p == '{');
    case 't':
      *t = JSCAN_TRUE;
      return skip_lit(p, e, "true");
    case 'f':
      *t = JSCAN_FALSE;
      return skip_lit(p, e, "false");
    case 'n':
      *t = JSCAN_NULL;
      return skip_lit(p, e, "null");
    default:
      *t = JSCAN_NUMBER;
      return skip_number(p, e);
  }
}

/* One value at p, into *out; returns past it. */
static const char *take(const char *p, const char *e, int depth, jscan_val_t *out) {
  const char *q = skip_value(p, e, depth, &out->type);
  if (!q) return NULL;
  out->p = p;
  out->n = (size_t)(q - p);
  return q;
}

bool jscan_parse(const char *data, size_t len, jscan_val_t *out) {
  if (!data) return false;
  const char *e = data + len;
  const char *p = take(ws(data, e), e, 0, out);
  return p && ws(p, e) == e;
}

bool jscan_member(jscan_val_t obj, const char *key, jscan_val_t *out) {
  if (obj.type != JSCAN_OBJECT || obj.n < 2) return false;
  const char *p = ws(obj.p + 1, obj.p + obj.n), *e = obj.p + obj.n;
  size_t klen = strlen(key);
  if (p < e && *p == '}') return false;
  for (;;) {
    if (p >= e || *p != '"') return false;
    const char *k = p + 1, *q = skip_string(p, e);
    if (!q) return false;
    bool match = (size_t)(q - 1 - k) == klen && memcmp(k, key, klen) == 0;
    p = ws(q, e);
    if (p >= e || *p != ':') return false;
    jscan_val_t v;
    if (!(p = take(ws(p + 1, e), e, 1, &v))) return false;
    if (match) {
      *out = v;
      return true;
    }
    p = ws(p, e);
    if (p >= e || *p != ',') return false;
    p = ws(p + 1, e);
  }
}

bool jscan_next(jscan_val_t arr, size_t *pos, jscan_val_t *out) {
  if (arr.type != JSCAN_ARRAY || arr.n < 2 || *pos >= arr.n) return false;
  const char *e = arr.p + arr.n, *p;
  if (*pos == 0) {
    p = ws(arr.p + 1, e);
    if (p < e && *p == ']') return false;
  } else {
    p = ws(arr.p + *pos, e);
    if (p >= e || *p != ',') return false;
    p = ws(p + 1, e);
  }
  if (!(p = take(p, e, 1, out))) return false;
  *pos = (size_t)(p - arr.p);
  return true;
}

bool jscan_int64(jscan_val_t v, int64_t *out) {
  if (v.type != JSCAN_NUMBER || v.n == 0) return false;
  const char *p = v.p, *e = v.p + v.n;
  bool neg = *p == '-';
  if (neg) p++;
  if (p >= e) return false;
  uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, x = 0;
  for (; p < e; p++) {
    if (*p < '0' || *p > '9') return false; /* a fraction or an exponent */
    unsigned d = (unsigned)(*p - '0');
    if (x > (limit - d) / 10) return false;
    x = x * 10 + d;
  }
  *out = neg ? (int64_t)(0 - x) : (int64_t)x;
  return true;
}

bool jscan_str_eq(jscan_val_t v, const char *s) {
  size_t n = strlen(s);
  return v.type == JSCAN_STRING && v.n == n + 2 && memcmp(v.p + 1, s, n) == 0;
}
