/*
 * gateway_fanout.c — the bus side of subscriptions: one bus subscription
 * per local topic (gateway_subs.h hooks), and delivery of the events.
 *
 * chan.<id> is the hot path: the event is framed ONCE (ws_frame_new, the
 * payload as is) and the same chunk is queued on every local member. The
 * only per-event JSON work is reading the seq of `message` events (other
 * ops are told apart by their leading bytes): the topic delivers those in
 * seq order, holding one that arrives ahead of a gap (gateway_order.h:
 * replicas of the messages service publish independently). Ordering comes
 * before the per-member resume hold (gateway_replay.h), so a replaying
 * member's held copies are already in order; that member's copy is held,
 * the others are sent. A member whose resume just finished drops the late
 * copies of what its replay sent (`trailing`, same header).
 *
 * One coarse timer for the whole gateway (GW_ORDER_TICK_MS, running only
 * while some channel holds events) gives up gaps that do not fill.
 *
 * user.<id> events are rare (joins, leaves, read marks): they are parsed
 * once, applied to each of the user's READY connections and forwarded.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "net/ws_frame.h"
#include "services/gateway/gateway_internal.h"

/* Sends one event to every local member of t (pinned by the caller). */
static void topic_send(void *arg, int64_t seq, net_chunk_t *f) {
  gw_topic_t *t = arg;
  gateway_t *g = t->ctx;
  /* Walk from the end: a member closed by ws_send_frame (slow consumer)
   * is swapped with the last slot, which was already served. */
  for (uint32_t i = t->n; i-- > 0;) {
    if (i >= t->n) continue;
    gw_slot_t sl = t->slots[i];
    net_conn_t *c = gw_cs_conn(sl.cs);
    gw_centry_t *e = &sl.cs->chans[sl.idx];
    if (e->replaying)
      gw_resume_live(g, c, t->id, seq, f);
    else if (!e->trailing || !gw_resume_trail_drop(c, e, t->id, seq))
      ws_send_frame(c, f);
  }
}

static void topic_gap(void *arg, int64_t from, int64_t to, uint64_t skipped,
                      gw_order_gap_reason_t why) {
  gw_topic_t *t = arg;
  log_warn("gateway",
           "channel %lld: gave up waiting for seq %lld..%lld (%llu missing in all, %s); "
           "delivering the held messages",
           (long long)t->id, (long long)from, (long long)to, (unsigned long long)skipped,
           why == GW_ORDER_GAP_TIMEOUT ? "timeout" : "hold full");
}

static const gw_order_cb_t order_cb = {topic_send, topic_gap};

static void flush_due(void *arg, gw_order_t *o) {
  gateway_t *g = arg;
  gw_topic_t *t = (gw_topic_t *)((char *)o - offsetof(gw_topic_t, order));
  gw_topic_pin(t);
  gw_order_flush(&g->subs.order, o, GW_ORDER_GAP_TIMEOUT, &order_cb, t);
  gw_topic_unpin(t);
}

/* Gives up the gaps whose oldest held event waited hold_ms or more. */
static void order_sweep(gateway_t *g, uint32_t hold_ms) {
  gw_order_sweep(&g->subs.order, (uint32_t)uv_now(g->loop), hold_ms, flush_due, g);
}

static void on_order_tick(uv_timer_t *tm);

/* After the order state changed: the timer runs exactly while something is
 * held, and the metrics follow the totals. */
static void order_after(gateway_t *g) {
  bool want = g->subs.order.holding > 0;
  if (want && !g->order_tick_open && !g->order_stopped &&
      uv_timer_init(g->loop, &g->order_tick) == 0) {
    g->order_tick.data = g;
    g->order_tick_open = true;
    uv_unref((uv_handle_t *)&g->order_tick); /* never keeps the loop alive */
  }
  if (want && !g->order_tick_open) {
    /* Stopped (or no timer): nothing may wait for a tick that never comes. */
    order_sweep(g, 0);
  } else if (g->order_tick_open) {
    bool on = uv_is_active((uv_handle_t *)&g->order_tick);
    if (want && !on)
      uv_timer_start(&g->order_tick, on_order_tick, GW_ORDER_TICK_MS, GW_ORDER_TICK_MS);
    else if (!want && on)
      uv_timer_stop(&g->order_tick);
  }
  const gw_order_stats_t *st = &g->subs.order.stats;
  metrics_set(g->m_order[0], (double)st->dropped);
  metrics_set(g->m_order[1], (double)st->held);
  metrics_set(g->m_order[2], (double)st->gaps);
  metrics_set(g->m_order[3], (double)st->skipped);
}

