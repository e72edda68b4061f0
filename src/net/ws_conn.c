/*
 * ws_conn.c — upgraded connections: handshake, frames in, frames out,
 * heartbeat, close handshake, slow consumers.
 *
 * Close policy:
 *  - the peer sends close: we echo its code and close TCP once it is written;
 *  - we close (ws_close, shutdown, idle): close frame, then wait up to
 *    WS_CLOSE_WAIT_MS for the peer's close before closing TCP;
 *  - protocol violation: close frame with the violation's code, TCP closed
 *    right after it is written (RFC 6455 7.1.7 "fail the connection");
 *  - slow consumer: unsent frames are dropped, close 1008, TCP closed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "net/http_req.h"
#include "net/ws.h"
#include "net/ws_frame.h"

#define WS_CLOSE_WAIT_MS 2000

void *ws_user(net_conn_t *c) { return c->user; }

net_conn_t *ws_conn_of(void *user) {
  return (net_conn_t *)(void *)((char *)user - offsetof(net_conn_t, user));
}

net_chunk_t *ws_frame_new(int opcode, const void *data, size_t len) {
  uint8_t hdr[14];
  size_t hl = ws_frame_header_encode(hdr, true, (uint8_t)opcode, len);
  net_chunk_t *ch = net_chunk_new(hl + len);
  if (!ch) return NULL;
  memcpy(ch->data, hdr, hl);
  if (len) memcpy(ch->data + hl, data, len);
  return ch;
}

static net_chunk_t *close_frame(unsigned code, const char *reason) {
  uint8_t payload[125];
  size_t n = 0;
  if (code != WS_CLOSE_NO_STATUS) {
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    n = 2;
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > sizeof payload - 2) rl = sizeof payload - 2;
    if (rl) memcpy(payload + 2, reason, rl);
    n += rl;
  }
  return ws_frame_new(WS_OP_CLOSE, payload, n);
}

static void send_close(net_conn_t *c, unsigned code, const char *reason) {
  net_chunk_t *f = close_frame(code, reason);
  if (f) {
    conn_enqueue(c, f);
    net_chunk_unref(f);
  }
  c->flags |= CONN_F_WS_CLOSE_SENT;
}

/* Ends the connection without waiting for the peer. */
static void ws_fail(net_conn_t *c, unsigned code, const char *reason) {
  if (!(c->flags & CONN_F_WS_CLOSE_SENT)) send_close(c, code, reason);
  c->u.ws.close_code = (uint16_t)code;
  conn_close_after_flush(c, WS_CLOSE_WAIT_MS);
}

int ws_send_frame(net_conn_t *c, net_chunk_t *frame) {
  if (c->state != CONN_WS || (c->flags & (CONN_F_CLOSED | CONN_F_WS_CLOSE_SENT))) return -EPIPE;
  int rc = conn_enqueue(c, frame);
  if (rc < 0) return rc;
  metrics_inc(c->srv->m_frames_out);
  return ws_conn_check_backlog(c);
}

/*
 * The slow-consumer rule. A peer that does not read must not hold memory or
 * delay others; a peer that reads at full speed must not be cut because a
 * burst (one group commit's worth of events) was queued within one loop
 * iteration. So the limit applies to output the kernel has refused for a
 * while: a uv_write pending for WS_STALL_MS or more (one that completes
 * shows the peer is reading; a burst of 1,500 messages of 4 KB to a Node
 * reader had one pending at nearly every enqueue, and the rule used to cut
 * that reader once in three runs). A backlog of 16x the limit is cut
 * regardless. Fanned-out frames are shared chunks: until then the backlog
 * costs this connection its queue entries, not copies.
 */
#define WS_STALL_MS 2000

int ws_conn_check_backlog(net_conn_t *c) {
  uint64_t lim = c->srv->opts.ws_outbuf_limit;
  if (c->state != CONN_WS || (c->flags & CONN_F_WS_CLOSE_SENT) || c->out_bytes <= lim) return 0;
  bool stalled = c->writing && (uint32_t)((uint32_t)server_now(c->srv) - c->u.ws.write_since_ms) >= WS_STALL_MS;
  if (!stalled && c->out_bytes <= 16 * lim) return 0;
  metrics_inc(c->srv->m_slow_closes);
  log_info("ws", "closing slow consumer: %zu bytes pending", c->out_bytes);
  conn_drop_unsent(c);
  ws_fail(c, WS_CLOSE_POLICY, "slow consumer");
  return -ENOBUFS;
}

