/*
 * gateway_auth.c — the account routes (/auth/..., /users/{username}),
 * bearer-token checks, client IP and the per-IP rate limit on /auth/....
 *
 * Tokens are verified here, statelessly (jwt_verify: one HMAC), so an
 * authenticated request costs no bus hop. Accounts themselves are the users
 * service's: every /auth call is forwarded to it over the bus.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "core/log.h"
#include "net/http.h"
#include "services/gateway/gateway_internal.h"
#include "store/redis/redis_shared.h"

#define AUTH_MAX_BODY (8 * 1024)

/* Is ip one of the comma-separated trusted proxies? */
static bool ip_trusted(const char *list, str_t ip) {
  str_t l = str_from(list);
  size_t i = 0;
  while (i < l.n) {
    while (i < l.n && (l.p[i] == ' ' || l.p[i] == ',')) i++;
    size_t start = i;
    while (i < l.n && l.p[i] != ',' && l.p[i] != ' ') i++;
    if (i > start && str_eq((str_t){l.p + start, i - start}, ip)) return true;
  }
  return false;
}

void gw_client_ip(const gateway_t *g, const http_req_t *r, char *out, size_t outlen) {
  const char *peer = http_req_remote_ip(r);
  snprintf(out, outlen, "%s", peer);
  str_t xff = http_req_header(r, "x-forwarded-for");
  if (!xff.p || !ip_trusted(g->trusted_proxies, str_from(peer))) return;
  /* Walk right to left: each trusted hop vouches for the address before it;
   * the first untrusted one is the client. */
  size_t end = xff.n;
  while (end > 0) {
    size_t start = end;
    while (start > 0 && xff.p[start - 1] != ',') start--;
    str_t hop = {xff.p + start, end - start};
    while (hop.n && hop.p[0] == ' ') hop.p++, hop.n--;
    while (hop.n && hop.p[hop.n - 1] == ' ') hop.n--;
    char buf[INET6_ADDRSTRLEN];
    unsigned char tmp[16];
    if (hop.n == 0 || hop.n >= sizeof buf) return;
    memcpy(buf, hop.p, hop.n);
    buf[hop.n] = '\0';
    if (inet_pton(AF_INET, buf, tmp) != 1 && inet_pton(AF_INET6, buf, tmp) != 1) return;
    snprintf(out, outlen, "%s", buf);
    if (!ip_trusted(g->trusted_proxies, hop)) return;
    end = start > 0 ? start - 1 : 0;
  }
}

static void respond_429(http_req_t *r, uint64_t retry_ms) {
  char hdr[48];
  snprintf(hdr, sizeof hdr, "Retry-After: %llu\r\n", (unsigned long long)(retry_ms + 999) / 1000);
  http_respond_error_with(r, 429, hdr, "rate_limited", "too many requests; retry later");
}

static void forward_checked(gateway_t *g, http_req_t *r, const char *subject, int ok_status) {
  json_t *body = gw_json_body(r);
  if (body) gw_forward_json(g, r, subject, body, ok_status);
}

/* Takes a token from this gateway's own buckets: without Redis, and as
 * the fallback when Redis is down (limits then hold per gateway). */
static bool take_local(gateway_t *g, http_req_t *r, const char *ip) {
  uint64_t retry_ms = 0;
  if (ratelimit_take(g->auth_limit, ip, uv_now(g->loop), &retry_ms)) return true;
  respond_429(r, retry_ms);
  return false;
}

typedef struct {
  gateway_t *g;
  http_req_t *r;
  const char *subject;
  int ok_status;
  char ip[64];
} auth_check_t;

static void on_shared_limit(int status, bool allowed, uint64_t retry_ms, void *arg) {
  auth_check_t *a = arg;
  if (status < 0) {
    if (take_local(a->g, a->r, a->ip)) forward_checked(a->g, a->r, a->subject, a->ok_status);
  } else if (!allowed) {
    respond_429(a->r, retry_ms);
  } else {
    forward_checked(a->g, a->r, a->subject, a->ok_status);
  }
  free(a);
}

