/* Fuzzes the users service's request parser and validator
 * (services/users/users_validate.c) and the JSON it answers with.
 * Input: one byte choosing the operation (mod the op count), then the
 * payload. Invariants: a request accepted as valid satisfies every rule
 * (re-validating its fields succeeds, lengths within bounds); bad_request
 * and only bad_request carries a detail; every error reply and every user
 * object built from accepted fields is valid JSON of the documented shape. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "services/users/users_internal.h"

#define CHECK(c) \
  do {           \
    if (!(c)) abort(); \
  } while (0)

static void check_json(const buf_t *b, const char *key) {
  CHECK(!b->oom);
  json_t *j = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES, NULL);
  CHECK(json_is_object(j));
  CHECK(json_object_get(j, key) != NULL);
  json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  users_op_t op = (users_op_t)(data[0] % USERS_OP_COUNT);
  users_req_t r;
  const char *detail = (const char *)1;
  users_err_t e = users_req_parse(op, data + 1, size - 1, &r, &detail);
  CHECK((unsigned)e < USERS_E_COUNT);
  CHECK((e == USERS_E_BAD_REQUEST) == (detail != NULL));
  CHECK(r.op == op);

  buf_t b = BUF_INIT;
  if (e != USERS_OK) {
    users_err_json(e, detail, &b);
    check_json(&b, "error");
    CHECK(users_err_status(e) >= 400);
    buf_free(&b);
    return 0;
  }
  char again[USER_NAME_MAX + 1];
  switch (op) {
  case USERS_OP_REGISTER:
    CHECK(users_display_name_valid(r.display_name, strlen(r.display_name)));
    /* fall through */
  case USERS_OP_LOGIN:
    CHECK(users_username_fold(r.username, strlen(r.username), again));
    CHECK(strcmp(again, r.username) == 0); /* folding is idempotent */
    CHECK(r.password_len >= USERS_PASSWORD_MIN && r.password_len <= USERS_PASSWORD_MAX);
    CHECK(strlen(r.password) == r.password_len); /* no NUL can hide inside */
    break;
  case USERS_OP_GET:
    if (r.by_id) CHECK(r.id > 0);
    else CHECK(users_username_fold(r.username, strlen(r.username), again));
    break;
  default:
    break;
  }
  if (op == USERS_OP_REGISTER) {
    user_rec_t u;
    memset(&u, 0, sizeof u);
    u.id = 1;
    memcpy(u.username, r.username, sizeof u.username);
    memcpy(u.display_name, r.display_name, sizeof u.display_name);
    users_user_json(&u, &b);
    check_json(&b, "display_name");
    buf_free(&b);
  }
  return 0;
}
