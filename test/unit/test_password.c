/* Unit tests for auth/password: argon2id hashing and verification, the
 * dummy hash, rehash decisions, and the argument checks. Low limits except
 * in the one test that proves the defaults are accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>
#include <sodium.h>

#include "auth/password.h"

#define LOW_OPS crypto_pwhash_argon2id_OPSLIMIT_MIN
#define LOW_MEM crypto_pwhash_argon2id_MEMLIMIT_MIN

static void test_params_bounds(void **state) {
  password_params_t p;
  assert_int_equal(password_params_init(&p, 0, LOW_MEM), -EINVAL);
  assert_int_equal(password_params_init(&p, LOW_OPS, LOW_MEM - 1), -EINVAL);
  assert_int_equal(password_params_init(&p, (unsigned long long)UINT32_MAX + 1, LOW_MEM),
                   -EINVAL);
  assert_int_equal(password_params_init(&p, LOW_OPS, LOW_MEM), 0);
  assert_int_equal(p.opslimit, LOW_OPS);
  assert_int_equal(p.memlimit, LOW_MEM);
  /* the dummy is a real hash with these parameters */
  assert_int_equal(strncmp(p.dummy, "$argon2id$v=19$m=8,t=1,p=1$", 27), 0);
}

/* OWASP's row: m = 19 MiB (19456 KiB), t = 2, p = 1. */
static void test_defaults(void **state) {
  assert_int_equal(PASSWORD_OPSLIMIT_DEFAULT, 2);
  assert_int_equal(PASSWORD_MEMLIMIT_DEFAULT, 19 * 1024 * 1024);
  password_params_t p;
  assert_int_equal(password_params_init(&p, PASSWORD_OPSLIMIT_DEFAULT, PASSWORD_MEMLIMIT_DEFAULT),
                   0);
  assert_int_equal(strncmp(p.dummy, "$argon2id$v=19$m=19456,t=2,p=1$", 31), 0);
}

static void test_hash_verify(void **state) {
  password_params_t p;
  assert_int_equal(password_params_init(&p, LOW_OPS, LOW_MEM), 0);
  char h1[PASSWORD_HASH_MAX], h2[PASSWORD_HASH_MAX];
  assert_int_equal(password_hash(&p, "correct horse", 13, h1), 0);
  assert_int_equal(password_hash(&p, "correct horse", 13, h2), 0);
  assert_int_equal(strncmp(h1, "$argon2id$", 10), 0);
  assert_string_not_equal(h1, h2); /* fresh salt each time */
  assert_int_equal(password_verify(h1, "correct horse", 13), 0);
  assert_int_equal(password_verify(h2, "correct horse", 13), 0);
  assert_int_equal(password_verify(h1, "correct horsf", 13), -EACCES);
  assert_int_equal(password_verify(h1, "correct hors", 12), -EACCES);
  assert_int_equal(password_verify(h1, "", 0), -EACCES);

  /* the length is what counts, not a NUL */
  char h3[PASSWORD_HASH_MAX];
  assert_int_equal(password_hash(&p, "ab\0cd", 5, h3), 0);
  assert_int_equal(password_verify(h3, "ab\0cd", 5), 0);
  assert_int_equal(password_verify(h3, "ab", 2), -EACCES);
}

static void test_verify_bad_hashes(void **state) {
  assert_int_equal(password_verify("nonsense", "x", 1), -EACCES);
  assert_int_equal(password_verify("", "x", 1), -EACCES);
  assert_int_equal(password_verify("$argon2id$v=19$m=8,t=1,p=1$AAAA$AAAA", "x", 1), -EACCES);
  char unterminated[PASSWORD_HASH_MAX];
  memset(unterminated, 'a', sizeof unterminated);
  assert_int_equal(password_verify(unterminated, "x", 1), -EINVAL);
  assert_int_equal(password_verify(NULL, "x", 1), -EINVAL);
}

static void test_dummy(void **state) {
  password_params_t p;
  assert_int_equal(password_params_init(&p, LOW_OPS, LOW_MEM), 0);
  password_verify_dummy(&p, "anything at all", 15); /* returns nothing, must not crash */
  assert_int_equal(password_verify(p.dummy, "anything at all", 15), -EACCES);
  password_params_t q;
  assert_int_equal(password_params_init(&q, LOW_OPS, LOW_MEM), 0);
  assert_string_not_equal(p.dummy, q.dummy); /* random per start */
}

static void test_needs_rehash(void **state) {
  password_params_t low, more_ops, more_mem;
  assert_int_equal(password_params_init(&low, LOW_OPS, LOW_MEM), 0);
  assert_int_equal(password_params_init(&more_ops, LOW_OPS + 1, LOW_MEM), 0);
  assert_int_equal(password_params_init(&more_mem, LOW_OPS, LOW_MEM * 2), 0);
  char h[PASSWORD_HASH_MAX];
  assert_int_equal(password_hash(&low, "correct horse", 13, h), 0);
  assert_int_equal(password_needs_rehash(&low, h), 0);
  assert_int_equal(password_needs_rehash(&more_ops, h), 1);
  assert_int_equal(password_needs_rehash(&more_mem, h), 1);

  /* an argon2i hash, even with matching numbers, moves to argon2id */
  char hi[crypto_pwhash_argon2i_STRBYTES];
  assert_int_equal(crypto_pwhash_argon2i_str(hi, "pw", 2, crypto_pwhash_argon2i_OPSLIMIT_MIN,
                                             crypto_pwhash_argon2i_MEMLIMIT_MIN), 0);
  password_params_t i_like;
  assert_int_equal(password_params_init(&i_like, crypto_pwhash_argon2i_OPSLIMIT_MIN,
                                        crypto_pwhash_argon2i_MEMLIMIT_MIN), 0);
  assert_int_equal(password_needs_rehash(&i_like, hi), 1);

  assert_int_equal(password_needs_rehash(&low, "nonsense"), -EINVAL);
  assert_int_equal(password_needs_rehash(&low, ""), -EINVAL);
  char unterminated[PASSWORD_HASH_MAX];
  memset(unterminated, 'a', sizeof unterminated);
  assert_int_equal(password_needs_rehash(&low, unterminated), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_params_bounds),   cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_hash_verify),     cmocka_unit_test(test_verify_bad_hashes),
      cmocka_unit_test(test_dummy),           cmocka_unit_test(test_needs_rehash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
