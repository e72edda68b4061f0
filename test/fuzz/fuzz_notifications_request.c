/* Fuzzes the notifications service's request parser
 * (services/notifications/notifications_req.c) and the JSON it answers
 * with. Input: one byte choosing the operation (mod the op count), then the
 * payload. Invariants: an accepted request satisfies the store's contract
 * (ids and users positive, type of [a-z0-9_.-] within bounds, payload a
 * compact JSON object within bounds, read ids within bounds); every
 * refusal names its fault; the item, event and error JSON built from an
 * accepted request parse back with the documented keys. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "services/notifications/notifications_internal.h"

#define CHECK(c)       \
  do {                 \
    if (!(c)) abort(); \
  } while (0)

static json_t *parse_obj(const buf_t *b) {
  CHECK(!b->oom);
  json_t *j = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES, NULL);
  CHECK(json_is_object(j));
  return j;
}

static bool type_ok(const char *t) {
  size_t n = strlen(t);
  if (n < 1 || n > NOTIF_TYPE_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = t[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return false;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  notif_op_t op = (notif_op_t)(data[0] % NOTIF_OP_COUNT);
  notif_req_t r;
  const char *fault = notif_req_parse(op, data + 1, size - 1, &r);
  buf_t b = BUF_INIT;
  if (fault) {
    CHECK(*fault != '\0');
    notif_err_json(&b, "bad_request", fault, 400);
    json_t *j = parse_obj(&b);
    CHECK(json_is_object(json_object_get(j, "error")));
    json_decref(j);
    buf_free(&b);
    return 0;
  }
  CHECK(r.op == op);
  CHECK(r.user_id > 0);
  switch (op) {
  case NOTIF_OP_SEND:
  case NOTIF_OP_SENT: {
    /* message.sent's type (dm, mention) is decided later, by the service. */
    if (op == NOTIF_OP_SEND) CHECK(type_ok(r.type));
    CHECK(r.payload && r.payload_len >= 2 && r.payload_len <= NOTIF_PAYLOAD_MAX);
    CHECK(strlen(r.payload) == r.payload_len);
    json_t *p = json_loadb(r.payload, r.payload_len, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(p));
    json_decref(p);
    notif_t n = {.id = 1, .user_id = r.user_id, .created_at = 1,
                 .type = op == NOTIF_OP_SEND ? r.type : "dm",
                 .payload = r.payload, .payload_len = r.payload_len};
    notif_item_json(&b, &n);
    json_t *item = parse_obj(&b);
    CHECK(json_is_string(json_object_get(item, "type")));
    CHECK(json_is_object(json_object_get(item, "payload")));
    json_decref(item);
    buf_free(&b);
    notif_event_json(&b, &n);
    json_t *ev = parse_obj(&b);
    CHECK(json_is_object(json_object_get(ev, "notification")));
    json_decref(ev);
    if (op == NOTIF_OP_SENT) CHECK(r.channel_id > 0);
    break;
  }
  case NOTIF_OP_READ:
    CHECK(!r.all || r.nids == 0); /* ids: [] reads nothing, absent reads all */
    CHECK(r.nids <= NOTIF_READ_IDS_MAX);
    for (size_t i = 0; i < r.nids; i++) CHECK(r.ids[i] > 0);
    break;
  case NOTIF_OP_MUTE:
  case NOTIF_OP_MUTE_GET:
    CHECK(r.channel_id > 0);
    break;
  default:
    break;
  }
  buf_free(&b);
  notif_req_free(&r);
  return 0;
}
