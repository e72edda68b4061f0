/*
 * gateway_http.c — operational endpoints: liveness, readiness, metrics.
 */
#include <stdlib.h>
#include <string.h>

#include "net/http.h"
#include "services/gateway/gateway_internal.h"

static void on_healthz(http_req_t *r, void *arg) {
  static const char body[] = "{\"status\":\"ok\"}";
  http_respond(r, 200, "application/json", NULL, body, sizeof body - 1);
}

static void on_readyz(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  buf_t b = BUF_INIT;
  bool ready = health_ready(g->health, &b);
  http_respond(r, ready ? 200 : 503, "application/json", NULL, b.data, b.len);
  buf_free(&b);
}

static void on_metrics(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  buf_t b = BUF_INIT;
  metrics_render(g->metrics, &b);
  if (b.oom) {
    buf_free(&b);
    http_respond_error(r, 500, "internal", "out of memory");
    return;
  }
  http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data, b.len);
  buf_free(&b);
}

int gateway_http_routes(gateway_t *g) {
  int rc = 0;
  rc = rc ? rc : net_server_route(g->server, "GET", "/healthz", on_healthz, g, 0);
  rc = rc ? rc : net_server_route(g->server, "GET", "/readyz", on_readyz, g, 0);
  rc = rc ? rc : net_server_route(g->server, "GET", "/metrics", on_metrics, g, 0);
  return rc;
}
