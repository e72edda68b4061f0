/*
 * gateway_fanout.c — the bus side of subscriptions: one bus subscription
 * per local topic (gateway_subs.h hooks), and delivery of the events.
 *
 * chan.<id> is the hot path: the event is framed ONCE (ws_frame_new, the
 * payload as is) and the same chunk is queued on every local member. The
 * only per-event JSON work is reading the message seq, and only while some
 * member of the channel is replaying a resume (gateway_replay.h): that
 * member's copy is held, the others are sent.
 *
 * user.<id> events are rare (joins, leaves, read marks): they are parsed
 * once, applied to each of the user's READY connections and forwarded.
 */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "net/ws_frame.h"
#include "services/gateway/gateway_internal.h"

static void on_chan_event(bus_t *bus, const bus_msg_t *msg, void *arg) {
  gw_topic_t *t = arg;
  gateway_t *g = t->ctx;
  if (msg->len == 0) return;
  net_chunk_t *f = ws_frame_new(WS_OP_TEXT, msg->data, msg->len);
  if (!f) {
    log_warn("gateway", "out of memory framing an event of channel %lld", (long long)t->id);
    return;
  }
  int64_t seq = t->replaying ? gw_event_message_seq(msg->data, msg->len) : 0;
  /* Walk from the end: a member closed by ws_send_frame (slow consumer)
   * is swapped with the last slot, which was already served. */
  gw_topic_pin(t);
  for (uint32_t i = t->n; i-- > 0;) {
    if (i >= t->n) continue;
    gw_slot_t sl = t->slots[i];
    net_conn_t *c = sl.cs->owner;
    if (sl.cs->chans[sl.idx].replaying)
      gw_resume_live(g, c, t->id, seq, f);
    else
      ws_send_frame(c, f);
  }
  gw_topic_unpin(t);
  net_chunk_unref(f);
}

int gw_fanout_join(gateway_t *g, net_conn_t *c, int64_t chan_id) {
  gw_session_t *s = ws_user(c);
  int rc = gw_subs_join(&g->subs, &s->cs, chan_id);
  if (rc == -ENOSPC) {
    char msg[96];
    snprintf(msg, sizeof msg, "only %u channels are delivered on one connection",
             (unsigned)g->subs.max_chans);
    gw_ws_error(c, "too_many_channels", msg, NULL, chan_id);
  } else if (rc < 0) {
    log_warn("gateway", "cannot subscribe to channel %lld: %d", (long long)chan_id, rc);
    gw_ws_error(c, "internal", "cannot subscribe to the channel", NULL, chan_id);
  }
  return rc;
}

enum { EV_FORWARD, EV_JOINED, EV_LEFT };

static void on_user_event(bus_t *bus, const bus_msg_t *msg, void *arg) {
  gw_topic_t *t = arg;
  gateway_t *g = t->ctx;
  json_t *j = json_loadb(msg->data, msg->len, 0, NULL);
  const char *op = json_string_value(json_object_get(j, "op"));
  if (!op) {
    log_warn("gateway", "ignoring an unreadable event on %s", msg->subject);
    json_decref(j);
    return;
  }
  int kind = EV_FORWARD;
  json_int_t chan = 0;
  if (strcmp(op, "channel_joined") == 0) {
    kind = EV_JOINED;
    chan = json_integer_value(json_object_get(json_object_get(j, "channel"), "id"));
  } else if (strcmp(op, "channel_left") == 0) {
    kind = EV_LEFT;
    chan = json_integer_value(json_object_get(j, "channel_id"));
  }
  json_decref(j);
  if (kind != EV_FORWARD && chan <= 0) {
    log_warn("gateway", "ignoring %s without a channel id on %s", op, msg->subject);
    return;
  }
  net_chunk_t *f = ws_frame_new(WS_OP_TEXT, msg->data, msg->len);
  if (!f) return;
  const gw_session_t *some = NULL;
  gw_topic_pin(t);
  for (uint32_t i = t->n; i-- > 0;) {
    if (i >= t->n) continue;
    net_conn_t *c = t->slots[i].cs->owner;
    gw_session_t *s = ws_user(c);
    /* Before hello the channel list (computed later) already has it. */
    if (s->state != GW_SESS_READY) continue;
    if (kind == EV_JOINED) {
      if (gw_fanout_join(g, c, chan) < 0 && s->state == GW_SESS_CLOSED) continue;
      some = s;
    } else if (kind == EV_LEFT) {
      gw_resume_cancel(g, c, chan);
      gw_subs_leave(&g->subs, &s->cs, chan);
    }
    ws_send_frame(c, f);
  }
  /* A user already online here is announced in the channel just joined. */
  if (kind == EV_JOINED && some && t->online > 0 && !t->dead)
    gw_publish_user_event(g, some, "presence", chan, "online");
  gw_topic_unpin(t);
  net_chunk_unref(f);
}

static int hook_subscribe(void *arg, gw_topic_t *t) {
  gateway_t *g = arg;
  char subject[32];
  bool chan = t->kind == GW_TOPIC_CHAN;
  snprintf(subject, sizeof subject, "%s.%lld", chan ? "chan" : "user", (long long)t->id);
  bus_sub_t *sub;
  int rc = bus_subscribe(g->bus, subject, NULL, chan ? on_chan_event : on_user_event, t, &sub);
  if (rc == 0) t->handle = sub;
  return rc;
}

static void hook_unsubscribe(void *arg, gw_topic_t *t) {
  bus_unsubscribe(t->handle);
  t->handle = NULL;
}

void gw_fanout_init(gateway_t *g, uint32_t max_channels) {
  gw_subs_hooks_t h = {hook_subscribe, hook_unsubscribe, g};
  gw_subs_init(&g->subs, &h, max_channels);
}
