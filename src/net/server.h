/*
 * server.h — the TCP/HTTP/WebSocket server on one libuv loop.
 *
 * One net_server_t listens on one address and owns every connection it
 * accepts. A connection starts as HTTP/1.1 and may be upgraded to WebSocket
 * by a route handler (see ws.h). Everything runs on the loop thread.
 *
 * Design (details in docs/ARCHITECTURE.md):
 *  - one allocation per connection (uv_tcp_t, protocol state and the
 *    caller's per-connection user area live in one block);
 *  - one shared 64 KiB read buffer per server: bytes are parsed where they
 *    land, a connection copies only a partial request head or frame;
 *  - writes are corked: whatever a connection is sent during one loop
 *    iteration is queued and written with a single writev from a
 *    uv_prepare_t callback just before the loop blocks (Redis's
 *    beforeSleep); a uv_write is issued only for what the kernel did not
 *    take at once;
 *  - one coarse 1 s timer sweeps all timeouts (header, body, keep-alive
 *    idle, WebSocket heartbeat and idle, closing deadline);
 *  - output queues are bounded: a WebSocket peer whose unsent bytes pass
 *    ws_outbuf_limit is closed (1008) instead of growing memory.
 *
 * Errors are negative errno values (libuv's).
 */
#ifndef STORM_NET_SERVER_H
#define STORM_NET_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/metrics.h"

typedef struct net_server net_server_t;
typedef struct net_conn net_conn_t;
typedef struct http_req http_req_t;

typedef void (*http_handler_fn)(http_req_t *req, void *arg);

typedef struct {
  const char *host;
  int port;                     /* 0 = any free port (see net_server_port) */
  bool reuseport;
  uint64_t max_head;            /* request line + headers */
  uint64_t max_body;            /* default per-route body limit */
  uint64_t header_timeout_ms;
  uint64_t body_timeout_ms;
  uint64_t idle_timeout_ms;     /* keep-alive idle */
  uint64_t ws_max_message;
  uint64_t ws_outbuf_limit;
  uint64_t ws_heartbeat_ms;
  uint64_t ws_idle_timeout_ms;
  int max_connections;          /* accepted beyond this are closed at once */
  uint64_t write_slice_ns;      /* writing per loop turn before input is read again (outq.c) */
  int write_duty;               /* % of time spent writing while behind; < 100: 1 ms pauses */
  size_t user_size;             /* bytes of per-connection user area (ws_user) */
  metrics_registry_t *metrics;  /* where the server's metrics are registered */
} net_server_opts_t;

/* Fills opts with the defaults documented in config.h. */
void net_server_opts_default(net_server_opts_t *o);

/* Creates the server and binds+listens. Returns 0 and *out, or a negative errno. */
int net_server_start(uv_loop_t *loop, const net_server_opts_t *opts, net_server_t **out);

/* The bound port (useful with port 0). */
int net_server_port(const net_server_t *s);

/*
 * Registers a route. pattern uses {name} segments ("/channels/{id}").
 * max_body 0 = the server default. Returns 0, -EINVAL, -EEXIST.
 * Routes are registered before traffic starts.
 */
int net_server_route(net_server_t *s, const char *method, const char *pattern,
                     http_handler_fn fn, void *arg, uint64_t max_body);

/*
 * Registers a route whose request body is streamed to the handler instead
 * of buffered (uploads; see http_req_read_body in http.h). The handler runs
 * as soon as the head is read; max_body (0 = the server default) is still
 * enforced: from Content-Length before the handler runs (413), and while
 * chunked bytes arrive. Returns as net_server_route.
 */
int net_server_route_stream(net_server_t *s, const char *method, const char *pattern,
                            http_handler_fn fn, void *arg, uint64_t max_body);

/* Number of open connections, and of those, upgraded to WebSocket. */
size_t net_server_connections(const net_server_t *s);
size_t net_server_ws_connections(const net_server_t *s);

/*
 * Graceful stop: closes the listener, sends close 1001 to every WebSocket,
 * lets in-flight HTTP requests finish (their connection then closes) and
 * closes idle keep-alive connections. on_drained runs once every connection
 * is gone, or when deadline_ms passes (then the rest are closed hard).
 */
void net_server_shutdown(net_server_t *s, uint64_t deadline_ms,
                         void (*on_drained)(void *arg), void *arg);

/* Frees the server after every handle is closed; call after on_drained. */
void net_server_free(net_server_t *s);

#endif
