/* Fuzz target: gw_send_scan (services/gateway/gateway_send_scan.c), the
 * scan that takes a client's {"op":"send"} or {"op":"broadcast"} frame
 * without jansson. Any
 * bytes that are valid UTF-8 (the WebSocket layer refuses the rest before
 * the gateway sees a frame): whatever the scan accepts, jansson must parse
 * (duplicates refused, as gw_ws_handle_text does) into an object that
 * the op accepts with the same fields: the same op, the same positive
 * channel_id, body (and a send's non-empty nonce) decoding to the same
 * strings, the same ref, and nothing else; its spans lie inside the input. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "services/gateway/gateway_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(const char *x, size_t size, jscan_val_t v) {
  return v.p >= x && v.n <= size && v.p + v.n <= x + size;
}

static bool same_string(jscan_val_t v, json_t *s) {
  char *out = malloc(v.n ? v.n : 1);
  ssize_t n = jscan_string(v, out);
  bool ok = json_is_string(s) && n >= 0 && (size_t)n == json_string_length(s) &&
            memcmp(out, json_string_value(s), (size_t)n) == 0;
  free(out);
  return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!utf8_valid(data, size)) return 0;
  const char *x = (const char *)data;
  gw_send_frame_t f;
  if (!gw_send_scan(x, size, &f)) return 0;
  json_t *m = json_loadb(x, size, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_object(m)) __builtin_trap();
  const char *op = json_string_value(json_object_get(m, "op"));
  if (!op || strcmp(op, f.broadcast ? "broadcast" : "send") != 0) __builtin_trap();
  json_t *ch = json_object_get(m, "channel_id");
  if (!json_is_integer(ch) || json_integer_value(ch) != f.channel_id || f.channel_id <= 0)
    __builtin_trap();
  if (!inside(x, size, f.body) || !same_string(f.body, json_object_get(m, "body")))
    __builtin_trap();
  json_t *nonce = json_object_get(m, "nonce");
  size_t keys = 3;
  if (f.broadcast) {
    if (nonce || f.nonce.p) __builtin_trap();
  } else {
    keys++;
    if (!inside(x, size, f.nonce) || !same_string(f.nonce, nonce) || json_string_length(nonce) == 0)
      __builtin_trap();
  }
  json_t *ref = json_object_get(m, "ref");
  if (f.ref.p) {
    int64_t r;
    keys++;
    if (!inside(x, size, f.ref)) __builtin_trap();
    if (jscan_int64(f.ref, &r) ? !json_is_integer(ref) || json_integer_value(ref) != r
                               : !same_string(f.ref, ref))
      __builtin_trap();
  } else if (ref) {
    __builtin_trap();
  }
  if (json_object_size(m) != keys) __builtin_trap();
  json_decref(m);
  return 0;
}
