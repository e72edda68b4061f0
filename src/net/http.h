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

/*
 * ---- Streaming request bodies (routes from net_server_route_stream) ----
 *
 * The handler runs once the head is read, before any body byte. It may
 * answer at once (e.g. 401) without reading the body, or call
 * http_req_read_body to have the body delivered piece by piece, as it
 * arrives, with nothing buffered by the server (a 100 Continue, when asked
 * for, is sent only then). Memory per upload is what the reader keeps.
 *
 * on_data gets each piece (de-chunked; valid during the call only). To
 * stop, answer the request from inside on_data (any http_respond*):
 * nothing more is delivered. Whenever a streaming request is answered
 * before its body was read to the end, the connection is closed after the
 * response; the rest of the body is read and dropped for up to 2 s (after a
 * FIN) so that the client can read the answer instead of a reset.
 *
 * on_end runs exactly once: status 0 when the whole body was delivered (the
 * handler then answers when it is ready), or a failure after which the
 * handler must answer too (http_respond_body_error does it): -EMSGSIZE
 * over the route's max_body (413), -EBADMSG malformed chunked coding (400),
 * -ETIMEDOUT body timeout (408), -ECONNRESET the client went away (the
 * answer is dropped; it still frees the request). on_end may run before
 * http_req_read_body returns (empty body, client already gone).
 */
typedef struct {
  void (*on_data)(http_req_t *r, const char *data, size_t len, void *arg);
  void (*on_end)(http_req_t *r, int status, void *arg);
} http_body_reader_t;

/* Starts delivering the body to reader (which must outlive the request).
 * Returns 0, or -EINVAL when r is not on a streaming route or reading has
 * already started (then nothing is called). */
int http_req_read_body(http_req_t *r, const http_body_reader_t *reader, void *arg);

/* Backpressure for slow sinks (e.g. a storage backend that uploads in the
 * background): pause stops reading from the socket, but what one read
 * already brought in (up to 64 KiB) is still delivered; the body timeout
 * does not run while paused. resume reads again. Both are no-ops when the
 * body is not being read. */
void http_req_body_pause(http_req_t *r);
void http_req_body_resume(http_req_t *r);

/* Body bytes delivered so far. */
uint64_t http_req_body_received(const http_req_t *r);

/* Answers an on_end failure: 413, 400, 408, or (client gone) a dropped 400. */
void http_respond_body_error(http_req_t *r, int status);

/*
 * ---- Streaming responses (downloads) ----
 *
 * begin sends the head with Content-Length: len; write queues body bytes
 * (copied into one chunk per call: keep calls around 64 KiB); end finishes
 * the request (frees it). Exactly len bytes must be written: if fewer were
 * when end is called, the connection is closed after them so the client
 * sees a truncated body, never a wrong one. For HEAD requests and 304 the
 * head carries Content-Length but no body follows: writes are ignored.
 *
 * Backpressure: pending is what the connection has not written yet; wait
 * calls cb once it is at most low_water (from the loop, after a flush), or
 * when the client has gone (then http_req_alive is false and the handler
 * just ends). One wait at a time.
 */
int http_respond_stream_begin(http_req_t *r, int status, const char *content_type,
                              const char *headers, uint64_t len);
/* 0, -EPIPE (client gone), -EINVAL (not begun, or more than len bytes), -ENOMEM. */
int http_respond_stream_write(http_req_t *r, const void *data, size_t len);
size_t http_respond_stream_pending(const http_req_t *r);
void http_respond_stream_wait(http_req_t *r, size_t low_water,
                              void (*cb)(http_req_t *r, void *arg), void *arg);
void http_respond_stream_end(http_req_t *r);

#endif
