/* ops_routes.c — see ops_routes.h. */
#include "net/ops_routes.h"

#include <stdlib.h>
#include <string.h>

#include "net/http.h"


static void on_healthz(http_req_t *r, void *arg) {
  static const char body[] = "{\"status\":\"ok\"}";
  http_respond(r, 200, "application/json", NULL, body, sizeof body - 1);
}

static void on_readyz(http_req_t *r, void *arg) {
  buf_t b = BUF_INIT;
  bool ready = health_ready(arg, &b);
  http_respond(r, ready ? 200 : 503, "application/json", NULL, b.data, b.len);
  buf_free(&b);
}

static void on_metrics(http_req_t *r, void *arg) {
  buf_t b = BUF_INIT;
  metrics_render(arg, &b);
  if (b.oom) {
    buf_free(&b);
    http_respond_error(r, 500, "internal", "out of memory");
    return;
  }
  http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data, b.len);
  buf_free(&b);
}

int net_ops_routes(net_server_t *s, health_t *health, metrics_registry_t *metrics) {
  int rc = 0;
  rc = rc ? rc : net_server_route(s, "GET", "/healthz", on_healthz, NULL, 0);
  rc = rc ? rc : net_server_route(s, "GET", "/readyz", on_readyz, health, 0);
  rc = rc ? rc : net_server_route(s, "GET", "/metrics", on_metrics, metrics, 0);
  return rc;
}
