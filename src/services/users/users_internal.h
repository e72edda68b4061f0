/*
 * users_internal.h — what the users service's files share; not a public API
 * (the service is reached over the bus only; see users_service.h).
 *
 * users_validate.c turns a request payload into a users_req_t (on the loop:
 * parsing is cheap and bounded by USERS_REQUEST_MAX) or into a users_err_t.
 * users_tokens.c makes access and refresh tokens and users_reply.c the JSON
 * replies; both are pure computation and run on the thread pool.
 * users_service.c owns the subscriptions, the hash queue and the jobs.
 *
 * Threads: everything here is safe from any thread (no shared mutable state;
 * libsodium's randombytes and jwt_sign are thread-safe).
 */
#ifndef STORM_SERVICES_USERS_INTERNAL_H
#define STORM_SERVICES_USERS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"
#include "core/buf.h"
#include "store/users_store.h"

typedef enum {
  USERS_OP_REGISTER,
  USERS_OP_LOGIN,
  USERS_OP_REFRESH,
  USERS_OP_LOGOUT,
  USERS_OP_GET,
  USERS_OP_COUNT
} users_op_t;

/* Reply errors: each has a fixed code, status and message (users_err_*),
 * so two failures that must look alike (unknown user, wrong password) give
 * byte-identical replies. */
typedef enum {
  USERS_OK = 0,
  USERS_E_BAD_REQUEST,          /* 400: not JSON, not an object, wrong type, missing field */
  USERS_E_INVALID_USERNAME,     /* 400 */
  USERS_E_INVALID_PASSWORD,     /* 400 */
  USERS_E_INVALID_DISPLAY_NAME, /* 400 */
  USERS_E_INVALID_CREDENTIALS,  /* 401: unknown user or wrong password, indistinguishable */
  USERS_E_INVALID_REFRESH,      /* 401: malformed, unknown, expired or revoked refresh token */
  USERS_E_REFRESH_REUSED,       /* 401: a rotated token came back; its family is now revoked */
  USERS_E_NOT_FOUND,            /* 404 */
  USERS_E_USERNAME_TAKEN,       /* 409 */
  USERS_E_OVERLOADED,           /* 503: hash queue full */
  USERS_E_UNAVAILABLE,          /* 503: store failure, out of memory, shutting down */
  USERS_E_COUNT
} users_err_t;

#define USERS_USERNAME_MIN 3
#define USERS_PASSWORD_MIN 8
#define USERS_PASSWORD_MAX 256        /* bytes: bounds what one hash reads */
#define USERS_DISPLAY_MAX_CHARS 64    /* code points; USER_DISPLAY_MAX bytes always suffice */
/* Largest payload parsed. The longest valid request (a 256-byte password
 * written entirely as \uXXXX escapes plus a 64-character display name of
 * surrogate pairs) is under 3 KiB; the bound keeps the loop's parse time
 * and memory small whatever a client sends. */
#define USERS_REQUEST_MAX 8192

#define USERS_REFRESH_BYTES 32        /* 256 bits from randombytes_buf */
#define USERS_REFRESH_B64 43          /* its base64url length, no padding */
#define USERS_FAMILY_BYTES 16
#define USERS_JTI_BYTES 16

/* A parsed, validated request. Holds the password and a bearer token:
 * wipe it (sodium_memzero) before freeing. */
typedef struct {
  users_op_t op;
  char username[USER_NAME_MAX + 1];          /* lower-case; register, login, get by name */
  char password[USERS_PASSWORD_MAX + 1];     /* register, login */
  size_t password_len;
  char display_name[USER_DISPLAY_MAX + 1];   /* register; = username when absent */
  bool by_id;                                /* get: id (true) or username */
  int64_t id;
  uint8_t refresh[USERS_REFRESH_BYTES];      /* refresh, logout: the decoded token */
} users_req_t;

/* Parses data[0..len) as the request of op and validates every field.
 * Returns USERS_OK and fills out, or the error to reply with; *detail then
 * names the offending field for USERS_E_BAD_REQUEST (a static string, used
 * as the message) and is NULL otherwise. Mapping of invalid input per op:
 * - register: each field's own invalid_* code;
 * - login: a username or password that no account can have is
 *   invalid_credentials, answered without touching the store (it reveals
 *   nothing: the rules are public);
 * - refresh: a malformed token is invalid_refresh_token; logout: bad_request;
 * - get: a username no account can have is user_not_found.
 * Unknown fields are ignored (forward compatibility); duplicate keys are
 * bad_request (which one would count is exactly the ambiguity an attacker
 * looks for); "display_name": null means absent. */
users_err_t users_req_parse(users_op_t op, const void *data, size_t len, users_req_t *out,
                            const char **detail);

/* ASCII-folds in[0..len) into out and checks the username rules (3-32 of
 * [a-z0-9_.-]). Returns false if they do not hold (out is then unspecified). */
bool users_username_fold(const char *in, size_t len, char out[USER_NAME_MAX + 1]);

/* 1..64 code points of valid UTF-8, no C0/C1 control characters or DEL. */
bool users_display_name_valid(const char *s, size_t len);

/* "register", "login", ... (metrics label). */
const char *users_op_name(users_op_t op);
/* "ok" for USERS_OK, else the error code ("invalid_credentials", ...). */
const char *users_err_code(users_err_t e);
int users_err_status(users_err_t e);
/* Appends {"error":{"code","message","status"}}; detail, when not NULL,
 * replaces the standard message. */
void users_err_json(users_err_t e, const char *detail, buf_t *out);

/* Appends {"id","username","display_name","created_at"} (never the hash). */
void users_user_json(const user_rec_t *u, buf_t *out);

/* A freshly issued pair. Holds a bearer token: wipe before freeing. */
typedef struct {
  char access[JWT_MAX_TOKEN];
  char refresh[USERS_REFRESH_B64 + 1];
  refresh_rec_t rec;            /* what the store keeps: SHA-256 of the token, never the token */
} users_session_t;

/* Makes a refresh token for user_id, expiring now_ms + ttl_s, in `family`
 * (NULL: a new random family, i.e. a new login), and an access token
 * (sub = id, name = username, random jti, iat = now, exp = now + access_ttl_s).
 * Returns 0, or the negative error of jwt_sign. */
int users_session_issue(const jwt_keys_t *keys, const user_rec_t *u, const uint8_t *family,
                        int64_t now_ms, int64_t access_ttl_s, int64_t refresh_ttl_s,
                        users_session_t *out);

/* Appends the login/refresh reply:
 * {"access_token","refresh_token","token_type":"Bearer","expires_in","user"}. */
void users_session_json(const users_session_t *s, int64_t access_ttl_s, const user_rec_t *u,
                        buf_t *out);

/* SHA-256 of the raw token bytes: the only form the store sees. */
void users_refresh_hash(const uint8_t token[USERS_REFRESH_BYTES], uint8_t out[32]);

/* Decodes a client's refresh token: exactly USERS_REFRESH_B64 canonical
 * base64url characters. Returns 0 or -EINVAL. */
int users_refresh_decode(const char *s, size_t len, uint8_t out[USERS_REFRESH_BYTES]);

#endif
