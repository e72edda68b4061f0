#include "services/gateway/gateway.h"

#include <errno.h>
#include <stdlib.h>

#include "services/gateway/gateway_internal.h"

size_t gateway_conn_user_size(void) { return sizeof(gw_session_t); }

int gateway_start(const gateway_opts_t *o, gateway_t **out) {
  gateway_t *g = calloc(1, sizeof *g);
  if (!g) return -ENOMEM;
  g->server = o->server;
  g->bus = o->bus;
  g->health = o->health;
  g->metrics = o->metrics;
  g->heartbeat_ms = o->heartbeat_ms;
  g->loop = o->loop;
  g->keys = o->keys;
  g->trusted_proxies = o->trusted_proxies ? o->trusted_proxies : "";
  /* 64K buckets (~5 MiB): enough distinct IPs for a launch, bounded against floods. */
  g->auth_limit = ratelimit_new(o->auth_rate, o->auth_burst, 65536);
  int rc = g->auth_limit ? 0 : -ENOMEM;
  if (rc == 0) rc = gateway_http_routes(g);
  if (rc == 0) rc = gateway_auth_routes(g);
  if (rc == 0) rc = gateway_ws_routes(g);
  if (rc < 0) {
    gateway_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

void gateway_free(gateway_t *g) {
  if (!g) return;
  ratelimit_free(g->auth_limit);
  free(g);
}
