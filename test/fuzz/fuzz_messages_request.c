/* Fuzzes the messages service's request parser and validator
 * (services/messages/messages_validate.c), the mention scanner and the
 * JSON the service builds from accepted fields (messages_reply.c).
 * Input: one byte choosing the operation (mod the op count), then the
 * payload. Invariants: a request accepted as valid satisfies every rule of
 * its op (lengths, character counts, ranges, exclusive cursors); a
 * bad_request always carries a detail, a 404 never does; every error reply,
 * and every channel and message object built from accepted fields, is
 * valid JSON of the documented shape; mentions are distinct valid
 * usernames, at most the maximum asked for. For messages.send, whatever
 * the hot-path scan (messages_send_scan.c) accepts, the jansson tree
 * accepts too, with the same fields. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "services/messages/messages_internal.h"

#define CHECK(c)       \
  do {                 \
    if (!(c)) abort(); \
  } while (0)

static json_t *check_json(const buf_t *b) {
  CHECK(!b->oom);
  json_t *j = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES, NULL);
  CHECK(json_is_object(j));
  return j;
}

static bool valid_username(const char *s) {
  char again[USER_NAME_MAX + 1];
  return msg_username_fold(s, strlen(s), again) && strcmp(again, s) == 0;
}

static void check_channel(const msg_req_t *r) {
  CHECK(strlen(r->name) > 0);
  long n = msg_utf8_chars(r->name, strlen(r->name), true);
  CHECK(n >= 1 && n <= MESSAGES_NAME_MAX_CHARS);
  long t = msg_utf8_chars(r->topic, strlen(r->topic), true);
  CHECK(t >= 0 && t <= MESSAGES_TOPIC_MAX_CHARS);
  channel_rec_t c;
  memset(&c, 0, sizeof c);
  c.id = 1;
  memcpy(c.name, r->name, sizeof r->name);
  memcpy(c.topic, r->topic, sizeof r->topic);
  c.owner_id = r->user_id;
  member_rec_t m = {.channel_id = 1, .user_id = r->user_id, .last_read_seq = 0};
  buf_t b = BUF_INIT;
  msg_channel_json(&c, r->user_id, NULL, &m, &b);
  json_t *j = check_json(&b);
  CHECK(strcmp(json_string_value(json_object_get(j, "name")), r->name) == 0);
  CHECK(strcmp(json_string_value(json_object_get(j, "topic")), r->topic) == 0);
  json_decref(j);
  buf_free(&b);
}

static void check_body(const msg_req_t *r, bool send) {
  CHECK(r->body && r->body_len <= MSG_BODY_MAX && strlen(r->body) == r->body_len);
  long n = msg_utf8_chars(r->body, r->body_len, false);
  CHECK(n >= 1 && n <= MESSAGES_BODY_MAX_CHARS);
  if (!send) return;
  CHECK(r->nonce_len <= MSG_NONCE_MAX && strlen(r->nonce) == r->nonce_len);
  if (r->attachments) {
    json_t *a = json_loadb(r->attachments, r->attachments_len, 0, NULL);
    CHECK(json_is_array(a));
    CHECK(json_array_size(a) >= 1 && json_array_size(a) <= MESSAGES_ATTACHMENTS_MAX);
    json_decref(a);
  }
  msg_rec_t m = {
      .id = INT64_MAX,
      .channel_id = r->channel_id,
      .seq = 1,
      .author_id = r->user_id,
      .body = {r->body, r->body_len},
      .attachments = {r->attachments, r->attachments_len},
      .nonce = {r->nonce_len ? r->nonce : NULL, r->nonce_len},
      .created_at = 1,
  };
  buf_t b = BUF_INIT;
  msg_message_json(&m, r->username[0] ? r->username : NULL, true, &b);
  json_t *j = check_json(&b);
  json_t *body = json_object_get(j, "body");
  CHECK(json_string_length(body) == r->body_len);
  CHECK(memcmp(json_string_value(body), r->body, r->body_len) == 0);
  CHECK(json_is_array(json_object_get(j, "attachments")) == (r->attachments != NULL));
  json_decref(j);
  buf_free(&b);

  char names[MESSAGES_MENTIONS_MAX][USER_NAME_MAX + 1];
  size_t k = msg_mentions(r->body, r->body_len, names, 3);
  CHECK(k <= 3);
  for (size_t i = 0; i < k; i++) {
    CHECK(valid_username(names[i]));
    for (size_t x = 0; x < i; x++) CHECK(strcmp(names[x], names[i]) != 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  msg_op_t op = (msg_op_t)(data[0] % MSG_OP_COUNT);
  if (op == MSG_OP_SEND_BATCH) {
    /* Batches: every accepted item satisfies messages.send's rules; a
     * refused item has its own error, with a detail when it is a 400. */
    msg_batch_item_t *items = NULL;
    size_t n = 0;
    const char *bdetail = NULL;
    msg_err_t be = msg_batch_parse(data + 1, size - 1, &items, &n, &bdetail);
    CHECK((unsigned)be < MSG_E_COUNT);
    if (be != MSG_OK) {
      CHECK(items == NULL && n == 0);
      if (be == MSG_E_BAD_REQUEST) CHECK(bdetail != NULL);
      return 0;
    }
    CHECK(n >= 1 && n <= MESSAGES_BATCH_ITEMS_MAX);
    for (size_t i = 0; i < n; i++) {
      CHECK((unsigned)items[i].err < MSG_E_COUNT);
      if (items[i].err == MSG_OK) check_body(&items[i].req, true);
      else if (items[i].err == MSG_E_BAD_REQUEST) CHECK(items[i].detail != NULL);
    }
    msg_batch_items_free(items, n);
    return 0;
  }
  if (op == MSG_OP_SEND) {
    /* The scan (hot path) and the tree agree on whatever the scan takes. */
    msg_req_t fast, slow;
    const char *d2 = NULL;
    if (msg_send_scan(data + 1, size - 1, &fast)) {
      CHECK(msg_req_parse_tree(op, data + 1, size - 1, &slow, &d2) == MSG_OK);
      CHECK(fast.user_id == slow.user_id && fast.channel_id == slow.channel_id);
      CHECK(strcmp(fast.username, slow.username) == 0);
      CHECK(fast.body_len == slow.body_len && memcmp(fast.body, slow.body, fast.body_len) == 0);
      CHECK(fast.nonce_len == slow.nonce_len && memcmp(fast.nonce, slow.nonce, fast.nonce_len) == 0);
      CHECK(!fast.attachments && !slow.attachments);
      msg_req_free(&slow);
    } else {
      CHECK(!fast.body && !fast.attachments);
    }
    msg_req_free(&fast);
  }
  msg_req_t r;
  const char *detail = (const char *)1;
  msg_err_t e = msg_req_parse(op, data + 1, size - 1, &r, &detail);
  CHECK((unsigned)e < MSG_E_COUNT);
  CHECK(r.op == op);
  if (e == MSG_E_BAD_REQUEST) CHECK(detail != NULL);
  if (e == MSG_E_NOT_FOUND || e == MSG_E_USER_NOT_FOUND) CHECK(detail == NULL);

  /* the raw bytes as a body: the scanner takes any input */
  char names[MESSAGES_MENTIONS_MAX][USER_NAME_MAX + 1];
  size_t k = msg_mentions((const char *)data + 1, size - 1, names, MESSAGES_MENTIONS_MAX);
  CHECK(k <= MESSAGES_MENTIONS_MAX);
  for (size_t i = 0; i < k; i++) CHECK(valid_username(names[i]));

  buf_t b = BUF_INIT;
  if (e != MSG_OK) {
    msg_err_json(e, detail, &b);
    json_t *j = check_json(&b);
    json_t *err = json_object_get(j, "error");
    CHECK(json_is_string(json_object_get(err, "code")));
    CHECK(json_integer_value(json_object_get(err, "status")) == msg_err_status(e));
    CHECK(msg_err_status(e) >= 400);
    json_decref(j);
    buf_free(&b);
    msg_req_free(&r);
    return 0;
  }
  CHECK(r.user_id > 0);
  CHECK(r.username[0] == '\0' || valid_username(r.username));
  CHECK(!(r.has_before && r.has_after));
  CHECK(r.before >= 0 && r.after >= 0);
  switch (op) {
  case MSG_OP_CHANNEL_CREATE: check_channel(&r); break;
  case MSG_OP_CHANNEL_LIST: CHECK(r.limit >= 1 && r.limit <= MSG_LIST_MAX); break;
  case MSG_OP_CHANNEL_PUBLIC:
  case MSG_OP_MEMBERS_LIST:
  case MSG_OP_HISTORY: CHECK(r.limit >= 1 && r.limit <= MESSAGES_LIMIT_MAX); break;
  case MSG_OP_MEMBERS_ADD:
  case MSG_OP_DM_OPEN: CHECK(valid_username(r.target)); break;
  case MSG_OP_SEND:
    CHECK(r.username[0] != '\0');
    check_body(&r, true);
    break;
  case MSG_OP_EDIT:
    CHECK(r.message_id > 0);
    check_body(&r, false);
    break;
  case MSG_OP_DELETE: CHECK(r.message_id > 0); break;
  case MSG_OP_READ: CHECK(r.seq >= 0); break;
  default: break;
  }
  if (op != MSG_OP_CHANNEL_CREATE && op != MSG_OP_CHANNEL_LIST && op != MSG_OP_CHANNEL_PUBLIC &&
      op != MSG_OP_DM_OPEN)
    CHECK(r.channel_id > 0);
  msg_req_free(&r);
  return 0;
}
