/*
 * gateway_session.c — the life of a WebSocket session: open (user topic,
 * channel list, hello, presence), the bus requests made on its behalf, and
 * close (everything undone, every allocation freed).
 *
 * Why the user topic is subscribed BEFORE the channel list is asked for:
 * the messages service publishes user.<id> events (channel_joined/_left,
 * read) and the list reply from one thread, and the bus keeps one
 * publisher's order; so an event that arrives before the reply is already
 * reflected in it (it is ignored: the session is not READY yet), and one
 * that arrives after it is applied. No join or leave falls in between.
 *
 * A connection that closes while its list request is pending: the request
 * stays on the bus, and its reply finds the call orphaned (conn NULL) and
 * does nothing. The same holds for every other in-flight request, so no
 * reply ever touches a freed connection.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "net/http.h"
#include "net/ws_frame.h"
#include "services/gateway/gateway_internal.h"
#include "services/gateway/gateway_presence.h"

/* ---- bus requests for a connection ---- */

gw_call_t *gw_call_new(net_conn_t *c, gw_call_fn fn, json_t *ref) {
  gw_call_t *call = calloc(1, sizeof *call);
  if (!call) return NULL;
  call->conn = c;
  call->fn = fn;
  call->ref = ref ? json_incref(ref) : NULL;
  return call;
}

gw_call_t *gw_call_new_raw(net_conn_t *c, gw_call_raw_fn raw, json_t *ref) {
  gw_call_t *call = gw_call_new(c, NULL, ref);
  if (call) call->raw = raw;
  return call;
}

static void call_free(gw_call_t *call) {
  json_decref(call->ref);
  json_decref(call->data);
  free(call);
}

static void call_unlink(gw_call_t *call) {
  if (!call->conn) return;
  gw_session_t *s = ws_user(call->conn);
  if (call->prev)
    call->prev->next = call->next;
  else
    s->calls = call->next;
  if (call->next) call->next->prev = call->prev;
  call->prev = call->next = NULL;
}

/* An error reply's code and message (strings owned by e). */
static void read_error(json_t *e, const char **code, const char **message) {
  *code = json_string_value(json_object_get(e, "code"));
  *message = json_string_value(json_object_get(e, "message"));
  if (!*code) *code = "internal";
  if (!*message) *message = "internal error";
}

