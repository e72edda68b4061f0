/*
 * http_req.h — internal to src/net: the request record shared by the HTTP
 * state machine (http_conn.c), the handler API (http_req.c) and the
 * WebSocket upgrade (ws_conn.c).
 *
 * One malloc holds the record and a copy of the request head (the head was
 * parsed in the shared read buffer, which is reused as soon as the read
 * callback returns); every slice in `head` points into that copy.
 */
#ifndef STORM_NET_HTTP_REQ_H
#define STORM_NET_HTTP_REQ_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "net/conn.h"
#include "net/http_parser.h"
#include "net/http_router.h"

struct http_req {
  net_conn_t *conn;             /* NULL once the client is gone */
  net_server_t *srv;
  struct route *route;          /* NULL when the request was not routed */
  http_request_head_t head;
  http_route_match_t match;
  buf_t body;
  uint64_t body_limit;
  uint64_t started_ns;
  bool keep_alive;
  char remote_ip[48];
  char raw[];                   /* the head bytes */
};

/* Writes a complete response to c (not through a request). */
void conn_send_response(net_conn_t *c, int status, const char *ctype, const char *headers,
                        const void *body, size_t len, bool keep_alive, bool head_only);
/* Counts the request in the HTTP metrics. */
void http_req_record(const http_req_t *r, int status);
/* Records the request's metrics and frees it; the connection moves on. */
void http_req_finish(http_req_t *r, int status);
void http_req_free(http_req_t *r);
/* Builds the JSON error body {"error":{...}} into b. */
void http_error_body(buf_t *b, const char *code, const char *message);

#endif
