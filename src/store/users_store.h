/*
 * users_store.h — durable state of the users service: users and refresh
 * tokens. One interface, several backends (SQLite now, PostgreSQL with the
 * distributed-mode issue); the same test-suite runs against each.
 *
 * Calls are blocking and thread-safe: the users service runs them on
 * libuv's thread pool, never on the event loop. Every call returns 0 or a
 * negative errno: -ENOENT (no such row), -EEXIST (unique violation),
 * -EALREADY (refresh token already rotated), -EINVAL (a string beyond its
 * USER_*_MAX limit: stores never truncate), -EIO (backend failure; the
 * backend logs the detail). SQL goes through prepared statements only.
 *
 * Refresh tokens are stored only as SHA-256 hashes. Each belongs to a
 * family (one login); rotation marks the presented token used and inserts
 * its successor in the same family, atomically.
 */
#ifndef STORM_STORE_USERS_STORE_H
#define STORM_STORE_USERS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USER_NAME_MAX 32
#define USER_DISPLAY_MAX 256      /* bytes: 64 UTF-8 characters of up to 4 bytes */
#define USER_HASH_MAX 160         /* crypto_pwhash_STRBYTES is 128 */

typedef struct {
  int64_t id;
  char username[USER_NAME_MAX + 1];
  char display_name[USER_DISPLAY_MAX + 1];
  char password_hash[USER_HASH_MAX];
  int64_t created_at;             /* unix milliseconds */
} user_rec_t;

typedef struct {
  uint8_t token_hash[32];
  uint8_t family[16];
  int64_t user_id;
  int64_t created_at, expires_at; /* unix milliseconds */
  bool used;                      /* rotated: presenting it again is theft */
  bool revoked;                   /* logged out or family revoked */
} refresh_rec_t;

typedef struct users_store users_store_t;

typedef struct {
  int (*user_create)(users_store_t *s, const char *username, const char *display_name,
                     const char *password_hash, int64_t now_ms, user_rec_t *out);
  int (*user_by_name)(users_store_t *s, const char *username, user_rec_t *out);
  int (*user_by_id)(users_store_t *s, int64_t id, user_rec_t *out);
  int (*user_set_password_hash)(users_store_t *s, int64_t id, const char *password_hash);
  int (*refresh_insert)(users_store_t *s, const refresh_rec_t *r);
  int (*refresh_get)(users_store_t *s, const uint8_t token_hash[32], refresh_rec_t *out);
  /* Marks old used and inserts next (same family) in one transaction.
   * -ENOENT: old unknown; -EALREADY: old already used; -EACCES: old revoked;
   * -EINVAL: next has another family or user_id than old. */
  int (*refresh_rotate)(users_store_t *s, const uint8_t old_hash[32], const refresh_rec_t *next);
  int (*refresh_revoke)(users_store_t *s, const uint8_t token_hash[32]);
  int (*refresh_revoke_family)(users_store_t *s, const uint8_t family[16]);
  /* Deletes expired tokens (housekeeping); returns the count or -EIO. */
  int (*refresh_purge_expired)(users_store_t *s, int64_t now_ms);
  bool (*healthy)(users_store_t *s);
  void (*close)(users_store_t *s);
} users_store_ops_t;

struct users_store {
  const users_store_ops_t *ops;
};

#endif
