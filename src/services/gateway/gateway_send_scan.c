/*
 * gateway_send_scan.c — the hot path of a client's frame: {"op":"send"}
 * and {"op":"broadcast"} read by a scan (core/json_scan.h) instead of a
 * jansson tree, which was an eighth of the gateway loop at 45,000 sends/s.
 *
 * It takes only frames it can decide alone, and then exactly as the tree
 * path would: the members op, channel_id, body, nonce (a send's, required;
 * a broadcast has none) and optionally ref (a string or an integer), each
 * once, keys written without escapes, values of the types op_send and
 * op_broadcast check (a broadcast body's length is checked by the op). Anything else gives up without a
 * word and gw_ws_handle_text parses the frame with jansson, which words
 * any error. Strings are checked as jansson checks them (escapes, \u0000,
 * lone surrogates; the WebSocket layer already refused text that is not
 * UTF-8), so the raw body and nonce can be copied into the request as they
 * are: they are valid JSON strings. fuzz_gateway_send checks the agreement
 * with jansson on every input this accepts.
 */
#include "services/gateway/gateway_internal.h"

#include <string.h>

/* The members, each a bit of `seen`. */
enum { F_OP, F_REF, F_CHAN, F_BODY, F_NONCE, F_COUNT };
static const char *const keys[F_COUNT] = {"op", "ref", "channel_id", "body", "nonce"};
#define F_BROADCAST (1u << F_OP | 1u << F_CHAN | 1u << F_BODY)
#define F_SEND (F_BROADCAST | 1u << F_NONCE)

bool gw_send_scan(const char *data, size_t len, gw_send_frame_t *out) {
  memset(out, 0, sizeof *out);
  jscan_val_t o, k, v;
  if (!jscan_parse(data, len, &o) || o.type != JSCAN_OBJECT) return false;
  unsigned seen = 0;
  size_t pos = 0;
  int64_t x;
  while (jscan_next_member(o, &pos, &k, &v)) {
    int f = jscan_key_index(k, keys, F_COUNT);
    if (f < 0 || (seen & 1u << f)) return false;
    seen |= 1u << f;
    bool ok;
    switch (f) {
    case F_OP:
      out->broadcast = jscan_str_eq(v, "broadcast");
      ok = out->broadcast || jscan_str_eq(v, "send");
      break;
    case F_REF:
      ok = (v.type == JSCAN_STRING && jscan_string(v, NULL) >= 0) || jscan_int64(v, &x);
      out->ref = v;
      break;
    case F_CHAN:
      ok = jscan_int64(v, &out->channel_id) && out->channel_id > 0;
      break;
    case F_BODY:
      ok = jscan_string(v, NULL) >= 0;
      out->body = v;
      break;
    default: /* F_NONCE */
      ok = jscan_string(v, NULL) > 0;
      out->nonce = v;
      break;
    }
    if (!ok) return false;
  }
  unsigned want = out->broadcast ? F_BROADCAST : F_SEND;
  return (seen & ~(1u << F_REF)) == want;
}
