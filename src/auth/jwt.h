/*
 * jwt.h — JSON Web Tokens, HS256 only (RFC 7519, RFC 7515).
 *
 * STORM's access tokens. The algorithm is pinned: a token whose header says
 * anything but "HS256" (including "none" and "HS512") is rejected before any
 * signature work. Keys rotate: a key set holds the current key (signs and
 * verifies) and optionally the previous one (verifies only); each key has a
 * `kid` carried in the token header, so verification picks the key without
 * trying both.
 *
 * Verification is stateless and cheap (one HMAC-SHA256, a JSON parse of the
 * payload): the gateway runs it on every request without a bus hop.
 *
 * Thread-safe: no global state; keys are read-only after jwt_keys_init.
 */
#ifndef STORM_AUTH_JWT_H
#define STORM_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_MIN_SECRET 32      /* bytes; shorter secrets are refused */
#define JWT_MAX_SECRET 512
#define JWT_MAX_TOKEN 2048     /* longer input is rejected unparsed */
#define JWT_KID_LEN 16         /* hex chars */

typedef struct {
  uint8_t secret[JWT_MAX_SECRET];
  size_t secret_len;
  char kid[JWT_KID_LEN + 1];   /* first 16 hex chars of SHA-256(secret): names the key without revealing it */
} jwt_key_t;

typedef struct {
  jwt_key_t current;
  jwt_key_t previous;
  bool has_previous;
  char issuer[64];             /* "iss" written and required */
  int64_t leeway_s;            /* clock skew tolerated on exp/nbf/iat (default 5) */
} jwt_keys_t;

/* Fills keys (leeway_s = 5). previous may be NULL/empty. The arguments may
 * point into *keys itself (rotate in place: new current, old current as
 * previous). Returns 0, or -EINVAL if a secret is shorter than JWT_MIN_SECRET
 * or longer than JWT_MAX_SECRET or issuer is NULL, empty or longer than 63
 * bytes; -EIO if libsodium cannot initialise. On error keys is unchanged. */
int jwt_keys_init(jwt_keys_t *keys, const void *current, size_t current_len, const void *previous,
                  size_t previous_len, const char *issuer);

typedef struct {
  char sub[64];                /* subject: the user id, decimal */
  char name[64];               /* "name": the username (informational) */
  char jti[48];                /* token id: random, base64url */
  int64_t iat, nbf, exp;       /* seconds since the epoch; nbf 0 = absent */
} jwt_claims_t;

/* Signs claims with the current key: header {"alg":"HS256","typ":"JWT","kid":...},
 * payload {"iss","sub","name","jti","iat","nbf"?,"exp"}. Returns the token length
 * (written NUL-terminated into out), or -ENOSPC (out too small), -ENOMEM, -EINVAL (empty
 * sub or jti, a field not NUL-terminated or not UTF-8, or a token that would
 * exceed JWT_MAX_TOKEN and so never verify). */
int jwt_sign(const jwt_keys_t *keys, const jwt_claims_t *claims, char *out, size_t outlen);

enum jwt_error {
  JWT_EMALFORMED = -2001,      /* not three base64url parts, bad JSON, wrong claim types */
  JWT_EALG = -2002,            /* alg is not HS256 (none, HS512, RS256, ...), typ not JWT,
                                  or a "crit" header (no extension is understood) */
  JWT_EKID = -2003,            /* kid missing or matches no key */
  JWT_ESIGNATURE = -2004,      /* HMAC mismatch (constant-time compare) */
  JWT_EEXPIRED = -2005,        /* exp missing or <= now - leeway */
  JWT_ENOTYET = -2006,         /* nbf or iat in the future (beyond leeway) */
  JWT_EISSUER = -2007,         /* iss missing or different */
  JWT_ECLAIMS = -2008,         /* sub, jti or iat missing (an empty sub or jti counts as missing) */
};

/* Verifies token[0..len) at time now (seconds). Returns 0 and fills out, or a
 * negative jwt_error (out is then zeroed; out may be NULL). Order: size,
 * structure, header (alg pinned, kid), signature, then claims — no claim is
 * trusted before the signature checks. Claims are checked in this order: JSON
 * and types (EMALFORMED), iss (EISSUER), exp present (EEXPIRED), sub/jti/iat
 * present (ECLAIMS), exp (EEXPIRED), nbf and iat (ENOTYET). */
int jwt_verify(const jwt_keys_t *keys, const char *token, size_t len, int64_t now,
               jwt_claims_t *out);

/* A short message for a jwt_error or a negative errno; never NULL. */
const char *jwt_strerror(int err);

/* HMAC-SHA256(key, input) into out: the primitive jwt_sign and jwt_verify use,
 * public so that tests can check it against published vectors (RFC 7515 A.1). */
void jwt_hs256(const void *key, size_t key_len, const void *input, size_t len, uint8_t out[32]);

/* base64url without padding (RFC 4648 §5), as JWS uses. Return the output
 * length, or -EINVAL (bad input) / -ENOSPC. decode rejects padding and
 * non-canonical trailing bits. */
int b64url_encode(const void *in, size_t len, char *out, size_t outlen);
int b64url_decode(const char *in, size_t len, void *out, size_t outlen);

#endif
