/*
 * notifications_req.c — request parsing and reply JSON of the
 * notifications service.
 *
 * Parsing uses jansson with duplicate keys refused (which of two "userId"
 * counts is exactly the ambiguity an attacker looks for). Ids are taken as
 * integers or canonical decimal strings: notification and message ids are
 * 63-bit snowflakes, beyond a JavaScript number, so clients hold them as
 * strings. Replies are built with buf_t: small, fixed shapes.
 */
#include "services/notifications/notifications_internal.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const subjects[NOTIF_OP_COUNT] = {
    [NOTIF_OP_SEND] = "notification.send",   [NOTIF_OP_GET] = "notification.get",
    [NOTIF_OP_READ] = "notification.read",   [NOTIF_OP_MUTE] = "notification.mute",
    [NOTIF_OP_MUTE_GET] = "notification.mute.get", [NOTIF_OP_SENT] = "message.sent",
};

const char *notif_op_subject(notif_op_t op) {
  return (unsigned)op < NOTIF_OP_COUNT ? subjects[op] : "?";
}

/* A positive id: a JSON integer, or a string of 1-19 digits without a
 * leading zero, at most INT64_MAX. 0 when it is neither. */
static int64_t id_value(const json_t *v) {
  if (json_is_integer(v)) {
    json_int_t n = json_integer_value(v);
    return n > 0 ? (int64_t)n : 0;
  }
  if (!json_is_string(v)) return 0;
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  if (n == 0 || n > 19 || s[0] == '0') return 0;
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    x = x * 10 + (uint64_t)(s[i] - '0');
  }
  return x <= INT64_MAX ? (int64_t)x : 0;
}

/* A positive JSON integer field (numbers only: user and channel ids stay
 * below 2^53). */
static int64_t int_field(const json_t *o, const char *name) {
  const json_t *v = json_object_get(o, name);
  if (!json_is_integer(v)) return 0;
  json_int_t n = json_integer_value(v);
  return n > 0 ? (int64_t)n : 0;
}

static const char *parse_send(json_t *o, notif_req_t *r) {
  const json_t *t = json_object_get(o, "type");
  if (!json_is_string(t)) return "type must be a string";
  if (json_string_length(t) > NOTIF_TYPE_MAX || !notif_type_valid(json_string_value(t)))
    return "type must be 1-32 characters of a-z, 0-9, '_', '.', '-'";
  memcpy(r->type, json_string_value(t), json_string_length(t) + 1);
  const json_t *p = json_object_get(o, "payload");
  if (!json_is_object(p)) return "payload must be a JSON object";
  char *text = json_dumps(p, JSON_COMPACT);
  if (!text) return "payload cannot be encoded";
  size_t len = strlen(text);
  if (len > NOTIF_PAYLOAD_MAX) {
    free(text);
    return "payload must encode to at most 4096 bytes of JSON";
  }
  r->payload = text;
  r->payload_len = len;
  return NULL;
}

static const char *parse_read(json_t *o, notif_req_t *r) {
  const json_t *ids = json_object_get(o, "ids");
  if (!ids || json_is_null(ids)) {
    r->all = true;
    return NULL;
  }
  if (!json_is_array(ids)) return "ids must be an array of notification ids";
  size_t n = json_array_size(ids);
  if (n > NOTIF_READ_IDS_MAX) return "ids may hold at most 100 ids";
  for (size_t i = 0; i < n; i++) {
    int64_t id = id_value(json_array_get(ids, i));
    if (!id) return "ids must be positive integers or decimal strings";
    r->ids[r->nids++] = id;
  }
  return NULL;
}

/* {"conversationId":c,"messageId":"m","senderUsername":"s"}: what a
 * client needs to open the conversation at the message. */
