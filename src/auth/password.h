/*
 * password.h — password hashing with argon2id (libsodium), and a dummy hash
 * that makes "no such user" cost what "wrong password" costs.
 *
 * Thin wrappers: the hash string is libsodium's PHC-style encoding
 * ("$argon2id$v=19$m=19456,t=2,p=1$salt$hash", at most PASSWORD_HASH_MAX
 * bytes with the NUL), which carries its own salt and parameters, so hashes
 * made with older parameters keep verifying and can be upgraded on the next
 * successful login (password_needs_rehash).
 *
 * Default parameters: m = 19 MiB, t = 2, p = 1 — OWASP's Password Storage
 * Cheat Sheet's first argon2id configuration. It costs roughly 20-40 ms of
 * one core, which bounds an attacker with a stolen database to a few dozen
 * guesses per second per core and per user while keeping a login affordable
 * on a small server; 19 MiB per hash means even a few concurrent hashes do
 * not stress memory (the users service runs at most max_concurrent_hashes).
 * libsodium's argon2id always uses one lane (p = 1), which is what OWASP's
 * row specifies. Raise t (opslimit) rather than m if logins should cost more
 * on a memory-tight host.
 *
 * Threads: every function is safe from any thread (libsodium keeps no
 * mutable state after sodium_init, which password_params_init calls; a
 * params struct is read-only after init). Hashing and verifying are slow
 * on purpose: call them off the event loop.
 *
 * Errors: negative errno values, listed per function. Passwords are byte
 * strings of `len` bytes; they need not be NUL-terminated. Hash strings must
 * be NUL-terminated within PASSWORD_HASH_MAX bytes.
 */
#ifndef STORM_AUTH_PASSWORD_H
#define STORM_AUTH_PASSWORD_H

#include <stddef.h>

#include <sodium.h>

/* Size of a hash string buffer, NUL included (128). */
#define PASSWORD_HASH_MAX crypto_pwhash_STRBYTES

/* OWASP's argon2id recommendation (see above). */
#define PASSWORD_OPSLIMIT_DEFAULT 2ULL
#define PASSWORD_MEMLIMIT_DEFAULT ((size_t)19 << 20)

typedef struct {
  unsigned long long opslimit; /* argon2id t */
  size_t memlimit;             /* argon2id m, bytes (libsodium counts whole KiB) */
  /* A hash of 32 random bytes made with these parameters; nobody knows its
   * password, so verifying against it always fails, in the time a real
   * verification takes. */
  char dummy[PASSWORD_HASH_MAX];
} password_params_t;

/* Checks the parameters and computes the dummy hash (one full hash: call at
 * start-up). Returns 0, -EINVAL (outside libsodium's argon2id bounds:
 * crypto_pwhash_argon2id_OPSLIMIT_MIN/MAX, MEMLIMIT_MIN/MAX), -EIO
 * (sodium_init failed), or -ENOMEM (libsodium could not allocate m). */
int password_params_init(password_params_t *p, unsigned long long opslimit, size_t memlimit);

/* Hashes pw[0..len) with a fresh random salt into out (NUL-terminated).
 * Returns 0 or -ENOMEM (the only way libsodium fails with valid parameters). */
int password_hash(const password_params_t *p, const char *pw, size_t len,
                  char out[PASSWORD_HASH_MAX]);

/* Returns 0 if pw matches hash, -EACCES if it does not or if libsodium fails
 * for any other reason (unparsable hash, out of memory): a caller must never
 * let a failure look like success. -EINVAL if hash is not NUL-terminated
 * within PASSWORD_HASH_MAX bytes (nothing is computed then). */
int password_verify(const char *hash, const char *pw, size_t len);

/* Verifies pw against the dummy hash and discards the (always negative)
 * result: the time of a failed login for a user that does not exist. */
void password_verify_dummy(const password_params_t *p, const char *pw, size_t len);

/* Returns 1 if hash was made with parameters other than p's (or another
 * algorithm) and should be replaced after a successful verification, 0 if
 * it matches p, -EINVAL if it is not an argon2id hash string at all. */
int password_needs_rehash(const password_params_t *p, const char *hash);

#endif
