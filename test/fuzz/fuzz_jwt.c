/* Fuzzes auth/jwt with a fixed key set (current + previous, issuer "storm")
 * at a fixed clock. The first input byte picks a mode (mod 3), the rest is:
 *   0: a raw token for jwt_verify;
 *   1: "<header JSON>\n<payload JSON>", which the driver encodes and signs
 *      itself (libsodium, not jwt.c) with the current secret and with an
 *      unknown one — this is how the fuzzer reaches the claim checks, which
 *      a random token never passes the signature to see;
 *   2: bytes for the base64url codec, checked against libsodium.
 * Invariants: no crash, sanitizer report or leak; verify is deterministic;
 * 0 only for a token whose HMAC (recomputed here) is right under the key its
 * kid names, whose claims pass the time checks, and whose claims re-sign and
 * re-verify identically; a token signed with an unknown secret never gets
 * past the signature, whatever its claims say. */
#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"

#define NOW 1700000000LL
#define CUR_SECRET "current-secret-0123456789abcdef!"
#define PREV_SECRET "previous-secret-0123456789abcdef"
#define OTHER_SECRET "an-unknown-secret-nobody-configured"

static jwt_keys_t keys;

static bool is_jwt_error(int rc) { return rc <= JWT_EMALFORMED && rc >= JWT_ECLAIMS; }

/* libsodium's base64url (no padding), fully consumed. -1 on error.
 * libsodium 1.0.18 (Debian 12) decodes every byte >= 0x80 as '_' (found by
 * this fuzzer), so such input is refused here before it is asked. */
static long ref_decode(const char *in, size_t n, uint8_t *out, size_t cap) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)in[i] >= 0x80) return -1;
  size_t len = 0;
  const char *end = NULL;
  if (sodium_base642bin(out, cap, in, n, NULL, &len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != in + n)
    return -1;
  return (long)len;
}

static size_t ref_encode(const void *in, size_t n, char *out) {
  sodium_bin2base64(out, sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                    in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return strlen(out);
}

static void ref_hmac(const char *key, const void *in, size_t n, uint8_t mac[32]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, (const uint8_t *)key, strlen(key));
  crypto_auth_hmacsha256_update(&st, in, n);
  crypto_auth_hmacsha256_final(&st, mac);
}

static bool claims_eq(const jwt_claims_t *a, const jwt_claims_t *b) {
  return strcmp(a->sub, b->sub) == 0 && strcmp(a->name, b->name) == 0 &&
         strcmp(a->jti, b->jti) == 0 && a->iat == b->iat && a->nbf == b->nbf && a->exp == b->exp;
}

/* What every successful verification must satisfy, checked independently. */
static void check_accepted(const char *tok, size_t n, const jwt_claims_t *c) {
  if (n > JWT_MAX_TOKEN) abort();
  const char *d1 = memchr(tok, '.', n);
  const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)) : NULL;
  if (!d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - tok))) abort();

  /* The signature is the HMAC under one of our keys, and the header names
   * that key's kid and HS256 (a substring test: the exact parse is jwt.c's). */
  static uint8_t hdr[JWT_MAX_TOKEN];
  long hl = ref_decode(tok, (size_t)(d1 - tok), hdr, sizeof hdr);
  if (hl <= 0) abort();
  uint8_t sig[32], mac[32];
  if (ref_decode(d2 + 1, n - (size_t)(d2 + 1 - tok), sig, sizeof sig) != 32) abort();
  const char *key = NULL;
  ref_hmac(CUR_SECRET, tok, (size_t)(d2 - tok), mac);
  if (sodium_memcmp(sig, mac, 32) == 0 && memmem(hdr, (size_t)hl, keys.current.kid, JWT_KID_LEN))
    key = CUR_SECRET;
  ref_hmac(PREV_SECRET, tok, (size_t)(d2 - tok), mac);
  if (sodium_memcmp(sig, mac, 32) == 0 && memmem(hdr, (size_t)hl, keys.previous.kid, JWT_KID_LEN))
    key = PREV_SECRET;
  if (!key || !memmem(hdr, (size_t)hl, "\"HS256\"", 7)) abort();

  /* The claims the contract promises, NUL-terminated and in time. */
  if (!memchr(c->sub, 0, sizeof c->sub) || !memchr(c->name, 0, sizeof c->name) ||
      !memchr(c->jti, 0, sizeof c->jti) || !c->sub[0] || !c->jti[0])
    abort();
  if (c->exp <= NOW - keys.leeway_s || c->iat > NOW + keys.leeway_s ||
      c->nbf > NOW + keys.leeway_s)
    abort();

  /* Re-signing the claims with the key that verified gives a token that
   * verifies to the same claims (or one too long to sign, only possible
   * when the original was near the limit with a terse header). */
  jwt_keys_t k;
  if (jwt_keys_init(&k, key, strlen(key), NULL, 0, keys.issuer) != 0) abort();
  static char again[JWT_MAX_TOKEN + 1];
  int m = jwt_sign(&k, c, again, sizeof again);
  if (m == -EINVAL && n > JWT_MAX_TOKEN - 200) return;
  if (m <= 0) abort();
  jwt_claims_t c2;
  if (jwt_verify(&keys, again, (size_t)m, NOW, &c2) != 0 || !claims_eq(c, &c2)) abort();
}

