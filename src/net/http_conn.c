/*
 * http_conn.c — the HTTP/1.1 state machine of a connection: head, body,
 * handler, next request.
 *
 * Pipelining: requests are handled one at a time; bytes of the next request
 * wait in the connection's input buffer until the current one is answered,
 * so responses leave in request order without a response queue. Reading
 * stops once max_head bytes are waiting.
 *
 * Errors found before the body was read close the connection after the
 * error response: the unread body would otherwise be taken for the next
 * request (request smuggling).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "net/http_req.h"

/* Re-points every slice of h from old to new (the head was copied). */
static void head_rebase(http_request_head_t *h, const char *old, const char *nw) {
#define REBASE(s) \
  if ((s).p) (s).p = nw + ((s).p - old)
  REBASE(h->method);
  REBASE(h->target);
  REBASE(h->path);
  REBASE(h->query);
  for (size_t i = 0; i < h->num_headers; i++) {
    REBASE(h->headers[i].name);
    REBASE(h->headers[i].value);
  }
#undef REBASE
}

static void remote_ip(net_conn_t *c, char *out, size_t len) {
  struct sockaddr_storage sa;
  int n = sizeof sa;
  out[0] = '\0';
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &n) < 0) return;
  if (sa.ss_family == AF_INET6)
    uv_ip6_name((struct sockaddr_in6 *)&sa, out, len);
  else
    uv_ip4_name((struct sockaddr_in *)&sa, out, len);
}

/* Answers an error found while reading a request and closes after it. */
static void fail(net_conn_t *c, int status, const char *code, const char *message) {
  http_req_t *r = c->u.http.req;
  if (r) {
    /* Routed or not, it is counted like any answered request. */
    r->keep_alive = false;
    http_respond_error(r, status, code, message);
    return;
  }
  buf_t b = BUF_INIT;
  http_error_body(&b, code, message);
  conn_send_response(c, status, "application/json", NULL, b.data, b.len, false, false);
  buf_free(&b);
  metrics_inc(metrics_series(c->srv->m_requests,
                             (const char *const[]){"(unparsed)", "OTHER",
                                                   status == 400   ? "400"
                                                   : status == 408 ? "408"
                                                   : status == 414 ? "414"
                                                   : status == 431 ? "431"
                                                   : status == 501 ? "501"
                                                   : status == 505 ? "505"
                                                                   : "4xx"}));
  conn_close_after_flush(c, 2000);
}

static void dispatch(net_conn_t *c) {
  http_req_t *r = c->u.http.req;
  c->state = CONN_HTTP_WAIT;
  c->deadline_ms = 0; /* the handler's own timeouts apply (bus requests) */
  r->route->fn(r, r->route->arg);
}

static int body_sink(void *arg, const char *data, size_t len) {
  http_req_t *r = arg;
  if (r->body.len + len > r->body_limit) return -EMSGSIZE;
  buf_append(&r->body, data, len);
  return r->body.oom ? -ENOMEM : 0;
}

static void body_too_large(net_conn_t *c) {
  char msg[96];
  snprintf(msg, sizeof msg, "request body exceeds the limit of %llu bytes for this route",
           (unsigned long long)c->u.http.req->body_limit);
  fail(c, 413, "payload_too_large", msg);
}

/* Starts a request whose head is data[0..n). Returns false if it failed. */
static bool begin_request(net_conn_t *c, const http_request_head_t *h, const char *data,
                          size_t n) {
  net_server_t *s = c->srv;
  http_req_t *r = calloc(1, sizeof *r + n + 1);
  if (!r) {
    fail(c, 503, "overloaded", "out of memory");
    return false;
  }
  memcpy(r->raw, data, n);
  r->head = *h;
  head_rebase(&r->head, data, r->raw);
  r->conn = c;
  r->srv = s;
  r->keep_alive = h->keep_alive && !s->shutting_down;
  r->started_ns = uv_hrtime();
  r->body_limit = s->opts.max_body;
  remote_ip(c, r->remote_ip, sizeof r->remote_ip);
  c->u.http.req = r;

  bool has_body = h->chunked || h->content_length > 0;
  int m = http_router_match(s->router, r->head.method, r->head.path, &r->match);
  if (m == HTTP_ROUTE_NOT_FOUND) {
    if (has_body) r->keep_alive = false;
    http_respond_error(r, 404, "not_found", "no such route");
    return !has_body;
  }
  if (m == HTTP_ROUTE_METHOD_NOT_ALLOWED) {
    char allow[128], hdr[160];
    http_router_allow(s->router, r->head.path, allow, sizeof allow);
    snprintf(hdr, sizeof hdr, "Allow: %s\r\n", allow);
    if (has_body) r->keep_alive = false;
    http_respond_error_with(r, 405, hdr, "method_not_allowed", "method not allowed on this route");
    return !has_body;
  }
  r->route = r->match.data;
  r->body_limit = r->route->max_body;
  if (h->content_length > 0 && (uint64_t)h->content_length > r->body_limit) {
    body_too_large(c);
    return false;
  }
  if (r->route->stream) {
    /* The handler decides whether the body is read at all
     * (http_req_read_body): it may refuse it (401) before a byte comes. */
    r->stream = true;
    r->body_done = !has_body;
    dispatch(c);
    return true;
  }
  if (!has_body) {
    dispatch(c);
    return true;
  }
  if (h->expect_continue && s->continue_100) conn_enqueue(c, s->continue_100);
  if (h->chunked) http_chunked_init(&c->u.http.chunked);
  c->state = CONN_HTTP_BODY;
  c->deadline_ms = server_now(s) + s->opts.body_timeout_ms;
  return true;
}

