/*
 * http_req.c — the handler-facing request API and response serialisation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"
#include "net/http_req.h"

str_t http_req_method(const http_req_t *r) { return r->head.method; }
str_t http_req_path(const http_req_t *r) { return r->head.path; }
const char *http_req_route(const http_req_t *r) { return r->route ? r->route->pattern : "(none)"; }
net_conn_t *http_req_conn(const http_req_t *r) { return r->conn; }
const char *http_req_remote_ip(const http_req_t *r) { return r->remote_ip; }
bool http_req_alive(const http_req_t *r) { return r->conn != NULL; }
str_t http_req_header(const http_req_t *r, const char *name) { return http_head_get(&r->head, name); }

const char *http_req_body(const http_req_t *r, size_t *len) {
  if (len) *len = r->body.len;
  return r->body.data ? r->body.data : "";
}

str_t http_req_param(const http_req_t *r, const char *name) {
  for (size_t i = 0; i < r->match.nparams; i++)
    if (str_eq_cstr(r->match.params[i].name, name)) return r->match.params[i].value;
  return STR_NULL;
}

str_t http_req_query(const http_req_t *r, const char *name) {
  str_t q = r->head.query;
  size_t nlen = strlen(name), i = 0;
  while (i < q.n) {
    size_t end = i;
    while (end < q.n && q.p[end] != '&') end++;
    str_t pair = {q.p + i, end - i};
    if (pair.n >= nlen && memcmp(pair.p, name, nlen) == 0) {
      if (pair.n == nlen) return (str_t){pair.p + nlen, 0};
      if (pair.p[nlen] == '=') return (str_t){pair.p + nlen + 1, pair.n - nlen - 1};
    }
    i = end + 1;
  }
  return STR_NULL;
}

void http_error_body(buf_t *b, const char *code, const char *message) {
  buf_append_str(b, "{\"error\":{\"code\":\"");
  buf_append_json_escaped(b, code, strlen(code));
  buf_append_str(b, "\",\"message\":\"");
  buf_append_json_escaped(b, message, strlen(message));
  buf_append_str(b, "\"}}");
}

void conn_send_response(net_conn_t *c, int status, const char *ctype, const char *headers,
                        const void *body, size_t len, bool keep_alive, bool head_only) {
  char head[512], clen[48] = "";
  /* 1xx and 204 must not carry Content-Length (RFC 9110 8.6). */
  if (status >= 200 && status != 204) snprintf(clen, sizeof clen, "Content-Length: %zu\r\n", len);
  int hn = snprintf(head, sizeof head,
                    "HTTP/1.1 %d %s\r\n"
                    "%s%s%s"
                    "%s"
                    "%s",
                    status, http_status_reason(status), ctype ? "Content-Type: " : "",
                    ctype ? ctype : "", ctype ? "\r\n" : "", clen,
                    keep_alive ? "" : "Connection: close\r\n");
  if (hn < 0 || (size_t)hn >= sizeof head) return;
  size_t hl = headers ? strlen(headers) : 0;
  /* 1xx, 204 and 304 carry no body (RFC 9110 6.4.1). */
  bool no_body = head_only || status == 204 || status == 304 || status < 200;
  size_t blen = no_body ? 0 : len;
  net_chunk_t *ch = net_chunk_new((size_t)hn + hl + 2 + blen);
  if (!ch) {
    conn_close(c);
    return;
  }
  char *p = ch->data;
  memcpy(p, head, (size_t)hn);
  p += hn;
  if (hl) memcpy(p, headers, hl);
  p += hl;
  memcpy(p, "\r\n", 2);
  p += 2;
  if (blen) memcpy(p, body, blen);
  conn_enqueue(c, ch);
  net_chunk_unref(ch);
}

static const char *method_label(str_t m) {
  static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (str_eq_cstr(m, known[i])) return known[i];
  return "OTHER"; /* bounded label values: clients choose methods */
}

void http_req_free(http_req_t *r) {
  buf_free(&r->body);
  free(r);
}

void http_req_record(const http_req_t *r, int status) {
  net_server_t *s = r->srv;
  char st[8];
  snprintf(st, sizeof st, "%d", status);
  const char *route = http_req_route(r);
  metrics_inc(metrics_series(s->m_requests,
                             (const char *const[]){route, method_label(r->head.method), st}));
  metrics_observe(metrics_series(s->m_duration, (const char *const[]){route}),
                  (double)(uv_hrtime() - r->started_ns) / 1e9);
}

void http_req_finish(http_req_t *r, int status) {
  http_req_record(r, status);
  net_conn_t *c = r->conn;
  bool keep = r->keep_alive;
  bool linger = r->stream && !r->body_done;
  /* The connection must not hold the request past this point: closing it
   * (below, or later) would free it again. */
  if (c && c->state != CONN_WS && c->u.http.req == r) c->u.http.req = NULL;
  http_req_free(r);
  if (!c) return;
  if (!keep && linger)
    conn_close_lingering(c, 2000);
  else if (!keep)
    conn_close_after_flush(c, 5000);
  else
    http_conn_request_done(c);
}

void http_respond(http_req_t *r, int status, const char *content_type, const char *headers,
                  const void *body, size_t len) {
  net_conn_t *c = r->conn;
  /* A body left unread would be taken for the next request. */
  if (r->stream && !r->body_done) r->keep_alive = false;
  if (c && !(c->flags & CONN_F_CLOSED)) {
    if (c->srv->shutting_down) r->keep_alive = false;
    conn_send_response(c, status, content_type, headers, body, len, r->keep_alive,
                       str_eq_cstr(r->head.method, "HEAD"));
  }
  http_req_finish(r, status);
}

void http_respond_json(http_req_t *r, int status, json_t *obj) {
  char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
  json_decref(obj);
  if (!s) {
    http_respond_error(r, 500, "internal", "could not encode the response");
    return;
  }
  http_respond(r, status, "application/json", NULL, s, strlen(s));
  free(s);
}

void http_respond_error_with(http_req_t *r, int status, const char *headers, const char *code,
                             const char *message) {
  buf_t b = BUF_INIT;
  http_error_body(&b, code, message);
  http_respond(r, status, "application/json", headers, b.data ? b.data : "", b.len);
  buf_free(&b);
}

void http_respond_error(http_req_t *r, int status, const char *code, const char *message) {
  http_respond_error_with(r, status, NULL, code, message);
}

void http_respond_empty(http_req_t *r, int status) { http_respond(r, status, NULL, NULL, NULL, 0); }

json_t *http_req_json_object(http_req_t *r) {
  json_error_t err;
  json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len, JSON_REJECT_DUPLICATES, &err);
  if (!j) {
    char msg[200];
    snprintf(msg, sizeof msg, "request body is not valid JSON: %s", err.text);
    http_respond_error(r, 400, "bad_json", msg);
    return NULL;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    http_respond_error(r, 400, "json_object_required", "request body must be a JSON object");
    return NULL;
  }
  return j;
}
