/*
 * gateway.h — the client-facing service: HTTP routes and WebSocket sessions.
 *
 * The gateway owns no data. It answers the operational endpoints (/healthz,
 * /readyz, /metrics), accepts WebSocket sessions on /ws, and will forward
 * API requests to the owning services over the bus. It never calls another
 * service directly.
 */
#ifndef STORM_SERVICES_GATEWAY_H
#define STORM_SERVICES_GATEWAY_H

#include "auth/jwt.h"
#include "bus/bus.h"
#include "core/health.h"
#include "core/metrics.h"
#include "net/server.h"

typedef struct gateway gateway_t;

typedef struct {
  net_server_t *server;
  bus_t *bus;
  health_t *health;
  metrics_registry_t *metrics;
  uint64_t heartbeat_ms;     /* announced in hello */
  uv_loop_t *loop;
  const jwt_keys_t *keys;    /* verifies access tokens; must outlive the gateway */
  double auth_rate, auth_burst; /* per-IP token bucket on the auth routes */
  const char *trusted_proxies;  /* comma list of proxy IPs; must outlive the gateway */
} gateway_opts_t;

/* Size of the per-connection user area the gateway needs (net_server_opts_t.user_size). */
size_t gateway_conn_user_size(void);

int gateway_start(const gateway_opts_t *o, gateway_t **out);
void gateway_free(gateway_t *g);

#endif
