/*
 * messages_validate.c — request payloads to msg_req_t.
 *
 * jansson parses strictly (valid UTF-8 in every string, \u0000 refused since
 * JSON_ALLOW_NUL is not set, duplicate keys refused). Every field of the op
 * is validated here, on the loop, so that the pool and the store only ever
 * see well-formed work; fields of other ops are ignored, like unknown ones.
 * Checks run in a fixed order (identity, then ids, then content), so a
 * request with several faults always gets the same answer.
 */
#include "core/json_object.h"
#include "services/messages/messages_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/utf8.h"

bool msg_username_fold(const char *in, size_t len, char out[USER_NAME_MAX + 1]) {
  if (len < 3 || len > USER_NAME_MAX) return false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-';
    if (!ok) return false;
    out[i] = (char)c;
  }
  out[len] = '\0';
  return true;
}

long msg_utf8_chars(const char *s, size_t len, bool no_controls) {
  const unsigned char *p = (const unsigned char *)s;
  if (len > 0 && !utf8_valid(p, len)) return -1;
  long chars = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = p[i];
    if (no_controls) {
      if (c < 0x20 || c == 0x7f) return -1;
      /* C1 controls U+0080..U+009F are encoded C2 80..C2 9F */
      if (c == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) return -1;
    }
    if ((c & 0xc0) != 0x80) chars++;
  }
  return chars;
}

typedef struct {
  json_t *root;
  const char **detail;
} ctx_t;

static msg_err_t bad(ctx_t *c, const char *detail) {
  *c->detail = detail;
  return MSG_E_BAD_REQUEST;
}

/* A JSON integer field: present (1), absent or null (0), or not an
 * integer (-1). */
static int get_int(ctx_t *c, const char *key, int64_t *out) {
  json_t *v = json_object_get(c->root, key);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_integer(v)) return -1;
  *out = (int64_t)json_integer_value(v);
  return 1;
}

static msg_err_t parse_user(ctx_t *c, msg_req_t *r, bool username_required) {
  int k = get_int(c, "user_id", &r->user_id);
  if (k <= 0 || r->user_id <= 0)
    return bad(c, "user_id is required and must be a positive integer");
  json_t *u = json_object_get(c->root, "username");
  if (!u || json_is_null(u)) {
    return username_required ? bad(c, "username is required and must be a string") : MSG_OK;
  }
  if (!json_is_string(u) ||
      !msg_username_fold(json_string_value(u), json_string_length(u), r->username))
    return bad(c, "username must be the caller's username");
  return MSG_OK;
}

/* channel_id: required; a value no channel can have is not found. */
static msg_err_t parse_channel(ctx_t *c, msg_req_t *r) {
  int k = get_int(c, "channel_id", &r->channel_id);
  if (k <= 0) return bad(c, "channel_id is required and must be an integer");
  if (r->channel_id <= 0) return MSG_E_NOT_FOUND;
  return MSG_OK;
}

/* message_id: an integer, or its decimal string (ids exceed 2^53, which
 * JavaScript numbers cannot hold: replies send them as strings). */
static msg_err_t parse_message_id(ctx_t *c, msg_req_t *r) {
  json_t *v = json_object_get(c->root, "message_id");
  if (json_is_integer(v)) {
    r->message_id = (int64_t)json_integer_value(v);
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    unsigned long long x;
    if (n == 0 || n > 19 || str_to_u64((str_t){s, n}, INT64_MAX, &x) != 0)
      return bad(c, "message_id must be an integer or a decimal string");
    r->message_id = (int64_t)x;
  } else {
    return bad(c, "message_id is required (integer or decimal string)");
  }
  return r->message_id > 0 ? MSG_OK : MSG_E_NOT_FOUND;
}

static msg_err_t parse_limit(ctx_t *c, msg_req_t *r, int def, int max) {
  int64_t v;
  int k = get_int(c, "limit", &v);
  if (k < 0) return bad(c, "limit must be an integer");
  if (k == 0) {
    r->limit = def;
    return MSG_OK;
  }
  if (v < 1 || v > max)
    return bad(c, max == MSG_LIST_MAX ? "limit must be 1-500" : "limit must be 1-100");
  r->limit = (int)v;
  return MSG_OK;
}

/* A non-negative integer cursor, optional. */
static msg_err_t parse_cursor(ctx_t *c, const char *key, bool *has, int64_t *out,
                              const char *detail) {
  int k = get_int(c, key, out);
  if (k < 0 || (k == 1 && *out < 0)) return bad(c, detail);
  *has = k == 1;
  if (!*has) *out = 0;
  return MSG_OK;
}

