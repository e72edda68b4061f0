/* Tests for auth/jwt: base64url against RFC 4648 vectors and libsodium, the
 * HMAC layer against RFC 7515 A.1, then sign/verify and every rejection.
 * Hostile tokens are built here by hand with libsodium's own base64 and HMAC
 * (not the code under test), and signed with the right key wherever the
 * point is that the header or claim check — not the signature — rejects. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "auth/jwt.h"

#define NOW 1700000000LL
#define CUR_SECRET "current-secret-0123456789abcdef!"   /* 32 bytes */
#define PREV_SECRET "previous-secret-0123456789abcdef"  /* 32 bytes */
#define OTHER_SECRET "some-other-secret-that-is-unknown-here"
/* First 16 hex chars of SHA-256 of each secret, computed with Python's hashlib. */
#define CUR_KID "2c18b89d1f863e30"
#define PREV_KID "56c1c85396afa0c3"

enum { ALG_NONE, ALG_HS256, ALG_HS512 };

/* ---- independent token construction (libsodium, not jwt.c) ---- */

static size_t ref_b64(const void *in, size_t n, char *out, size_t cap) {
  assert_true(cap >= sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING));
  sodium_bin2base64(out, cap, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return strlen(out);
}

/* header_json '.' payload_json '.' signature, signed with key using alg
 * (ALG_NONE leaves the signature empty). Returns the length. */
static size_t make_token(char *out, size_t cap, const char *header, const char *payload,
                         const char *key, int alg) {
  size_t n = ref_b64(header, strlen(header), out, cap);
  out[n++] = '.';
  n += ref_b64(payload, strlen(payload), out + n, cap - n);
  if (alg == ALG_HS256) {
    uint8_t mac[32];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const uint8_t *)key, strlen(key));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)out, n);
    crypto_auth_hmacsha256_final(&st, mac);
    out[n++] = '.';
    n += ref_b64(mac, sizeof mac, out + n, cap - n);
  } else if (alg == ALG_HS512) {
    uint8_t mac[64];
    crypto_auth_hmacsha512_state st;
    crypto_auth_hmacsha512_init(&st, (const uint8_t *)key, strlen(key));
    crypto_auth_hmacsha512_update(&st, (const uint8_t *)out, n);
    crypto_auth_hmacsha512_final(&st, mac);
    out[n++] = '.';
    n += ref_b64(mac, sizeof mac, out + n, cap - n);
  } else {
    out[n++] = '.';
    out[n] = '\0';
  }
  return n;
}

#define HDR_CUR "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"" CUR_KID "\"}"
#define GOOD_PAYLOAD                                                                             \
  "{\"iss\":\"storm\",\"sub\":\"42\",\"name\":\"alice\",\"jti\":\"j1\",\"iat\":1700000000,"      \
  "\"exp\":1700003600}"

static jwt_keys_t keys; /* current + previous, issuer "storm" */

static int setup(void **state) {
  (void)state;
  assert_int_equal(jwt_keys_init(&keys, CUR_SECRET, strlen(CUR_SECRET), PREV_SECRET,
                                 strlen(PREV_SECRET), "storm"),
                   0);
  return 0;
}

/* Verifies header/payload signed with the current secret. */
static int verify_hp(const char *header, const char *payload) {
  char tok[4096];
  size_t n = make_token(tok, sizeof tok, header, payload, CUR_SECRET, ALG_HS256);
  jwt_claims_t c;
  return jwt_verify(&keys, tok, n, NOW, &c);
}

static int verify_p(const char *payload) { return verify_hp(HDR_CUR, payload); }

static int verify_str(const char *tok) {
  jwt_claims_t c;
  return jwt_verify(&keys, tok, strlen(tok), NOW, &c);
}

/* ---- base64url ---- */

static void test_b64_rfc4648_vectors(void **state) {
  (void)state;
  static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
  for (size_t i = 0; i < 7; i++) {
    char out[16];
    uint8_t dec[16];
    assert_int_equal(b64url_encode(plain[i], strlen(plain[i]), out, sizeof out), strlen(enc[i]));
    assert_string_equal(out, enc[i]);
    assert_int_equal(b64url_decode(enc[i], strlen(enc[i]), dec, sizeof dec), strlen(plain[i]));
    assert_memory_equal(dec, plain[i], strlen(plain[i]));
  }
  /* The two characters that differ from standard base64: 62 '-' and 63 '_'. */
  const uint8_t hi[] = {0xfb, 0xff, 0xbf};
  char out[8];
  assert_int_equal(b64url_encode(hi, 3, out, sizeof out), 4);
  assert_string_equal(out, "-_-_");
  uint8_t dec[3];
  assert_int_equal(b64url_decode("-_-_", 4, dec, 3), 3);
  assert_memory_equal(dec, hi, 3);
}

static void test_b64_decode_rejects(void **state) {
  (void)state;
  static const char *bad[] = {
      "Zg==", "Zm8=", "Zg=",   /* padding */
      "+/8",  "ab/c", "a+bc",  /* standard-base64 characters */
      "Z",    "Zm9vY",         /* length 1 mod 4 */
      "Zh",   "Zm9",  "Zm-",   /* non-canonical trailing bits ("Zg", "Zm8" are canonical) */
      "Zm 9", "Zm\n9", "Zm.9", /* anything else outside the alphabet */
  };
  uint8_t out[16];
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(b64url_decode(bad[i], strlen(bad[i]), out, sizeof out), -EINVAL);
  /* An embedded NUL is just another byte outside the alphabet. */
  assert_int_equal(b64url_decode("Zm\0v", 4, out, sizeof out), -EINVAL);
}

