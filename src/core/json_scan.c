/* json_scan.c — see json_scan.h. Every function takes an end pointer and
 * returns NULL rather than read past it; nesting is bounded by
 * JSCAN_DEPTH_MAX, so the recursion is too. */
#include "core/json_scan.h"

#include <string.h>

#include "core/utf8.h"

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

/* Where the next element (or member) of container c starts, for an
 * iteration at *pos (0: the first); NULL at the end or on a fault. */
static const char *next_start(jscan_val_t c, jscan_type_t type, size_t pos) {
  if (c.type != type || c.n < 2 || pos >= c.n) return NULL;
  const char *e = c.p + c.n, *p;
  if (pos == 0) {
    p = ws(c.p + 1, e);
    return p < e && *p == (type == JSCAN_OBJECT ? '}' : ']') ? NULL : p;
  }
  p = ws(c.p + pos, e);
  return p < e && *p == ',' ? ws(p + 1, e) : NULL;
}

bool jscan_next_member(jscan_val_t obj, size_t *pos, jscan_val_t *key, jscan_val_t *val) {
  const char *e = obj.p + obj.n, *p = next_start(obj, JSCAN_OBJECT, *pos), *q;
  if (!p || p >= e || *p != '"' || !(q = skip_string(p, e))) return false;
  *key = (jscan_val_t){p, (size_t)(q - p), JSCAN_STRING};
  p = ws(q, e);
  if (p >= e || *p != ':') return false;
  if (!(p = take(ws(p + 1, e), e, 1, val))) return false;
  *pos = (size_t)(p - obj.p);
  return true;
}

bool jscan_member(jscan_val_t obj, const char *key, jscan_val_t *out) {
  size_t pos = 0;
  jscan_val_t k, v;
  while (jscan_next_member(obj, &pos, &k, &v)) {
    if (jscan_str_eq(k, key)) {
      *out = v;
      return true;
    }
  }
  return false;
}

bool jscan_next(jscan_val_t arr, size_t *pos, jscan_val_t *out) {
  const char *p = next_start(arr, JSCAN_ARRAY, *pos);
  if (!p || !(p = take(p, arr.p + arr.n, 1, out))) return false;
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

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  }
  return v;
}

/* Appends code point cp as UTF-8 at out + *n (out may be NULL). */
static void put_utf8(char *out, size_t *n, uint32_t cp) {
  char b[4];
  size_t k;
  if (cp < 0x80) {
    b[0] = (char)cp;
    k = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xC0 | cp >> 6);
    b[1] = (char)(0x80 | (cp & 0x3F));
    k = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xE0 | cp >> 12);
    b[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    b[2] = (char)(0x80 | (cp & 0x3F));
    k = 3;
  } else {
    b[0] = (char)(0xF0 | cp >> 18);
    b[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    b[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    k = 4;
  }
  if (out) memcpy(out + *n, b, k);
  *n += k;
}

ssize_t jscan_string(jscan_val_t v, char *out) {
  if (v.type != JSCAN_STRING || v.n < 2) return -1;
  /* v came from a scan: escapes are complete and the quotes are there. */
  const char *p = v.p + 1, *e = v.p + v.n - 1;
  size_t n = 0;
  while (p < e) {
    const char *run = p;
    while (p < e && *p != '\\') p++;
    size_t k = (size_t)(p - run);
    if (k && !utf8_valid((const uint8_t *)run, k)) return -1;
    if (out && k) memcpy(out + n, run, k);
    n += k;
    if (p >= e) break;
    char c = p[1];
    p += 2;
    if (c != 'u') {
      static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
      const char *f = strchr(from, c);
      if (!f || !c) return -1;
      if (out) out[n] = to[f - from];
      n++;
      continue;
    }
    if (e - p < 4) return -1;
    uint32_t cp = (uint32_t)hex4(p);
    p += 4;
    if (cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return -1; /* NUL, lone low half */
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (e - p < 6 || p[0] != '\\' || p[1] != 'u') return -1; /* lone high half */
      uint32_t lo = (uint32_t)hex4(p + 2);
      if (lo < 0xDC00 || lo > 0xDFFF) return -1;
      p += 6;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    put_utf8(out, &n, cp);
  }
  return (ssize_t)n;
}

int jscan_key_index(jscan_val_t key, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (jscan_str_eq(key, names[i])) return i;
  return -1;
}
