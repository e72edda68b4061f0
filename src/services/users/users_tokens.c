/*
 * users_tokens.c — issuing access and refresh tokens.
 *
 * A refresh token is 32 bytes from the OS CSPRNG (randombytes_buf): 256 bits
 * cannot be guessed, so it needs no signature, and the server can keep only
 * its SHA-256 — a leaked table of hashes gives nothing to present (a fast
 * hash is enough for a uniformly random secret; slow hashing exists for
 * guessable passwords). The family groups every token of one login, so
 * that a replayed rotated token can revoke the whole chain.
 */
#include "services/users/users_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

void users_refresh_hash(const uint8_t token[USERS_REFRESH_BYTES], uint8_t out[32]) {
  crypto_hash_sha256(out, token, USERS_REFRESH_BYTES);
}

int users_refresh_decode(const char *s, size_t len, uint8_t out[USERS_REFRESH_BYTES]) {
  if (len != USERS_REFRESH_B64) return -EINVAL;
  /* b64url_decode rejects padding and non-canonical trailing bits, so each
   * token has exactly one accepted spelling. */
  int n = b64url_decode(s, len, out, USERS_REFRESH_BYTES);
  return n == USERS_REFRESH_BYTES ? 0 : -EINVAL;
}

int users_session_issue(const jwt_keys_t *keys, const user_rec_t *u, const uint8_t *family,
                        int64_t now_ms, int64_t access_ttl_s, int64_t refresh_ttl_s,
                        users_session_t *out) {
  memset(out, 0, sizeof *out);

  uint8_t token[USERS_REFRESH_BYTES];
  randombytes_buf(token, sizeof token);
  int n = b64url_encode(token, sizeof token, out->refresh, sizeof out->refresh);
  users_refresh_hash(token, out->rec.token_hash);
  sodium_memzero(token, sizeof token);
  if (n != USERS_REFRESH_B64) return n < 0 ? n : -EINVAL;
  if (family)
    memcpy(out->rec.family, family, USERS_FAMILY_BYTES);
  else
    randombytes_buf(out->rec.family, USERS_FAMILY_BYTES);
  out->rec.user_id = u->id;
  out->rec.created_at = now_ms;
  out->rec.expires_at = now_ms + refresh_ttl_s * 1000;

  jwt_claims_t c;
  memset(&c, 0, sizeof c);
  snprintf(c.sub, sizeof c.sub, "%" PRId64, u->id);
  snprintf(c.name, sizeof c.name, "%s", u->username);
  uint8_t jti[USERS_JTI_BYTES];
  randombytes_buf(jti, sizeof jti);
  n = b64url_encode(jti, sizeof jti, c.jti, sizeof c.jti);
  if (n < 0) return n;
  c.iat = now_ms / 1000;
  c.exp = c.iat + access_ttl_s;
  n = jwt_sign(keys, &c, out->access, sizeof out->access);
  return n < 0 ? n : 0;
}
