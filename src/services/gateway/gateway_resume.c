/*
 * gateway_resume.c — the `resume` op: replay what a client missed, then
 * live, with no gap and no duplicate (the reasoning is in
 * gateway_replay.h; this file does the bus requests and the sending).
 *
 * At most GW_RESUME_PARALLEL channels of a connection fetch history at
 * once; the others wait with their live events already held, so a client
 * resuming 500 channels after a deploy does not send 500 requests at once.
 *
 * A send may close the connection (slow consumer) and tear the session
 * down, freeing every replay: after each send the code checks the session
 * state and stops touching replay state if it is CLOSED.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/str.h"
#include "net/ws_frame.h"
#include "services/gateway/gateway_internal.h"

static void pump(gateway_t *g, net_conn_t *c);

/* The resume state goes once no replay runs and no trail is left. */
static void release_if_idle(gw_session_t *s) {
  if (s->resume && gw_resume_idle(s->resume)) {
    gw_resume_clear(s->resume); /* no trail left, but their array may be */
    free(s->resume);
    s->resume = NULL;
  }
}

static int deliver(void *arg, net_chunk_t *frame) {
  net_conn_t *c = arg;
  ws_send_frame(c, frame);
  return ((gw_session_t *)ws_user(c))->state == GW_SESS_CLOSED;
}

/* Ends replay r and answers op ("resumed" or "resume_truncated"). deliver_held:
 * whether held live frames go out (not when the hold buffer overflowed). */
static void finish(gateway_t *g, net_conn_t *c, gw_replay_t *r, const char *op, bool deliver_held) {
  gw_session_t *s = ws_user(c);
  int64_t chan = r->chan_id, cursor = r->cursor;
  json_t *ref = r->ref;
  r->ref = NULL;
  gw_centry_t *e = gw_subs_entry(&g->subs, &s->cs, chan);
  if (e) gw_subs_set_replaying(e, false);
  int64_t top = gw_resume_finish(s->resume, r, deliver_held ? deliver : NULL, c);
  if (s->state != GW_SESS_CLOSED) {
    /* Events of messages the client now has may still be on their way:
     * the topic has delivered fewer seqs (gateway_replay.h, step 4). */
    e = gw_subs_entry(&g->subs, &s->cs, chan);
    const gw_order_t *o = e ? &e->topic->order : NULL;
    if (e && top > 0 && (!o->known || o->last < top) && gw_resume_trail(s->resume, chan, top) == 0)
      e->trailing = 1;
    release_if_idle(s);
    bool truncated = strcmp(op, "resume_truncated") == 0;
    json_t *m = json_pack("{s:s, s:I, s:I}", "op", op, "channel_id", (json_int_t)chan,
                          "last_seq", (json_int_t)(truncated ? cursor : top));
    if (m && ref) json_object_set(m, "ref", ref);
    if (m) gw_ws_send_json(c, m);
  }
  json_decref(ref);
}

/* The replay failed (service error): say why, then treat it as truncated. */
static void fail(gateway_t *g, net_conn_t *c, gw_replay_t *r, const char *code,
                 const char *message) {
  gw_session_t *s = ws_user(c);
  gw_ws_error(c, code, message, r->ref, r->chan_id);
  if (s->state == GW_SESS_CLOSED) return;
  finish(g, c, r, "resume_truncated", true);
}

static void on_page(gateway_t *g, net_conn_t *c, gw_call_t *call, json_t *reply, const char *code,
                    const char *message);

/* Asks for the page after r's cursor; on failure ends the replay. */
static void fetch(gateway_t *g, net_conn_t *c, gw_replay_t *r, uint32_t page_limit) {
  gw_session_t *s = ws_user(c);
  gw_call_t *call = gw_call_new(c, on_page, NULL);
  int rc = -ENOMEM;
  if (call) {
    call->chan_id = r->chan_id;
    call->replay_id = r->id;
    rc = gw_call_send(g, call, "messages.history",
                      json_pack("{s:I, s:I, s:I, s:I}", "user_id", (json_int_t)s->user_id,
                                "channel_id", (json_int_t)r->chan_id, "after",
                                (json_int_t)r->cursor, "limit", (json_int_t)page_limit));
  }
  if (rc < 0) fail(g, c, r, "unavailable", "cannot reach the messages service");
}

/* Decides what follows a page (or the start) and does it. */
static void step(gateway_t *g, net_conn_t *c, gw_replay_t *r, bool more) {
  uint32_t page_limit = 0;
  switch (gw_replay_next(r, more, g->resume_limit, &page_limit)) {
  case GW_REPLAY_FETCH: fetch(g, c, r, page_limit); break;
  case GW_REPLAY_DONE: finish(g, c, r, "resumed", true); break;
  case GW_REPLAY_TRUNCATED: finish(g, c, r, "resume_truncated", true); break;
  }
}

