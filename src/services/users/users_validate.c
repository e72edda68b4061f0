/*
 * users_validate.c — request payloads to users_req_t.
 *
 * jansson parses (strict JSON, valid UTF-8 guaranteed for strings, \u0000
 * refused because JSON_ALLOW_NUL is not set: a password can never hide a
 * NUL from code that treats it as a C string). Only the fields of the op
 * are looked at; everything is validated here, on the loop, so the thread
 * pool only ever sees well-formed work.
 */
#include "core/json_object.h"
#include "services/users/users_internal.h"

#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "core/utf8.h"

bool users_username_fold(const char *in, size_t len, char out[USER_NAME_MAX + 1]) {
  if (len < USERS_USERNAME_MIN || len > USER_NAME_MAX) return false;
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

bool users_display_name_valid(const char *s, size_t len) {
  if (len == 0 || len > USER_DISPLAY_MAX) return false;
  const unsigned char *p = (const unsigned char *)s;
  /* jansson already guarantees UTF-8 for parsed strings; checking again
   * keeps this function honest for any caller. */
  if (!utf8_valid(p, len)) return false;
  size_t chars = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = p[i];
    if (c < 0x20 || c == 0x7f) return false;
    /* C1 controls U+0080..U+009F are encoded C2 80..C2 9F */
    if (c == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) return false;
    if ((c & 0xc0) != 0x80) chars++;
  }
  return chars <= USERS_DISPLAY_MAX_CHARS;
}

/* Field access with the error each op wants. */
typedef struct {
  json_t *root;
  const char **detail;
} ctx_t;

/* Returns the string field, NULL if missing or not a string (detail set). */
static const char *get_string(ctx_t *c, const char *key, size_t *len, const char *detail) {
  json_t *v = json_object_get(c->root, key);
  if (!json_is_string(v)) {
    *c->detail = detail;
    return NULL;
  }
  *len = json_string_length(v);
  return json_string_value(v);
}

static users_err_t parse_register(ctx_t *c, users_req_t *r) {
  size_t ulen, plen, dlen;
  const char *u = get_string(c, "username", &ulen, "username is required and must be a string");
  if (!u) return USERS_E_BAD_REQUEST;
  const char *p = get_string(c, "password", &plen, "password is required and must be a string");
  if (!p) return USERS_E_BAD_REQUEST;
  json_t *dv = json_object_get(c->root, "display_name");
  const char *d = NULL;
  if (dv && !json_is_null(dv)) {
    if (!json_is_string(dv)) {
      *c->detail = "display_name must be a string";
      return USERS_E_BAD_REQUEST;
    }
    d = json_string_value(dv);
    dlen = json_string_length(dv);
  }
  if (!users_username_fold(u, ulen, r->username)) return USERS_E_INVALID_USERNAME;
  if (plen < USERS_PASSWORD_MIN || plen > USERS_PASSWORD_MAX) return USERS_E_INVALID_PASSWORD;
  memcpy(r->password, p, plen);
  r->password[plen] = '\0';
  r->password_len = plen;
  if (d) {
    if (!users_display_name_valid(d, dlen)) return USERS_E_INVALID_DISPLAY_NAME;
    memcpy(r->display_name, d, dlen);
    r->display_name[dlen] = '\0';
  } else {
    memcpy(r->display_name, r->username, strlen(r->username) + 1);
  }
  return USERS_OK;
}

static users_err_t parse_login(ctx_t *c, users_req_t *r) {
  size_t ulen, plen;
  const char *u = get_string(c, "username", &ulen, "username is required and must be a string");
  if (!u) return USERS_E_BAD_REQUEST;
  const char *p = get_string(c, "password", &plen, "password is required and must be a string");
  if (!p) return USERS_E_BAD_REQUEST;
  if (!users_username_fold(u, ulen, r->username) || plen < USERS_PASSWORD_MIN ||
      plen > USERS_PASSWORD_MAX)
    return USERS_E_INVALID_CREDENTIALS;
  memcpy(r->password, p, plen);
  r->password[plen] = '\0';
  r->password_len = plen;
  return USERS_OK;
}

static users_err_t parse_token(ctx_t *c, users_req_t *r, users_err_t malformed) {
  size_t len;
  const char *t = get_string(c, "refresh_token", &len,
                             "refresh_token is required and must be a string");
  if (!t) return USERS_E_BAD_REQUEST;
  if (users_refresh_decode(t, len, r->refresh) < 0) {
    if (malformed == USERS_E_BAD_REQUEST) *c->detail = "refresh_token is malformed";
    return malformed;
  }
  return USERS_OK;
}

static users_err_t parse_get(ctx_t *c, users_req_t *r) {
  json_t *id = json_object_get(c->root, "id");
  json_t *name = json_object_get(c->root, "username");
  if ((id != NULL) == (name != NULL)) {
    *c->detail = "exactly one of id (integer) and username (string) is required";
    return USERS_E_BAD_REQUEST;
  }
  if (id) {
    if (!json_is_integer(id)) {
      *c->detail = "id must be an integer";
      return USERS_E_BAD_REQUEST;
    }
    r->by_id = true;
    r->id = (int64_t)json_integer_value(id);
    return r->id > 0 ? USERS_OK : USERS_E_NOT_FOUND; /* ids start at 1 */
  }
  if (!json_is_string(name)) {
    *c->detail = "username must be a string";
    return USERS_E_BAD_REQUEST;
  }
  r->by_id = false;
  if (!users_username_fold(json_string_value(name), json_string_length(name), r->username))
    return USERS_E_NOT_FOUND;
  return USERS_OK;
}

users_err_t users_req_parse(users_op_t op, const void *data, size_t len, users_req_t *out,
                            const char **detail) {
  *detail = NULL;
  memset(out, 0, sizeof *out);
  out->op = op;
  json_t *root = json_object_load_bounded(data, len, USERS_REQUEST_MAX, detail);
  if (!root) return USERS_E_BAD_REQUEST;
  ctx_t c = {root, detail};
  users_err_t e;
  switch (op) {
  case USERS_OP_REGISTER: e = parse_register(&c, out); break;
  case USERS_OP_LOGIN: e = parse_login(&c, out); break;
  case USERS_OP_REFRESH: e = parse_token(&c, out, USERS_E_INVALID_REFRESH); break;
  case USERS_OP_LOGOUT: e = parse_token(&c, out, USERS_E_BAD_REQUEST); break;
  case USERS_OP_GET: e = parse_get(&c, out); break;
  default:
    *detail = "unknown operation";
    e = USERS_E_BAD_REQUEST;
    break;
  }
  /* jansson frees without wiping; the password also sits in the bus's
   * message copy. Both are short-lived heap blocks: accepted. */
  json_decref(root);
  if (e != USERS_E_BAD_REQUEST) *detail = NULL;
  return e;
}
