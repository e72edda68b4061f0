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
#include "net/http.h"
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
  /* Streaming body (net_server_route_stream; http_stream.c). */
  bool stream;                  /* the route streams its body */
  bool body_started;            /* http_req_read_body was called */
  bool body_done;               /* the whole body was read (or there is none) */
  bool body_paused;
  const http_body_reader_t *reader;
  void *reader_arg;
  uint64_t body_received;
  /* Streaming response. */
  bool resp_streaming, resp_no_body;
  int resp_status;
  uint64_t resp_len, resp_sent;
  void (*drain_cb)(http_req_t *r, void *arg);
  void *drain_arg;
  size_t drain_low;
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

/* Streaming bodies (http_stream.c). */
/* Feeds body bytes of a streaming request; returns bytes consumed. */
size_t http_stream_body(net_conn_t *c, char *data, size_t len);
/* The body ended (0) or failed (negative): the handler is told. */
void http_stream_body_end(net_conn_t *c, int status);
/* The connection of a request the handler owns closed. */
void http_stream_orphaned(http_req_t *r, bool reading_body);
/* Closes after the response without stopping reads (see http.h). */
void conn_close_lingering(net_conn_t *c, uint64_t max_wait_ms);

#endif
