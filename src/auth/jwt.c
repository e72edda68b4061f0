/* jwt.c — HS256 JSON Web Tokens; see jwt.h for the contract. */
#include "auth/jwt.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define JWT_SIG_LEN 32

/* ---- base64url (RFC 4648 §5, no padding) ----
 * Our own codec rather than sodium_base642bin: that one stops quietly at the
 * first '=' (it reports where it stopped, which is easy to forget to check),
 * and a codec this small is easier to read whole than to wrap. */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* -1 for every byte outside the alphabet, so '=', '+', '/' and NUL fail. */
static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

static size_t b64_encoded_len(size_t n) { return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0); }

int b64url_encode(const void *in, size_t len, char *out, size_t outlen) {
  const uint8_t *p = in;
  if (len > (size_t)INT32_MAX / 4 * 3) return -EINVAL; /* result must fit the int return */
  size_t need = b64_encoded_len(len);
  if (outlen < need + 1) return -ENOSPC;
  size_t o = 0, i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
    out[o++] = b64_alphabet[v >> 6 & 63];
    out[o++] = b64_alphabet[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)p[i] << 16;
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
    out[o++] = b64_alphabet[v >> 6 & 63];
  }
  out[o] = '\0';
  return (int)o;
}

/* Rejects non-canonical trailing bits so that each byte string has exactly
 * one encoding: otherwise "…Xk" and "…Xl" would both carry the same signature,
 * and anything keyed on the token text (replay caches, logs) could be fooled. */
int b64url_decode(const char *in, size_t len, void *out, size_t outlen) {
  if (len % 4 == 1 || len > (size_t)INT32_MAX) return -EINVAL;
  /* Validate everything first: bad input is -EINVAL whatever the buffer
   * size, and out is untouched on any error. */
  for (size_t i = 0; i < len; i++)
    if (b64_value((unsigned char)in[i]) < 0) return -EINVAL;
  int last = len ? b64_value((unsigned char)in[len - 1]) : 0;
  if (len % 4 == 2 && (last & 0x0F)) return -EINVAL; /* 12 bits carry 8: low 4 must be 0 */
  if (len % 4 == 3 && (last & 0x03)) return -EINVAL; /* 18 bits carry 16: low 2 must be 0 */
  size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
  if (outlen < need) return -ENOSPC;

  uint8_t *o = out;
  uint32_t acc = 0;
  unsigned bits = 0;
  size_t w = 0;
  for (size_t i = 0; i < len; i++) {
    acc = (acc << 6 | (uint32_t)b64_value((unsigned char)in[i])) & 0xFFFFFF;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[w++] = (uint8_t)(acc >> bits);
    }
  }
  return (int)w;
}

/* ---- keys ---- */

void jwt_hs256(const void *key, size_t key_len, const void *input, size_t len,
               uint8_t out[JWT_SIG_LEN]) {
  /* The _init/_update/_final form takes keys of any length (the one-shot
   * crypto_auth_hmacsha256 wants exactly 32 bytes). */
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, key_len);
  crypto_auth_hmacsha256_update(&st, input, len);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st); /* the state holds the padded key */
}

static int key_set(jwt_key_t *k, const void *secret, size_t len) {
  if (!secret || len < JWT_MIN_SECRET || len > JWT_MAX_SECRET) return -EINVAL;
  memcpy(k->secret, secret, len);
  k->secret_len = len;
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, k->secret, len);
  sodium_bin2hex(k->kid, sizeof k->kid, h, JWT_KID_LEN / 2);
  return 0;
}

int jwt_keys_init(jwt_keys_t *keys, const void *current, size_t current_len, const void *previous,
                  size_t previous_len, const char *issuer) {
  if (sodium_init() < 0) return -EIO;
  /* Built aside and copied at the end: a rotation may pass keys' own
   * current secret and issuer as the new previous secret and issuer, and
   * a failed init must leave keys as they were. */
  jwt_keys_t k;
  memset(&k, 0, sizeof k);
  size_t ilen = issuer ? strlen(issuer) : 0;
  int rc = -EINVAL;
  if (ilen == 0 || ilen >= sizeof k.issuer) goto out;
  if ((rc = key_set(&k.current, current, current_len)) < 0) goto out;
  if (previous && previous_len) {
    if ((rc = key_set(&k.previous, previous, previous_len)) < 0) goto out;
    k.has_previous = true;
  }
  memcpy(k.issuer, issuer, ilen + 1);
  k.leeway_s = 5;
  *keys = k;
out:
  sodium_memzero(&k, sizeof k); /* no stray copy of a secret on the stack */
  return rc;
}

/* ---- sign ---- */

/* True if s holds a NUL within its n bytes. */
static bool terminated(const char *s, size_t n) { return memchr(s, '\0', n) != NULL; }

/* Adds key: s, or fails on invalid UTF-8 (json_string checks it). */
static int set_str(json_t *o, const char *key, const char *s) {
  json_t *v = json_string(s);
  return v ? json_object_set_new(o, key, v) : -1;
}