/* Copies a target username (members.add, dm.open). A string that no
 * account can have is user_not_found: the rules are public. */
static msg_err_t parse_target(ctx_t *c, msg_req_t *r, const char *key, const char *detail) {
  json_t *v = json_object_get(c->root, key);
  if (!json_is_string(v)) return bad(c, detail);
  if (!msg_username_fold(json_string_value(v), json_string_length(v), r->target))
    return MSG_E_USER_NOT_FOUND;
  return MSG_OK;
}

static msg_err_t parse_create(ctx_t *c, msg_req_t *r) {
  json_t *n = json_object_get(c->root, "name");
  if (!json_is_string(n)) return bad(c, "name is required and must be a string");
  const char *name = json_string_value(n);
  size_t nlen = json_string_length(n);
  long chars = msg_utf8_chars(name, nlen, true);
  /* Leading or trailing spaces would make "general " a look-alike of
   * "general" (names are unique byte-wise). */
  if (chars < 1 || chars > MESSAGES_NAME_MAX_CHARS || nlen > MSG_CHANNEL_NAME_MAX ||
      name[0] == ' ' || name[nlen - 1] == ' ') {
    *c->detail = "name must be 1-80 characters without control characters or "
                 "leading/trailing spaces";
    return MSG_E_INVALID_NAME;
  }
  memcpy(r->name, name, nlen);
  r->name[nlen] = '\0';

  json_t *t = json_object_get(c->root, "topic");
  if (t && !json_is_null(t)) {
    if (!json_is_string(t)) return bad(c, "topic must be a string");
    const char *topic = json_string_value(t);
    size_t tlen = json_string_length(t);
    long tc = msg_utf8_chars(topic, tlen, true);
    if (tc < 0 || tc > MESSAGES_TOPIC_MAX_CHARS || tlen > MSG_CHANNEL_TOPIC_MAX) {
      *c->detail = "topic must be at most 250 characters without control characters";
      return MSG_E_INVALID_TOPIC;
    }
    memcpy(r->topic, topic, tlen);
    r->topic[tlen] = '\0';
  }
  json_t *p = json_object_get(c->root, "private");
  if (p && !json_is_null(p)) {
    if (!json_is_boolean(p)) return bad(c, "private must be a boolean");
    r->is_private = json_is_true(p);
  }
  return MSG_OK;
}

static msg_err_t parse_body(ctx_t *c, msg_req_t *r) {
  json_t *b = json_object_get(c->root, "body");
  if (!json_is_string(b)) return bad(c, "body is required and must be a string");
  const char *body = json_string_value(b);
  size_t len = json_string_length(b);
  /* Control characters are allowed (line breaks, tabs): replies escape
   * them. NUL cannot occur (jansson refuses \u0000). */
  long chars = msg_utf8_chars(body, len, false);
  if (chars < 1 || chars > MESSAGES_BODY_MAX_CHARS || len > MSG_BODY_MAX ||
      memchr(body, '\0', len)) {
    *c->detail = "body must be 1-4000 characters of UTF-8";
    return MSG_E_INVALID_BODY;
  }
  r->body = malloc(len + 1);
  if (!r->body) {
    *c->detail = "out of memory";
    return MSG_E_UNAVAILABLE;
  }
  memcpy(r->body, body, len);
  r->body[len] = '\0';
  r->body_len = len;
  return MSG_OK;
}

static msg_err_t parse_nonce(ctx_t *c, msg_req_t *r) {
  json_t *v = json_object_get(c->root, "nonce");
  if (!v || json_is_null(v)) return MSG_OK;
  if (!json_is_string(v)) return bad(c, "nonce must be a string");
  size_t n = json_string_length(v);
  if (n < 1 || n > MSG_NONCE_MAX) return bad(c, "nonce must be 1-64 bytes");
  memcpy(r->nonce, json_string_value(v), n);
  r->nonce[n] = '\0';
  r->nonce_len = n;
  return MSG_OK;
}

/* Attachments become the compact JSON array text the store keeps; an
 * empty array is the same as none. */
