/*
 * gateway_ws.c — WebSocket sessions on /ws: the route, and the client ops
 * (docs/protocol.md). Session life is in gateway_session.c, delivery in
 * gateway_fanout.c, resume in gateway_resume.c, the broadcast event in
 * gateway_broadcast.c.
 *
 * Every op is a JSON object in a text frame; `ref` is echoed in the answer
 * or error. Fields are checked here (bad_request) before anything costs a
 * bus request; authorization (membership, authorship) is the messages
 * service's, and its error codes reach the client unchanged. Ops that cost
 * a bus request or a publish take a token from the connection's bucket
 * (rate_limited when empty: the connection stays open).
 *
 * Sends over NATS (g->serial_sends): one request per connection in
 * flight; sends arriving meanwhile queue, and when the ack comes all that
 * queued (up to GW_SEND_BATCH_MAX) goes as one messages.send.batch, whose
 * per-item results are answered to the client in queue order. The first
 * send of an idle connection still goes alone, at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "net/http.h"
#include "net/ws_frame.h"
#include "services/gateway/gateway_internal.h"

int gw_ws_send_json(net_conn_t *c, json_t *obj) {
  if (!obj) return -ENOMEM;
  char *s = json_dumps(obj, JSON_COMPACT);
  json_decref(obj);
  if (!s) return -ENOMEM;
  int rc = ws_send_text(c, s, strlen(s));
  free(s);
  return rc;
}

void gw_ws_error(net_conn_t *c, const char *code, const char *message, json_t *ref,
                 int64_t chan_id) {
  json_t *e = json_pack("{s:s, s:s, s:s}", "op", "error", "code", code, "message", message);
  if (e && ref) json_object_set(e, "ref", ref);
  if (e && chan_id > 0) json_object_set_new(e, "channel_id", json_integer((json_int_t)chan_id));
  gw_ws_send_json(c, e);
}

/* ---- field checks ---- */

/* A positive integer field (ids). */
static bool get_id(json_t *m, const char *key, int64_t *out) {
  json_t *v = json_object_get(m, key);
  if (!json_is_integer(v) || json_integer_value(v) <= 0) return false;
  *out = (int64_t)json_integer_value(v);
  return true;
}

/* An optional non-negative integer field (seqs); *present tells. */
static bool get_seq(json_t *m, const char *key, int64_t *out, bool *present) {
  json_t *v = json_object_get(m, key);
  *present = v != NULL;
  if (!v) return true;
  if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
  *out = (int64_t)json_integer_value(v);
  return true;
}

static void bad_field(net_conn_t *c, const char *msg, json_t *ref) {
  gw_ws_error(c, "bad_request", msg, ref, 0);
}

static bool take_token(gateway_t *g, net_conn_t *c, json_t *ref) {
  gw_session_t *s = ws_user(c);
  if (gw_bucket_take(&s->bucket, (uint32_t)uv_now(g->loop), g->send_rate, g->send_burst))
    return true;
  gw_ws_error(c, "rate_limited", "too many requests; slow down", ref, 0);
  return false;
}

/* Sends a call, answering `unavailable` when it cannot be made. */
static int call_or_error(gateway_t *g, net_conn_t *c, gw_call_t *call, const char *subject,
                         json_t *payload, json_t *ref, int64_t chan) {
  int rc = call ? gw_call_send(g, call, subject, payload) : -ENOMEM;
  if (!call) json_decref(payload);
  if (rc == -EMSGSIZE)
    gw_ws_error(c, "payload_too_large", "request too large for the bus", ref, chan);
  else if (rc < 0)
    gw_ws_error(c, "unavailable", "the messages service is not available", ref, chan);
  return rc;
}

/* The answer to a call: the reply with op (and ref) in front, or the error. */
static void answer(net_conn_t *c, gw_call_t *call, json_t *reply, const char *code,
                   const char *message, const char *op) {
  if (!reply) {
    gw_ws_error(c, code, message, call->ref, call->chan_id);
    return;
  }
  json_t *a = json_pack("{s:s}", "op", op);
  if (a && call->ref) json_object_set(a, "ref", call->ref);
  if (a && call->data) json_object_set(a, "nonce", call->data);
  if (a) json_object_update(a, reply);
  gw_ws_send_json(c, a);
}

