/* Fuzz target: core/json_scan.h. Any bytes: the scan must stay inside
 * them, and agree with jansson (a different parser):
 *   - what jansson accepts, the scan accepts, unless it nests deeper than
 *     JSCAN_DEPTH_MAX or holds a NUL byte (the scan checks neither UTF-8 nor number range, so
 *     the converse does not hold);
 *   - every value the scan hands out (members, elements) lies inside the
 *     input and scans again on its own as the same type;
 *   - an integer read by both has the same value, a string decodes to
 *     the same bytes (and is refused exactly when jansson refuses it);
 *   - an object has as many members for both;
 *   - iteration ends and only moves forward. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/json_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int depth_of(json_t *j) {
  int d = 0;
  if (json_is_object(j)) {
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
      int x = depth_of(v);
      if (x > d) d = x;
    }
    return d + 1;
  }
  if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) {
      int x = depth_of(v);
      if (x > d) d = x;
    }
    return d + 1;
  }
  return 0;
}

static void check_inside(const char *x, size_t size, jscan_val_t v) {
  if (v.p < x || v.n == 0 || v.n > size || v.p + v.n > x + size) __builtin_trap();
  jscan_val_t again;
  if (!jscan_parse(v.p, v.n, &again) || again.type != v.type || again.n != v.n) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *x = (const char *)data;
  jscan_val_t v;
  bool ok = jscan_parse(x, size, &v);
  /* Duplicates refused: jansson would keep the last, the scan the first. */
  json_t *j = json_loadb(x, size, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, NULL);
  /* jansson also stops reading at a NUL byte. */
  if (j && !ok && depth_of(j) <= JSCAN_DEPTH_MAX && !memchr(x, 0, size)) __builtin_trap();
  if (ok && v.type == JSCAN_STRING) {
    /* Decoding: the same bytes as jansson's (which refuses \u0000 without
     * JSON_ALLOW_NUL), and refused exactly when jansson refuses. */
    char out[4096];
    ssize_t n = v.n <= sizeof out ? jscan_string(v, out) : -2;
    json_t *s = json_loadb(x, size, JSON_DECODE_ANY, NULL);
    if (n >= 0 && (!json_is_string(s) || json_string_length(s) != (size_t)n ||
                   memcmp(json_string_value(s), out, (size_t)n) != 0))
      __builtin_trap();
    if (n == -1 && s) __builtin_trap();
    json_decref(s);
  }
  if (ok) {
    check_inside(x, size, v);
    int64_t a;
    if (jscan_int64(v, &a) && json_is_integer(j) && json_integer_value(j) != a) __builtin_trap();
    if (v.type == JSCAN_OBJECT && json_is_object(j)) {
      const char *k;
      json_t *jv;
      json_object_foreach(j, k, jv) {
        jscan_val_t m;
        /* A key with a backslash could match another key's escaped text. */
        if (strchr(k, '\\')) continue;
        if (!jscan_member(v, k, &m)) continue; /* written with escapes */
        check_inside(x, size, m);
        if (jscan_int64(m, &a) && json_is_integer(jv) && json_integer_value(jv) != a)
          __builtin_trap();
      }
    }
    size_t mpos = 0, mlast = 0, members = 0;
    jscan_val_t mk, mv;
    while (jscan_next_member(v, &mpos, &mk, &mv)) {
      if (mpos <= mlast) __builtin_trap();
      mlast = mpos;
      check_inside(x, size, mk);
      check_inside(x, size, mv);
      if (mk.type != JSCAN_STRING) __builtin_trap();
      members++;
    }
    if (json_is_object(j) && members != json_object_size(j)) __builtin_trap();
    static const char *const keys[] = {"op", "seq", "message", "results", "error", ""};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
      jscan_val_t m;
      if (jscan_member(v, keys[i], &m)) check_inside(x, size, m);
    }
    size_t pos = 0, last = 0, count = 0;
    jscan_val_t el;
    while (jscan_next(v, &pos, &el)) {
      if (pos <= last) __builtin_trap();
      last = pos;
      check_inside(x, size, el);
      if (jscan_int64(el, &a) && json_is_array(j)) {
        json_t *je = json_array_get(j, count);
        if (json_is_integer(je) && json_integer_value(je) != a) __builtin_trap();
      }
      count++;
      if (pos > v.n || count > size) __builtin_trap();
    }
    if (json_is_array(j) && count != json_array_size(j)) __builtin_trap();
  }
  json_decref(j);
  return 0;
}