static msg_err_t parse_attachments(ctx_t *c, msg_req_t *r) {
  json_t *a = json_object_get(c->root, "attachments");
  if (!a || json_is_null(a)) return MSG_OK;
  static const char *const detail =
      "attachments must be an array of at most 10 media keys (strings of 1-200 bytes "
      "without control characters)";
  if (!json_is_array(a) || json_array_size(a) > MESSAGES_ATTACHMENTS_MAX) {
    *c->detail = detail;
    return MSG_E_INVALID_ATTACHMENTS;
  }
  if (json_array_size(a) == 0) return MSG_OK;
  buf_t b = BUF_INIT;
  buf_append_char(&b, '[');
  size_t i;
  json_t *k;
  json_array_foreach(a, i, k) {
    size_t n = json_is_string(k) ? json_string_length(k) : 0;
    if (n < 1 || n > MESSAGES_ATTACHMENT_KEY_MAX ||
        msg_utf8_chars(json_string_value(k), n, true) < 0) {
      buf_free(&b);
      *c->detail = detail;
      return MSG_E_INVALID_ATTACHMENTS;
    }
    if (i) buf_append_char(&b, ',');
    buf_append_char(&b, '"');
    buf_append_json_escaped(&b, json_string_value(k), n);
    buf_append_char(&b, '"');
  }
  buf_append_char(&b, ']');
  /* Ten keys of 200 bytes, each escaped to at most twice its size, stay
   * far below MSG_ATTACHMENTS_MAX. */
  if (b.oom || b.len > MSG_ATTACHMENTS_MAX) {
    buf_free(&b);
    *c->detail = "out of memory";
    return MSG_E_UNAVAILABLE;
  }
  r->attachments = buf_steal(&b, &r->attachments_len);
  return MSG_OK;
}

/* A send's own fields (the caller's are the request's or the batch's). */
static msg_err_t parse_send(ctx_t *c, msg_req_t *r) {
  msg_err_t e;
  if ((e = parse_channel(c, r))) return e;
  if ((e = parse_body(c, r))) return e;
  if ((e = parse_nonce(c, r))) return e;
  return parse_attachments(c, r);
}

static msg_err_t parse_op(ctx_t *c, msg_op_t op, msg_req_t *r) {
  static const bool needs_username[MSG_OP_COUNT] = {
      [MSG_OP_CHANNEL_JOIN] = true, [MSG_OP_CHANNEL_LEAVE] = true,
      [MSG_OP_DM_OPEN] = true,      [MSG_OP_SEND] = true,
  };
  /* members.add's `username` is the user to add, not the caller's. */
  msg_err_t e = op == MSG_OP_MEMBERS_ADD ? MSG_OK : parse_user(c, r, needs_username[op]);
  if (e) return e;
  if (op == MSG_OP_MEMBERS_ADD) {
    int k = get_int(c, "user_id", &r->user_id);
    if (k <= 0 || r->user_id <= 0)
      return bad(c, "user_id is required and must be a positive integer");
  }
  switch (op) {
  case MSG_OP_CHANNEL_CREATE:
    return parse_create(c, r);
  case MSG_OP_CHANNEL_LIST:
    if ((e = parse_cursor(c, "after", &r->has_after, &r->after,
                          "after must be a non-negative integer")))
      return e;
    return parse_limit(c, r, MESSAGES_LIST_LIMIT_DEFAULT, MSG_LIST_MAX);
  case MSG_OP_CHANNEL_PUBLIC:
    if ((e = parse_cursor(c, "after", &r->has_after, &r->after,
                          "after must be a non-negative integer")))
      return e;
    return parse_limit(c, r, MESSAGES_LIMIT_DEFAULT, MESSAGES_LIMIT_MAX);
  case MSG_OP_CHANNEL_GET:
  case MSG_OP_CHANNEL_JOIN:
  case MSG_OP_CHANNEL_LEAVE:
    return parse_channel(c, r);
  case MSG_OP_MEMBERS_LIST:
    if ((e = parse_channel(c, r))) return e;
    if ((e = parse_cursor(c, "after", &r->has_after, &r->after,
                          "after must be a non-negative integer")))
      return e;
    return parse_limit(c, r, MESSAGES_LIMIT_DEFAULT, MESSAGES_LIMIT_MAX);
  case MSG_OP_MEMBERS_ADD:
    if ((e = parse_channel(c, r))) return e;
    return parse_target(c, r, "username", "username is required and must be a string");
  case MSG_OP_DM_OPEN:
    return parse_target(c, r, "peer", "peer is required and must be a username");
  case MSG_OP_HISTORY:
    if ((e = parse_channel(c, r))) return e;
    if ((e = parse_cursor(c, "before", &r->has_before, &r->before,
                          "before must be a non-negative integer")))
      return e;
    if ((e = parse_cursor(c, "after", &r->has_after, &r->after,
                          "after must be a non-negative integer")))
      return e;
    if (r->has_before && r->has_after) return bad(c, "before and after are exclusive");
    return parse_limit(c, r, MESSAGES_LIMIT_DEFAULT, MESSAGES_LIMIT_MAX);
  case MSG_OP_SEND:
    return parse_send(c, r);
  case MSG_OP_EDIT:
    if ((e = parse_channel(c, r))) return e;
    if ((e = parse_message_id(c, r))) return e;
    return parse_body(c, r);
  case MSG_OP_DELETE:
    if ((e = parse_channel(c, r))) return e;
    return parse_message_id(c, r);
  case MSG_OP_READ: {
    if ((e = parse_channel(c, r))) return e;
    int k = get_int(c, "seq", &r->seq);
    if (k <= 0 || r->seq < 0) return bad(c, "seq is required and must be a non-negative integer");
    return MSG_OK;
  }
  default:
    return bad(c, "unknown operation");
  }
}