int ws_send(net_conn_t *c, int opcode, const void *data, size_t len) {
  net_chunk_t *f = ws_frame_new(opcode, data, len);
  if (!f) return -ENOMEM;
  int rc = ws_send_frame(c, f);
  net_chunk_unref(f);
  return rc;
}

int ws_send_text(net_conn_t *c, const char *text, size_t len) {
  return ws_send(c, WS_OP_TEXT, text, len);
}

void ws_close(net_conn_t *c, unsigned code, const char *reason) {
  if (c->state != CONN_WS || (c->flags & (CONN_F_CLOSED | CONN_F_WS_CLOSE_SENT))) return;
  send_close(c, code, reason);
  c->u.ws.close_code = (uint16_t)code;
  c->deadline_ms = server_now(c->srv) + WS_CLOSE_WAIT_MS;
}

/* ---- frames in ---- */

static int ev_message(void *arg, uint8_t opcode, uint8_t *data, size_t len) {
  net_conn_t *c = arg;
  metrics_inc(c->srv->m_frames_in);
  if (c->flags & CONN_F_WS_CLOSE_SENT) return 0; /* closing: data is dropped */
  const ws_handler_t *h = c->u.ws.handler;
  h->on_message(c, opcode, data, len, h->arg);
  return (c->flags & CONN_F_CLOSED) || c->state != CONN_WS ? 1 : 0;
}

static int ev_ping(void *arg, const uint8_t *data, size_t len) {
  net_conn_t *c = arg;
  metrics_inc(c->srv->m_frames_in);
  if (!(c->flags & CONN_F_WS_CLOSE_SENT)) ws_send(c, WS_OP_PONG, data, len);
  return (c->flags & CONN_F_CLOSED) || c->state != CONN_WS ? 1 : 0;
}

static int ev_pong(void *arg, const uint8_t *data, size_t len) {
  net_conn_t *c = arg;
  metrics_inc(c->srv->m_frames_in);
  return 0;
}

static int ev_close(void *arg, unsigned code, const char *reason, size_t reason_len) {
  net_conn_t *c = arg;
  metrics_inc(c->srv->m_frames_in);
  if (!(c->flags & CONN_F_WS_CLOSE_SENT)) {
    /* Echo the peer's code (RFC 6455 5.5.1); none if it sent none. */
    send_close(c, code, NULL);
    c->u.ws.close_code = (uint16_t)code;
  }
  conn_close_after_flush(c, WS_CLOSE_WAIT_MS);
  return 1;
}

static const ws_reader_events_t reader_events = {ev_message, ev_ping, ev_pong, ev_close};

size_t ws_conn_process(net_conn_t *c, char *data, size_t len) {
  c->u.ws.last_rx_ms = (uint32_t)server_now(c->srv);
  int rc = ws_reader_feed(&c->u.ws.reader, (uint8_t *)data, len, c->srv->opts.ws_max_message,
                          &reader_events, c);
  if (rc < 0 && !(c->flags & CONN_F_CLOSED) && c->state == CONN_WS) {
    log_debug("ws", "protocol error: %s", ws_error_message(rc));
    ws_fail(c, (unsigned)ws_error_close_code(rc), ws_error_message(rc));
  }
  return len;
}

/* ---- lifecycle ---- */

void ws_conn_on_close(net_conn_t *c) {
  const ws_handler_t *h = c->u.ws.handler;
  unsigned code = c->u.ws.close_code ? c->u.ws.close_code : WS_CLOSE_ABNORMAL;
  ws_reader_free(&c->u.ws.reader);
  memset(&c->u, 0, sizeof c->u); /* the union must read as an empty HTTP state now */
  c->srv->nws--;
  metrics_set(c->srv->m_ws_conns, (double)c->srv->nws);
  if (h && h->on_close) h->on_close(c, code, h->arg);
}