static int set_int(json_t *o, const char *key, int64_t v) {
  json_t *j = json_integer((json_int_t)v);
  return j ? json_object_set_new(o, key, j) : -1;
}

int jwt_sign(const jwt_keys_t *keys, const jwt_claims_t *c, char *out, size_t outlen) {
  if (!keys || !c || !out) return -EINVAL;
  if (!terminated(c->sub, sizeof c->sub) || !terminated(c->name, sizeof c->name) ||
      !terminated(c->jti, sizeof c->jti) || !terminated(keys->issuer, sizeof keys->issuer))
    return -EINVAL;
  if (!c->sub[0] || !c->jti[0]) return -EINVAL; /* verify would call it ECLAIMS */

  /* Insertion order is the documented key order (JSON_PRESERVE_ORDER is
   * what older jansson needs to keep it; newer always does). */
  json_t *p = json_object();
  if (!p) return -ENOMEM;
  int bad = set_str(p, "iss", keys->issuer) | set_str(p, "sub", c->sub) |
            set_str(p, "name", c->name) | set_str(p, "jti", c->jti) | set_int(p, "iat", c->iat);
  if (c->nbf) bad |= set_int(p, "nbf", c->nbf);
  bad |= set_int(p, "exp", c->exp);
  char payload[JWT_MAX_TOKEN];
  size_t plen = bad ? 0 : json_dumpb(p, payload, sizeof payload, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(p);
  if (bad || plen == 0 || plen > sizeof payload) return -EINVAL;

  char header[96];
  int hlen = snprintf(header, sizeof header, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                      keys->current.kid);

  /* Assemble in a scratch buffer of the largest acceptable size: a token that
   * verify would refuse as too long is an -EINVAL here, not a bigger-buffer
   * problem. */
  char tok[JWT_MAX_TOKEN + 1];
  int r = b64url_encode(header, (size_t)hlen, tok, sizeof tok);
  if (r < 0) return -EINVAL; /* cannot happen (~70 chars) */
  size_t n = (size_t)r;
  tok[n++] = '.';
  if ((r = b64url_encode(payload, plen, tok + n, sizeof tok - n)) < 0) return -EINVAL;
  n += (size_t)r;
  uint8_t sig[JWT_SIG_LEN];
  jwt_hs256(keys->current.secret, keys->current.secret_len, tok, n, sig);
  tok[n++] = '.';
  if ((r = b64url_encode(sig, sizeof sig, tok + n, sizeof tok - n)) < 0) return -EINVAL;
  n += (size_t)r;
  if (outlen < n + 1) return -ENOSPC;
  memcpy(out, tok, n + 1);
  return (int)n;
}

/* ---- verify ---- */

/* Decodes one base64url part and parses it as a JSON object with unique keys. */
static json_t *decode_object(const char *p, size_t n) {
  char buf[JWT_MAX_TOKEN];
  int len = b64url_decode(p, n, buf, sizeof buf);
  if (len <= 0) return NULL;
  json_error_t err;
  json_t *j = json_loadb(buf, (size_t)len, JSON_REJECT_DUPLICATES, &err);
  if (j && !json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

static bool str_is(const json_t *v, const char *s) {
  size_t n = strlen(s);
  return json_is_string(v) && json_string_length(v) == n && memcmp(json_string_value(v), s, n) == 0;
}

/* The header: alg pinned to exactly "HS256" (case matters: "hs256" is not
 * it), typ optional but "JWT" if present, no "crit" since we implement no
 * extension, and a kid naming one of our keys. */
static int check_header(const jwt_keys_t *keys, const char *p, size_t n, const jwt_key_t **key) {
  json_t *h = decode_object(p, n);
  if (!h) return JWT_EMALFORMED;
  int rc = 0;
  const json_t *typ = json_object_get(h, "typ");
  const json_t *kid = json_object_get(h, "kid");
  if (!str_is(json_object_get(h, "alg"), "HS256") || (typ && !str_is(typ, "JWT")) ||
      json_object_get(h, "crit")) {
    rc = JWT_EALG;
  } else if (kid && str_is(kid, keys->current.kid)) {
    *key = &keys->current;
  } else if (kid && keys->has_previous && str_is(kid, keys->previous.kid)) {
    *key = &keys->previous;
  } else {
    rc = JWT_EKID;
  }
  json_decref(h);
  return rc;
}

/* Copies an optional string claim into dst. 1 if present, 0 if absent,
 * -1 if not a string or too long for dst. */
static int get_str(const json_t *o, const char *key, char *dst, size_t cap) {
  const json_t *v = json_object_get(o, key);
  if (!v) return 0;
  if (!json_is_string(v)) return -1;
  size_t n = json_string_length(v);
  if (n >= cap || memchr(json_string_value(v), '\0', n)) return -1;
  memcpy(dst, json_string_value(v), n + 1);
  return 1;
}

/* Integer claims only: reals (1.5, 1e9) and strings are refused rather than
 * coerced, so there is one reading of every timestamp. */
static int get_int(const json_t *o, const char *key, int64_t *dst) {
  const json_t *v = json_object_get(o, key);
  if (!v) return 0;
  if (!json_is_integer(v)) return -1;
  *dst = (int64_t)json_integer_value(v);
  return 1;
}

static int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

static int check_claims(const jwt_keys_t *keys, const char *p, size_t n, int64_t now,
                        jwt_claims_t *c) {
  json_t *o = decode_object(p, n);
  if (!o) return JWT_EMALFORMED;
  char iss[sizeof keys->issuer] = "";
  int has_iss = get_str(o, "iss", iss, sizeof iss);
  int has_sub = get_str(o, "sub", c->sub, sizeof c->sub);
  int has_name = get_str(o, "name", c->name, sizeof c->name);
  int has_jti = get_str(o, "jti", c->jti, sizeof c->jti);
  int has_iat = get_int(o, "iat", &c->iat);
  int has_nbf = get_int(o, "nbf", &c->nbf);
  int has_exp = get_int(o, "exp", &c->exp);
  json_decref(o);

  if (has_iss < 0 || has_sub < 0 || has_name < 0 || has_jti < 0 || has_iat < 0 || has_nbf < 0 ||
      has_exp < 0)
    return JWT_EMALFORMED;
  if (!has_iss || strcmp(iss, keys->issuer) != 0) return JWT_EISSUER;
  if (!has_exp) return JWT_EEXPIRED;
  if (!has_sub || !c->sub[0] || !has_jti || !c->jti[0] || !has_iat) return JWT_ECLAIMS;

  int64_t leeway = keys->leeway_s > 0 ? keys->leeway_s : 0;
  int64_t past = sat_add(now, -leeway), future = sat_add(now, leeway);
  if (c->exp <= past) return JWT_EEXPIRED;
  if ((has_nbf && c->nbf > future) || c->iat > future) return JWT_ENOTYET;
  return 0;
}

int jwt_verify(const jwt_keys_t *keys, const char *token, size_t len, int64_t now,
               jwt_claims_t *out) {
  jwt_claims_t c;
  memset(&c, 0, sizeof c);
  int rc = JWT_EMALFORMED;
  if (!keys || !token || len == 0 || len > JWT_MAX_TOKEN) goto done;

  /* Structure: exactly two dots, nothing but the base64url alphabet. The
   * signature may be empty here so that "alg":"none" tokens are reported as
   * JWT_EALG by the header check; the signature's own length is checked
   * after it. */
  const char *dot1 = NULL, *dot2 = NULL;
  for (size_t i = 0; i < len; i++) {
    if (token[i] == '.') {
      if (!dot1) {
        dot1 = token + i;
      } else if (!dot2) {
        dot2 = token + i;
      } else {
        goto done;
      }
    } else if (b64_value((unsigned char)token[i]) < 0) {
      goto done;
    }
  }
  if (!dot2) goto done;
  const char *hp = token, *pp = dot1 + 1, *sp = dot2 + 1;
  size_t hn = (size_t)(dot1 - hp), pn = (size_t)(dot2 - pp), sn = (size_t)(token + len - sp);
  if (hn == 0 || pn == 0) goto done;

  const jwt_key_t *key = NULL;
  if ((rc = check_header(keys, hp, hn, &key)) < 0) goto done;

  rc = JWT_EMALFORMED;
  uint8_t sig[JWT_SIG_LEN], want[JWT_SIG_LEN];
  /* Only 43 characters decode to exactly 32 bytes (more is -ENOSPC). */
  if (b64url_decode(sp, sn, sig, sizeof sig) != JWT_SIG_LEN) goto done;
  jwt_hs256(key->secret, key->secret_len, token, (size_t)(dot2 - token), want);
  if (crypto_verify_32(sig, want) != 0) {
    rc = JWT_ESIGNATURE;
    goto done;
  }

  rc = check_claims(keys, pp, pn, now, &c);
done:
  if (rc < 0) memset(&c, 0, sizeof c);
  if (out) *out = c;
  return rc;
}

const char *jwt_strerror(int err) {
  switch (err) {
  case 0: return "ok";
  case JWT_EMALFORMED: return "malformed token";
  case JWT_EALG: return "algorithm not allowed";
  case JWT_EKID: return "unknown key id";
  case JWT_ESIGNATURE: return "bad signature";
  case JWT_EEXPIRED: return "token expired";
  case JWT_ENOTYET: return "token not yet valid";
  case JWT_EISSUER: return "wrong issuer";
  case JWT_ECLAIMS: return "required claim missing";
  case -EINVAL: return "invalid argument";
  case -ENOSPC: return "buffer too small";
  case -ENOMEM: return "out of memory";
  case -EIO: return "crypto library unavailable";
  default: return "unknown error";
  }
}
