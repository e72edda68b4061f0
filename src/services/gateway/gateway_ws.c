/*
 * gateway_ws.c — WebSocket sessions on /ws.
 *
 * The protocol is JSON text frames (docs/protocol.md). This file holds the
 * session plumbing: hello on open, the diagnostic ops (ping, echo) and
 * errors for what the session does not understand. Channel operations come
 * with the messaging service.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"
#include "net/ws_frame.h"
#include "services/gateway/gateway_internal.h"

static void send_json(net_conn_t *c, json_t *obj) {
  char *s = json_dumps(obj, JSON_COMPACT);
  json_decref(obj);
  if (s) {
    ws_send_text(c, s, strlen(s));
    free(s);
  }
}

static void send_error(net_conn_t *c, const char *code, const char *message, json_t *ref) {
  json_t *e = json_pack("{s:s, s:s, s:s}", "op", "error", "code", code, "message", message);
  if (ref) json_object_set(e, "ref", ref);
  send_json(c, e);
}

/* Fills the session and greets: called right after a successful upgrade. */
static void session_start(gateway_t *g, net_conn_t *c, const jwt_claims_t *claims) {
  gw_session_t *s = ws_user(c);
  randombytes_buf(s->session_id, sizeof s->session_id);
  s->user_id = strtoll(claims->sub, NULL, 10);
  snprintf(s->username, sizeof s->username, "%.32s", claims->name);
  char hex[sizeof s->session_id * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, s->session_id, sizeof s->session_id);
  send_json(c, json_pack("{s:s, s:s, s:I, s:{s:I, s:s}}", "op", "hello", "session_id", hex,
                         "heartbeat_interval", (json_int_t)g->heartbeat_ms, "user", "id",
                         (json_int_t)s->user_id, "username", s->username));
}

static void on_message(net_conn_t *c, int opcode, const uint8_t *data, size_t len, void *arg) {
  if (opcode != WS_OP_TEXT) {
    ws_close(c, WS_CLOSE_UNSUPPORTED, "binary frames are not supported");
    return;
  }
  json_error_t err;
  json_t *m = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &err);
  if (!m || !json_is_object(m)) {
    send_error(c, "bad_json", "message must be a JSON object", NULL);
    json_decref(m);
    return;
  }
  json_t *ref = json_object_get(m, "ref");
  const char *op = json_string_value(json_object_get(m, "op"));
  if (!op) {
    send_error(c, "bad_request", "missing string field 'op'", ref);
  } else if (strcmp(op, "ping") == 0) {
    json_t *p = json_pack("{s:s}", "op", "pong");
    if (ref) json_object_set(p, "ref", ref);
    send_json(c, p);
  } else if (strcmp(op, "echo") == 0) {
    json_t *p = json_pack("{s:s}", "op", "echo");
    json_t *d = json_object_get(m, "data");
    json_object_set(p, "data", d ? d : json_null());
    if (ref) json_object_set(p, "ref", ref);
    send_json(c, p);
  } else {
    char msg[128];
    snprintf(msg, sizeof msg, "unknown op '%.64s'", op);
    send_error(c, "unknown_op", msg, ref);
  }
  json_decref(m);
}

static void on_close(net_conn_t *c, unsigned code, void *arg) {}

/*
 * Browsers cannot set headers on a WebSocket, so the access token may come
 * as the query parameter access_token (JWTs are URL-safe as they are);
 * other clients may use Authorization: Bearer. The token is checked once,
 * at the upgrade: a session outlives its token's expiry, as in Discord.
 */
static void on_ws(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  str_t token = http_req_query(r, "access_token");
  if (!token.p) token = gw_bearer(r);
  jwt_claims_t claims;
  if (gw_authenticate(g, r, token, &claims) < 0) return;
  net_conn_t *c = http_req_conn(r);
  if (ws_upgrade(r, &g->ws_handler) == 0) session_start(g, c, &claims);
}

int gateway_ws_routes(gateway_t *g) {
  g->ws_handler = (ws_handler_t){NULL, on_message, on_close, g};
  return net_server_route(g->server, "GET", "/ws", on_ws, g, 0);
}