static void on_call_reply(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  gw_call_t *call = arg;
  call_unlink(call);
  net_conn_t *c = call->conn;
  json_t *j = NULL, *reply = NULL;
  jscan_val_t scanned, *raw_reply = NULL;
  const char *code = NULL, *message = NULL;
  if (!c) {
    /* Orphaned: let fn release what it stored, nothing else. */
  } else if (status == BUS_ETIMEDOUT) {
    code = "timeout";
    message = "the service did not answer in time";
  } else if (status < 0) {
    code = "unavailable";
    message = "the service is not available";
  } else if (call->raw && jscan_parse(msg->data, msg->len, &scanned) &&
             scanned.type == JSCAN_OBJECT && !jscan_member(scanned, "error", &(jscan_val_t){0})) {
    raw_reply = &scanned;
  } else {
    j = json_loadb(msg->data, msg->len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    if (!json_is_object(j)) {
      log_error("gateway", "malformed reply on %s", msg->subject);
      code = "internal";
      message = "the service answered something unreadable";
    } else if (e) {
      read_error(e, &code, &message);
    } else if (call->raw) {
      /* jansson read what the scan refused (it checks less than jansson does): never ours */
      log_error("gateway", "malformed reply on %s", msg->subject);
      code = "internal";
      message = "the service answered something unreadable";
    } else {
      reply = j;
    }
  }
  if (call->raw)
    call->raw(call->g, c, call, raw_reply, code, message);
  else
    call->fn(call->g, c, call, reply, code, message);
  json_decref(j);
  call_free(call);
}

int gw_call_send_text(gateway_t *g, gw_call_t *call, const char *subject, const char *text,
                      size_t len) {
  gw_session_t *s = ws_user(call->conn);
  int rc = s->state == GW_SESS_CLOSED ? -EPIPE : 0;
  call->g = g;
  if (rc == 0)
    rc = bus_request(g->bus, subject, text, len, GW_CALL_TIMEOUT_MS, on_call_reply, call, NULL);
  if (rc < 0) {
    call_free(call);
    return rc;
  }
  call->next = s->calls;
  if (s->calls) s->calls->prev = call;
  s->calls = call;
  return 0;
}

int gw_call_send(gateway_t *g, gw_call_t *call, const char *subject, json_t *payload) {
  char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
  json_decref(payload);
  if (!text) {
    call_free(call);
    return -ENOMEM;
  }
  int rc = gw_call_send_text(g, call, subject, text, strlen(text));
  free(text);
  return rc;
}

/* ---- events published for a user ---- */

void gw_publish_user_event(gateway_t *g, const gw_session_t *s, const char *op, int64_t chan_id,
                           const char *status) {
  gw_publish_user_event_as(g, s->user_id, s->username, op, chan_id, status);
}

void gw_publish_user_event_as(gateway_t *g, int64_t user_id, const char *username, const char *op,
                              int64_t chan_id, const char *status) {
  buf_t b = BUF_INIT;
  buf_printf(&b, "{\"op\":\"%s\",\"channel_id\":%lld,\"user_id\":%lld,\"username\":\"", op,
             (long long)chan_id, (long long)user_id);
  buf_append_json_escaped(&b, username, strlen(username));
  buf_append_char(&b, '"');
  if (status) buf_printf(&b, ",\"status\":\"%s\"", status);
  buf_append_char(&b, '}');
  char subject[32];
  snprintf(subject, sizeof subject, "chan.%lld", (long long)chan_id);
  if (!b.oom) {
    int rc = bus_publish(g->bus, subject, NULL, b.data, b.len);
    if (rc < 0) log_warn("gateway", "publish %s on %s failed: %d", op, subject, rc);
  }
  buf_free(&b);
}

void gw_presence_publish(gateway_t *g, const gw_session_t *s, const char *status) {
  for (uint16_t i = 0; i < s->cs.nchans; i++)
    gw_publish_user_event(g, s, "presence", s->cs.chans[i].topic->id, status);
}

/* ---- open: channel list, hello ---- */

static void send_hello(gateway_t *g, net_conn_t *c, json_t *channels, bool degraded) {
  gw_session_t *s = ws_user(c);
  unsigned char id[16];
  char hex[sizeof id * 2 + 1];
  randombytes_buf(id, sizeof id);
  sodium_bin2hex(hex, sizeof hex, id, sizeof id);
  json_t *h = json_pack("{s:s, s:s, s:I, s:{s:I, s:s}, s:o}", "op", "hello", "session_id", hex,
                        "heartbeat_interval", (json_int_t)g->heartbeat_ms, "user", "id",
                        (json_int_t)s->user_id, "username", s->username, "channels", channels);
  if (h && degraded) json_object_set_new(h, "degraded", json_true());
  if (h)
    gw_ws_send_json(c, h);
  else
    ws_close(c, WS_CLOSE_INTERNAL, "out of memory");
}

/* Subscribes to the listed channels (reply NULL: the list failed), sends
 * hello, announces presence and applies a resume received before hello. */
static void apply_list(gateway_t *g, net_conn_t *c, json_t *reply) {
  gw_session_t *s = ws_user(c);
  json_t *mine = json_array();
  bool degraded = reply == NULL, capped = false;
  json_t *list = json_object_get(reply, "channels");
  size_t i;
  json_t *ch;
  json_array_foreach(list, i, ch) {
    json_int_t id = json_integer_value(json_object_get(ch, "id"));
    /* The channel's last_seq seeds its ordering: a first live message that
     * overtook an earlier one is then held, not taken as the start. */
    json_t *ls = json_object_get(ch, "last_seq");
    int rc = id > 0 ? gw_subs_join_at(&g->subs, &s->cs, id, json_is_integer(ls) ? json_integer_value(ls) : -1)
                    : -EINVAL;
    if (rc == 0) {
      json_array_append(mine, ch);
    } else if (rc == -ENOSPC) {
      capped = true;
    } else if (rc < 0) {
      log_warn("gateway", "cannot subscribe user %lld to channel %lld: %d",
               (long long)s->user_id, (long long)id, rc);
      degraded = true;
    }
  }
  s->state = GW_SESS_READY;
  send_hello(g, c, mine, degraded);
  if (s->state == GW_SESS_CLOSED) return;
  if (capped) {
    char msg[96];
    snprintf(msg, sizeof msg, "only the first %u channels are delivered on this connection",
             (unsigned)g->subs.max_chans);
    gw_ws_error(c, "too_many_channels", msg, NULL, 0);
    if (s->state == GW_SESS_CLOSED) return;
  }
  gw_presence_connected(g, s);
  /* Frames that came before hello, in order: answers never precede hello,
   * and a resume among them registers its replay before any live event
   * (those arrive from the bus in later loop turns). */
  json_t *early = s->early;
  s->early = NULL;
  size_t k;
  json_t *t;
  json_array_foreach(early, k, t) {
    if (s->state != GW_SESS_READY) break;
    gw_ws_handle_text(g, c, json_string_value(t), json_string_length(t));
  }
  json_decref(early);
}

static void on_channel_list(gateway_t *g, net_conn_t *c, gw_call_t *call, json_t *reply,
                            const char *code, const char *message) {
  if (!c) return;
  gw_session_t *s = ws_user(c);
  if (!reply)
    log_warn("gateway", "channel list for user %lld failed: %s (%s); hello without channels",
             (long long)s->user_id, code, message);
  if (s->wait_first) {
    /* The client announced a resume: deliver nothing live before it. */
    s->list_reply = reply ? json_incref(reply) : json_null();
    return;
  }
  apply_list(g, c, reply);
}

void gw_session_first_frame(gateway_t *g, net_conn_t *c) {
  gw_session_t *s = ws_user(c);
  s->wait_first = false;
  if (!s->list_reply || s->state != GW_SESS_LOADING) return;
  json_t *l = s->list_reply;
  s->list_reply = NULL;
  apply_list(g, c, json_is_null(l) ? NULL : l);
  json_decref(l);
}

void gw_session_open(gateway_t *g, net_conn_t *c, const jwt_claims_t *claims, bool wait_first) {
  gw_session_t *s = ws_user(c);
  s->state = GW_SESS_LOADING;
  s->wait_first = wait_first;
  s->user_id = strtoll(claims->sub, NULL, 10);
  snprintf(s->username, sizeof s->username, "%.32s", claims->name);
  gw_bucket_init(&s->bucket, g->send_burst, (uint32_t)uv_now(g->loop));
  int rc = gw_subs_user_attach(&g->subs, &s->cs, s->user_id);
  if (rc < 0) {
    log_warn("gateway", "cannot subscribe user %lld: %d", (long long)s->user_id, rc);
    ws_close(c, WS_CLOSE_TRY_AGAIN, "try again later");
    return;
  }
  gw_call_t *call = gw_call_new(c, on_channel_list, NULL);
  rc = call ? gw_call_send(g, call, "messages.channel.list",
                           json_pack("{s:I}", "user_id", (json_int_t)s->user_id))
            : -ENOMEM;
  if (rc < 0) {
    log_warn("gateway", "cannot ask for the channels of user %lld: %d", (long long)s->user_id, rc);
    if (s->wait_first)
      s->list_reply = json_null();
    else
      apply_list(g, c, NULL);
  }
}

/* ---- close ---- */

void gw_session_close(gateway_t *g, net_conn_t *c) {
  gw_session_t *s = ws_user(c);
  if (s->state == GW_SESS_CLOSED) return;
  s->state = GW_SESS_CLOSED;
  for (gw_call_t *call = s->calls, *next; call; call = next) {
    next = call->next;
    call->conn = NULL;
    call->prev = call->next = NULL;
  }
  s->calls = NULL;
  json_decref(s->early);
  s->early = NULL;
  json_decref(s->list_reply);
  s->list_reply = NULL;
  json_decref(s->sendq);
  s->sendq = NULL;
  gw_resume_drop(s);
  gw_presence_disconnected(g, s);
  gw_subs_conn_drop(&g->subs, &s->cs);
}
