/*
 * http.h — what a route handler sees: one HTTP request, answered once.
 *
 * Lifetime: a handler receives an http_req_t and owns it until it answers
 * with exactly one of the http_respond* calls (synchronously or later, e.g.
 * when a bus reply arrives). Answering frees the request. If the client goes
 * away first, the request stays valid and the answer is simply dropped:
 * handlers never need to check. Slices returned by the accessors live as
 * long as the request.
 *
 * Responses on one connection leave in request order: the server reads the
 * next pipelined request only after the current one is answered.
 */
#ifndef STORM_NET_HTTP_H
#define STORM_NET_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/str.h"
#include "net/server.h"

str_t http_req_method(const http_req_t *r);
str_t http_req_path(const http_req_t *r);
/* Path parameter from the route pattern ("{id}"); STR_NULL if absent. */
str_t http_req_param(const http_req_t *r, const char *name);
/* Raw query parameter value (no percent-decoding); STR_NULL if absent. */
str_t http_req_query(const http_req_t *r, const char *name);
str_t http_req_header(const http_req_t *r, const char *name);
/* The body (complete, de-chunked); NUL-terminated for convenience. */
const char *http_req_body(const http_req_t *r, size_t *len);
/* The route pattern that matched ("/channels/{id}"). */
const char *http_req_route(const http_req_t *r);
/* The connection, for upgrades; NULL once the client is gone. */
net_conn_t *http_req_conn(const http_req_t *r);
/* Remote IP as text ("127.0.0.1"), for rate limits and logs. */
const char *http_req_remote_ip(const http_req_t *r);
bool http_req_alive(const http_req_t *r);

/*
 * Parses the body as a JSON object. On failure answers 400 (bad_json /
 * json_object_required) itself and returns NULL: the handler just returns.
 * The caller owns the returned reference.
 */
json_t *http_req_json_object(http_req_t *r);

/*
 * Answers. headers is a string of extra "Name: value\r\n" lines or NULL.
 * Content-Length, Date-free minimal headers and Connection are added here.
 */
void http_respond(http_req_t *r, int status, const char *content_type,
                  const char *headers, const void *body, size_t len);
/* Serialises and decrefs obj. */
void http_respond_json(http_req_t *r, int status, json_t *obj);
/* {"error":{"code":code,"message":message}} — the one error shape. */
void http_respond_error(http_req_t *r, int status, const char *code, const char *message);
/* The same with extra header lines ("Retry-After: 3\r\n"), e.g. for 401, 405, 426, 429. */
void http_respond_error_with(http_req_t *r, int status, const char *headers, const char *code,
                             const char *message);
void http_respond_empty(http_req_t *r, int status);

#endif
