/*
 * gateway_forward.c — answering an HTTP request with a bus request.
 *
 * The gateway owns no data: an API call becomes a request on the owning
 * service's subject, and the reply becomes the HTTP response. Services
 * reply either a success object (sent as the body) or
 * {"error":{"code","message","status"}}; status picks the HTTP status and
 * is not shown to the client.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "net/http.h"
#include "services/gateway/gateway_internal.h"

#define FORWARD_TIMEOUT_MS 10000

typedef struct {
  http_req_t *req;
  int success_status;
} forward_t;

static void on_reply(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  forward_t *f = arg;
  http_req_t *r = f->req;
  int ok_status = f->success_status;
  free(f);
  if (status == BUS_ETIMEDOUT) {
    http_respond_error(r, 504, "upstream_timeout", "the service did not answer in time");
    return;
  }
  if (status == BUS_ENORESPONDERS) {
    http_respond_error(r, 503, "service_unavailable", "no instance of the service is running");
    return;
  }
  if (status < 0) {
    http_respond_error(r, 503, "service_unavailable", "the request was cancelled");
    return;
  }
  json_error_t err;
  json_t *j = json_loadb(msg->data, msg->len, 0, &err);
  if (!j || !json_is_object(j)) {
    json_decref(j);
    log_error("gateway", "malformed reply on %s", msg->subject);
    http_respond_error(r, 502, "bad_upstream_reply", "the service answered something unreadable");
    return;
  }
  json_t *e = json_object_get(j, "error");
  if (e) {
    json_int_t st = json_integer_value(json_object_get(e, "status"));
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *message = json_string_value(json_object_get(e, "message"));
    http_respond_error(r, st >= 400 && st <= 599 ? (int)st : 500, code ? code : "internal",
                       message ? message : "internal error");
  } else if (ok_status == 204) {
    http_respond_empty(r, 204);
  } else {
    http_respond(r, ok_status, "application/json", NULL, msg->data, msg->len);
  }
  json_decref(j);
}

void gw_forward(gateway_t *g, http_req_t *r, const char *subject, const char *payload, size_t len,
                int success_status) {
  forward_t *f = malloc(sizeof *f);
  if (!f) {
    http_respond_error(r, 503, "overloaded", "out of memory");
    return;
  }
  f->req = r;
  f->success_status = success_status;
  int rc = bus_request(g->bus, subject, payload, len, FORWARD_TIMEOUT_MS, on_reply, f, NULL);
  if (rc < 0) {
    free(f);
    if (rc == -EMSGSIZE)
      http_respond_error(r, 413, "payload_too_large", "request too large for the bus");
    else
      http_respond_error(r, 503, "service_unavailable", "the bus is not available");
  }
}

void gw_forward_json(gateway_t *g, http_req_t *r, const char *subject, json_t *payload,
                     int success_status) {
  char *s = json_dumps(payload, JSON_COMPACT);
  json_decref(payload);
  if (!s) {
    http_respond_error(r, 500, "internal", "could not encode the request");
    return;
  }
  gw_forward(g, r, subject, s, strlen(s), success_status);
  free(s);
}