/* ---- ops ---- */

static void send_pump(gateway_t *g, net_conn_t *c);

/* Sends {"op":"ack", "ref", "nonce", ...the reply's members}: the reply
 * (a service's object) is copied as text, not parsed. */
static void send_ack(net_conn_t *c, json_t *ref, json_t *nonce, const jscan_val_t *reply) {
  buf_t b = BUF_INIT;
  buf_append(&b, "{\"op\":\"ack\"", 11);
  if (ref) {
    char *r = json_dumps(ref, JSON_ENCODE_ANY | JSON_COMPACT);
    if (r) {
      buf_append(&b, ",\"ref\":", 7);
      buf_append(&b, r, strlen(r));
      free(r);
    } else {
      b.oom = true;
    }
  }
  if (json_is_string(nonce)) {
    buf_append(&b, ",\"nonce\":\"", 10);
    buf_append_json_escaped(&b, json_string_value(nonce), json_string_length(nonce));
    buf_append_char(&b, '"');
  }
  const char *p = reply->p + 1, *end = reply->p + reply->n - 1; /* inside the braces */
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  if (p < end) buf_append_char(&b, ',');
  buf_append(&b, p, (size_t)(end - p));
  buf_append_char(&b, '}');
  if (!b.oom) ws_send_text(c, b.data, b.len);
  buf_free(&b);
}

/* One send's answer: the ack, or the error (the call's, or the reply's). */
static void answer_send(net_conn_t *c, json_t *ref, json_t *nonce, int64_t chan,
                        const jscan_val_t *reply, const char *code, const char *message) {
  jscan_val_t e;
  if (reply && jscan_member(*reply, "error", &e)) {
    /* An item of a batch refused: rare, parsed for its texts. */
    json_t *j = json_loadb(e.p, e.n, 0, NULL);
    code = json_string_value(json_object_get(j, "code"));
    message = json_string_value(json_object_get(j, "message"));
    gw_ws_error(c, code ? code : "internal", message ? message : "internal error", ref, chan);
    json_decref(j);
  } else if (reply && reply->type == JSCAN_OBJECT) {
    send_ack(c, ref, nonce, reply);
  } else {
    gw_ws_error(c, code ? code : "internal",
                message ? message : "the service answered something unreadable", ref, chan);
  }
}

static void on_ack(gateway_t *g, net_conn_t *c, gw_call_t *call, const jscan_val_t *reply,
                   const char *code, const char *message) {
  if (!c) return;
  answer_send(c, call->ref, call->data, call->chan_id, reply, code, message);
  gw_session_t *s = ws_user(c);
  s->send_busy = false;
  if (s->state != GW_SESS_CLOSED) send_pump(g, c);
}

/* Takes ownership of p. With serial sends, marks the session busy until
 * the ack (or error) of this one. */
/* A send's item, {channel_id, body, nonce[, attachments]}, is the whole of
 * a messages.send.batch item, and of a messages.send after the caller: it
 * is written once, as text (op_send, op_send_scanned), and queued as such. */
/* {"user_id", "username", then the members of the item(s) or "items"}. */
static void caller_text(buf_t *b, const gw_session_t *s) {
  buf_append_str(b, "{\"user_id\":");
  buf_append_i64(b, s->user_id);
  buf_append_str(b, ",\"username\":\"");
  buf_append_json_escaped(b, s->username, strlen(s->username));
  buf_append(b, "\",", 2);
}

static void call_failed(net_conn_t *c, int rc, json_t *ref, int64_t chan) {
  if (rc == -EMSGSIZE)
    gw_ws_error(c, "payload_too_large", "request too large for the bus", ref, chan);
  else
    gw_ws_error(c, "unavailable", "the messages service is not available", ref, chan);
}

/* A messages.send of one item. With serial sends,
 * marks the session busy until the ack (or error) of this one. */
static void send_start(gateway_t *g, net_conn_t *c, const char *item, size_t len, json_t *ref,
                       json_t *nonce, int64_t chan) {
  gw_session_t *s = ws_user(c);
  buf_t b = BUF_INIT;
  caller_text(&b, s);
  buf_append(&b, item + 1, len - 1);
  gw_call_t *call = b.oom ? NULL : gw_call_new_raw(c, on_ack, ref);
  int rc = -ENOMEM;
  if (call) {
    call->data = json_incref(nonce);
    call->chan_id = chan;
    rc = gw_call_send_text(g, call, "messages.send", b.data, b.len);
  }
  buf_free(&b);
  if (rc < 0)
    call_failed(c, rc, ref, chan);
  else if (g->serial_sends)
    s->send_busy = true;
}