static void on_order_tick(uv_timer_t *tm) {
  gateway_t *g = tm->data;
  order_sweep(g, GW_ORDER_HOLD_MS);
  order_after(g);
}

static void on_chan_event(bus_t *bus, const bus_msg_t *msg, void *arg) {
  gw_topic_t *t = arg;
  gateway_t *g = t->ctx;
  if (msg->len == 0) return;
  /* Large channels get no presence (gateway.h): gateways publish it in this
   * exact form, so a prefix check is enough. */
  static const char presence[] = "{\"op\":\"presence\"";
  if (t->n > (uint32_t)g->presence_max_members && msg->len >= sizeof presence - 1 &&
      memcmp(msg->data, presence, sizeof presence - 1) == 0)
    return;
  net_chunk_t *f = ws_frame_new(WS_OP_TEXT, msg->data, msg->len);
  if (!f) {
    log_warn("gateway", "out of memory framing an event of channel %lld", (long long)t->id);
    return;
  }
  int64_t seq = gw_event_message_seq(msg->data, msg->len);
  gw_topic_pin(t);
  gw_order_push(&g->subs.order, &t->order, seq, f, (uint32_t)uv_now(g->loop), &order_cb, t);
  gw_topic_unpin(t);
  net_chunk_unref(f);
  order_after(g);
}

int gw_fanout_join(gateway_t *g, net_conn_t *c, int64_t chan_id, int64_t last_seq) {
  gw_session_t *s = ws_user(c);
  int rc = gw_subs_join_at(&g->subs, &s->cs, chan_id, last_seq);
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
  int64_t last_seq = -1;
  if (strcmp(op, "channel_joined") == 0) {
    kind = EV_JOINED;
    json_t *ch = json_object_get(j, "channel");
    chan = json_integer_value(json_object_get(ch, "id"));
    json_t *ls = json_object_get(ch, "last_seq");
    if (json_is_integer(ls)) last_seq = (int64_t)json_integer_value(ls);
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
    net_conn_t *c = gw_cs_conn(t->slots[i].cs);
    gw_session_t *s = ws_user(c);
    /* Before hello the channel list (computed later) already has it. */
    if (s->state != GW_SESS_READY) continue;
    if (kind == EV_JOINED) {
      if (gw_fanout_join(g, c, chan, last_seq) < 0 && s->state == GW_SESS_CLOSED) continue;
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
  static const char *const names[4][2] = {
      {"storm_gateway_order_dropped_total",
       "Live message events dropped by a gateway: seq at or below the last delivered "
       "(duplicates, or late after a gap was given up)."},
      {"storm_gateway_order_held_total",
       "Live message events held because they arrived ahead of a seq gap."},
      {"storm_gateway_order_gaps_total",
       "Seq gaps given up (timeout or hold full): held messages delivered with a gap."},
      {"storm_gateway_order_skipped_total",
       "Seqs never delivered live because their gap was given up."},
  };
  for (int i = 0; i < 4; i++)
    g->m_order[i] = metrics_series0(metrics_counter_new(g->metrics, names[i][0], names[i][1], 0, NULL));
}

void gw_fanout_stop(gateway_t *g) {
  if (g->order_stopped) return;
  g->order_stopped = true;
  order_sweep(g, 0);
  if (!g->order_tick_open) return;
  g->order_tick_open = false;
  uv_close((uv_handle_t *)&g->order_tick, NULL);
}
