/*
 * gateway_messages.c — the channel and message REST routes (issue 4).
 *
 * Each route checks the bearer token (401), its path ids and query (404 /
 * 400), its JSON body where it takes one (415, 400; 413 past
 * MESSAGES_MAX_BODY, from the server), then becomes ONE request to the
 * messages service (docs/subjects.md) whose reply is the response. The
 * payload is built from a whitelist of the documented fields plus user_id
 * and username from the verified token, which a client can therefore never
 * choose; the service checks authorization (membership, ownership,
 * authorship) and validates values.
 *
 * Path ids are canonical positive decimals ("12", not "012", "+12" or
 * "1e3"), at most INT64_MAX: anything else names no resource, so 404,
 * as for an id that does not exist.
 */
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "net/http.h"
#include "services/gateway/gateway_internal.h"

/* Bodies are a message (≤ 16 KB of UTF-8, escaped up to 6x in JSON) plus
 * attachments: 64 KiB is ample and bounds what a client makes us parse. */
#define MESSAGES_MAX_BODY (64 * 1024)

/* The caller, from the verified token. */
typedef struct {
  json_int_t id;
  char name[64];
} caller_t;

static bool authenticate(gateway_t *g, http_req_t *r, caller_t *who) {
  jwt_claims_t c;
  if (gw_authenticate(g, r, gw_bearer(r), &c) < 0) return false;
  unsigned long long id;
  if (str_to_u64(str_from(c.sub), INT64_MAX, &id) < 0 || id == 0) {
    http_respond_error_with(r, 401, "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n",
                            "invalid_token", "the token's subject is not a user id");
    return false;
  }
  who->id = (json_int_t)id;
  memcpy(who->name, c.name, sizeof who->name);
  return true;
}

/* A canonical positive decimal, or 0. */
static json_int_t parse_id(str_t s) {
  unsigned long long v;
  if (s.n == 0 || s.p[0] == '0' || str_to_u64(s, INT64_MAX, &v) < 0) return 0;
  return (json_int_t)v;
}

static json_int_t path_id(http_req_t *r, const char *name, const char *what) {
  json_int_t id = parse_id(http_req_param(r, name));
  if (id == 0) http_respond_error(r, 404, "not_found", what);
  return id;
}

/* {user_id, username} of the caller: every payload starts with it. */
static json_t *payload(const caller_t *who) {
  return json_pack("{s:I, s:s}", "user_id", who->id, "username", who->name);
}

/* Copies the listed fields of body into p, when present. */
static void copy_fields(json_t *p, json_t *body, const char *const *fields) {
  for (size_t i = 0; fields[i]; i++) {
    json_t *v = json_object_get(body, fields[i]);
    if (v) json_object_set(p, fields[i], v);
  }
}

/* An optional non-negative integer query parameter: 1 present, 0 absent,
 * -1 invalid (answered 400). */
static int query_int(http_req_t *r, const char *name, json_int_t *out) {
  str_t v = http_req_query(r, name);
  if (!v.p) return 0;
  unsigned long long n;
  if (str_to_u64(v, INT64_MAX, &n) < 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "query parameter '%s' must be a non-negative integer", name);
    http_respond_error(r, 400, "bad_request", msg);
    return -1;
  }
  *out = (json_int_t)n;
  return 1;
}

/* Adds ?name= to p if present; false if it was invalid (answered). */
static bool add_query(http_req_t *r, json_t *p, const char *name) {
  json_int_t v;
  int rc = query_int(r, name, &v);
  if (rc > 0) json_object_set_new(p, name, json_integer(v));
  return rc >= 0;
}

/* ---- channels ---- */

static void on_create(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  caller_t who;
  if (!authenticate(g, r, &who)) return;
  json_t *body = gw_json_body(r);
  if (!body) return;
  static const char *const fields[] = {"name", "private", "topic", NULL};
  json_t *p = payload(&who);
  copy_fields(p, body, fields);
  json_decref(body);
  gw_forward_json(g, r, "messages.channel.create", p, 201);
}

static void on_list(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  caller_t who;
  if (!authenticate(g, r, &who)) return;
  json_t *p = payload(&who);
  if (str_eq_cstr(http_req_query(r, "public"), "1")) {
    if (!add_query(r, p, "after") || !add_query(r, p, "limit")) {
      json_decref(p);
      return;
    }
    gw_forward_json(g, r, "messages.channel.public", p, 200);
  } else {
    gw_forward_json(g, r, "messages.channel.list", p, 200);
  }
}

/* The routes whose payload is the caller plus the channel id. */
static void forward_channel(http_req_t *r, void *arg, const char *subject, int status) {
  gateway_t *g = arg;
  caller_t who;
  if (!authenticate(g, r, &who)) return;
  json_int_t id = path_id(r, "id", "no such channel");
  if (!id) return;
  json_t *p = payload(&who);
  json_object_set_new(p, "channel_id", json_integer(id));
  gw_forward_json(g, r, subject, p, status);
}

static void on_get(http_req_t *r, void *arg) {
  forward_channel(r, arg, "messages.channel.get", 200);
}
static void on_join(http_req_t *r, void *arg) {
  forward_channel(r, arg, "messages.channel.join", 200);
}
static void on_leave(http_req_t *r, void *arg) {
  forward_channel(r, arg, "messages.channel.leave", 200);
}

static void on_members(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  caller_t who;
  if (!authenticate(g, r, &who)) return;
  json_int_t id = path_id(r, "id", "no such channel");
  if (!id) return;
  json_t *p = payload(&who);
  json_object_set_new(p, "channel_id", json_integer(id));
  if (!add_query(r, p, "after") || !add_query(r, p, "limit")) {
    json_decref(p);
    return;
  }
  gw_forward_json(g, r, "messages.members.list", p, 200);
}