static int verify_checked(const char *tok, size_t n) {
  jwt_claims_t c, c2;
  int rc = jwt_verify(&keys, tok, n, NOW, &c);
  if (rc != 0 && !is_jwt_error(rc)) abort();
  if (jwt_verify(&keys, tok, n, NOW, &c2) != rc || memcmp(&c, &c2, sizeof c) != 0) abort();
  if (rc == 0) check_accepted(tok, n, &c);
  return rc;
}

static void mode_token(const uint8_t *d, size_t n) {
  if (n > JWT_MAX_TOKEN + 16) return;
  char *tok = malloc(n ? n : 1); /* exact size: ASan catches any overread */
  if (!tok) return;
  memcpy(tok, d, n);
  verify_checked(tok, n);
  free(tok);
}

/* header '.' payload '.' HMAC(key); returns the length. */
static size_t build(char *out, const uint8_t *h, size_t hn, const uint8_t *p, size_t pn,
                    const char *key) {
  size_t n = ref_encode(h, hn, out);
  out[n++] = '.';
  n += ref_encode(p, pn, out + n);
  uint8_t mac[32];
  ref_hmac(key, out, n, mac);
  out[n++] = '.';
  n += ref_encode(mac, sizeof mac, out + n);
  return n;
}

static void mode_signed(const uint8_t *d, size_t n) {
  if (n > 1600) return;
  const uint8_t *nl = memchr(d, '\n', n);
  if (!nl) return;
  size_t hn = (size_t)(nl - d), pn = n - hn - 1;
  static char tok[4096], forged[4096];
  size_t tn = build(tok, d, hn, nl + 1, pn, CUR_SECRET);
  size_t fn = build(forged, d, hn, nl + 1, pn, OTHER_SECRET);
  int rc = verify_checked(tok, tn);
  int rf = verify_checked(forged, fn);
  /* Same header, wrong secret: header verdicts agree, anything that got
   * past the signature with the right key stops at it with the wrong one. */
  if (rc == JWT_EALG || rc == JWT_EKID) {
    if (rf != rc) abort();
  } else if (rc == 0 || rc == JWT_EISSUER || rc == JWT_EEXPIRED || rc == JWT_ENOTYET ||
             rc == JWT_ECLAIMS) {
    if (rf != JWT_ESIGNATURE) abort();
  }
  if (rf == 0) abort();
  if (rc == 0) {
    /* One flipped bit in the middle of the signature: refused by the MAC. */
    char *s = strrchr(tok, '.') + 1;
    s[20] = s[20] == 'A' ? 'B' : 'A';
    if (verify_checked(tok, tn) != JWT_ESIGNATURE) abort();
  }
}

static void mode_b64(const uint8_t *d, size_t n) {
  if (n > 3000) return;
  static char enc[4200], ref[4200];
  static uint8_t dec[3100], rdec[3100];
  /* Bytes → text → bytes. */
  int e = b64url_encode(d, n, enc, sizeof enc);
  if (e < 0 || (size_t)e != (n * 4 + 2) / 3 || ref_encode(d, n, ref) != (size_t)e ||
      memcmp(enc, ref, (size_t)e) != 0)
    abort();
  if (b64url_decode(enc, (size_t)e, dec, sizeof dec) != (long)n || memcmp(dec, d, n) != 0) abort();
  if (n > 0 && b64url_encode(d, n, enc, (size_t)e) != -ENOSPC) abort(); /* no room for NUL */
  /* Text → bytes: agrees with libsodium, and valid text is canonical. */
  const char *s = (const char *)d;
  int r = b64url_decode(s, n, dec, sizeof dec);
  long rr = ref_decode(s, n, rdec, sizeof rdec);
  if ((r >= 0) != (rr >= 0)) abort();
  if (r < 0) {
    if (r != -EINVAL) abort();
    return;
  }
  if (r != rr || memcmp(dec, rdec, (size_t)r) != 0) abort();
  if (b64url_encode(dec, (size_t)r, enc, sizeof enc) != (int)n || memcmp(enc, s, n) != 0) abort();
  if (r > 0 && b64url_decode(s, n, dec, (size_t)r - 1) != -ENOSPC) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool ready;
  if (!ready) {
    if (jwt_keys_init(&keys, CUR_SECRET, strlen(CUR_SECRET), PREV_SECRET, strlen(PREV_SECRET),
                      "storm") != 0)
      abort();
    ready = true;
  }
  if (size == 0) return 0;
  switch (data[0] % 3) {
  case 0: mode_token(data + 1, size - 1); break;
  case 1: mode_signed(data + 1, size - 1); break;
  default: mode_b64(data + 1, size - 1); break;
  }
  return 0;
}
