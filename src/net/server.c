/*
 * server.c — listener, connection lifecycle, reads, the sweep timer and
 * graceful shutdown. Protocol handling is in http_conn.c and ws_conn.c,
 * output in outq.c.
 */
#include "net/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "net/conn.h"

#define SWEEP_INTERVAL_MS 1000

static const double duration_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05,   0.1,   0.25,   0.5,   1,    2.5, 5, 10};

void net_server_opts_default(net_server_opts_t *o) {
  *o = (net_server_opts_t){
      .host = "127.0.0.1",
      .port = 8080,
      .max_head = 16 * 1024,
      .max_body = 1024 * 1024,
      .header_timeout_ms = 10000,
      .body_timeout_ms = 30000,
      .idle_timeout_ms = 60000,
      .ws_max_message = 64 * 1024,
      .ws_outbuf_limit = 1024 * 1024,
      .ws_heartbeat_ms = 25000,
      .ws_idle_timeout_ms = 60000,
      .max_connections = 19000,
      .write_slice_ns = 2000000,
      .write_duty = 90,
  };
}

uint64_t server_now(const net_server_t *s) { return uv_now(s->loop); }

static void register_metrics(net_server_t *s) {
  metrics_registry_t *m = s->opts.metrics;
  static const char *const req_labels[] = {"route", "method", "status"};
  static const char *const route_label[] = {"route"};
  s->m_requests = metrics_counter_new(m, "storm_http_requests_total",
                                      "HTTP requests answered, by route pattern, method and status.",
                                      3, req_labels);
  s->m_duration = metrics_histogram_new(m, "storm_http_request_duration_seconds",
                                        "Time from complete request head to queued response.",
                                        duration_buckets,
                                        (int)(sizeof duration_buckets / sizeof *duration_buckets),
                                        1, route_label);
  s->m_conns = metrics_series0(metrics_gauge_new(m, "storm_connections_open",
                                                 "Open client TCP connections.", 0, NULL));
  s->m_ws_conns = metrics_series0(
      metrics_gauge_new(m, "storm_ws_connections_open", "Open WebSocket connections.", 0, NULL));
  s->m_frames_in = metrics_series0(metrics_counter_new(
      m, "storm_ws_frames_in_total", "WebSocket messages and control frames received.", 0, NULL));
  s->m_frames_out = metrics_series0(metrics_counter_new(
      m, "storm_ws_frames_out_total", "WebSocket frames queued to clients.", 0, NULL));
  s->m_bytes_in = metrics_series0(
      metrics_counter_new(m, "storm_net_bytes_in_total", "Bytes read from clients.", 0, NULL));
  s->m_bytes_out = metrics_series0(
      metrics_counter_new(m, "storm_net_bytes_out_total", "Bytes written to clients.", 0, NULL));
  s->m_slow_closes = metrics_series0(metrics_counter_new(
      m, "storm_ws_slow_consumer_closes_total",
      "WebSocket connections closed because their output queue passed the limit.", 0, NULL));
  s->m_accept_rejects = metrics_series0(metrics_counter_new(
      m, "storm_connections_rejected_total",
      "Connections closed at accept because max-connections was reached.", 0, NULL));
}

/* ---- reads ---- */

/*
 * Reads land in the server's shared buffer unless the connection already
 * holds a partial head: then the read goes straight after it, so the partial
 * bytes are never copied twice.
 */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  net_conn_t *c = (net_conn_t *)h;
  (void)suggested;
  if (c->in_len > 0) {
    if (c->in_cap - c->in_len < 4096) {
      uint32_t cap = c->in_cap * 2;
      char *p = realloc(c->in, cap);
      if (p) {
        c->in = p;
        c->in_cap = cap;
      }
    }
    *buf = uv_buf_init(c->in + c->in_len, c->in_cap - c->in_len);
    return;
  }
  *buf = uv_buf_init(c->srv->rbuf, sizeof c->srv->rbuf);
}