/* POST bodies on a channel: the caller, the channel id, the listed fields. */
static void forward_channel_body(http_req_t *r, void *arg, const char *subject,
                                 const char *const *fields, int status) {
  gateway_t *g = arg;
  caller_t who;
  if (!authenticate(g, r, &who)) return;
  json_int_t id = path_id(r, "id", "no such channel");
  if (!id) return;
  json_t *body = gw_json_body(r);
  if (!body) return;
  json_t *p = payload(&who);
  json_object_set_new(p, "channel_id", json_integer(id));
  copy_fields(p, body, fields);
  json_decref(body);
  gw_forward_json(g, r, subject, p, status);
}

static void on_add_member(http_req_t *r, void *arg) {
  static const char *const fields[] = {"username", NULL};
  /* The payload's username is the member to add, not the caller. */
  gateway_t *g = arg;
  caller_t who;
  if (!authenticate(g, r, &who)) return;
  json_int_t id = path_id(r, "id", "no such channel");
  if (!id) return;
  json_t *body = gw_json_body(r);
  if (!body) return;
  json_t *p = json_pack("{s:I, s:I}", "user_id", who.id, "channel_id", id);
  copy_fields(p, body, fields);
  json_decref(body);
  gw_forward_json(g, r, "messages.members.add", p, 201);
}

static void on_read(http_req_t *r, void *arg) {
  static const char *const fields[] = {"seq", NULL};
  forward_channel_body(r, arg, "messages.read", fields, 200);
}

static void on_dm(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  caller_t who;
  if (!authenticate(g, r, &who)) return;
  str_t peer = http_req_param(r, "username");
  json_t *p = payload(&who);
  json_object_set_new(p, "peer", json_stringn(peer.p, peer.n));
  gw_forward_json(g, r, "messages.dm.open", p, 200);
}

/* ---- messages ---- */

static void on_history(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  caller_t who;
  if (!authenticate(g, r, &who)) return;
  json_int_t id = path_id(r, "id", "no such channel");
  if (!id) return;
  if (http_req_query(r, "before").p && http_req_query(r, "after").p) {
    http_respond_error(r, 400, "bad_request", "give 'before' or 'after', not both");
    return;
  }
  json_t *p = payload(&who);
  json_object_set_new(p, "channel_id", json_integer(id));
  if (!add_query(r, p, "before") || !add_query(r, p, "after") || !add_query(r, p, "limit")) {
    json_decref(p);
    return;
  }
  gw_forward_json(g, r, "messages.history", p, 200);
}

static void on_send(http_req_t *r, void *arg) {
  static const char *const fields[] = {"body", "nonce", "attachments", NULL};
  forward_channel_body(r, arg, "messages.send", fields, 201);
}

/* Edit and delete: the caller, channel and message ids. */
static json_t *message_payload(gateway_t *g, http_req_t *r) {
  caller_t who;
  if (!authenticate(g, r, &who)) return NULL;
  json_int_t id = path_id(r, "id", "no such channel");
  if (!id) return NULL;
  json_int_t mid = path_id(r, "msg_id", "no such message");
  if (!mid) return NULL;
  return json_pack("{s:I, s:s, s:I, s:I}", "user_id", who.id, "username", who.name,
                   "channel_id", id, "message_id", mid);
}

static void on_edit(http_req_t *r, void *arg) {
  static const char *const fields[] = {"body", NULL};
  gateway_t *g = arg;
  json_t *p = message_payload(g, r);
  if (!p) return;
  json_t *body = gw_json_body(r);
  if (!body) {
    json_decref(p);
    return;
  }
  copy_fields(p, body, fields);
  json_decref(body);
  gw_forward_json(g, r, "messages.edit", p, 200);
}

static void on_delete(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  json_t *p = message_payload(g, r);
  if (p) gw_forward_json(g, r, "messages.delete", p, 204);
}

int gateway_messages_routes(gateway_t *g) {
  static const struct {
    const char *method, *pattern;
    http_handler_fn fn;
    uint64_t max_body;
  } routes[] = {
      {"POST", "/channels", on_create, MESSAGES_MAX_BODY},
      {"GET", "/channels", on_list, 0},
      {"GET", "/channels/{id}", on_get, 0},
      {"POST", "/channels/{id}/join", on_join, MESSAGES_MAX_BODY},
      {"POST", "/channels/{id}/leave", on_leave, MESSAGES_MAX_BODY},
      {"GET", "/channels/{id}/members", on_members, 0},
      {"POST", "/channels/{id}/members", on_add_member, MESSAGES_MAX_BODY},
      {"POST", "/channels/{id}/read", on_read, MESSAGES_MAX_BODY},
      {"POST", "/dm/{username}", on_dm, MESSAGES_MAX_BODY},
      {"GET", "/channels/{id}/messages", on_history, 0},
      {"POST", "/channels/{id}/messages", on_send, MESSAGES_MAX_BODY},
      {"PATCH", "/channels/{id}/messages/{msg_id}", on_edit, MESSAGES_MAX_BODY},
      {"DELETE", "/channels/{id}/messages/{msg_id}", on_delete, MESSAGES_MAX_BODY},
  };
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    int rc = net_server_route(g->server, routes[i].method, routes[i].pattern, routes[i].fn, g,
                              routes[i].max_body);
    if (rc < 0) return rc;
  }
  return 0;
}