/* Every /auth POST: the per-IP rate limit (shared by all gateways through
 * Redis when configured), then the body checks, then the users service. */
static void forward_auth(http_req_t *r, void *arg, const char *subject, int ok_status) {
  gateway_t *g = arg;
  char ip[64];
  gw_client_ip(g, r, ip, sizeof ip);
  if (g->redis) {
    auth_check_t *a = malloc(sizeof *a);
    if (a) {
      *a = (auth_check_t){.g = g, .r = r, .subject = subject, .ok_status = ok_status};
      snprintf(a->ip, sizeof a->ip, "%s", ip);
      if (redis_ratelimit_take(g->redis, ip, g->auth_rate, g->auth_burst, on_shared_limit, a) == 0)
        return;
      free(a);
    }
  }
  if (take_local(g, r, ip)) forward_checked(g, r, subject, ok_status);
}

static void on_register(http_req_t *r, void *arg) { forward_auth(r, arg, "users.register", 201); }
static void on_login(http_req_t *r, void *arg) { forward_auth(r, arg, "users.login", 200); }
static void on_refresh(http_req_t *r, void *arg) { forward_auth(r, arg, "users.refresh", 200); }
static void on_logout(http_req_t *r, void *arg) { forward_auth(r, arg, "users.logout", 204); }

int gw_authenticate(gateway_t *g, http_req_t *r, str_t token, jwt_claims_t *claims) {
  if (!token.p || token.n == 0) {
    http_respond_error_with(r, 401, "WWW-Authenticate: Bearer\r\n", "unauthorized",
                            "an access token is required");
    return -1;
  }
  int rc = jwt_verify(g->keys, token.p, token.n, (int64_t)time(NULL), claims);
  if (rc < 0) {
    http_respond_error_with(r, 401, "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n",
                            "invalid_token", jwt_strerror(rc));
    return -1;
  }
  return 0;
}

str_t gw_bearer(const http_req_t *r) {
  str_t h = http_req_header(r, "authorization");
  if (h.n > 7 && str_ieq((str_t){h.p, 7}, STR_LIT("Bearer "))) {
    str_t t = {h.p + 7, h.n - 7};
    while (t.n && t.p[0] == ' ') t.p++, t.n--;
    return t;
  }
  return STR_NULL;
}

static void on_me(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  jwt_claims_t c;
  if (gw_authenticate(g, r, gw_bearer(r), &c) < 0) return;
  json_int_t id = (json_int_t)strtoll(c.sub, NULL, 10);
  gw_forward_json(g, r, "users.get", json_pack("{s:I}", "id", id), 200);
}

static void on_user(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  jwt_claims_t c;
  if (gw_authenticate(g, r, gw_bearer(r), &c) < 0) return;
  str_t name = http_req_param(r, "username");
  gw_forward_json(g, r, "users.get", json_pack("{s:s%}", "username", name.p, name.n), 200);
}

int gateway_auth_routes(gateway_t *g) {
  int rc = 0;
  rc = rc ? rc : net_server_route(g->server, "POST", "/auth/register", on_register, g, AUTH_MAX_BODY);
  rc = rc ? rc : net_server_route(g->server, "POST", "/auth/login", on_login, g, AUTH_MAX_BODY);
  rc = rc ? rc : net_server_route(g->server, "POST", "/auth/refresh", on_refresh, g, AUTH_MAX_BODY);
  rc = rc ? rc : net_server_route(g->server, "POST", "/auth/logout", on_logout, g, AUTH_MAX_BODY);
  rc = rc ? rc : net_server_route(g->server, "GET", "/auth/me", on_me, g, 0);
  rc = rc ? rc : net_server_route(g->server, "GET", "/users/{username}", on_user, g, 0);
  return rc;
}