static const char *parse_sent(json_t *o, notif_req_t *r) {
  r->channel_id = int_field(o, "conversationId");
  if (!r->channel_id) return "conversationId must be a positive integer";
  int64_t mid = id_value(json_object_get(o, "messageId"));
  if (!mid) return "messageId must be a positive id";
  /* Optional (producers before it existed): lets the service refuse to
   * notify a sender of their own message whatever the conversation. */
  const json_t *sid = json_object_get(o, "senderId");
  if (sid) {
    r->sender_id = int_field(o, "senderId");
    if (!r->sender_id) return "senderId must be a positive integer";
  }
  const json_t *s = json_object_get(o, "senderUsername");
  if (!json_is_string(s) || json_string_length(s) == 0 ||
      json_string_length(s) > NOTIF_SENDER_MAX)
    return "senderUsername must be a string of 1-64 bytes";
  buf_t b = BUF_INIT;
  buf_printf(&b, "{\"conversationId\":%" PRId64 ",\"messageId\":\"%" PRId64 "\",\"senderUsername\":\"",
             r->channel_id, mid);
  buf_append_json_escaped(&b, json_string_value(s), json_string_length(s));
  buf_append_str(&b, "\"}");
  if (b.oom) {
    buf_free(&b);
    return "out of memory";
  }
  r->payload = buf_steal(&b, &r->payload_len);
  return NULL;
}

const char *notif_req_parse(notif_op_t op, const void *data, size_t len, notif_req_t *out) {
  memset(out, 0, sizeof *out);
  out->op = op;
  if (len > NOTIF_REQUEST_MAX) return "request too large";
  if (!data || len == 0) return "the payload must be a JSON object";
  json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_object(o)) {
    json_decref(o);
    return "the payload must be a JSON object";
  }
  const char *err = NULL;
  out->user_id = int_field(o, op == NOTIF_OP_SENT ? "recipientId" : "userId");
  if (!out->user_id) {
    err = op == NOTIF_OP_SENT ? "recipientId must be a positive integer"
                              : "userId must be a positive integer";
    goto done;
  }
  switch (op) {
  case NOTIF_OP_SEND: err = parse_send(o, out); break;
  case NOTIF_OP_GET: break;
  case NOTIF_OP_READ: err = parse_read(o, out); break;
  case NOTIF_OP_MUTE:
  case NOTIF_OP_MUTE_GET:
    out->channel_id = int_field(o, "channelId");
    if (!out->channel_id) {
      err = "channelId must be a positive integer";
      break;
    }
    if (op == NOTIF_OP_MUTE) {
      const json_t *m = json_object_get(o, "muted");
      if (!json_is_boolean(m)) err = "muted must be true or false";
      else out->muted = json_is_true(m);
    }
    break;
  case NOTIF_OP_SENT: err = parse_sent(o, out); break;
  default: err = "unknown operation"; break;
  }
done:
  json_decref(o);
  if (err) {
    free(out->payload);
    out->payload = NULL;
  }
  return err;
}

void notif_req_free(notif_req_t *r) {
  if (!r) return;
  free(r->payload);
  r->payload = NULL;
}

void notif_err_json(buf_t *out, const char *code, const char *message, int status) {
  buf_printf(out, "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
  buf_append_json_escaped(out, message, strlen(message));
  buf_printf(out, "\",\"status\":%d}}", status);
}

/* type is [a-z0-9_.-] and payload a JSON object (checked before storing),
 * so both go in as they are. */
void notif_item_json(buf_t *out, const notif_t *n) {
  buf_printf(out, "{\"id\":\"%" PRId64 "\",\"type\":\"%s\",\"payload\":", n->id, n->type);
  buf_append(out, n->payload, n->payload_len);
  buf_printf(out, ",\"created_at\":%" PRId64 "}", n->created_at);
}

void notif_event_json(buf_t *out, const notif_t *n) {
  buf_append_str(out, "{\"op\":\"notification\",\"notification\":");
  notif_item_json(out, n);
  buf_append_char(out, '}');
}