static void on_page(gateway_t *g, net_conn_t *c, gw_call_t *call, json_t *reply, const char *code,
                    const char *message) {
  if (!c) return;
  gw_session_t *s = ws_user(c);
  gw_replay_t *r = s->resume ? gw_resume_find(s->resume, call->chan_id) : NULL;
  if (!r || r->id != call->replay_id) return; /* cut short or cancelled meanwhile */
  if (!reply) {
    fail(g, c, r, code, message);
    pump(g, c);
    return;
  }
  json_t *msgs = json_object_get(reply, "messages");
  bool more = json_is_true(json_object_get(reply, "more"));
  if (!json_is_array(msgs)) {
    fail(g, c, r, "internal", "unreadable history page");
    pump(g, c);
    return;
  }
  int64_t chan = r->chan_id;
  uint32_t sent = 0;
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) {
    json_t *seq = json_object_get(m, "seq");
    if (!json_is_integer(seq) || !gw_replay_accept(r, (int64_t)json_integer_value(seq))) continue;
    sent++;
    gw_ws_send_json(c, json_pack("{s:s, s:I, s:O}", "op", "message", "channel_id",
                                 (json_int_t)chan, "message", m));
    if (s->state == GW_SESS_CLOSED) return;
  }
  /* A page that says "more" but brings nothing new would loop forever. */
  if (more && sent == 0) {
    finish(g, c, r, "resume_truncated", true);
  } else {
    step(g, c, r, more);
  }
  if (s->state != GW_SESS_CLOSED) pump(g, c);
}

/* Starts waiting replays while fewer than GW_RESUME_PARALLEL run. */
static void pump(gateway_t *g, net_conn_t *c) {
  gw_session_t *s = ws_user(c);
  gw_replay_t *r;
  while (s->state != GW_SESS_CLOSED && s->resume && s->resume->started < GW_RESUME_PARALLEL &&
         (r = gw_resume_next_unstarted(s->resume))) {
    gw_resume_mark_started(s->resume, r);
    step(g, c, r, true);
  }
}

/* Channel ids are object keys: canonical positive decimals. */
static int64_t key_id(const char *key) {
  unsigned long long v;
  if (key[0] == '0' || str_to_u64(str_from(key), INT64_MAX, &v) < 0) return 0;
  return (int64_t)v;
}

void gw_resume_op(gateway_t *g, net_conn_t *c, json_t *m, json_t *ref) {
  gw_session_t *s = ws_user(c);
  json_t *chans = json_object_get(m, "channels");
  if (!json_is_object(chans)) {
    gw_ws_error(c, "bad_request", "'channels' must be an object of channel id -> last seq", ref,
                0);
    return;
  }
  if (json_object_size(chans) > g->subs.max_chans) {
    gw_ws_error(c, "bad_request", "too many channels in one resume", ref, 0);
    return;
  }
  const char *key;
  json_t *v;
  json_object_foreach(chans, key, v) {
    if (key_id(key) <= 0 || !json_is_integer(v) || json_integer_value(v) < 0) {
      gw_ws_error(c, "bad_request",
                  "'channels' keys must be channel ids and values non-negative integers", ref, 0);
      return;
    }
  }
  if (!gw_bucket_take(&s->bucket, (uint32_t)uv_now(g->loop), g->send_rate, g->send_burst)) {
    gw_ws_error(c, "rate_limited", "too many requests; slow down", ref, 0);
    return;
  }
  json_object_foreach(chans, key, v) {
    int64_t chan = key_id(key);
    gw_centry_t *e = gw_subs_entry(&g->subs, &s->cs, chan);
    if (!e) {
      gw_ws_error(c, "not_found", "not a member of this channel", ref, chan);
    } else if (e->replaying) {
      gw_ws_error(c, "bad_request", "this channel is already resuming", ref, chan);
    } else {
      if (!s->resume) s->resume = calloc(1, sizeof *s->resume);
      if (!s->resume || !gw_resume_add(s->resume, chan, (int64_t)json_integer_value(v), ref)) {
        gw_ws_error(c, "internal", "out of memory", ref, chan);
      } else {
        gw_subs_set_replaying(e, true);
        continue;
      }
    }
    if (s->state == GW_SESS_CLOSED) return;
  }
  release_if_idle(s);
  pump(g, c);
}

void gw_resume_live(gateway_t *g, net_conn_t *c, int64_t chan_id, int64_t seq, net_chunk_t *f) {
  gw_session_t *s = ws_user(c);
  gw_replay_t *r = s->resume ? gw_resume_find(s->resume, chan_id) : NULL;
  if (!r) {
    ws_send_frame(c, f); /* not replaying after all: never lose an event */
    return;
  }
  if (gw_resume_hold(s->resume, r, seq, f, GW_RESUME_HOLD_MAX) == 0) return;
  /* Too much arrived while replaying: cut the replay short. The client
   * refetches from last_seq; live delivery goes on from this event. */
  finish(g, c, r, "resume_truncated", false);
  if (s->state == GW_SESS_CLOSED) return;
  ws_send_frame(c, f);
  if (s->state != GW_SESS_CLOSED) pump(g, c);
}

void gw_resume_cancel(gateway_t *g, net_conn_t *c, int64_t chan_id) {
  gw_session_t *s = ws_user(c);
  gw_replay_t *r = s->resume ? gw_resume_find(s->resume, chan_id) : NULL;
  if (!r) return;
  gw_centry_t *e = gw_subs_entry(&g->subs, &s->cs, chan_id);
  if (e) gw_subs_set_replaying(e, false);
  gw_resume_finish(s->resume, r, NULL, NULL);
  release_if_idle(s);
  pump(g, c);
}

bool gw_resume_trail_drop(net_conn_t *c, gw_centry_t *e, int64_t chan_id, int64_t seq) {
  gw_session_t *s = ws_user(c);
  bool retired = false;
  bool drop = gw_resume_trailing(s->resume, chan_id, seq, &retired);
  if (retired) {
    e->trailing = 0;
    release_if_idle(s);
  }
  return drop;
}

void gw_resume_drop(gw_session_t *s) {
  if (!s->resume) return;
  gw_resume_clear(s->resume);
  free(s->resume);
  s->resume = NULL;
}