/* A batch's reply: each send answered in queue order, then the next ones.
 * call->data holds [ref, nonce, channel_id] per send. */
static void on_batch_ack(gateway_t *g, net_conn_t *c, gw_call_t *call, const jscan_val_t *reply,
                         const char *code, const char *message) {
  if (!c) return;
  jscan_val_t results, r;
  size_t n = 0, pos = 0;
  if (reply && jscan_member(*reply, "results", &results))
    while (jscan_next(results, &pos, &r)) n++;
  if (reply && n != json_array_size(call->data)) {
    log_error("gateway", "messages.send.batch answered %zu results for %zu sends", n,
              json_array_size(call->data));
    reply = NULL;
    code = "internal";
    message = "the service answered something unreadable";
  }
  pos = 0;
  size_t i;
  json_t *m;
  json_array_foreach(call->data, i, m) {
    bool have = reply && jscan_next(results, &pos, &r);
    json_t *ref = json_array_get(m, 0);
    answer_send(c, json_is_null(ref) ? NULL : ref, json_array_get(m, 1),
                (int64_t)json_integer_value(json_array_get(m, 2)), have ? &r : NULL, code,
                message);
  }
  gw_session_t *s = ws_user(c);
  s->send_busy = false;
  if (s->state != GW_SESS_CLOSED) send_pump(g, c);
}

/* Sends the first k (>= 2) queued sends as one messages.send.batch; on
 * failure answers each of them with the error. A queued send is
 * [item text, ref, nonce, channel_id, cost]. */
static void send_batch(gateway_t *g, net_conn_t *c, size_t k) {
  gw_session_t *s = ws_user(c);
  json_t *meta = json_array();
  buf_t b = BUF_INIT;
  caller_text(&b, s);
  buf_append(&b, "\"items\":[", 9);
  for (size_t i = 0; i < k; i++) {
    json_t *e = json_incref(json_array_get(s->sendq, 0));
    json_array_remove(s->sendq, 0);
    s->sendq_bytes -= (uint32_t)json_integer_value(json_array_get(e, 4));
    json_t *item = json_array_get(e, 0);
    if (i) buf_append_char(&b, ',');
    buf_append(&b, json_string_value(item), json_string_length(item));
    json_array_append_new(meta, json_pack("[O, O, O]", json_array_get(e, 1),
                                          json_array_get(e, 2), json_array_get(e, 3)));
    json_decref(e);
  }
  buf_append(&b, "]}", 2);
  int rc = -ENOMEM;
  if (!b.oom && meta && json_array_size(meta) == k) {
    gw_call_t *call = gw_call_new_raw(c, on_batch_ack, NULL);
    if (call) {
      call->data = json_incref(meta);
      rc = gw_call_send_text(g, call, "messages.send.batch", b.data, b.len);
    }
  }
  buf_free(&b);
  if (rc == 0) {
    s->send_busy = true;
  } else {
    size_t i;
    json_t *m;
    json_array_foreach(meta, i, m) {
      json_t *ref = json_array_get(m, 0);
      call_failed(c, rc, json_is_null(ref) ? NULL : ref,
                  (int64_t)json_integer_value(json_array_get(m, 2)));
    }
  }
  json_decref(meta);
}

/* Starts what waits behind an acked send: one queued send alone as a plain
 * messages.send, more as one batch (in queue order, within the batch
 * bounds), until a request is in flight. */
