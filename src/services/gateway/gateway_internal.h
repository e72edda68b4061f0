/* gateway_internal.h — shared by the gateway's files only. */
#ifndef STORM_SERVICES_GATEWAY_INTERNAL_H
#define STORM_SERVICES_GATEWAY_INTERNAL_H

#include "net/ws.h"
#include "services/gateway/gateway.h"

struct gateway {
  net_server_t *server;
  bus_t *bus;
  health_t *health;
  metrics_registry_t *metrics;
  uint64_t heartbeat_ms;
  ws_handler_t ws_handler;
};

/* Per-connection session, in the connection's user area. */
typedef struct {
  unsigned char session_id[16];
} gw_session_t;

int gateway_http_routes(gateway_t *g);
int gateway_ws_routes(gateway_t *g);

#endif