/* Keeps the unconsumed tail of data in c->in (data may already be c->in). */
static void keep_rest(net_conn_t *c, char *data, size_t len, size_t used) {
  size_t rest = len - used;
  if (rest == 0) {
    /* Nothing partial: give the block back. An idle connection (above all
     * an upgraded one, which never reads into it again) holds no buffer;
     * the next partial head costs one malloc. */
    c->in_len = 0;
    free(c->in);
    c->in = NULL;
    c->in_cap = 0;
    return;
  }
  if (data == c->in) {
    memmove(c->in, c->in + used, rest);
    c->in_len = (uint32_t)rest;
    return;
  }
  if (c->in_cap < rest + 4096) {
    size_t cap = rest + 4096 < 8192 ? 8192 : rest + 4096;
    char *p = realloc(c->in, cap);
    if (!p) {
      conn_close(c);
      return;
    }
    c->in = p;
    c->in_cap = (uint32_t)cap;
  }
  memcpy(c->in, data + used, rest);
  c->in_len = (uint32_t)rest;
}

static size_t conn_dispatch(net_conn_t *c, char *data, size_t len) {
  switch (c->state) {
  case CONN_WS:
    return ws_conn_process(c, data, len);
  case CONN_CLOSING:
    return len; /* ignored: we are leaving */
  default:
    return http_conn_process(c, data, len);
  }
}