static void send_pump(gateway_t *g, net_conn_t *c) {
  gw_session_t *s = ws_user(c);
  size_t max_bytes = GW_SEND_BATCH_MAX_BYTES;
  size_t bus_max = bus_max_payload(g->bus);
  if (bus_max / 2 < max_bytes) max_bytes = bus_max / 2;
  while (!s->send_busy && s->sendq && json_array_size(s->sendq) > 0 && s->state == GW_SESS_READY) {
    size_t n = json_array_size(s->sendq), k = 0, bytes = 0;
    while (k < n && k < GW_SEND_BATCH_MAX) {
      size_t cost = (size_t)json_integer_value(json_array_get(json_array_get(s->sendq, k), 4));
      if (k > 0 && bytes + cost > max_bytes) break;
      bytes += cost;
      k++;
    }
    if (k > 1) {
      send_batch(g, c, k);
      continue;
    }
    json_t *e = json_incref(json_array_get(s->sendq, 0));
    json_array_remove(s->sendq, 0);
    json_t *ref = json_array_get(e, 1);
    s->sendq_bytes -= (uint32_t)json_integer_value(json_array_get(e, 4));
    json_t *item = json_array_get(e, 0);
    send_start(g, c, json_string_value(item), json_string_length(item),
               json_is_null(ref) ? NULL : ref, json_array_get(e, 2),
               (int64_t)json_integer_value(json_array_get(e, 3)));
    json_decref(e);
  }
}

/* A valid send, after its rate token: its item text goes now, or
 * waits behind the send in flight. */
static void send_item(gateway_t *g, net_conn_t *c, buf_t *item, json_t *ref, json_t *nonce,
                      int64_t chan) {
  gw_session_t *s = ws_user(c);
  if (item->oom) {
    gw_ws_error(c, "unavailable", "out of memory", ref, chan);
    return;
  }
  if (!s->send_busy) {
    send_start(g, c, item->data, item->len, ref, nonce, chan);
    return;
  }
  /* Serial sends (see gateway_internal.h): wait behind the one in flight. */
  if (!s->sendq) s->sendq = json_array();
  size_t cost = item->len; /* what the batch will carry */
  json_t *e = NULL;
  if (s->sendq && json_array_size(s->sendq) < GW_SENDQ_MAX &&
      s->sendq_bytes + cost <= GW_SENDQ_MAX_BYTES)
    e = json_pack("[s%, O, O, I, I]", item->data, item->len, ref ? ref : json_null(), nonce,
                  (json_int_t)chan, (json_int_t)cost);
  if (!e || json_array_append_new(s->sendq, e) < 0) {
    gw_ws_error(c, "overloaded", "too many sends waiting for their ack on this connection", ref,
                chan);
    return;
  }
  s->sendq_bytes += (uint32_t)cost;
}

static void op_send(gateway_t *g, net_conn_t *c, json_t *m, json_t *ref) {
  int64_t chan = 0;
  json_t *body = json_object_get(m, "body");
  json_t *nonce = json_object_get(m, "nonce");
  json_t *att = json_object_get(m, "attachments");
  const char *bad = NULL;
  if (!get_id(m, "channel_id", &chan))
    bad = "'channel_id' must be a positive integer";
  else if (!json_is_string(body))
    bad = "'body' must be a string";
  else if (!json_is_string(nonce) || json_string_length(nonce) == 0)
    bad = "'nonce' must be a non-empty string";
  if (bad) {
    bad_field(c, bad, ref);
    return;
  }
  if (!take_token(g, c, ref)) return;
  buf_t b = BUF_INIT;
  buf_printf(&b, "{\"channel_id\":%lld,\"body\":\"", (long long)chan);
  buf_append_json_escaped(&b, json_string_value(body), json_string_length(body));
  buf_append(&b, "\",\"nonce\":\"", 11);
  buf_append_json_escaped(&b, json_string_value(nonce), json_string_length(nonce));
  buf_append_char(&b, '"');
  if (att && !json_is_null(att)) {
    char *a = json_dumps(att, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!a) b.oom = true;
    buf_append(&b, ",\"attachments\":", 15);
    if (a) buf_append(&b, a, strlen(a));
    free(a);
  }
  buf_append_char(&b, '}');
  send_item(g, c, &b, ref, nonce, chan);
  buf_free(&b);
}

static void broadcast(gateway_t *g, net_conn_t *c, json_t *ref, int64_t chan, const char *body,
                      size_t len);

/* Decodes string v into stack (cap bytes) or, when longer, a malloc'd
 * buffer the caller frees if it is not stack. *n: the length, -1 when out
 * of memory. */
static char *decode(jscan_val_t v, char *stack, size_t cap, ssize_t *n) {
  char *d = v.n <= cap ? stack : malloc(v.n);
  *n = d ? jscan_string(v, d) : -1;
  return d;
}

