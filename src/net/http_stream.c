/*
 * http_stream.c — streaming request bodies and streaming responses
 * (contracts in http.h), and the lingering close that follows a refused
 * upload.
 *
 * Bodies: a streaming route's request is dispatched right after its head
 * (http_conn.c); until the handler calls http_req_read_body the connection
 * waits in CONN_HTTP_WAIT with the body's first bytes buffered as for a
 * pipelined request. Reading switches it to CONN_HTTP_BODY, where
 * http_conn_process hands every piece here instead of to the body buffer.
 * A handler that answers from inside on_data frees the request: every call
 * into it is therefore followed by a check that the connection still holds
 * the same request in the body state, before anything touches it again.
 *
 * Responses: the head goes out at begin, each write is one chunk on the
 * connection's queue; the drain hook (http_conn_output_progress, called by
 * outq.c after every flush and write completion) resumes a handler waiting
 * for the queue to shrink, so a 100 MiB file never sits in memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"
#include "net/http_req.h"

int net_server_route_stream(net_server_t *s, const char *method, const char *pattern,
                            http_handler_fn fn, void *arg, uint64_t max_body) {
  int rc = net_server_route(s, method, pattern, fn, arg, max_body);
  /* net_server_route links the new record at the head of the list. */
  if (rc == 0) s->routes->stream = true;
  return rc;
}

/* ---- bodies ---- */

static bool still_reading(const net_conn_t *c, const http_req_t *r) {
  return !(c->flags & CONN_F_CLOSED) && c->u.http.req == r && c->state == CONN_HTTP_BODY;
}

static void arm_body_timeout(net_conn_t *c, const http_req_t *r) {
  c->deadline_ms = r->body_paused ? 0 : server_now(c->srv) + c->srv->opts.body_timeout_ms;
}

void http_stream_body_end(net_conn_t *c, int status) {
  http_req_t *r = c->u.http.req;
  if (status == 0) r->body_done = true;
  /* The handler owns the request now; its own timeouts apply. */
  c->state = CONN_HTTP_WAIT;
  c->deadline_ms = 0;
  r->reader->on_end(r, status, r->reader_arg);
}

static int stream_sink(void *arg, const char *data, size_t len) {
  net_conn_t *c = arg;
  http_req_t *r = c->u.http.req;
  if (r->body_received + len > r->body_limit) return -EMSGSIZE;
  r->body_received += len;
  r->reader->on_data(r, data, len, r->reader_arg);
  return still_reading(c, r) ? 0 : -ECANCELED;
}

size_t http_stream_body(net_conn_t *c, char *data, size_t len) {
  http_req_t *r = c->u.http.req;
  arm_body_timeout(c, r);
  if (!r->head.chunked) {
    uint64_t want = (uint64_t)r->head.content_length - r->body_received;
    size_t take = len < want ? len : (size_t)want;
    r->body_received += take;
    if (take) {
      r->reader->on_data(r, data, take, r->reader_arg);
      if (!still_reading(c, r)) return len; /* answered: r may be gone */
    }
    if (r->body_received == (uint64_t)r->head.content_length) http_stream_body_end(c, 0);
    return take;
  }
  ssize_t n = http_chunked_feed(&c->u.http.chunked, data, len, stream_sink, c);
  if (n == -ECANCELED) return len;
  if (n < 0) {
    http_stream_body_end(c, n == -EMSGSIZE ? -EMSGSIZE : -EBADMSG);
    return len;
  }
  if (c->u.http.chunked.done) http_stream_body_end(c, 0);
  return (size_t)n;
}

int http_req_read_body(http_req_t *r, const http_body_reader_t *reader, void *arg) {
  if (!r->stream || r->body_started || !reader || !reader->on_data || !reader->on_end)
    return -EINVAL;
  r->body_started = true;
  r->reader = reader;
  r->reader_arg = arg;
  net_conn_t *c = r->conn;
  if (r->body_done) {
    reader->on_end(r, 0, arg);
    return 0;
  }
  if (!c || (c->flags & CONN_F_CLOSED)) {
    reader->on_end(r, -ECONNRESET, arg);
    return 0;
  }
  if (r->head.expect_continue && c->srv->continue_100) conn_enqueue(c, c->srv->continue_100);
  if (r->head.chunked) http_chunked_init(&c->u.http.chunked);
  c->state = CONN_HTTP_BODY;
  arm_body_timeout(c, r);
  /* Bytes that came with the head, then the socket. From inside the
   * handler's dispatch, http_conn_process goes on with them itself. */
  if (!(c->flags & CONN_F_PROCESSING)) conn_process_buffered(c);
  if (still_reading(c, r) && !r->body_paused) conn_read_start(c);
  return 0;
}

void http_req_body_pause(http_req_t *r) {
  net_conn_t *c = r->conn;
  if (r->body_paused || !c || !still_reading(c, r)) return;
  r->body_paused = true;
  c->deadline_ms = 0;
  conn_read_stop(c);
}

void http_req_body_resume(http_req_t *r) {
  if (!r->body_paused) return;
  r->body_paused = false;
  net_conn_t *c = r->conn;
  if (!c || !still_reading(c, r)) return;
  arm_body_timeout(c, r);
  conn_read_start(c);
}

