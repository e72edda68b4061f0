/*
 * password.c — argon2id through libsodium's crypto_pwhash_str* API.
 */
#include "auth/password.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* libsodium reads a hash string up to its NUL; refuse one without. */
static bool hash_terminated(const char *hash) {
  return hash && memchr(hash, '\0', PASSWORD_HASH_MAX) != NULL;
}

int password_params_init(password_params_t *p, unsigned long long opslimit, size_t memlimit) {
  memset(p, 0, sizeof *p);
  if (opslimit < crypto_pwhash_argon2id_OPSLIMIT_MIN ||
      opslimit > crypto_pwhash_argon2id_OPSLIMIT_MAX ||
      memlimit < crypto_pwhash_argon2id_MEMLIMIT_MIN ||
      memlimit > crypto_pwhash_argon2id_MEMLIMIT_MAX)
    return -EINVAL;
  if (sodium_init() < 0) return -EIO; /* idempotent and thread-safe */
  p->opslimit = opslimit;
  p->memlimit = memlimit;
  unsigned char secret[32];
  randombytes_buf(secret, sizeof secret);
  int rc = password_hash(p, (const char *)secret, sizeof secret, p->dummy);
  sodium_memzero(secret, sizeof secret);
  return rc;
}

int password_hash(const password_params_t *p, const char *pw, size_t len,
                  char out[PASSWORD_HASH_MAX]) {
  if (crypto_pwhash_str_alg(out, pw, len, p->opslimit, p->memlimit,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    out[0] = '\0';
    return -ENOMEM;
  }
  return 0;
}

int password_verify(const char *hash, const char *pw, size_t len) {
  if (!hash_terminated(hash)) return -EINVAL;
  return crypto_pwhash_str_verify(hash, pw, len) == 0 ? 0 : -EACCES;
}

void password_verify_dummy(const password_params_t *p, const char *pw, size_t len) {
  /* volatile: the result is unused on purpose, and the call must stay */
  volatile int rc = crypto_pwhash_str_verify(p->dummy, pw, len);
  (void)rc;
}

int password_needs_rehash(const password_params_t *p, const char *hash) {
  if (!hash_terminated(hash)) return -EINVAL;
  /* The argon2id-specific check, because the generic one would judge an
   * argon2i hash against argon2i and not ask for the move to argon2id. */
  int rc = crypto_pwhash_argon2id_str_needs_rehash(hash, p->opslimit, p->memlimit);
  if (rc >= 0) return rc ? 1 : 0;
  /* Not argon2id: any other hash libsodium understands is upgraded. */
  return crypto_pwhash_str_needs_rehash(hash, p->opslimit, p->memlimit) >= 0 ? 1 : -EINVAL;
}
