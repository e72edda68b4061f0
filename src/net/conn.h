/*
 * conn.h — internal to src/net: the connection block and the pieces of the
 * server that the HTTP and WebSocket halves share. Not for services.
 *
 * A net_conn_t is one malloc: the uv_tcp_t, input/output bookkeeping, the
 * protocol state (HTTP or WebSocket, a union) and the caller's user area at
 * the end. It is freed in the uv_close callback, never earlier, because libuv
 * may still reference the handle until then.
 */
#ifndef STORM_NET_CONN_H
#define STORM_NET_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/metrics.h"
#include "net/chunk.h"
#include "net/http_chunked.h"
#include "net/http_router.h"
#include "net/server.h"
#include "net/ws.h"
#include "net/ws_reader.h"

enum conn_state {
  CONN_HTTP_HEAD,   /* waiting for (more of) a request head */
  CONN_HTTP_BODY,   /* reading a request body */
  CONN_HTTP_WAIT,   /* a handler owns the current request */
  CONN_WS,          /* upgraded */
  CONN_CLOSING,     /* writing what is left, then closing */
  CONN_FREED,       /* handle closed while on the flush list: the list frees it */
};

enum {
  CONN_F_FLUSH_QUEUED = 1 << 0, /* on the server's flush list */
  CONN_F_READ_STOPPED = 1 << 1,
  CONN_F_CLOSE_AFTER_FLUSH = 1 << 2,
  CONN_F_CLOSED = 1 << 3,       /* uv_close called */
  CONN_F_WS_CLOSE_SENT = 1 << 4,
  CONN_F_PROCESSING = 1 << 5,   /* inside conn_process: no re-entry */
  CONN_F_EOF = 1 << 6,          /* peer half-closed */
  CONN_F_LINGER = 1 << 7,       /* closing after an unread body: FIN once flushed, drain reads */
};

/* The loop times here are truncated to 32 bits and compared modulo 2^32
 * (8 bytes less per connection): exact for the heartbeat and idle timeouts
 * as long as they are under 49 days; a longer one would never fire. */
typedef struct {
  const ws_handler_t *handler;
  ws_reader_t reader;
  uint32_t last_rx_ms;          /* last byte received */
  uint32_t last_ping_ms;        /* last heartbeat sent */
  uint16_t close_code;          /* what on_close will report */
  uint32_t write_since_ms;      /* when the pending uv_write was issued (slow-consumer rule) */
} conn_ws_t;

typedef struct {
  http_req_t *req;              /* the request being read or handled */
  http_chunked_t chunked;
} conn_http_t;

struct net_conn {
  uv_tcp_t tcp;
  net_server_t *srv;
  net_conn_t *prev, *next;      /* every connection, for sweeps and shutdown */
  net_conn_t *flush_next;       /* pending corked output */
  /* Unparsed input, only while a head or pipelined request is partial. */
  char *in;
  uint32_t in_len, in_cap;
  /* Output queue: a ring of chunk references; out_off bytes of the first
   * chunk are already written. Allocated only while output is pending. */
  net_chunk_t **outq;
  uint16_t outq_head, outq_len, outq_cap;
  uint16_t writing;             /* chunks owned by the in-flight uv_write */
  uint32_t out_off;
  uint8_t state;                /* enum conn_state; here to fill out_off's padding */
  uint8_t flags;
  uint8_t deferred;             /* its last flush was put off (outq.c: batching under load) */
  size_t out_bytes;             /* unsent bytes, for the slow-consumer limit */
  uv_write_t *wreq;
  uint64_t deadline_ms;         /* header/body/idle/closing deadline; 0 = none */
  union {
    conn_http_t http;
    conn_ws_t ws;
  } u;
  max_align_t user[];           /* net_server_opts_t.user_size bytes */
};

struct net_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_prepare_t flusher;         /* writes corked output before the loop sleeps */
  uv_idle_t nudge;              /* active while output waits: the loop must not sleep */
  uv_timer_t pause;             /* ends a write pause (outq.c, write duty) */
  bool paused;                  /* writes wait for the pause timer */
  uint64_t behind_ns;           /* writing without emptying the list, since the last pause */
  uint64_t turn_ns, turn_idle_ns; /* at the last prepare: uv_hrtime, uv_metrics_idle_time */
  uv_timer_t sweeper;           /* the one coarse timeout timer */
  net_server_opts_t opts;
  http_router_t *router;
  struct route *routes;         /* owned route records (linked) */
  net_conn_t *conns;            /* doubly linked list of all connections */
  net_conn_t *flush_list, *flush_tail; /* FIFO of connections with output to write */
  size_t nconns, nws;
  int port;
  bool shutting_down;
  uint64_t shutdown_deadline_ms;
  void (*on_drained)(void *);
  void *drained_arg;
  int open_handles;             /* listener, flusher, sweeper: freed when 0 */
  net_chunk_t *ping_frame;      /* the shared heartbeat ping */
  net_chunk_t *continue_100;    /* "HTTP/1.1 100 Continue", shared */
  char rbuf[65536];             /* the shared read buffer */
  /* metrics */
  metrics_family_t *m_requests, *m_duration;
  metrics_series_t *m_conns, *m_ws_conns, *m_frames_in, *m_frames_out;
  metrics_series_t *m_bytes_in, *m_bytes_out, *m_slow_closes, *m_accept_rejects;
};

struct route {
  struct route *next;
  http_handler_fn fn;
  void *arg;
  uint64_t max_body;
  bool stream;                  /* body delivered piecewise (http_req_read_body) */
  char pattern[];
};

/* Output (outq.c) */
int conn_enqueue(net_conn_t *c, net_chunk_t *chunk);   /* takes a new reference */
void conn_schedule_flush(net_conn_t *c);
void conn_drop_unsent(net_conn_t *c);  /* discards chunks not yet started */
void server_flush_all(net_server_t *s);
void server_on_prepare(uv_prepare_t *p);
void conn_outq_free(net_conn_t *c);
/* After output was written (or a flush was asked for): a streaming
 * response waiting for its queue to drain continues, a lingering close
 * sends its FIN (http_stream.c). */
void http_conn_output_progress(net_conn_t *c);

/* Lifecycle (server.c) */
void conn_close(net_conn_t *c);                /* immediate */
void conn_free(net_conn_t *c);                 /* the memory of a closed one whose handle is released */
void conn_close_after_flush(net_conn_t *c, uint64_t max_wait_ms);
void conn_read_stop(net_conn_t *c);
void conn_read_start(net_conn_t *c);
uint64_t server_now(const net_server_t *s);

/* HTTP (http_conn.c) */
/* Consumes input in HTTP states; returns bytes consumed. */
size_t http_conn_process(net_conn_t *c, char *data, size_t len);
void http_conn_on_close(net_conn_t *c);
void http_conn_timeout(net_conn_t *c);
/* Called when a request was answered: continue with buffered input. */
void http_conn_request_done(net_conn_t *c);
void conn_process_buffered(net_conn_t *c);

/* WebSocket (ws_conn.c) */
size_t ws_conn_process(net_conn_t *c, char *data, size_t len);
void ws_conn_on_close(net_conn_t *c);
void ws_conn_sweep(net_conn_t *c, uint64_t now);
void ws_conn_shutdown(net_conn_t *c);
/* Closes a WebSocket whose backlog breaks the slow-consumer rule; 0 or -ENOBUFS. */
int ws_conn_check_backlog(net_conn_t *c);

#endif