/* A string or integer value as a new jansson value; NULL when out of
 * memory. */
static json_t *scanned_json(jscan_val_t v) {
  int64_t r;
  if (jscan_int64(v, &r)) return json_integer((json_int_t)r);
  char tmp[256];
  ssize_t n;
  char *dec = decode(v, tmp, sizeof tmp, &n);
  json_t *j = n >= 0 ? json_stringn(dec, (size_t)n) : NULL;
  if (dec != tmp) free(dec);
  return j;
}

/* A send or broadcast from a frame gw_send_scan read. A send's body and
 * nonce are copied into the item as the client wrote them (valid JSON
 * strings); a broadcast's body is decoded (its characters are counted). */
static void op_scanned(gateway_t *g, net_conn_t *c, const gw_send_frame_t *f) {
  json_t *ref = f->ref.p ? scanned_json(f->ref) : NULL;
  json_t *nonce = f->nonce.p ? scanned_json(f->nonce) : NULL;
  char tmp[1024], *body = tmp;
  ssize_t blen = -1;
  if (f->broadcast) body = decode(f->body, tmp, sizeof tmp, &blen);
  if ((f->ref.p && !ref) || (f->nonce.p && !nonce) || (f->broadcast && blen < 0)) {
    gw_ws_error(c, "unavailable", "out of memory", ref, f->channel_id);
  } else if (f->broadcast) {
    broadcast(g, c, ref, f->channel_id, body, (size_t)blen);
  } else if (take_token(g, c, ref)) {
    buf_t b = BUF_INIT;
    buf_append_str(&b, "{\"channel_id\":");
    buf_append_i64(&b, f->channel_id);
    buf_append_str(&b, ",\"body\":");
    buf_append(&b, f->body.p, f->body.n);
    buf_append(&b, ",\"nonce\":", 9);
    buf_append(&b, f->nonce.p, f->nonce.n);
    buf_append_char(&b, '}');
    send_item(g, c, &b, ref, nonce, f->channel_id);
    buf_free(&b);
  }
  if (body != tmp) free(body);
  json_decref(ref);
  json_decref(nonce);
}

static void on_read_ack(gateway_t *g, net_conn_t *c, gw_call_t *call, json_t *reply,
                        const char *code, const char *message) {
  if (c) answer(c, call, reply, code, message, "read_ack");
}

static void op_read(gateway_t *g, net_conn_t *c, json_t *m, json_t *ref) {
  gw_session_t *s = ws_user(c);
  int64_t chan = 0, seq = 0;
  bool has_seq = false;
  const char *bad = NULL;
  if (!get_id(m, "channel_id", &chan))
    bad = "'channel_id' must be a positive integer";
  else if (!get_seq(m, "seq", &seq, &has_seq) || !has_seq)
    bad = "'seq' must be a non-negative integer";
  if (bad) {
    bad_field(c, bad, ref);
    return;
  }
  if (!take_token(g, c, ref)) return;
  gw_call_t *call = gw_call_new(c, on_read_ack, ref);
  if (call) call->chan_id = chan;
  call_or_error(g, c, call, "messages.read",
                json_pack("{s:I, s:I, s:I}", "user_id", (json_int_t)s->user_id, "channel_id",
                          (json_int_t)chan, "seq", (json_int_t)seq),
                ref, chan);
}

static void on_history(gateway_t *g, net_conn_t *c, gw_call_t *call, json_t *reply,
                       const char *code, const char *message) {
  if (!c) return;
  if (reply && !json_object_get(reply, "channel_id"))
    json_object_set_new(reply, "channel_id", json_integer((json_int_t)call->chan_id));
  answer(c, call, reply, code, message, "history");
}

