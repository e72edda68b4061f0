/*
 * messages_send_scan.c — the hot path of msg_req_parse: a messages.send as
 * the gateway writes it, read by a scan (core/json_scan.h) instead of a
 * jansson tree. At 45,000 sends/s the tree was an eighth of the loop.
 *
 * It accepts only what it can decide alone, and then exactly as the tree
 * path would: the members user_id, username, channel_id, body and
 * optionally nonce, each once, keys written without escapes, every value
 * valid. Anything else (attachments, an unknown or repeated key, a null, any
 * fault) makes it give up without a word, and the tree path (messages_
 * validate.c) reads the request and words the answer. The fuzz target
 * fuzz_messages_request checks that both agree on every input this one
 * accepts.
 */
#include "services/messages/messages_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"

/* The members, each a bit of `seen`. */
enum { F_USER, F_NAME, F_CHAN, F_BODY, F_NONCE, F_COUNT };
static const char *const keys[F_COUNT] = {"user_id", "username", "channel_id", "body", "nonce"};
#define F_REQUIRED (1u << F_USER | 1u << F_NAME | 1u << F_CHAN | 1u << F_BODY)

/* The longest raw text that can still decode within max bytes: an escape
 * takes at most 6 bytes for 1. */
static bool raw_fits(jscan_val_t v, size_t max) {
  return v.type == JSCAN_STRING && v.n - 2 <= 6 * max;
}

static bool read_small(jscan_val_t v, char *out, size_t min, size_t max, size_t *n) {
  char tmp[6 * (MSG_NONCE_MAX > USER_NAME_MAX ? MSG_NONCE_MAX : USER_NAME_MAX)];
  if (!raw_fits(v, max) || v.n - 2 > sizeof tmp) return false;
  ssize_t k = jscan_string(v, tmp);
  if (k < (ssize_t)min || k > (ssize_t)max) return false;
  memcpy(out, tmp, (size_t)k);
  *n = (size_t)k;
  return true;
}

bool msg_send_scan(const void *data, size_t len, msg_req_t *r) {
  memset(r, 0, sizeof *r);
  r->op = MSG_OP_SEND;
  jscan_val_t o, k, v, body = {0};
  if (len > MESSAGES_REQUEST_MAX || !jscan_parse(data, len, &o) || o.type != JSCAN_OBJECT)
    return false;
  unsigned seen = 0;
  size_t pos = 0, n;
  char name[USER_NAME_MAX];
  while (jscan_next_member(o, &pos, &k, &v)) {
    int f = jscan_key_index(k, keys, F_COUNT);
    if (f < 0 || (seen & 1u << f)) return false;
    seen |= 1u << f;
    bool ok = true;
    switch (f) {
    case F_USER:
      ok = jscan_int64(v, &r->user_id) && r->user_id > 0;
      break;
    case F_NAME:
      ok = read_small(v, name, 0, USER_NAME_MAX, &n) && msg_username_fold(name, n, r->username);
      break;
    case F_CHAN:
      ok = jscan_int64(v, &r->channel_id) && r->channel_id > 0;
      break;
    case F_BODY:
      body = v;
      ok = raw_fits(v, MSG_BODY_MAX);
      break;
    case F_NONCE:
      ok = read_small(v, r->nonce, 1, MSG_NONCE_MAX, &r->nonce_len);
      break;
    }
    if (!ok) return false;
  }
  if ((seen & F_REQUIRED) != F_REQUIRED) return false;
  char *b = malloc(body.n); /* the decoded text is shorter than the raw one */
  if (!b) return false;
  ssize_t bn = jscan_string(body, b);
  long chars = bn >= 0 ? msg_utf8_chars(b, (size_t)bn, false) : -1;
  if (chars < 1 || chars > MESSAGES_BODY_MAX_CHARS || bn > MSG_BODY_MAX) {
    free(b);
    return false;
  }
  b[bn] = '\0';
  r->body = b;
  r->body_len = (size_t)bn;
  return true;
}