msg_err_t msg_req_parse(msg_op_t op, const void *data, size_t len, msg_req_t *out,
                        const char **detail) {
  *detail = NULL;
  if (op == MSG_OP_SEND && msg_send_scan(data, len, out)) return MSG_OK;
  return msg_req_parse_tree(op, data, len, out, detail);
}

msg_err_t msg_req_parse_tree(msg_op_t op, const void *data, size_t len, msg_req_t *out,
                             const char **detail) {
  *detail = NULL;
  memset(out, 0, sizeof *out);
  out->op = op;
  if ((unsigned)op >= MSG_OP_COUNT) {
    *detail = "unknown operation";
    return MSG_E_BAD_REQUEST;
  }
  json_t *root = json_object_load_bounded(data, len, MESSAGES_REQUEST_MAX, detail);
  if (!root) return MSG_E_BAD_REQUEST;
  ctx_t c = {root, detail};
  msg_err_t e = parse_op(&c, op, out);
  json_decref(root);
  if (e == MSG_E_NOT_FOUND || e == MSG_E_USER_NOT_FOUND) *detail = NULL;
  return e;
}

void msg_req_free(msg_req_t *r) {
  free(r->body);
  free(r->attachments);
  r->body = r->attachments = NULL;
  r->body_len = r->attachments_len = 0;
}

/* The caller is the envelope's and nothing in an item can change it: the
 * gateway vouches for user_id and username once per batch. */
msg_err_t msg_batch_parse(const void *data, size_t len, msg_batch_item_t **items, size_t *n,
                          const char **detail) {
  *detail = NULL;
  *items = NULL;
  *n = 0;
  json_t *root = json_object_load_bounded(data, len, MESSAGES_BATCH_REQUEST_MAX, detail);
  if (!root) return MSG_E_BAD_REQUEST;
  ctx_t c = {root, detail};
  msg_req_t caller;
  memset(&caller, 0, sizeof caller);
  msg_err_t e = parse_user(&c, &caller, true);
  json_t *arr = json_object_get(root, "items");
  size_t count = json_array_size(arr);
  if (e == MSG_OK && (!json_is_array(arr) || count < 1 || count > MESSAGES_BATCH_ITEMS_MAX))
    e = bad(&c, "items is required and must be an array of 1-100 sends");
  msg_batch_item_t *out = NULL;
  if (e == MSG_OK && !(out = calloc(count, sizeof *out))) {
    *detail = "out of memory";
    e = MSG_E_UNAVAILABLE;
  }
  if (e != MSG_OK) {
    json_decref(root);
    return e;
  }
  for (size_t i = 0; i < count; i++) {
    msg_batch_item_t *it = &out[i];
    it->req.op = MSG_OP_SEND;
    it->req.user_id = caller.user_id;
    memcpy(it->req.username, caller.username, sizeof it->req.username);
    json_t *v = json_array_get(arr, i);
    if (!json_is_object(v)) {
      it->err = MSG_E_BAD_REQUEST;
      it->detail = "each item must be a JSON object";
      continue;
    }
    ctx_t ic = {v, &it->detail};
    it->err = parse_send(&ic, &it->req);
    if (it->err == MSG_E_NOT_FOUND) it->detail = NULL;
  }
  json_decref(root);
  *items = out;
  *n = count;
  return MSG_OK;
}

void msg_batch_items_free(msg_batch_item_t *items, size_t n) {
  for (size_t i = 0; items && i < n; i++) msg_req_free(&items[i].req);
  free(items);
}
