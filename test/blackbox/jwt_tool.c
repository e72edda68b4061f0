/* jwt_tool — a thin command-line face on auth/jwt for the Node interop test
 * (jwt_interop.test.js compiles it against libstorm.a; it is not part of the
 * build). Secrets are hex so that any bytes can be passed.
 *
 *   jwt_tool sign SECRET_HEX ISSUER SUB NAME JTI IAT NBF EXP
 *     prints the token; NBF 0 means none. Exit 1 with the error on stderr.
 *   jwt_tool verify SECRET_HEX PREV_SECRET_HEX|- ISSUER NOW TOKEN
 *     prints {"ok":true,"claims":{...}} or {"ok":false,"error":"JWT_E..."};
 *     exit 0 either way — the verdict is the output.
 * Exit 2 on a usage error. */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"

static const char *error_name(int rc) {
  switch (rc) {
  case JWT_EMALFORMED: return "JWT_EMALFORMED";
  case JWT_EALG: return "JWT_EALG";
  case JWT_EKID: return "JWT_EKID";
  case JWT_ESIGNATURE: return "JWT_ESIGNATURE";
  case JWT_EEXPIRED: return "JWT_EEXPIRED";
  case JWT_ENOTYET: return "JWT_ENOTYET";
  case JWT_EISSUER: return "JWT_EISSUER";
  case JWT_ECLAIMS: return "JWT_ECLAIMS";
  case -EINVAL: return "EINVAL";
  case -ENOSPC: return "ENOSPC";
  default: return "UNKNOWN";
  }
}

static int usage(void) {
  fprintf(stderr, "usage: jwt_tool sign SECRET_HEX ISSUER SUB NAME JTI IAT NBF EXP\n"
                  "       jwt_tool verify SECRET_HEX PREV_SECRET_HEX|- ISSUER NOW TOKEN\n");
  return 2;
}

/* Hex → bytes; -1 if not hex or too long. */
static long unhex(const char *hex, uint8_t *out, size_t cap) {
  size_t len = 0;
  if (sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &len, NULL) != 0) return -1;
  return (long)len;
}

static int parse_i64(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end) return -1;
  *out = v;
  return 0;
}

static int copy_field(char *dst, size_t cap, const char *src) {
  if (strlen(src) >= cap) return -1;
  strcpy(dst, src);
  return 0;
}

static int cmd_sign(char **a) {
  uint8_t secret[JWT_MAX_SECRET + 1];
  long slen = unhex(a[0], secret, sizeof secret);
  jwt_keys_t keys;
  jwt_claims_t c;
  memset(&c, 0, sizeof c);
  if (slen < 0 || copy_field(c.sub, sizeof c.sub, a[2]) || copy_field(c.name, sizeof c.name, a[3]) ||
      copy_field(c.jti, sizeof c.jti, a[4]) || parse_i64(a[5], &c.iat) || parse_i64(a[6], &c.nbf) ||
      parse_i64(a[7], &c.exp))
    return usage();
  int rc = jwt_keys_init(&keys, secret, (size_t)slen, NULL, 0, a[1]);
  if (rc == 0) {
    char tok[JWT_MAX_TOKEN + 1];
    rc = jwt_sign(&keys, &c, tok, sizeof tok);
    if (rc > 0) {
      printf("%s\n", tok);
      return 0;
    }
  }
  fprintf(stderr, "%s: %s\n", error_name(rc), jwt_strerror(rc));
  return 1;
}

static int cmd_verify(char **a) {
  uint8_t cur[JWT_MAX_SECRET + 1], prev[JWT_MAX_SECRET + 1];
  long clen = unhex(a[0], cur, sizeof cur), plen = 0;
  if (strcmp(a[1], "-") != 0) plen = unhex(a[1], prev, sizeof prev);
  int64_t now;
  if (clen < 0 || plen < 0 || parse_i64(a[3], &now)) return usage();
  jwt_keys_t keys;
  int rc = jwt_keys_init(&keys, cur, (size_t)clen, plen ? prev : NULL, (size_t)plen, a[2]);
  if (rc != 0) {
    fprintf(stderr, "%s: %s\n", error_name(rc), jwt_strerror(rc));
    return 1;
  }
  jwt_claims_t c;
  rc = jwt_verify(&keys, a[4], strlen(a[4]), now, &c);
  json_t *o = rc == 0 ? json_pack("{s:b, s:{s:s, s:s, s:s, s:I, s:I, s:I}}", "ok", 1, "claims",
                                  "sub", c.sub, "name", c.name, "jti", c.jti, "iat",
                                  (json_int_t)c.iat, "nbf", (json_int_t)c.nbf, "exp",
                                  (json_int_t)c.exp)
                      : json_pack("{s:b, s:s, s:s}", "ok", 0, "error", error_name(rc), "message",
                                  jwt_strerror(rc));
  if (!o) return 1;
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!s) return 1;
  printf("%s\n", s);
  free(s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 10 && strcmp(argv[1], "sign") == 0) return cmd_sign(argv + 2);
  if (argc == 7 && strcmp(argv[1], "verify") == 0) return cmd_verify(argv + 2);
  return usage();
}