/* Feeds body bytes; returns bytes consumed. */
static size_t read_body(net_conn_t *c, char *data, size_t len) {
  http_req_t *r = c->u.http.req;
  if (r->stream) return http_stream_body(c, data, len);
  c->deadline_ms = server_now(c->srv) + c->srv->opts.body_timeout_ms;
  if (!r->head.chunked) {
    size_t want = (size_t)r->head.content_length - r->body.len;
    size_t take = len < want ? len : want;
    buf_append(&r->body, data, take);
    if (r->body.oom) {
      fail(c, 503, "overloaded", "out of memory");
      return len;
    }
    if (r->body.len == (size_t)r->head.content_length) dispatch(c);
    return take;
  }
  ssize_t n = http_chunked_feed(&c->u.http.chunked, data, len, body_sink, r);
  if (n == -EMSGSIZE) {
    body_too_large(c);
    return len;
  }
  if (n < 0) {
    fail(c, 400, "bad_chunked_encoding", "malformed chunked request body");
    return len;
  }
  if (c->u.http.chunked.done) dispatch(c);
  return (size_t)n;
}

size_t http_conn_process(net_conn_t *c, char *data, size_t len) {
  size_t used = 0;
  c->flags |= CONN_F_PROCESSING;
  while (used < len && !(c->flags & CONN_F_CLOSED)) {
    if (c->state == CONN_HTTP_HEAD) {
      http_request_head_t h;
      int n = http_parse_request(data + used, len - used, c->srv->opts.max_head, &h);
      if (n == HTTP_PARSE_INCOMPLETE) {
        /* The header timeout runs from the first byte of a head: bytes
         * trickling into an already buffered head do not extend it. */
        if (data != c->in)
          c->deadline_ms = server_now(c->srv) + c->srv->opts.header_timeout_ms;
        break;
      }
      if (n < 0) {
        fail(c, http_parse_status(n), http_parse_code(n), http_parse_message(n));
        used = len;
        break;
      }
      size_t at = used;
      used += (size_t)n;
      if (!begin_request(c, &h, data + at, (size_t)n)) {
        used = len;
        break;
      }
    } else if (c->state == CONN_HTTP_BODY) {
      used += read_body(c, data + used, len - used);
    } else if (c->state == CONN_WS) {
      /* Frames sent right behind the upgrade request. */
      c->flags &= (uint8_t)~CONN_F_PROCESSING;
      return used + ws_conn_process(c, data + used, len - used);
    } else {
      break; /* CONN_HTTP_WAIT keeps the rest buffered; CONN_CLOSING drops it */
    }
  }
  c->flags &= (uint8_t)~CONN_F_PROCESSING;
  if (c->state == CONN_CLOSING) return len;
  return used;
}

void http_conn_request_done(net_conn_t *c) {
  if (c->flags & CONN_F_CLOSED) return;
  net_server_t *s = c->srv;
  c->u.http.req = NULL;
  if (c->state == CONN_CLOSING || c->state == CONN_WS) return;
  c->state = CONN_HTTP_HEAD;
  c->deadline_ms = server_now(s) + (c->in_len ? s->opts.header_timeout_ms : s->opts.idle_timeout_ms);
  if (c->flags & CONN_F_EOF) {
    conn_close_after_flush(c, 2000);
    return;
  }
  if (!(c->flags & CONN_F_PROCESSING)) conn_process_buffered(c);
}

void http_conn_on_close(net_conn_t *c) {
  http_req_t *r = c->u.http.req;
  if (!r) return;
  c->u.http.req = NULL;
  if (c->state == CONN_HTTP_WAIT || r->stream) {
    r->conn = NULL; /* the handler still owns it; its answer is dropped */
    http_stream_orphaned(r, c->state == CONN_HTTP_BODY);
  } else {
    http_req_free(r);
  }
}

void http_conn_timeout(net_conn_t *c) {
  if (c->state == CONN_HTTP_BODY && c->u.http.req && c->u.http.req->stream) {
    http_stream_body_end(c, -ETIMEDOUT); /* the handler answers 408 */
    return;
  }
  bool idle = c->state == CONN_HTTP_HEAD && c->in_len == 0;
  if (idle) {
    conn_close(c); /* keep-alive idle: nothing to say */
    return;
  }
  fail(c, 408, "request_timeout", c->state == CONN_HTTP_BODY ? "request body not received in time"
                                                             : "request head not received in time");
}
