/*
 * gateway_notifications.c — the notification routes (issue 8):
 *   GET  /notifications            the caller's unread notifications, newest first
 *   POST /notifications/read       {ids?} → {read:n}; no body or no ids = all
 *   PUT  /channels/{id}/mute       {muted: bool} → {channelId, muted}
 *   GET  /channels/{id}/mute       → {channelId, muted}
 * Each checks the bearer token (401) and its input (404 path id, 415 / 400
 * body) and becomes one request to the notifications service, with the
 * caller's id from the verified token as userId: a client can only ever
 * read, mark or mute its own. Live notifications need no route here: they
 * arrive as user.<id> events, which every gateway forwards to all the
 * user's WebSocket connections (gateway_fanout.c).
 */
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "net/http.h"
#include "services/gateway/gateway_internal.h"

/* 100 ids as 19-digit strings fit in ~2.5 KiB; 16 KiB leaves room for
 * whitespace and escapes and bounds what a client makes us parse. */
#define NOTIFICATIONS_MAX_BODY (16 * 1024)

/* The caller's user id from the token; 0 after answering 401. */
static json_int_t caller(gateway_t *g, http_req_t *r) {
  jwt_claims_t c;
  if (gw_authenticate(g, r, gw_bearer(r), &c) < 0) return 0;
  unsigned long long id;
  if (str_to_u64(str_from(c.sub), INT64_MAX, &id) < 0 || id == 0) {
    http_respond_error_with(r, 401, "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n",
                            "invalid_token", "the token's subject is not a user id");
    return 0;
  }
  return (json_int_t)id;
}

static void on_list(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  json_int_t uid = caller(g, r);
  if (!uid) return;
  gw_forward_json(g, r, "notification.get", json_pack("{s:I}", "userId", uid), 200);
}

static void on_read(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  json_int_t uid = caller(g, r);
  if (!uid) return;
  json_t *p = json_pack("{s:I}", "userId", uid);
  size_t len = 0;
  http_req_body(r, &len);
  if (len > 0) {
    json_t *body = gw_json_body(r);
    if (!body) {
      json_decref(p);
      return;
    }
    json_t *ids = json_object_get(body, "ids");
    if (ids && !json_is_null(ids) && !json_is_array(ids)) {
      json_decref(body);
      json_decref(p);
      http_respond_error(r, 400, "bad_request", "ids must be an array of notification ids");
      return;
    }
    if (ids && json_is_array(ids)) json_object_set(p, "ids", ids);
    json_decref(body);
  }
  gw_forward_json(g, r, "notification.read", p, 200);
}

static json_int_t channel_id(http_req_t *r) {
  str_t s = http_req_param(r, "id");
  unsigned long long v;
  if (s.n == 0 || s.p[0] == '0' || str_to_u64(s, INT64_MAX, &v) < 0) {
    http_respond_error(r, 404, "not_found", "no such channel");
    return 0;
  }
  return (json_int_t)v;
}

static void on_mute(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  json_int_t uid = caller(g, r);
  if (!uid) return;
  json_int_t ch = channel_id(r);
  if (!ch) return;
  json_t *body = gw_json_body(r);
  if (!body) return;
  json_t *m = json_object_get(body, "muted");
  if (!json_is_boolean(m)) {
    json_decref(body);
    http_respond_error(r, 400, "bad_request", "muted must be true or false");
    return;
  }
  json_t *p = json_pack("{s:I, s:I, s:b}", "userId", uid, "channelId", ch, "muted", json_is_true(m));
  json_decref(body);
  gw_forward_json(g, r, "notification.mute", p, 200);
}

static void on_mute_get(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  json_int_t uid = caller(g, r);
  if (!uid) return;
  json_int_t ch = channel_id(r);
  if (!ch) return;
  gw_forward_json(g, r, "notification.mute.get",
                  json_pack("{s:I, s:I}", "userId", uid, "channelId", ch), 200);
}

int gateway_notifications_routes(gateway_t *g) {
  static const struct {
    const char *method, *pattern;
    http_handler_fn fn;
    uint64_t max_body;
  } routes[] = {
      {"GET", "/notifications", on_list, 0},
      {"POST", "/notifications/read", on_read, NOTIFICATIONS_MAX_BODY},
      {"PUT", "/channels/{id}/mute", on_mute, NOTIFICATIONS_MAX_BODY},
      {"GET", "/channels/{id}/mute", on_mute_get, 0},
  };
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    int rc = net_server_route(g->server, routes[i].method, routes[i].pattern, routes[i].fn, g,
                              routes[i].max_body);
    if (rc < 0) return rc;
  }
  return 0;
}
