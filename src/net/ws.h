/*
 * ws.h — WebSocket connections (RFC 6455) for route handlers and the gateway.
 *
 * A handler for "GET /ws" calls ws_upgrade(); from then on the connection
 * belongs to the ws_handler_t callbacks. Every callback runs on the loop
 * thread. on_close is called exactly once per upgraded connection, whatever
 * ends it (client close, protocol error, timeout, slow consumer, shutdown);
 * after it returns, the net_conn_t pointer is invalid.
 *
 * Sending: ws_send copies and frames the payload for one connection.
 * For fan-out, frame once with ws_frame_new and hand the same chunk to each
 * connection with ws_send_frame (each takes a reference), then drop yours.
 * Sends are corked: they are written together just before the loop sleeps.
 * A connection whose unsent output passes ws_outbuf_limit is closed with
 * 1008 ("slow consumer") and counted in storm_ws_slow_consumer_closes_total.
 */
#ifndef STORM_NET_WS_H
#define STORM_NET_WS_H

#include <stddef.h>
#include <stdint.h>

#include "net/chunk.h"
#include "net/http.h"

typedef struct {
  void (*on_open)(net_conn_t *c, void *arg);
  /* opcode: WS_OP_TEXT (already UTF-8 validated) or WS_OP_BINARY. data is
   * valid only during the call. */
  void (*on_message)(net_conn_t *c, int opcode, const uint8_t *data, size_t len, void *arg);
  void (*on_close)(net_conn_t *c, unsigned code, void *arg);
  void *arg;
} ws_handler_t;

/*
 * Validates the handshake of req and answers it: 101 and the connection is
 * now a WebSocket (returns 0), or 400 / 426 (with Sec-WebSocket-Version: 13)
 * with the JSON error and a negative return. Either way req is answered.
 * The handler struct must outlive the connection.
 */
int ws_upgrade(http_req_t *req, const ws_handler_t *h);

/* The per-connection user area (net_server_opts_t.user_size bytes, zeroed at accept). */
void *ws_user(net_conn_t *c);
/* The inverse: the connection whose user area starts at user (a pointer
 * ws_user returned). Lets a caller find the connection from its own state
 * without storing a back pointer in every connection. */
net_conn_t *ws_conn_of(void *user);

/* Frames once; returns a chunk with one reference (yours), NULL on OOM. */
net_chunk_t *ws_frame_new(int opcode, const void *data, size_t len);
/* Queues a shared frame. 0, -EPIPE if closing, -ENOBUFS if it closed the slow consumer. */
int ws_send_frame(net_conn_t *c, net_chunk_t *frame);
int ws_send(net_conn_t *c, int opcode, const void *data, size_t len);
int ws_send_text(net_conn_t *c, const char *text, size_t len);

/* Starts the close handshake (sends a close frame; the TCP connection is
 * closed when the peer answers or after a short deadline). */
void ws_close(net_conn_t *c, unsigned code, const char *reason);

#endif
