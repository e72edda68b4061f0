/*
 * users_reply.c — the JSON the users service answers with.
 *
 * Built with buf_t rather than jansson: replies are small and fixed in
 * shape, and the strings that go in (username, display name, tokens) are
 * already known to be valid UTF-8 and are escaped by buf_append_json_escaped.
 * Error replies are fixed per code so that failures that must not be told
 * apart produce identical bytes.
 */
#include "services/users/users_internal.h"

#include <inttypes.h>
#include <string.h>

static const struct {
  const char *code;
  int status;
  const char *message;
} errs[USERS_E_COUNT] = {
    [USERS_OK] = {"ok", 200, "ok"},
    [USERS_E_BAD_REQUEST] = {"bad_request", 400, "malformed request"},
    [USERS_E_INVALID_USERNAME] = {"invalid_username", 400,
                                  "username must be 3-32 characters of a-z, 0-9, '_', '.', '-'"},
    [USERS_E_INVALID_PASSWORD] = {"invalid_password", 400, "password must be 8-256 bytes"},
    [USERS_E_INVALID_DISPLAY_NAME] = {"invalid_display_name", 400,
                                      "display_name must be 1-64 characters of UTF-8 without "
                                      "control characters"},
    [USERS_E_INVALID_CREDENTIALS] = {"invalid_credentials", 401, "invalid username or password"},
    [USERS_E_INVALID_REFRESH] = {"invalid_refresh_token", 401,
                                 "refresh token is invalid, expired or revoked"},
    [USERS_E_REFRESH_REUSED] = {"refresh_token_reused", 401,
                                "refresh token was already used; the session has been revoked"},
    [USERS_E_NOT_FOUND] = {"user_not_found", 404, "user not found"},
    [USERS_E_USERNAME_TAKEN] = {"username_taken", 409, "username is already taken"},
    [USERS_E_OVERLOADED] = {"overloaded", 503, "too many password operations, retry later"},
    [USERS_E_UNAVAILABLE] = {"unavailable", 503, "service temporarily unavailable"},
};

static const char *const op_names[USERS_OP_COUNT] = {
    [USERS_OP_REGISTER] = "register", [USERS_OP_LOGIN] = "login",
    [USERS_OP_REFRESH] = "refresh",   [USERS_OP_LOGOUT] = "logout",
    [USERS_OP_GET] = "get",
};

const char *users_op_name(users_op_t op) {
  return (unsigned)op < USERS_OP_COUNT ? op_names[op] : "unknown";
}

const char *users_err_code(users_err_t e) {
  return (unsigned)e < USERS_E_COUNT ? errs[e].code : "unavailable";
}

int users_err_status(users_err_t e) {
  return (unsigned)e < USERS_E_COUNT ? errs[e].status : 503;
}

void users_err_json(users_err_t e, const char *detail, buf_t *out) {
  if ((unsigned)e >= USERS_E_COUNT || e == USERS_OK) e = USERS_E_UNAVAILABLE;
  const char *msg = detail ? detail : errs[e].message;
  buf_printf(out, "{\"error\":{\"code\":\"%s\",\"message\":\"", errs[e].code);
  buf_append_json_escaped(out, msg, strlen(msg));
  buf_printf(out, "\",\"status\":%d}}", errs[e].status);
}

void users_user_json(const user_rec_t *u, buf_t *out) {
  buf_printf(out, "{\"id\":%" PRId64 ",\"username\":\"", u->id);
  buf_append_json_escaped(out, u->username, strnlen(u->username, sizeof u->username));
  buf_append_str(out, "\",\"display_name\":\"");
  buf_append_json_escaped(out, u->display_name, strnlen(u->display_name, sizeof u->display_name));
  buf_printf(out, "\",\"created_at\":%" PRId64 "}", u->created_at);
}

void users_session_json(const users_session_t *s, int64_t access_ttl_s, const user_rec_t *u,
                        buf_t *out) {
  /* tokens are base64url and dots: nothing to escape */
  buf_printf(out,
             "{\"access_token\":\"%s\",\"refresh_token\":\"%s\",\"token_type\":\"Bearer\","
             "\"expires_in\":%" PRId64 ",\"user\":",
             s->access, s->refresh, access_ttl_s);
  users_user_json(u, out);
  buf_append_char(out, '}');
}