static void test_b64_enospc(void **state) {
  (void)state;
  char out[8];
  uint8_t dec[8];
  /* Encoding "foo" needs 4 characters plus the NUL. */
  assert_int_equal(b64url_encode("foo", 3, out, 4), -ENOSPC);
  assert_int_equal(b64url_encode("foo", 3, out, 5), 4);
  assert_int_equal(b64url_encode("", 0, out, 0), -ENOSPC);
  assert_int_equal(b64url_encode("", 0, out, 1), 0);
  assert_int_equal(b64url_decode("Zm9vYg", 6, dec, 3), -ENOSPC);
  assert_int_equal(b64url_decode("Zm9vYg", 6, dec, 4), 4);
  /* Bad input is -EINVAL even when the buffer is also too small. */
  assert_int_equal(b64url_decode("Zm9vY=", 6, dec, 1), -EINVAL);
}

/* Random bytes: our encoder matches libsodium's, and decoding gives them back. */
static void test_b64_matches_libsodium(void **state) {
  (void)state;
  for (size_t len = 0; len < 200; len++) {
    uint8_t in[200], dec[200];
    char mine[300], ref[300];
    randombytes_buf(in, len);
    int n = b64url_encode(in, len, mine, sizeof mine);
    assert_int_equal(n, ref_b64(in, len, ref, sizeof ref));
    assert_string_equal(mine, ref);
    assert_int_equal(b64url_decode(mine, (size_t)n, dec, sizeof dec), len);
    assert_memory_equal(dec, in, len);
  }
}

/* ---- RFC 7515 Appendix A.1 ---- */

