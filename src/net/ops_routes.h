/*
 * ops_routes.h — the operational endpoints every STORM process serves,
 * whatever services it runs: GET /healthz (the process is alive),
 * GET /readyz (every registered health check passes: 200, else 503, with
 * the checks in the body), GET /metrics (Prometheus text format).
 *
 * health and metrics are borrowed and must outlive the server.
 */
#ifndef STORM_NET_OPS_ROUTES_H
#define STORM_NET_OPS_ROUTES_H

#include "core/health.h"
#include "core/metrics.h"
#include "net/server.h"

/* 0 or net_server_route's negative errno. */
int net_ops_routes(net_server_t *s, health_t *health, metrics_registry_t *metrics);

#endif