static void op_history(gateway_t *g, net_conn_t *c, json_t *m, json_t *ref) {
  gw_session_t *s = ws_user(c);
  int64_t chan = 0, before = 0, after = 0, limit = 0;
  bool has_before = false, has_after = false, has_limit = false;
  const char *bad = NULL;
  if (!get_id(m, "channel_id", &chan))
    bad = "'channel_id' must be a positive integer";
  else if (!get_seq(m, "before", &before, &has_before) || !get_seq(m, "after", &after, &has_after))
    bad = "'before' and 'after' must be non-negative integers";
  else if (has_before && has_after)
    bad = "give 'before' or 'after', not both";
  else if (!get_seq(m, "limit", &limit, &has_limit) || (has_limit && limit == 0))
    bad = "'limit' must be a positive integer";
  if (bad) {
    bad_field(c, bad, ref);
    return;
  }
  if (!take_token(g, c, ref)) return;
  json_t *p = json_pack("{s:I, s:I}", "user_id", (json_int_t)s->user_id, "channel_id",
                        (json_int_t)chan);
  if (p && has_before) json_object_set_new(p, "before", json_integer((json_int_t)before));
  if (p && has_after) json_object_set_new(p, "after", json_integer((json_int_t)after));
  if (p && has_limit) json_object_set_new(p, "limit", json_integer((json_int_t)limit));
  gw_call_t *call = gw_call_new(c, on_history, ref);
  if (call) call->chan_id = chan;
  call_or_error(g, c, call, "messages.history", p, ref, chan);
}

/* Typing is ephemeral and best effort: over the per-channel interval or
 * the bucket it is dropped silently (the next keystroke retries). */
static void op_typing(gateway_t *g, net_conn_t *c, json_t *m, json_t *ref) {
  gw_session_t *s = ws_user(c);
  int64_t chan;
  if (!get_id(m, "channel_id", &chan)) {
    bad_field(c, "'channel_id' must be a positive integer", ref);
    return;
  }
  /* Before hello the channels are not known yet: dropped, not refused. */
  gw_centry_t *e = gw_subs_entry(&g->subs, &s->cs, chan);
  if (!e) {
    if (s->state == GW_SESS_READY)
      gw_ws_error(c, "not_found", "not a member of this channel", ref, chan);
    return;
  }
  uint32_t now = (uint32_t)uv_now(g->loop);
  if (e->typing_ms && now - e->typing_ms < GW_TYPING_INTERVAL_MS) return;
  if (!gw_bucket_take(&s->bucket, now, g->send_rate, g->send_burst)) return;
  e->typing_ms = now ? now : 1;
  gw_publish_user_event(g, s, "typing", chan, NULL);
}

/* Broadcast relays ephemeral data to the channel's members (docs/protocol.md,
 * Broadcast): checked like send, but nothing is stored and nothing answers
 * a success. Membership is this connection's subscription, so a non-member
 * is refused before it costs a token; the sender's own connections receive
 * the event like every other member. */
/* A broadcast whose channel_id and body (decoded) are read. */
static void broadcast(gateway_t *g, net_conn_t *c, json_t *ref, int64_t chan, const char *body,
                      size_t len) {
  gw_session_t *s = ws_user(c);
  if (!gw_broadcast_body_ok(body, len)) {
    bad_field(c, "'body' must be 1-4000 characters", ref);
    return;
  }
  if (!gw_subs_entry(&g->subs, &s->cs, chan)) {
    gw_ws_error(c, "not_found", "not a member of this channel", ref, chan);
    return;
  }
  if (!take_token(g, c, ref)) return;
  if (gw_broadcast_publish(g, s->user_id, chan, body, len) < 0)
    gw_ws_error(c, "unavailable", "the broadcast could not be published", ref, chan);
}

static void op_broadcast(gateway_t *g, net_conn_t *c, json_t *m, json_t *ref) {
  int64_t chan = 0;
  json_t *body = json_object_get(m, "body");
  const char *bad = NULL;
  if (!get_id(m, "channel_id", &chan))
    bad = "'channel_id' must be a positive integer";
  else if (!json_is_string(body))
    bad = "'body' must be a string";
  if (bad)
    bad_field(c, bad, ref);
  else
    broadcast(g, c, ref, chan, json_string_value(body), json_string_length(body));
}

static void op_ping(gateway_t *g, net_conn_t *c, json_t *m, json_t *ref) {
  json_t *p = json_pack("{s:s}", "op", "pong");
  if (p && ref) json_object_set(p, "ref", ref);
  gw_ws_send_json(c, p);
}