static void test_rfc7515_a1(void **state) {
  (void)state;
  static const char jwk_k[] =
      "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
  static const char input[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
                              ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
                              "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
  static const char sig_b64[] = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  /* The RFC's HMAC value as the byte array it prints in A.1.1. */
  static const uint8_t sig[32] = {116, 24,  223, 180, 151, 153, 224, 37,  79,  250, 96,
                                  125, 216, 173, 187, 186, 22,  212, 37,  77,  105, 214,
                                  191, 240, 91,  88,  5,   88,  83,  132, 141, 121};
  uint8_t key[64], mac[32], dec[32];
  assert_int_equal(b64url_decode(jwk_k, strlen(jwk_k), key, sizeof key), 64);
  jwt_hs256(key, sizeof key, input, strlen(input), mac);
  assert_memory_equal(mac, sig, 32);
  char enc[64];
  assert_int_equal(b64url_encode(mac, 32, enc, sizeof enc), 43);
  assert_string_equal(enc, sig_b64);
  assert_int_equal(b64url_decode(sig_b64, 43, dec, sizeof dec), 32);
  assert_memory_equal(dec, sig, 32);

  /* The whole RFC token under a key set holding that key: the HMAC would
   * match, but the token names no kid, and STORM requires one. */
  jwt_keys_t k;
  assert_int_equal(jwt_keys_init(&k, key, sizeof key, NULL, 0, "joe"), 0);
  char tok[512];
  snprintf(tok, sizeof tok, "%s.%s", input, sig_b64);
  assert_int_equal(jwt_verify(&k, tok, strlen(tok), 1300819380 - 100, NULL), JWT_EKID);
}

/* ---- keys ---- */

static void test_keys_init(void **state) {
  (void)state;
  jwt_keys_t k;
  assert_int_equal(jwt_keys_init(&k, CUR_SECRET, 32, PREV_SECRET, 32, "storm"), 0);
  assert_string_equal(k.current.kid, CUR_KID);
  assert_string_equal(k.previous.kid, PREV_KID);
  assert_true(k.has_previous);
  assert_int_equal(k.leeway_s, 5);
  assert_string_equal(k.issuer, "storm");
  assert_int_equal(k.current.secret_len, 32);
  assert_memory_equal(k.current.secret, CUR_SECRET, 32);

  static const char a32[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  assert_int_equal(jwt_keys_init(&k, a32, 32, NULL, 0, "storm"), 0);
  assert_string_equal(k.current.kid, "22a48051594c1949");
  assert_false(k.has_previous);
  assert_int_equal(jwt_keys_init(&k, a32, 32, PREV_SECRET, 0, "storm"), 0); /* empty = none */
  assert_false(k.has_previous);

  uint8_t big[JWT_MAX_SECRET + 1];
  memset(big, 7, sizeof big);
  assert_int_equal(jwt_keys_init(&k, big, 31, NULL, 0, "storm"), -EINVAL);
  assert_int_equal(jwt_keys_init(&k, big, 513, NULL, 0, "storm"), -EINVAL);
  assert_int_equal(jwt_keys_init(&k, big, 512, NULL, 0, "storm"), 0);
  /* A failed init leaves the key set as it was. */
  jwt_keys_t before = k;
  assert_int_equal(jwt_keys_init(&k, NULL, 32, NULL, 0, "storm"), -EINVAL);
  assert_int_equal(jwt_keys_init(&k, a32, 32, big, 31, "storm"), -EINVAL);
  assert_int_equal(jwt_keys_init(&k, a32, 32, big, 513, "storm"), -EINVAL);
  assert_memory_equal(&k, &before, sizeof k);

  char iss[65];
  memset(iss, 'i', 64);
  iss[64] = '\0';
  assert_int_equal(jwt_keys_init(&k, a32, 32, NULL, 0, iss), -EINVAL);
  iss[63] = '\0';
  assert_int_equal(jwt_keys_init(&k, a32, 32, NULL, 0, iss), 0);
  assert_int_equal(jwt_keys_init(&k, a32, 32, NULL, 0, ""), -EINVAL);
  assert_int_equal(jwt_keys_init(&k, a32, 32, NULL, 0, NULL), -EINVAL);
}

/* ---- sign / verify ---- */

static jwt_claims_t good_claims(void) {
  jwt_claims_t c;
  memset(&c, 0, sizeof c);
  strcpy(c.sub, "42");
  strcpy(c.name, "alice");
  strcpy(c.jti, "j1");
  c.iat = NOW;
  c.exp = NOW + 3600;
  return c;
}

static void test_sign_exact_bytes(void **state) {
  (void)state;
  jwt_claims_t c = good_claims();
  char tok[JWT_MAX_TOKEN + 1], want[JWT_MAX_TOKEN + 1];
  int n = jwt_sign(&keys, &c, tok, sizeof tok);
  assert_true(n > 0);
  assert_int_equal((size_t)n, strlen(tok));
  size_t wn = make_token(want, sizeof want, HDR_CUR, GOOD_PAYLOAD, CUR_SECRET, ALG_HS256);
  assert_int_equal((size_t)n, wn);
  assert_string_equal(tok, want);

  c.nbf = NOW - 10;
  n = jwt_sign(&keys, &c, tok, sizeof tok);
  make_token(want, sizeof want, HDR_CUR,
             "{\"iss\":\"storm\",\"sub\":\"42\",\"name\":\"alice\",\"jti\":\"j1\","
             "\"iat\":1700000000,\"nbf\":1699999990,\"exp\":1700003600}",
             CUR_SECRET, ALG_HS256);
  assert_string_equal(tok, want);
}

static void test_round_trip(void **state) {
  (void)state;
  jwt_claims_t c = good_claims(), out;
  strcpy(c.name, "Zo\xc3\xab \"q\" \\ \xf0\x9f\x8c\xa9"); /* UTF-8, quote, backslash */
  c.nbf = NOW - 1;
  char tok[JWT_MAX_TOKEN + 1];
  int n = jwt_sign(&keys, &c, tok, sizeof tok);
  assert_true(n > 0);
  memset(&out, 0x55, sizeof out);
  assert_int_equal(jwt_verify(&keys, tok, (size_t)n, NOW, &out), 0);
  assert_string_equal(out.sub, c.sub);
  assert_string_equal(out.name, c.name);
  assert_string_equal(out.jti, c.jti);
  assert_int_equal(out.iat, c.iat);
  assert_int_equal(out.nbf, c.nbf);
  assert_int_equal(out.exp, c.exp);
  assert_int_equal(jwt_verify(&keys, tok, (size_t)n, NOW, NULL), 0); /* out optional */

  /* No nbf written, none read back; no name is fine (informational). */
  c = good_claims();
  c.name[0] = '\0';
  n = jwt_sign(&keys, &c, tok, sizeof tok);
  assert_int_equal(jwt_verify(&keys, tok, (size_t)n, NOW, &out), 0);
  assert_int_equal(out.nbf, 0);
  assert_string_equal(out.name, "");
  assert_int_equal(verify_p("{\"iss\":\"storm\",\"sub\":\"1\",\"jti\":\"j\",\"iat\":1,\"exp\":"
                            "1700003600}"),
                   0);
}

static void test_key_rotation(void **state) {
  (void)state;
  jwt_keys_t old_only, other, no_prev;
  assert_int_equal(jwt_keys_init(&old_only, PREV_SECRET, 32, NULL, 0, "storm"), 0);
  assert_int_equal(jwt_keys_init(&other, OTHER_SECRET, strlen(OTHER_SECRET), NULL, 0, "storm"), 0);
  assert_int_equal(jwt_keys_init(&no_prev, CUR_SECRET, 32, NULL, 0, "storm"), 0);
  jwt_claims_t c = good_claims(), out;
  char tok[JWT_MAX_TOKEN + 1];

  int n = jwt_sign(&old_only, &c, tok, sizeof tok); /* signed before the rotation */
  assert_int_equal(jwt_verify(&keys, tok, (size_t)n, NOW, &out), 0);
  assert_string_equal(out.sub, "42");
  assert_int_equal(jwt_verify(&no_prev, tok, (size_t)n, NOW, &out), JWT_EKID);

  n = jwt_sign(&other, &c, tok, sizeof tok);
  assert_int_equal(jwt_verify(&keys, tok, (size_t)n, NOW, &out), JWT_EKID);

  /* Rotation in place: the old current secret and issuer passed from the
   * key set being re-initialised. */
  jwt_keys_t rot;
  assert_int_equal(jwt_keys_init(&rot, PREV_SECRET, 32, NULL, 0, "storm"), 0);
  n = jwt_sign(&rot, &c, tok, sizeof tok);
  assert_int_equal(jwt_keys_init(&rot, CUR_SECRET, 32, rot.current.secret, rot.current.secret_len,
                                 rot.issuer),
                   0);
  assert_string_equal(rot.current.kid, CUR_KID);
  assert_string_equal(rot.previous.kid, PREV_KID);
  assert_string_equal(rot.issuer, "storm");
  assert_int_equal(jwt_verify(&rot, tok, (size_t)n, NOW, &out), 0);

  /* Our kid, someone else's secret. */
  make_token(tok, sizeof tok, HDR_CUR, GOOD_PAYLOAD, OTHER_SECRET, ALG_HS256);
  assert_int_equal(verify_str(tok), JWT_ESIGNATURE);
  /* The previous kid but signed with the current secret. */
  make_token(tok, sizeof tok, "{\"alg\":\"HS256\",\"kid\":\"" PREV_KID "\"}", GOOD_PAYLOAD,
             CUR_SECRET, ALG_HS256);
  assert_int_equal(verify_str(tok), JWT_ESIGNATURE);
}

static void test_header_checks(void **state) {
  (void)state;
  char tok[1024];
  /* alg none, with and without a signature; the kid is ours. */
  make_token(tok, sizeof tok, "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"" CUR_KID "\"}",
             GOOD_PAYLOAD, NULL, ALG_NONE);
  assert_int_equal(verify_str(tok), JWT_EALG);
  assert_int_equal(verify_hp("{\"alg\":\"none\",\"kid\":\"" CUR_KID "\"}", GOOD_PAYLOAD), JWT_EALG);
  /* HS512 with a genuine HMAC-SHA512 under our secret. */
  make_token(tok, sizeof tok, "{\"alg\":\"HS512\",\"typ\":\"JWT\",\"kid\":\"" CUR_KID "\"}",
             GOOD_PAYLOAD, CUR_SECRET, ALG_HS512);
  assert_int_equal(verify_str(tok), JWT_EALG);
  /* Correct HS256 signatures: the header alone is what is wrong. */
  assert_int_equal(verify_hp("{\"alg\":\"hs256\",\"kid\":\"" CUR_KID "\"}", GOOD_PAYLOAD), JWT_EALG);
  assert_int_equal(verify_hp("{\"typ\":\"JWT\",\"kid\":\"" CUR_KID "\"}", GOOD_PAYLOAD), JWT_EALG);
  assert_int_equal(verify_hp("{\"alg\":256,\"kid\":\"" CUR_KID "\"}", GOOD_PAYLOAD), JWT_EALG);
  assert_int_equal(verify_hp("{\"alg\":\"RS256\",\"kid\":\"" CUR_KID "\"}", GOOD_PAYLOAD), JWT_EALG);
  assert_int_equal(verify_hp("{\"alg\":\"HS256 \",\"kid\":\"" CUR_KID "\"}", GOOD_PAYLOAD), JWT_EALG);
  assert_int_equal(verify_hp("{\"alg\":\"HS256\",\"typ\":\"jwt\",\"kid\":\"" CUR_KID "\"}",
                             GOOD_PAYLOAD),
                   JWT_EALG);
  assert_int_equal(verify_hp("{\"alg\":\"HS256\",\"typ\":1,\"kid\":\"" CUR_KID "\"}", GOOD_PAYLOAD),
                   JWT_EALG);
  assert_int_equal(verify_hp("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1,\"kid\":\"" CUR_KID
                             "\"}",
                             GOOD_PAYLOAD),
                   JWT_EALG);
  /* typ is optional; unknown header fields are ignored. */
  assert_int_equal(verify_hp("{\"alg\":\"HS256\",\"kid\":\"" CUR_KID "\"}", GOOD_PAYLOAD), 0);
  assert_int_equal(verify_hp("{\"kid\":\"" CUR_KID "\",\"cty\":\"x\",\"alg\":\"HS256\"}",
                             GOOD_PAYLOAD),
                   0);
  /* kid */
  assert_int_equal(verify_hp("{\"alg\":\"HS256\"}", GOOD_PAYLOAD), JWT_EKID);
  assert_int_equal(verify_hp("{\"alg\":\"HS256\",\"kid\":7}", GOOD_PAYLOAD), JWT_EKID);
  assert_int_equal(verify_hp("{\"alg\":\"HS256\",\"kid\":\"2C18B89D1F863E30\"}", GOOD_PAYLOAD),
                   JWT_EKID);
  assert_int_equal(verify_hp("{\"alg\":\"HS256\",\"kid\":\"" CUR_KID "0\"}", GOOD_PAYLOAD), JWT_EKID);
  assert_int_equal(verify_hp("{\"alg\":\"HS256\",\"kid\":\"2c18b89d1f863e3\"}", GOOD_PAYLOAD),
                   JWT_EKID);
  assert_int_equal(verify_hp("{\"alg\":\"HS256\",\"kid\":\"\"}", GOOD_PAYLOAD), JWT_EKID);
  /* Not an object, not JSON, duplicate keys. */
  assert_int_equal(verify_hp("[\"HS256\"]", GOOD_PAYLOAD), JWT_EMALFORMED);
  assert_int_equal(verify_hp("{\"alg\":\"HS256\"", GOOD_PAYLOAD), JWT_EMALFORMED);
  assert_int_equal(verify_hp("{\"alg\":\"HS256\",\"kid\":\"" CUR_KID "\"} x", GOOD_PAYLOAD),
                   JWT_EMALFORMED);
  assert_int_equal(verify_hp("{\"alg\":\"none\",\"alg\":\"HS256\",\"kid\":\"" CUR_KID "\"}",
                             GOOD_PAYLOAD),
                   JWT_EMALFORMED);
  assert_int_equal(verify_hp("{\"alg\":\"HS256\",\"kid\":\"" PREV_KID "\",\"kid\":\"" CUR_KID "\"}",
                             GOOD_PAYLOAD),
                   JWT_EMALFORMED);
}

#define P_PRE "{\"iss\":\"storm\",\"sub\":\"42\",\"jti\":\"j1\","

static void test_claim_types(void **state) {
  (void)state;
  assert_int_equal(verify_p(P_PRE "\"iat\":1700000000,\"exp\":1700003600.0}"), JWT_EMALFORMED);
  assert_int_equal(verify_p(P_PRE "\"iat\":1700000000,\"exp\":1.7e9}"), JWT_EMALFORMED);
  assert_int_equal(verify_p(P_PRE "\"iat\":1700000000,\"exp\":\"1700003600\"}"), JWT_EMALFORMED);
  assert_int_equal(verify_p(P_PRE "\"iat\":1700000000,\"exp\":true}"), JWT_EMALFORMED);
  assert_int_equal(verify_p(P_PRE "\"iat\":1700000000,\"exp\":null}"), JWT_EMALFORMED);
  assert_int_equal(verify_p(P_PRE "\"iat\":1700000000,\"exp\":99999999999999999999}"),
                   JWT_EMALFORMED);
  assert_int_equal(verify_p(P_PRE "\"iat\":\"now\",\"exp\":1700003600}"), JWT_EMALFORMED);
  assert_int_equal(verify_p(P_PRE "\"iat\":1700000000,\"nbf\":1.5,\"exp\":1700003600}"),
                   JWT_EMALFORMED);
  assert_int_equal(verify_p("{\"iss\":\"storm\",\"sub\":42,\"jti\":\"j1\",\"iat\":1700000000,"
                            "\"exp\":1700003600}"),
                   JWT_EMALFORMED);
  assert_int_equal(verify_p("{\"iss\":\"storm\",\"sub\":\"42\",\"jti\":[],\"iat\":1700000000,"
                            "\"exp\":1700003600}"),
                   JWT_EMALFORMED);
  assert_int_equal(verify_p("{\"iss\":[\"storm\"],\"sub\":\"42\",\"jti\":\"j\",\"iat\":1700000000,"
                            "\"exp\":1700003600}"),
                   JWT_EMALFORMED);
  assert_int_equal(verify_p(P_PRE "\"name\":{},\"iat\":1700000000,\"exp\":1700003600}"),
                   JWT_EMALFORMED);
  /* NUL inside a string: jansson refuses it; it must never truncate a sub. */
  assert_int_equal(verify_p("{\"iss\":\"storm\",\"sub\":\"4\\u00002\",\"jti\":\"j\",\"iat\":1,"
                            "\"exp\":1700003600}"),
                   JWT_EMALFORMED);
  /* Payload is not an object, not JSON, or has a duplicate key. */
  assert_int_equal(verify_p("[1,2]"), JWT_EMALFORMED);
  assert_int_equal(verify_p("{\"iss\":\"storm\""), JWT_EMALFORMED);
  assert_int_equal(verify_p("\"storm\""), JWT_EMALFORMED);
  assert_int_equal(verify_p(P_PRE "\"iat\":1700000000,\"exp\":1,\"exp\":1700003600}"),
                   JWT_EMALFORMED);
  assert_int_equal(verify_p(P_PRE "\"iat\":1700000000,\"exp\":1700003600,\"sub\":\"43\"}"),
                   JWT_EMALFORMED);
}

/* Each string claim: the longest that fits its field is accepted, one more
 * byte is JWT_EMALFORMED. */
static void test_claim_lengths(void **state) {
  (void)state;
  struct {
    const char *key;
    size_t cap;
  } f[] = {{"sub", 64}, {"name", 64}, {"jti", 48}};
  for (size_t i = 0; i < 3; i++) {
    for (size_t len = f[i].cap - 1; len <= f[i].cap; len++) {
      char val[80], payload[512];
      memset(val, 'x', len);
      val[len] = '\0';
      snprintf(payload, sizeof payload,
               "{\"iss\":\"storm\",\"sub\":\"42\",\"jti\":\"j1\",\"iat\":1700000000,"
               "\"exp\":1700003600,\"%s\":\"%s\"}",
               f[i].key, val);
      /* The duplicate-free version: replace sub/jti rather than add them. */
      if (strcmp(f[i].key, "sub") == 0)
        snprintf(payload, sizeof payload,
                 "{\"iss\":\"storm\",\"sub\":\"%s\",\"jti\":\"j1\",\"iat\":1700000000,"
                 "\"exp\":1700003600}",
                 val);
      if (strcmp(f[i].key, "jti") == 0)
        snprintf(payload, sizeof payload,
                 "{\"iss\":\"storm\",\"sub\":\"42\",\"jti\":\"%s\",\"iat\":1700000000,"
                 "\"exp\":1700003600}",
                 val);
      assert_int_equal(verify_p(payload), len < f[i].cap ? 0 : JWT_EMALFORMED);
    }
  }
  /* iss longer than any configured issuer can be. */
  char iss[80], payload[512];
  memset(iss, 'i', 64);
  iss[64] = '\0';
  snprintf(payload, sizeof payload,
           "{\"iss\":\"%s\",\"sub\":\"42\",\"jti\":\"j1\",\"iat\":1700000000,\"exp\":1700003600}",
           iss);
  assert_int_equal(verify_p(payload), JWT_EMALFORMED);
}

static void test_claims_required(void **state) {
  (void)state;
  assert_int_equal(verify_p("{\"sub\":\"42\",\"jti\":\"j1\",\"iat\":1700000000,\"exp\":1700003600}"),
                   JWT_EISSUER);
  assert_int_equal(verify_p("{\"iss\":\"Storm\",\"sub\":\"42\",\"jti\":\"j1\",\"iat\":1700000000,"
                            "\"exp\":1700003600}"),
                   JWT_EISSUER);
  assert_int_equal(verify_p("{\"iss\":\"storm2\",\"sub\":\"42\",\"jti\":\"j1\",\"iat\":1700000000,"
                            "\"exp\":1700003600}"),
                   JWT_EISSUER);
  assert_int_equal(verify_p("{\"iss\":\"\",\"sub\":\"42\",\"jti\":\"j1\",\"iat\":1700000000,"
                            "\"exp\":1700003600}"),
                   JWT_EISSUER);
  assert_int_equal(verify_p(P_PRE "\"iat\":1700000000}"), JWT_EEXPIRED);
  assert_int_equal(verify_p("{\"iss\":\"storm\",\"jti\":\"j1\",\"iat\":1700000000,\"exp\":1700003600}"),
                   JWT_ECLAIMS);
  assert_int_equal(verify_p("{\"iss\":\"storm\",\"sub\":\"\",\"jti\":\"j1\",\"iat\":1700000000,"
                            "\"exp\":1700003600}"),
                   JWT_ECLAIMS);
  assert_int_equal(verify_p("{\"iss\":\"storm\",\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700003600}"),
                   JWT_ECLAIMS);
  assert_int_equal(verify_p("{\"iss\":\"storm\",\"sub\":\"42\",\"jti\":\"\",\"iat\":1700000000,"
                            "\"exp\":1700003600}"),
                   JWT_ECLAIMS);
  assert_int_equal(verify_p(P_PRE "\"exp\":1700003600}"), JWT_ECLAIMS);
  /* Unknown claims are ignored. */
  assert_int_equal(verify_p(P_PRE "\"iat\":1700000000,\"exp\":1700003600,\"admin\":true}"), 0);
}

static int verify_times(int64_t iat, int64_t nbf, int64_t exp, int64_t now) {
  char payload[256], tok[1024];
  if (nbf)
    snprintf(payload, sizeof payload, P_PRE "\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}",
             (long long)iat, (long long)nbf, (long long)exp);
  else
    snprintf(payload, sizeof payload, P_PRE "\"iat\":%lld,\"exp\":%lld}", (long long)iat,
             (long long)exp);
  size_t n = make_token(tok, sizeof tok, HDR_CUR, payload, CUR_SECRET, ALG_HS256);
  return jwt_verify(&keys, tok, n, now, NULL);
}

static void test_times(void **state) {
  (void)state;
  /* exp: expired once exp <= now - leeway (5 s). */
  assert_int_equal(verify_times(NOW - 100, 0, NOW - 4, NOW), 0);
  assert_int_equal(verify_times(NOW - 100, 0, NOW - 5, NOW), JWT_EEXPIRED);
  assert_int_equal(verify_times(NOW - 100, 0, NOW - 3600, NOW), JWT_EEXPIRED);
  assert_int_equal(verify_times(NOW - 100, 0, INT64_MIN, NOW), JWT_EEXPIRED);
  /* nbf and iat: not yet once more than leeway ahead. */
  assert_int_equal(verify_times(NOW, NOW + 5, NOW + 60, NOW), 0);
  assert_int_equal(verify_times(NOW, NOW + 6, NOW + 60, NOW), JWT_ENOTYET);
  assert_int_equal(verify_times(NOW + 5, 0, NOW + 60, NOW), 0);
  assert_int_equal(verify_times(NOW + 6, 0, NOW + 60, NOW), JWT_ENOTYET);
  assert_int_equal(verify_times(NOW, INT64_MAX, INT64_MAX, NOW), JWT_ENOTYET);
  /* Expired wins over not-yet (both are true here). */
  assert_int_equal(verify_times(NOW + 100, 0, NOW - 100, NOW), JWT_EEXPIRED);
  /* Extreme clocks do not overflow (UBSan would abort). */
  assert_int_equal(verify_times(0, 0, INT64_MAX, INT64_MAX), 0);
  assert_int_equal(verify_times(INT64_MIN, 0, INT64_MAX, INT64_MIN), 0);
  assert_int_equal(verify_times(INT64_MAX, 0, INT64_MAX, INT64_MIN), JWT_ENOTYET);

  /* Leeway is the key set's setting; negative counts as none. */
  int64_t saved = keys.leeway_s;
  keys.leeway_s = 0;
  assert_int_equal(verify_times(NOW, 0, NOW, NOW), JWT_EEXPIRED);
  assert_int_equal(verify_times(NOW, 0, NOW + 1, NOW), 0);
  assert_int_equal(verify_times(NOW + 1, 0, NOW + 60, NOW), JWT_ENOTYET);
  keys.leeway_s = -100;
  assert_int_equal(verify_times(NOW, 0, NOW + 1, NOW), 0);
  keys.leeway_s = 60;
  assert_int_equal(verify_times(NOW - 100, 0, NOW - 59, NOW), 0);
  keys.leeway_s = saved;
}

static void test_out_zeroed_on_failure(void **state) {
  (void)state;
  char tok[1024];
  size_t n = make_token(tok, sizeof tok, HDR_CUR, GOOD_PAYLOAD, CUR_SECRET, ALG_HS256);
  jwt_claims_t out, zero;
  memset(&zero, 0, sizeof zero);
  memset(&out, 0x55, sizeof out);
  /* Signature and claims parse fine; only the clock is wrong. */
  assert_int_equal(jwt_verify(&keys, tok, n, NOW + 7200, &out), JWT_EEXPIRED);
  assert_memory_equal(&out, &zero, sizeof out);
  memset(&out, 0x55, sizeof out);
  assert_int_equal(jwt_verify(&keys, "x", 1, NOW, &out), JWT_EMALFORMED);
  assert_memory_equal(&out, &zero, sizeof out);
}

/* Flip every character of a good token to another base64url character: it
 * must never verify, and only the signature or structure checks may say so
 * (flips in the header may also break its JSON or change alg/kid text). */
static void test_tamper_every_char(void **state) {
  (void)state;
  char tok[1024];
  size_t n = make_token(tok, sizeof tok, HDR_CUR, GOOD_PAYLOAD, CUR_SECRET, ALG_HS256);
  assert_int_equal(verify_str(tok), 0);
  size_t dot1 = strchr(tok, '.') - tok;
  for (size_t i = 0; i < n; i++) {
    if (tok[i] == '.') continue;
    char saved = tok[i];
    tok[i] = saved == 'A' ? 'B' : 'A';
    int rc = jwt_verify(&keys, tok, n, NOW, NULL);
    if (i < dot1)
      assert_true(rc == JWT_EMALFORMED || rc == JWT_ESIGNATURE || rc == JWT_EALG || rc == JWT_EKID);
    else
      assert_true(rc == JWT_EMALFORMED || rc == JWT_ESIGNATURE);
    tok[i] = saved;
  }
  /* Specific ones: a middle payload and a middle signature char are
   * signature failures; the last signature char made non-canonical is
   * malformed (43 chars carry 258 bits, the low 2 of the last must be 0). */
  char *sig = strrchr(tok, '.') + 1;
  char *pay = tok + dot1 + 1;
  pay[5] = pay[5] == 'x' ? 'y' : 'x';
  assert_int_equal(verify_str(tok), JWT_ESIGNATURE);
  make_token(tok, sizeof tok, HDR_CUR, GOOD_PAYLOAD, CUR_SECRET, ALG_HS256);
  sig[10] = sig[10] == 'x' ? 'y' : 'x';
  assert_int_equal(verify_str(tok), JWT_ESIGNATURE);
  make_token(tok, sizeof tok, HDR_CUR, GOOD_PAYLOAD, CUR_SECRET, ALG_HS256);
  char *last = &sig[42];
  int v = (int)(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *last) -
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
  *last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[v ^ 1];
  assert_int_equal(verify_str(tok), JWT_EMALFORMED);

  /* A different but valid header, with the old signature. */
  char other[1024], mixed[2048];
  make_token(other, sizeof other, "{\"alg\":\"HS256\",\"kid\":\"" CUR_KID "\"}", GOOD_PAYLOAD,
             CUR_SECRET, ALG_HS256);
  make_token(tok, sizeof tok, HDR_CUR, GOOD_PAYLOAD, CUR_SECRET, ALG_HS256);
  /* header of `other`, payload and signature of `tok` */
  snprintf(mixed, sizeof mixed, "%.*s%s", (int)(strchr(other, '.') - other), other,
           strchr(tok, '.'));
  assert_int_equal(verify_str(mixed), JWT_ESIGNATURE);
}

static void test_structure(void **state) {
  (void)state;
  char tok[1024], t2[1100];
  size_t n = make_token(tok, sizeof tok, HDR_CUR, GOOD_PAYLOAD, CUR_SECRET, ALG_HS256);
  const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
  int hn = (int)(d1 - tok), pn = (int)(d2 - d1 - 1);
  const char *sig = d2 + 1;

  snprintf(t2, sizeof t2, "%s.%s", tok, sig); /* 4 parts */
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  snprintf(t2, sizeof t2, "%s.", tok); /* 4 parts, the last empty */
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  snprintf(t2, sizeof t2, "%.*s.%s", hn, tok, sig); /* 2 parts */
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  snprintf(t2, sizeof t2, "%.*s", (int)(d2 - tok), tok); /* 2 parts, no signature */
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  snprintf(t2, sizeof t2, ".%.*s.%s", pn, d1 + 1, sig); /* empty header */
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  snprintf(t2, sizeof t2, "%.*s..%s", hn, tok, sig); /* empty payload */
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  snprintf(t2, sizeof t2, "%.*s.", (int)(d2 - tok), tok); /* empty signature, HS256 header */
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  assert_int_equal(verify_str(".."), JWT_EMALFORMED);
  assert_int_equal(verify_str("."), JWT_EMALFORMED);
  assert_int_equal(jwt_verify(&keys, "", 0, NOW, NULL), JWT_EMALFORMED);
  assert_int_equal(jwt_verify(&keys, NULL, 0, NOW, NULL), JWT_EMALFORMED);
  assert_int_equal(jwt_verify(NULL, tok, n, NOW, NULL), JWT_EMALFORMED);

  /* Padding in each part (the header and payload are re-padded copies). */
  snprintf(t2, sizeof t2, "%.*s=.%.*s.%s", hn, tok, pn, d1 + 1, sig);
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  snprintf(t2, sizeof t2, "%.*s.%.*s=.%s", hn, tok, pn, d1 + 1, sig);
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  snprintf(t2, sizeof t2, "%s=", tok);
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  /* Signature one character short or long; standard-base64 characters. */
  snprintf(t2, sizeof t2, "%.*s", (int)n - 1, tok);
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  snprintf(t2, sizeof t2, "%sA", tok);
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  snprintf(t2, sizeof t2, "%s", tok);
  t2[n - 5] = '+';
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  /* Whitespace around or inside. */
  snprintf(t2, sizeof t2, " %s", tok);
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  snprintf(t2, sizeof t2, "%s\n", tok);
  assert_int_equal(verify_str(t2), JWT_EMALFORMED);
  /* len bounds the token: a NUL before it is a bad byte, bytes after it are
   * not read. */
  assert_int_equal(jwt_verify(&keys, tok, n - 1, NOW, NULL), JWT_EMALFORMED);
  memcpy(t2, tok, n);
  t2[n] = '\0';
  memcpy(t2 + n + 1, "garbage", 8);
  assert_int_equal(jwt_verify(&keys, t2, n + 1, NOW, NULL), JWT_EMALFORMED);
  assert_int_equal(jwt_verify(&keys, t2, n, NOW, NULL), 0);
}

/* A correctly signed token of exactly JWT_MAX_TOKEN bytes verifies; one
 * byte more is refused unparsed. */
static void test_max_token(void **state) {
  (void)state;
  static char tok[4096], payload[3000], pad[2000];
  bool hit_max = false, hit_over = false;
  /* Base64 lengths skip values (never 1 mod 4), so vary the header too to
   * land on both exact sizes. */
  for (size_t hpad = 0; hpad < 4; hpad++) {
    char header[128];
    snprintf(header, sizeof header, "{\"alg\":\"HS256\",\"kid\":\"" CUR_KID "\",\"x\":\"%.*s\"}",
             (int)hpad, "xxxx");
    for (size_t padlen = 1300; padlen < 1500; padlen++) {
      memset(pad, 'p', padlen);
      pad[padlen] = '\0';
      snprintf(payload, sizeof payload,
               P_PRE "\"iat\":1700000000,\"exp\":1700003600,\"pad\":\"%s\"}", pad);
      size_t n = make_token(tok, sizeof tok, header, payload, CUR_SECRET, ALG_HS256);
      if (n == JWT_MAX_TOKEN) {
        hit_max = true;
        assert_int_equal(jwt_verify(&keys, tok, n, NOW, NULL), 0);
      } else if (n == JWT_MAX_TOKEN + 1) {
        hit_over = true;
        assert_int_equal(jwt_verify(&keys, tok, n, NOW, NULL), JWT_EMALFORMED);
      } else {
        assert_int_equal(jwt_verify(&keys, tok, n, NOW, NULL), n > JWT_MAX_TOKEN ? JWT_EMALFORMED : 0);
      }
    }
  }
  assert_true(hit_max);
  assert_true(hit_over);
}

static void test_sign_errors(void **state) {
  (void)state;
  jwt_claims_t c = good_claims();
  char tok[JWT_MAX_TOKEN + 1];
  int n = jwt_sign(&keys, &c, tok, sizeof tok);
  assert_true(n > 0);
  char small[JWT_MAX_TOKEN + 1];
  assert_int_equal(jwt_sign(&keys, &c, small, (size_t)n), -ENOSPC); /* no room for the NUL */
  assert_int_equal(jwt_sign(&keys, &c, small, 0), -ENOSPC);
  assert_int_equal(jwt_sign(&keys, &c, small, (size_t)n + 1), n);
  assert_string_equal(small, tok);

  c.sub[0] = '\0';
  assert_int_equal(jwt_sign(&keys, &c, tok, sizeof tok), -EINVAL);
  c = good_claims();
  c.jti[0] = '\0';
  assert_int_equal(jwt_sign(&keys, &c, tok, sizeof tok), -EINVAL);
  c = good_claims();
  memset(c.sub, '1', sizeof c.sub); /* not NUL-terminated */
  assert_int_equal(jwt_sign(&keys, &c, tok, sizeof tok), -EINVAL);
  c = good_claims();
  memset(c.name, 'n', sizeof c.name);
  assert_int_equal(jwt_sign(&keys, &c, tok, sizeof tok), -EINVAL);
  c = good_claims();
  memset(c.jti, 'j', sizeof c.jti);
  assert_int_equal(jwt_sign(&keys, &c, tok, sizeof tok), -EINVAL);
  c = good_claims();
  strcpy(c.name, "bad \xff utf-8");
  assert_int_equal(jwt_sign(&keys, &c, tok, sizeof tok), -EINVAL);
  assert_int_equal(jwt_sign(NULL, &c, tok, sizeof tok), -EINVAL);
  assert_int_equal(jwt_sign(&keys, NULL, tok, sizeof tok), -EINVAL);

  /* Every field full of control characters escapes to \u00XX (6 bytes
   * each): the token would pass JWT_MAX_TOKEN, so it is refused, while the
   * same lengths of plain text sign and verify. */
  jwt_keys_t k;
  char iss[64];
  memset(iss, '\x01', 63);
  iss[63] = '\0';
  assert_int_equal(jwt_keys_init(&k, CUR_SECRET, 32, NULL, 0, iss), 0);
  memset(&c, 0, sizeof c);
  memset(c.sub, '\x01', 63);
  memset(c.name, '\x01', 63);
  memset(c.jti, '\x01', 47);
  c.iat = NOW;
  c.exp = NOW + 60;
  assert_int_equal(jwt_sign(&k, &c, tok, sizeof tok), -EINVAL);
  memset(iss, 'i', 63);
  assert_int_equal(jwt_keys_init(&k, CUR_SECRET, 32, NULL, 0, iss), 0);
  memset(c.sub, 's', 63);
  memset(c.name, 'n', 63);
  memset(c.jti, 'j', 47);
  n = jwt_sign(&k, &c, tok, sizeof tok);
  assert_true(n > 0);
  jwt_claims_t out;
  assert_int_equal(jwt_verify(&k, tok, (size_t)n, NOW, &out), 0);
  assert_memory_equal(&out, &c, sizeof c);
}

static void test_strerror(void **state) {
  (void)state;
  const int codes[] = {JWT_EMALFORMED, JWT_EALG,    JWT_EKID,    JWT_ESIGNATURE, JWT_EEXPIRED,
                       JWT_ENOTYET,    JWT_EISSUER, JWT_ECLAIMS, -EINVAL,        -ENOSPC};
  const size_t nc = sizeof codes / sizeof *codes;
  for (size_t i = 0; i < nc; i++) {
    const char *m = jwt_strerror(codes[i]);
    assert_non_null(m);
    assert_string_not_equal(m, jwt_strerror(-123456));
    for (size_t j = 0; j < i; j++) assert_string_not_equal(m, jwt_strerror(codes[j]));
  }
  assert_string_equal(jwt_strerror(-123456), "unknown error");
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_b64_rfc4648_vectors),
      cmocka_unit_test(test_b64_decode_rejects),
      cmocka_unit_test(test_b64_enospc),
      cmocka_unit_test(test_b64_matches_libsodium),
      cmocka_unit_test(test_rfc7515_a1),
      cmocka_unit_test(test_keys_init),
      cmocka_unit_test_setup(test_sign_exact_bytes, setup),
      cmocka_unit_test_setup(test_round_trip, setup),
      cmocka_unit_test_setup(test_key_rotation, setup),
      cmocka_unit_test_setup(test_header_checks, setup),
      cmocka_unit_test_setup(test_claim_types, setup),
      cmocka_unit_test_setup(test_claim_lengths, setup),
      cmocka_unit_test_setup(test_claims_required, setup),
      cmocka_unit_test_setup(test_times, setup),
      cmocka_unit_test_setup(test_out_zeroed_on_failure, setup),
      cmocka_unit_test_setup(test_tamper_every_char, setup),
      cmocka_unit_test_setup(test_structure, setup),
      cmocka_unit_test_setup(test_max_token, setup),
      cmocka_unit_test_setup(test_sign_errors, setup),
      cmocka_unit_test(test_strerror),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