void ws_conn_sweep(net_conn_t *c, uint64_t now) {
  net_server_t *s = c->srv;
  if (c->flags & CONN_F_WS_CLOSE_SENT) {
    if (c->deadline_ms && now >= c->deadline_ms) conn_close(c);
    return;
  }
  /* A peer that stopped reading after the last frame was queued is only
   * seen here: nothing enqueues to it again. */
  if (ws_conn_check_backlog(c) < 0) return;
  /* 32-bit loop times, compared modulo 2^32 (conn.h, conn_ws_t). */
  uint32_t now32 = (uint32_t)now;
  if ((uint32_t)(now32 - c->u.ws.last_rx_ms) >= s->opts.ws_idle_timeout_ms) {
    ws_close(c, WS_CLOSE_GOING_AWAY, "idle timeout");
    return;
  }
  if ((uint32_t)(now32 - c->u.ws.last_ping_ms) >= s->opts.ws_heartbeat_ms && s->ping_frame) {
    /* One shared ping frame for every connection. */
    c->u.ws.last_ping_ms = now32;
    ws_send_frame(c, s->ping_frame);
  }
}

void ws_conn_shutdown(net_conn_t *c) { ws_close(c, WS_CLOSE_GOING_AWAY, "server shutting down"); }

/* ---- handshake ---- */

static int reject(http_req_t *r, int status, const char *message) {
  if (status == 426) {
    http_respond_error_with(r, 426, "Sec-WebSocket-Version: 13\r\n", "upgrade_required", message);
  } else {
    http_respond_error(r, status, "bad_handshake", message);
  }
  return -EINVAL;
}

int ws_upgrade(http_req_t *r, const ws_handler_t *h) {
  net_conn_t *c = r->conn;
  if (!c || (c->flags & CONN_F_CLOSED)) {
    http_respond_error(r, 400, "gone", "client went away");
    return -EPIPE;
  }
  if (r->head.minor_version < 1) return reject(r, 400, "WebSocket needs HTTP/1.1");
  if (!str_list_has_token(http_head_get(&r->head, "upgrade"), "websocket"))
    return reject(r, 400, "missing 'Upgrade: websocket'");
  if (!str_list_has_token(http_head_get(&r->head, "connection"), "upgrade"))
    return reject(r, 400, "missing 'Connection: Upgrade'");
  if (!str_eq_cstr(http_head_get(&r->head, "sec-websocket-version"), "13"))
    return reject(r, 426, "unsupported Sec-WebSocket-Version: only 13 is supported");
  str_t key = http_head_get(&r->head, "sec-websocket-key");
  char accept[29];
  if (!key.p || ws_accept_key(key.p, key.n, accept) < 0)
    return reject(r, 400, "Sec-WebSocket-Key must be the base64 of 16 bytes");
  if (r->head.content_length > 0 || r->head.chunked)
    return reject(r, 400, "a WebSocket handshake has no body");
  if (c->srv->shutting_down) {
    http_respond_error(r, 503, "shutting_down", "server is shutting down");
    return -ESHUTDOWN;
  }

  char resp[160];
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n",
                   accept);
  net_chunk_t *ch = net_chunk_copy(resp, (size_t)n);
  if (!ch) {
    http_respond_error(r, 503, "overloaded", "out of memory");
    return -ENOMEM;
  }
  conn_enqueue(c, ch);
  net_chunk_unref(ch);
  http_req_record(r, 101);
  http_req_free(r);

  net_server_t *s = c->srv;
  memset(&c->u, 0, sizeof c->u);
  c->state = CONN_WS;
  c->deadline_ms = 0;
  ws_reader_init(&c->u.ws.reader);
  c->u.ws.handler = h;
  c->u.ws.last_rx_ms = c->u.ws.last_ping_ms = (uint32_t)server_now(s);
  s->nws++;
  metrics_set(s->m_ws_conns, (double)s->nws);
  if (h->on_open) h->on_open(c, h->arg);
  /* An upgrade answered later (after an async check) may have frames
   * waiting behind the request. */
  if (!(c->flags & CONN_F_PROCESSING)) conn_process_buffered(c);
  return 0;
}