static void op_echo(gateway_t *g, net_conn_t *c, json_t *m, json_t *ref) {
  json_t *p = json_pack("{s:s}", "op", "echo");
  json_t *d = json_object_get(m, "data");
  if (p) json_object_set(p, "data", d ? d : json_null());
  if (p && ref) json_object_set(p, "ref", ref);
  gw_ws_send_json(c, p);
}

typedef void (*op_fn)(gateway_t *g, net_conn_t *c, json_t *m, json_t *ref);
static const struct {
  const char *name;
  op_fn fn;
} ops[] = {
    {"send", op_send},        {"typing", op_typing}, {"read", op_read},
    {"history", op_history},  {"broadcast", op_broadcast},
    {"resume", gw_resume_op}, {"ping", op_ping},     {"echo", op_echo},
};

void gw_ws_handle_text(gateway_t *g, net_conn_t *c, const char *data, size_t len) {
  gw_send_frame_t f;
  if (gw_send_scan(data, len, &f)) {
    op_scanned(g, c, &f);
    return;
  }
  json_error_t err;
  json_t *m = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
  if (!m || !json_is_object(m)) {
    gw_ws_error(c, "bad_json", "message must be a JSON object", NULL, 0);
    json_decref(m);
    return;
  }
  json_t *ref = json_object_get(m, "ref");
  const char *op = json_string_value(json_object_get(m, "op"));
  if (!op) {
    gw_ws_error(c, "bad_request", "missing string field 'op'", ref, 0);
    json_decref(m);
    return;
  }
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    if (strcmp(op, ops[i].name) == 0) {
      ops[i].fn(g, c, m, ref);
      json_decref(m);
      return;
    }
  }
  char msg[128];
  snprintf(msg, sizeof msg, "unknown op '%.64s'", op);
  gw_ws_error(c, "unknown_op", msg, ref, 0);
  json_decref(m);
}

/*
 * Before hello (the channel list is loading) frames are held, not
 * answered: hello is always the first frame a client receives. With
 * ?resume=1, hello also waits for the client's first frame, so a resume
 * sent right after the upgrade is applied before anything live.
 */
static void on_message(net_conn_t *c, int opcode, const uint8_t *data, size_t len, void *arg) {
  gateway_t *g = arg;
  if (opcode != WS_OP_TEXT) {
    ws_close(c, WS_CLOSE_UNSUPPORTED, "binary frames are not supported");
    return;
  }
  gw_session_t *s = ws_user(c);
  if (s->state == GW_SESS_LOADING) {
    if (!s->early) s->early = json_array();
    size_t held = len, k;
    json_t *t;
    json_array_foreach(s->early, k, t) held += json_string_length(t);
    if (!s->early || json_array_size(s->early) >= GW_EARLY_MAX || held > GW_EARLY_MAX_BYTES) {
      ws_close(c, WS_CLOSE_POLICY, "too many messages before hello");
      return;
    }
    json_array_append_new(s->early, json_stringn((const char *)data, len));
    if (s->wait_first) gw_session_first_frame(g, c);
    return;
  }
  gw_ws_handle_text(g, c, (const char *)data, len);
}

static void on_close(net_conn_t *c, unsigned code, void *arg) { gw_session_close(arg, c); }

/*
 * Browsers cannot set headers on a WebSocket, so the access token may come
 * as the query parameter access_token (JWTs are URL-safe as they are);
 * other clients may use Authorization: Bearer. The token is checked once,
 * at the upgrade: a session outlives its token's expiry, as in Discord.
 */
static void on_ws(http_req_t *r, void *arg) {
  gateway_t *g = arg;
  str_t token = http_req_query(r, "access_token");
  if (!token.p) token = gw_bearer(r);
  jwt_claims_t claims;
  if (gw_authenticate(g, r, token, &claims) < 0) return;
  /* ?resume=1: the client's first frame will be a resume; hello (and live
   * delivery) wait for it so nothing live precedes the replay. */
  bool wait_first = str_eq_cstr(http_req_query(r, "resume"), "1");
  net_conn_t *c = http_req_conn(r);
  if (ws_upgrade(r, &g->ws_handler) == 0) gw_session_open(g, c, &claims, wait_first);
}

int gateway_ws_routes(gateway_t *g) {
  g->ws_handler = (ws_handler_t){NULL, on_message, on_close, g};
  return net_server_route(g->server, "GET", "/ws", on_ws, g, 0);
}
