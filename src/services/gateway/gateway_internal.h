/* gateway_internal.h — shared by the gateway's files only. */
#ifndef STORM_SERVICES_GATEWAY_INTERNAL_H
#define STORM_SERVICES_GATEWAY_INTERNAL_H

#include "auth/jwt.h"
#include "core/ratelimit.h"
#include "net/ws.h"
#include "services/gateway/gateway.h"

struct gateway {
  net_server_t *server;
  bus_t *bus;
  health_t *health;
  metrics_registry_t *metrics;
  uint64_t heartbeat_ms;
  ws_handler_t ws_handler;
  uv_loop_t *loop;
  const jwt_keys_t *keys;
  ratelimit_t *auth_limit;
  const char *trusted_proxies;
};

/* Per-connection session, in the connection's user area. */
typedef struct {
  unsigned char session_id[16];
  int64_t user_id;
  char username[33];
} gw_session_t;

int gateway_http_routes(gateway_t *g);
int gateway_ws_routes(gateway_t *g);
int gateway_auth_routes(gateway_t *g);

/* Answers r with the reply to a bus request on subject (see gateway_forward.c). */
void gw_forward(gateway_t *g, http_req_t *r, const char *subject, const char *payload, size_t len,
                int success_status);
/* Same with a JSON payload, which it serialises and decrefs. */
void gw_forward_json(gateway_t *g, http_req_t *r, const char *subject, json_t *payload,
                     int success_status);
/* The client's IP: the peer, or from X-Forwarded-For when the peer is a trusted proxy. */
void gw_client_ip(const gateway_t *g, const http_req_t *r, char *out, size_t outlen);
/* The token of an "Authorization: Bearer" header, or STR_NULL. */
str_t gw_bearer(const http_req_t *r);
/* Verifies token; on failure answers 401 itself and returns -1. */
int gw_authenticate(gateway_t *g, http_req_t *r, str_t token, jwt_claims_t *claims);

#endif