void conn_process_buffered(net_conn_t *c) {
  if (c->in_len == 0 || (c->flags & (CONN_F_CLOSED | CONN_F_PROCESSING))) return;
  size_t used = conn_dispatch(c, c->in, c->in_len);
  if (!(c->flags & CONN_F_CLOSED)) keep_rest(c, c->in, c->in_len, used);
  /* Room again for the next pipelined request: resume reading. */
  if (!(c->flags & CONN_F_CLOSED) && (c->flags & CONN_F_READ_STOPPED) &&
      c->state != CONN_CLOSING && c->in_len < c->srv->opts.max_head)
    conn_read_start(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  net_conn_t *c = (net_conn_t *)st;
  if (nread < 0) {
    if (c->state == CONN_HTTP_WAIT && nread == UV_EOF) {
      /* Half-close after a request: answer it, then close. */
      c->flags |= CONN_F_EOF;
      conn_read_stop(c);
      return;
    }
    conn_close(c);
    return;
  }
  if (nread == 0) return;
  metrics_add(c->srv->m_bytes_in, (double)nread);
  if (buf->base == c->srv->rbuf) {
    size_t used = conn_dispatch(c, buf->base, (size_t)nread);
    if (!(c->flags & CONN_F_CLOSED)) keep_rest(c, buf->base, (size_t)nread, used);
  } else {
    c->in_len += (uint32_t)nread;
    size_t len = c->in_len;
    size_t used = conn_dispatch(c, c->in, len);
    if (!(c->flags & CONN_F_CLOSED)) keep_rest(c, c->in, len, used);
  }
  /* Backpressure on pipelining: stop reading while a handler works and
   * enough input is already waiting. */
  if (!(c->flags & CONN_F_CLOSED) && c->state == CONN_HTTP_WAIT &&
      c->in_len >= c->srv->opts.max_head)
    conn_read_stop(c);
}

void conn_read_stop(net_conn_t *c) {
  if (c->flags & (CONN_F_READ_STOPPED | CONN_F_CLOSED)) return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->flags |= CONN_F_READ_STOPPED;
}

void conn_read_start(net_conn_t *c) {
  if (!(c->flags & CONN_F_READ_STOPPED) || (c->flags & (CONN_F_CLOSED | CONN_F_EOF))) return;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
    c->flags &= (uint8_t)~CONN_F_READ_STOPPED;
}

/* ---- lifecycle ---- */

static void maybe_drained(net_server_t *s);

/* A connection can be closed after it was put on the flush list in the
 * same loop turn (a reply queued by a read, then the peer's reset read by
 * the same callback): its memory must outlive the list, which the next
 * prepare walks. So it stays, marked, and the walk frees it
 * (server_flush_all), or the server's last drain does (maybe_drained). */
static void on_conn_closed(uv_handle_t *h) {
  net_conn_t *c = (net_conn_t *)h;
  net_server_t *s = c->srv;
  if (c->flags & CONN_F_FLUSH_QUEUED) {
    c->state = CONN_FREED;
  } else {
    conn_free(c);
  }
  maybe_drained(s);
}

void conn_free(net_conn_t *c) {
  free(c->in);
  free(c);
}

void conn_close(net_conn_t *c) {
  if (c->flags & CONN_F_CLOSED) return;
  c->flags |= CONN_F_CLOSED;
  net_server_t *s = c->srv;
  if (c->state == CONN_WS)
    ws_conn_on_close(c);
  else
    http_conn_on_close(c);
  conn_outq_free(c);
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  s->nconns--;
  metrics_set(s->m_conns, (double)s->nconns);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

void conn_close_after_flush(net_conn_t *c, uint64_t max_wait_ms) {
  if (c->flags & CONN_F_CLOSED) return;
  if (c->state == CONN_WS) ws_conn_on_close(c);
  c->state = CONN_CLOSING;
  c->flags |= CONN_F_CLOSE_AFTER_FLUSH;
  conn_read_stop(c);
  c->deadline_ms = server_now(c->srv) + max_wait_ms;
  if (c->outq_len == 0 && !c->writing)
    conn_close(c);
  else
    conn_schedule_flush(c);
}

static void on_connection(uv_stream_t *ls, int status) {
  net_server_t *s = ls->data;
  if (status < 0) {
    log_warn("net", "accept failed: %s", uv_strerror(status));
    return;
  }
  net_conn_t *c = calloc(1, sizeof *c + s->opts.user_size);
  if (!c) return; /* the pending connection stays in the backlog */
  c->srv = s;
  if (uv_tcp_init(s->loop, &c->tcp) < 0) {
    free(c);
    return;
  }
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0 ||
      (s->opts.max_connections > 0 && s->nconns >= (size_t)s->opts.max_connections) ||
      s->shutting_down) {
    if (s->nconns >= (size_t)s->opts.max_connections) metrics_inc(s->m_accept_rejects);
    c->flags |= CONN_F_CLOSED;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->state = CONN_HTTP_HEAD;
  c->deadline_ms = server_now(s) + s->opts.header_timeout_ms;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  metrics_set(s->m_conns, (double)s->nconns);
  c->flags |= CONN_F_READ_STOPPED;
  conn_read_start(c);
}

/* ---- timeouts ---- */

static void on_sweep(uv_timer_t *t) {
  net_server_t *s = t->data;
  uint64_t now = server_now(s);
  net_conn_t *next;
  for (net_conn_t *c = s->conns; c; c = next) {
    next = c->next; /* c may close below */
    if (c->state == CONN_WS)
      ws_conn_sweep(c, now);
    else if (c->deadline_ms && now >= c->deadline_ms) {
      if (c->state == CONN_CLOSING)
        conn_close(c);
      else
        http_conn_timeout(c);
    }
  }
  if (s->shutting_down && now >= s->shutdown_deadline_ms) {
    for (net_conn_t *c = s->conns; c; c = next) {
      next = c->next;
      conn_close(c);
    }
  }
}

/* ---- start / stop ---- */

int net_server_start(uv_loop_t *loop, const net_server_opts_t *opts, net_server_t **out) {
  net_server_t *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->loop = loop;
  s->opts = *opts;
  s->router = http_router_new();
  if (!s->router) {
    free(s);
    return -ENOMEM;
  }
  register_metrics(s);

  struct sockaddr_storage addr;
  int rc = uv_ip4_addr(opts->host, opts->port, (struct sockaddr_in *)&addr);
  if (rc < 0) rc = uv_ip6_addr(opts->host, opts->port, (struct sockaddr_in6 *)&addr);
  if (rc < 0) goto fail_router;

  uv_tcp_init_ex(loop, &s->listener, addr.ss_family);
  s->listener.data = s;
  s->open_handles++;
  if (opts->reuseport) {
    uv_os_fd_t fd;
    int one = 1;
    uv_fileno((uv_handle_t *)&s->listener, &fd);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
      rc = -errno;
      goto fail_listener;
    }
  }
  rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 4096, on_connection);
  if (rc < 0) goto fail_listener;
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen);
  s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);

  uv_prepare_init(loop, &s->flusher);
  s->flusher.data = s;
  s->open_handles++;
  uv_prepare_start(&s->flusher, server_on_prepare);
  uv_unref((uv_handle_t *)&s->flusher);
  /* outq.c tells a busy loop from an idle one by the time it slept. */
  uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
  s->turn_ns = uv_hrtime();
  s->turn_idle_ns = uv_metrics_idle_time(loop);
  uv_idle_init(loop, &s->nudge);
  s->nudge.data = s;
  s->open_handles++;
  uv_unref((uv_handle_t *)&s->nudge);
  uv_timer_init(loop, &s->pause);
  s->pause.data = s;
  s->open_handles++;
  uv_unref((uv_handle_t *)&s->pause);
  uv_timer_init(loop, &s->sweeper);
  s->sweeper.data = s;
  s->open_handles++;
  uv_timer_start(&s->sweeper, on_sweep, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);
  /* The sweeper must not keep an otherwise finished loop alive. */
  uv_unref((uv_handle_t *)&s->sweeper);
  s->ping_frame = ws_frame_new(WS_OP_PING, NULL, 0);
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  s->continue_100 = net_chunk_copy(cont, sizeof cont - 1);
  *out = s;
  return 0;

