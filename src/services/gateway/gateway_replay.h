/*
 * gateway_replay.h — the bookkeeping of `resume` for one connection:
 * which channels are replaying, the live events held meanwhile, and the
 * dedupe at the replay/live boundary. Socket-free: the caller does the bus
 * requests and the sending; this module decides.
 *
 * The protocol (docs/protocol.md, `resume`): for each channel the client
 * names with its last seen seq, the gateway
 *  1. marks the channel's entry `replaying` (gateway_subs.h) at once: from
 *     then on, live events of that channel for this connection are HELD
 *     here (a reference to the shared frame plus the message seq) instead
 *     of being sent;
 *  2. fetches history after the cursor page by page (messages.history,
 *     `after`), sending every message with seq > cursor and advancing the
 *     cursor (gw_replay_accept), until a page says `more: false` (DONE) or
 *     the replay limit is reached with more left (TRUNCATED);
 *  3. finishes (gw_resume_finish): held frames are delivered in arrival
 *     order, except `message` events with seq <= cursor (already replayed):
 *     no gap, since every message committed after the last page was read
 *     is published after it and so was held; no duplicate, since held
 *     copies of replayed messages are dropped;
 *  4. trails: a page can also hold messages committed but not yet
 *     published (the event follows the commit by a loop turn or a bus
 *     hop), whose events then arrive after the finish. When the channel's
 *     topic has delivered fewer seqs than the client now has, the caller
 *     records a trail (gw_resume_trail) and marks the entry `trailing`;
 *     live `message` events of that channel at or below the trail's seq
 *     are dropped for this connection (gw_resume_trailing), and the first
 *     one above it retires the trail. The topic delivers in seq order
 *     (gateway_order.h), so nothing above the trail is dropped.
 * If the held frames of a connection would pass the hold limit, the
 * channel's replay is cut short (the caller answers resume_truncated and
 * finishes it without delivering what was held: the client refetches).
 *
 * Ownership: held frames are references (net_chunk_ref) released by
 * finish; `ref` (the client's request ref) is owned by the replay and
 * released by finish unless the caller took it. Not thread-safe.
 */
#ifndef STORM_SERVICES_GATEWAY_REPLAY_H
#define STORM_SERVICES_GATEWAY_REPLAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/chunk.h"

/* Messages asked per history page (the messages service's maximum). */
#define GW_REPLAY_PAGE 100

typedef struct {
  int64_t seq; /* > 0: a `message` event with this seq; 0: any other event */
  net_chunk_t *frame;
} gw_held_t;

typedef struct gw_replay {
  struct gw_replay *next;
  int64_t chan_id;
  int64_t cursor;     /* seq of the last message the client has (from the replay or before) */
  json_t *ref;        /* the resume request's ref, or NULL */
  gw_held_t *held;
  uint32_t nheld, capheld;
  uint32_t replayed;  /* messages sent by this replay */
  uint32_t id;        /* tells a late reply of an earlier replay of the same channel */
  bool started;       /* a history request has been made */
} gw_replay_t;

typedef struct {
  int64_t chan_id, top; /* drop this channel's message events with seq <= top */
} gw_trail_t;

typedef struct {
  gw_replay_t *head;  /* in start order */
  gw_trail_t *trails; /* finished replays whose last events may still come */
  uint32_t held;      /* frames held by all replays of the connection */
  uint32_t next_id;
  uint16_t count;     /* replays */
  uint16_t started;   /* replays with started set */
  uint32_t ntrails, captrails; /* at most one per channel of the connection */
} gw_resume_t;

typedef enum {
  GW_REPLAY_FETCH,     /* ask for the next page (page_limit messages) */
  GW_REPLAY_DONE,      /* nothing more: finish and answer resumed */
  GW_REPLAY_TRUNCATED, /* the limit is reached with more left: resume_truncated */
} gw_replay_step_t;

/* Appends a replay of chan_id from last_seq (not started). Takes a
 * reference to ref (may be NULL). NULL on OOM. */
gw_replay_t *gw_resume_add(gw_resume_t *rs, int64_t chan_id, int64_t last_seq, json_t *ref);
gw_replay_t *gw_resume_find(const gw_resume_t *rs, int64_t chan_id);
/* The oldest replay not started, or NULL. */
gw_replay_t *gw_resume_next_unstarted(const gw_resume_t *rs);
void gw_resume_mark_started(gw_resume_t *rs, gw_replay_t *r);

/* Holds a live frame (takes a reference). 0, or -ENOBUFS when the
 * connection already holds max_total frames, -ENOMEM; then nothing is held. */
int gw_resume_hold(gw_resume_t *rs, gw_replay_t *r, int64_t seq, net_chunk_t *frame,
                   uint32_t max_total);

/* A replayed message with this seq: true (send it; the cursor moves) if it
 * is newer than the cursor, false (skip it) otherwise. */
bool gw_replay_accept(gw_replay_t *r, int64_t seq);

/* What to do after a page (more: the page's flag; pass true before the
 * first page). limit: the replay limit (>= 1). */
gw_replay_step_t gw_replay_next(const gw_replay_t *r, bool more, uint32_t limit,
                                uint32_t *page_limit);

/* Called for each held frame to deliver, in order; return nonzero to stop
 * (e.g. the connection closed): the rest is released undelivered. */
typedef int (*gw_deliver_fn)(void *arg, net_chunk_t *frame);

/*
 * Ends replay r: unlinks and frees it, then (deliver non-NULL) hands the
 * held frames that pass the dedupe to deliver and releases every held
 * reference. Returns the highest seq the client now has: the cursor, or
 * the seq of a delivered held message if higher. deliver may tear the
 * connection down (and free rs): finish touches neither rs nor r once it
 * starts delivering. Read what you need from r (chan_id, cursor, ref)
 * before calling.
 */
int64_t gw_resume_finish(gw_resume_t *rs, gw_replay_t *r, gw_deliver_fn deliver, void *arg);

/* Finishes every replay without delivering and forgets the trails (the
 * connection is closing). */
void gw_resume_clear(gw_resume_t *rs);

/* Records (or moves) the trail of chan_id at top. 0 or -ENOMEM (then the
 * client may see the trailing events twice, as before trails existed). */
int gw_resume_trail(gw_resume_t *rs, int64_t chan_id, int64_t top);

/* For a live event (seq as gw_event_message_seq) of a trailing channel:
 * true to drop it. Sets *retired when the channel no longer trails (no
 * trail, or a message above it: the trail is forgotten). */
bool gw_resume_trailing(gw_resume_t *rs, int64_t chan_id, int64_t seq, bool *retired);

/* Nothing left to keep: no replay and no trail. */
bool gw_resume_idle(const gw_resume_t *rs);

/* The seq of a `message` event ({"op":"message", "message":{"seq":N}}),
 * 0 for any other event or an unreadable one (those are never dropped).
 * Called for every event a gateway fans out: a scan (core/json_scan.h),
 * no tree; an op written with escapes is not recognised (the services
 * never write one so). */
int64_t gw_event_message_seq(const void *data, size_t len);

#endif
