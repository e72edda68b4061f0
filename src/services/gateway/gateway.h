/*
 * gateway.h — the client-facing service: HTTP routes and WebSocket sessions.
 *
 * The gateway owns no data. It answers the operational endpoints (/healthz,
 * /readyz, /metrics), forwards API requests (/auth, /users, /channels, /dm)
 * to the owning services over the bus, and runs WebSocket sessions on /ws:
 * one bus subscription per channel and per user with local connections,
 * each event framed once and queued on every local member. It never calls
 * another service directly. Everything runs on the loop thread.
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
  /* WebSocket session limits (docs/protocol.md); 0 = the default in brackets. */
  uint32_t resume_limit;        /* messages replayed per channel by resume [1000] */
  /* Presence is fanned out in a channel only while it has at most this many
   * members connected here: each online/offline goes to every member, so a
   * channel of N members joining costs N² frames (10,000 members: 10^8). */
  int presence_max_members;
  double ws_send_rate;          /* per-connection token bucket, ops per second [10] */
  double ws_send_burst;         /* its size [20] */
  uint32_t max_channels;        /* channels delivered per connection [1000] */
  /* Shared state across gateways (presence, auth rate limit); NULL = this
   * process only. Must outlive the gateway; gateway_stop before closing it. */
  struct redis_client *redis;
} gateway_opts_t;

/* Size of the per-connection user area the gateway needs (net_server_opts_t.user_size). */
size_t gateway_conn_user_size(void);

int gateway_start(const gateway_opts_t *o, gateway_t **out);
/* Once the server has drained: stops the gateway's own timers and removes
 * its presence from Redis. Call before closing the Redis client. */
void gateway_stop(gateway_t *g);
void gateway_free(gateway_t *g);

#endif