uint64_t http_req_body_received(const http_req_t *r) { return r->body_received; }

void http_respond_body_error(http_req_t *r, int status) {
  char msg[96];
  switch (status) {
  case -EMSGSIZE:
    snprintf(msg, sizeof msg, "request body exceeds the limit of %llu bytes for this route",
             (unsigned long long)r->body_limit);
    http_respond_error(r, 413, "payload_too_large", msg);
    break;
  case -ETIMEDOUT:
    http_respond_error(r, 408, "request_timeout", "request body not received in time");
    break;
  case -EBADMSG:
    http_respond_error(r, 400, "bad_chunked_encoding", "malformed chunked request body");
    break;
  default:
    http_respond_error(r, 400, "bad_request", "request body not received");
    break;
  }
}

void http_stream_orphaned(http_req_t *r, bool reading_body) {
  if (reading_body) {
    r->reader->on_end(r, -ECONNRESET, r->reader_arg);
    return;
  }
  if (r->drain_cb) {
    void (*cb)(http_req_t *, void *) = r->drain_cb;
    r->drain_cb = NULL;
    cb(r, r->drain_arg);
  }
}

/* ---- lingering close ---- */

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status; /* the connection closes on EOF or at its deadline either way */
  free(req);
}

void conn_close_lingering(net_conn_t *c, uint64_t max_wait_ms) {
  if (c->flags & CONN_F_CLOSED) return;
  if (c->flags & CONN_F_EOF) { /* the client sends nothing more */
    conn_close_after_flush(c, max_wait_ms);
    return;
  }
  c->state = CONN_CLOSING;
  c->flags |= CONN_F_LINGER;
  c->deadline_ms = server_now(c->srv) + max_wait_ms;
  /* Reads go on (and are dropped, CONN_CLOSING) so the kernel does not
   * answer the client's remaining body with a reset that could destroy
   * the response before it is read. EOF from the client closes. */
  conn_read_start(c);
  conn_schedule_flush(c);
}

/* ---- responses ---- */

int http_respond_stream_begin(http_req_t *r, int status, const char *content_type,
                              const char *headers, uint64_t len) {
  net_conn_t *c = r->conn;
  r->resp_streaming = true;
  r->resp_status = status;
  r->resp_len = len;
  r->resp_no_body = str_eq_cstr(r->head.method, "HEAD") || status == 304 || status == 204;
  if (r->stream && !r->body_done) r->keep_alive = false;
  if (!c || (c->flags & CONN_F_CLOSED)) return -EPIPE;
  if (c->srv->shutting_down) r->keep_alive = false;
  /* head_only: the head announces len, the body follows in writes. */
  conn_send_response(c, status, content_type, headers, NULL, (size_t)len, r->keep_alive, true);
  return 0;
}

int http_respond_stream_write(http_req_t *r, const void *data, size_t len) {
  if (!r->resp_streaming) return -EINVAL;
  if (r->resp_no_body || len == 0) return 0;
  if (len > r->resp_len - r->resp_sent) return -EINVAL;
  net_conn_t *c = r->conn;
  if (!c || (c->flags & CONN_F_CLOSED)) return -EPIPE;
  net_chunk_t *ch = net_chunk_copy(data, len);
  if (!ch) return -ENOMEM;
  int rc = conn_enqueue(c, ch);
  net_chunk_unref(ch);
  if (rc < 0) return rc;
  r->resp_sent += len;
  return 0;
}

size_t http_respond_stream_pending(const http_req_t *r) {
  const net_conn_t *c = r->conn;
  return c && !(c->flags & CONN_F_CLOSED) ? c->out_bytes : 0;
}

void http_respond_stream_wait(http_req_t *r, size_t low_water, void (*cb)(http_req_t *, void *),
                              void *arg) {
  r->drain_cb = cb;
  r->drain_arg = arg;
  r->drain_low = low_water;
  net_conn_t *c = r->conn;
  if (!c || (c->flags & CONN_F_CLOSED)) {
    http_stream_orphaned(r, false);
    return;
  }
  /* The next flush runs the hook, even with nothing queued. */
  conn_schedule_flush(c);
}

void http_respond_stream_end(http_req_t *r) {
  /* Fewer bytes than announced: only closing tells the client. */
  if (!r->resp_no_body && r->resp_sent != r->resp_len) r->keep_alive = false;
  r->drain_cb = NULL;
  http_req_finish(r, r->resp_status);
}

void http_conn_output_progress(net_conn_t *c) {
  if (c->flags & CONN_F_CLOSED) return;
  if ((c->flags & CONN_F_LINGER) && c->outq_len == 0 && !c->writing) {
    c->flags &= (uint8_t)~CONN_F_LINGER;
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
      free(req);
      conn_close(c);
    }
    return;
  }
  if (c->state != CONN_HTTP_WAIT) return;
  http_req_t *r = c->u.http.req;
  if (!r || !r->drain_cb || c->out_bytes > r->drain_low) return;
  void (*cb)(http_req_t *, void *) = r->drain_cb;
  r->drain_cb = NULL;
  cb(r, r->drain_arg);
}
