/*
 * gateway_subs.h — local subscriptions: which connections of this gateway
 * are in which channel, and which belong to which user. Socket-free.
 *
 * One topic per channel (`chan.<id>`) and per user (`user.<id>`) with at
 * least one local connection in it. A topic holds ONE bus subscription for
 * the whole process, made through the subscribe hook when its first member
 * arrives and dropped through the unsubscribe hook when its last member
 * leaves; in between, members only change a local array. So an event
 * reaches the process once, whatever the number of local members.
 *
 * Layout, chosen for the fan-out hot path and O(1) removal:
 *  - a topic keeps its members in a dense array of slots {cs, idx}, walked
 *    linearly to send one shared frame to each;
 *  - a connection (gw_cstate_t, inside its session) keeps a dense array of
 *    16-byte channel entries {topic, slot, flags, typing time};
 *  - each side stores the other's index, so removing a membership is a
 *    swap-with-last on both arrays plus two index fix-ups.
 * Neither array is ever shrunk while members remain; a connection's array
 * is freed when it leaves its last channel.
 *
 * Re-entrancy: a fan-out loop may close connections (a slow consumer is
 * closed from inside ws_send_frame), which removes them from the topic
 * being walked. Pin the topic first (gw_topic_pin) so it is not freed, and
 * walk the slots from the end: a removal moves the last slot, already
 * visited, into the removed one. A topic whose last member leaves while
 * pinned is unsubscribed and unlinked at once and freed at the last unpin.
 *
 * Ordering: each channel topic carries the seq ordering of its `message`
 * events (gateway_order.h), and gw_subs_t the set of orders holding
 * events. A topic's held events are released when the topic is torn down
 * (its last member left), even while pinned.
 *
 * Errors: negative errno. Not thread-safe (the loop thread).
 */
#ifndef STORM_SERVICES_GATEWAY_SUBS_H
#define STORM_SERVICES_GATEWAY_SUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "services/gateway/gateway_map.h"
#include "services/gateway/gateway_order.h"

typedef enum { GW_TOPIC_CHAN = 0, GW_TOPIC_USER = 1 } gw_topic_kind_t;

typedef struct gw_cstate gw_cstate_t;

/* A member of a topic: the connection state and, for a channel topic, the
 * index of the matching entry in cs->chans. */
typedef struct {
  gw_cstate_t *cs;
  uint32_t idx;
} gw_slot_t;

typedef struct gw_topic {
  int64_t id;
  void *handle;       /* set by the subscribe hook (the bus subscription) */
  void *ctx;          /* the hooks' arg, for the topic's bus callbacks */
  gw_slot_t *slots;   /* local members, in no particular order */
  gw_order_t order;   /* channel: seq order of message events (gateway_order.h) */
  uint32_t n, cap;
  uint32_t replaying; /* channel: members whose entry has `replaying` set */
  uint32_t online;    /* user: members counted as online devices (the caller's) */
  uint16_t pins;
  uint8_t kind;       /* gw_topic_kind_t */
  bool dead;          /* unsubscribed and unlinked; freed at the last unpin */
} gw_topic_t;

/* One channel of a connection: 16 bytes. */
typedef struct {
  gw_topic_t *topic;
  uint32_t slot : 30;     /* index in topic->slots */
  uint32_t replaying : 1; /* live events are held for a resume (gateway_replay.h) */
  uint32_t trailing : 1;  /* a finished resume's last events may still come (same) */
  uint32_t typing_ms;     /* loop time (mod 2^32) of the last typing relayed; 0: none */
} gw_centry_t;

/* Per-connection subscription state; zero-initialised is "in nothing".
 * It holds no pointer to its connection (8 bytes per connection): whoever
 * walks a topic knows where it embedded its cstates (the gateway: first
 * member of the session in the connection's user area, gw_cs_conn). */
struct gw_cstate {
  gw_centry_t *chans;
  gw_topic_t *user;
  uint32_t user_slot; /* index in user->slots */
  uint16_t nchans, capchans;
};

typedef struct {
  /* Called when a topic gets its first member; sets t->handle. Returns 0 or
   * a negative errno (the join then fails with it). */
  int (*subscribe)(void *arg, gw_topic_t *t);
  /* Called once when the last member leaves (even while pinned). */
  void (*unsubscribe)(void *arg, gw_topic_t *t);
  void *arg;
} gw_subs_hooks_t;

typedef struct {
  gw_map_t chans, users;
  gw_subs_hooks_t hooks;
  gw_order_set_t order; /* channel topics holding events for a seq gap */
  uint32_t max_chans;   /* channels per connection */
} gw_subs_t;

/* max_chans: 1..32767. */
void gw_subs_init(gw_subs_t *s, const gw_subs_hooks_t *hooks, uint32_t max_chans);
/* Frees what is left without calling hooks (at exit, after the bus is
 * closed: every connection is gone by then, so normally nothing is). */
void gw_subs_destroy(gw_subs_t *s);

/* Adds cs to channel id (subscribing the process on first local member).
 * Returns 0, 1 if cs was already in it, -ENOSPC at max_chans, -EINVAL for
 * id <= 0, -ENOMEM, or the subscribe hook's error. */
int gw_subs_join(gw_subs_t *s, gw_cstate_t *cs, int64_t chan_id);
/* The same, for a member that knows the channel's last_seq (hello's channel
 * list, channel_joined): it seeds the topic's order (gw_order_join).
 * gw_subs_join is gw_subs_join_at(.., -1): a member without one. */
int gw_subs_join_at(gw_subs_t *s, gw_cstate_t *cs, int64_t chan_id, int64_t last_seq);
/* Removes cs from channel id. Returns 0 or -ENOENT. The caller clears any
 * replay state of the entry first (gw_subs_set_replaying(.., false)). */
int gw_subs_leave(gw_subs_t *s, gw_cstate_t *cs, int64_t chan_id);
/* Attaches cs to user id's topic. Returns 0, -EEXIST if cs already has a
 * user, -EINVAL, -ENOMEM or the hook's error. */
int gw_subs_user_attach(gw_subs_t *s, gw_cstate_t *cs, int64_t user_id);
/* Leaves every channel and the user topic, frees cs's array. Replay flags
 * are cleared (the counters follow). Idempotent. */
void gw_subs_conn_drop(gw_subs_t *s, gw_cstate_t *cs);

gw_topic_t *gw_subs_chan(const gw_subs_t *s, int64_t chan_id);
gw_topic_t *gw_subs_user(const gw_subs_t *s, int64_t user_id);
/* cs's entry for channel id, or NULL if not a member. O(channels of cs). */
gw_centry_t *gw_subs_entry(const gw_subs_t *s, const gw_cstate_t *cs, int64_t chan_id);
/* Sets or clears the replaying flag of an entry, keeping topic->replaying. */
void gw_subs_set_replaying(gw_centry_t *e, bool on);

static inline void gw_topic_pin(gw_topic_t *t) { t->pins++; }
/* Frees t if it died while pinned. */
void gw_topic_unpin(gw_topic_t *t);

#endif