fail_listener:
  uv_close((uv_handle_t *)&s->listener, NULL);
  s->open_handles = 0;
  /* The listener's close completes on the next loop turn; run it so s can go. */
  uv_run(loop, UV_RUN_NOWAIT);
fail_router:
  http_router_free(s->router);
  free(s);
  return rc;
}

int net_server_port(const net_server_t *s) { return s->port; }
size_t net_server_connections(const net_server_t *s) { return s->nconns; }
size_t net_server_ws_connections(const net_server_t *s) { return s->nws; }

int net_server_route(net_server_t *s, const char *method, const char *pattern,
                     http_handler_fn fn, void *arg, uint64_t max_body) {
  size_t plen = strlen(pattern);
  struct route *r = malloc(sizeof *r + plen + 1);
  if (!r) return -ENOMEM;
  memcpy(r->pattern, pattern, plen + 1);
  r->fn = fn;
  r->arg = arg;
  r->max_body = max_body ? max_body : s->opts.max_body;
  r->stream = false;
  int rc = http_router_add(s->router, method, r->pattern, r);
  if (rc < 0) {
    free(r);
    return rc;
  }
  r->next = s->routes;
  s->routes = r;
  return 0;
}

static void on_server_handle_closed(uv_handle_t *h) {
  net_server_t *s = h->data;
  s->open_handles--;
  maybe_drained(s);
}

static void maybe_drained(net_server_t *s) {
  if (!s->shutting_down || !s->on_drained || s->nconns > 0) return;
  if (!uv_is_closing((uv_handle_t *)&s->sweeper)) {
    /* No prepare will walk the flush list again: every connection on it
     * is closed (nconns is 0); free those already released. */
    server_flush_all(s);
    uv_close((uv_handle_t *)&s->sweeper, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->flusher, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->nudge, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->pause, on_server_handle_closed);
    return;
  }
  if (s->open_handles > 0) return;
  void (*cb)(void *) = s->on_drained;
  s->on_drained = NULL;
  cb(s->drained_arg);
}

void net_server_shutdown(net_server_t *s, uint64_t deadline_ms, void (*on_drained)(void *),
                         void *arg) {
  if (s->shutting_down) return;
  s->shutting_down = true;
  s->shutdown_deadline_ms = server_now(s) + deadline_ms;
  s->on_drained = on_drained;
  s->drained_arg = arg;
  uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
  /* The sweeper now enforces the deadline, so it must keep the loop alive. */
  uv_ref((uv_handle_t *)&s->sweeper);
  uv_timer_start(&s->sweeper, on_sweep, 100, 100);
  net_conn_t *next;
  for (net_conn_t *c = s->conns; c; c = next) {
    next = c->next;
    if (c->state == CONN_WS)
      ws_conn_shutdown(c);
    else if (c->state == CONN_HTTP_HEAD && c->in_len == 0 && !c->u.http.req)
      conn_close(c); /* idle keep-alive */
    /* Requests in progress finish; the response carries Connection: close. */
  }
  server_flush_all(s);
  maybe_drained(s);
}

void net_server_free(net_server_t *s) {
  if (!s) return;
  while (s->flush_list) { /* released connections a last prepare did not see */
    net_conn_t *c = s->flush_list;
    s->flush_list = c->flush_next;
    if (!s->flush_list) s->flush_tail = NULL;
    if (c->state == CONN_FREED) conn_free(c);
  }
  struct route *r = s->routes, *n;
  for (; r; r = n) {
    n = r->next;
    free(r);
  }
  http_router_free(s->router);
  net_chunk_unref(s->ping_frame);
  net_chunk_unref(s->continue_100);
  free(s);
}
