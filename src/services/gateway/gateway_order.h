/*
 * gateway_order.h — per-channel seq ordering of live `message` events.
 * Socket-free: the caller frames events and sends them; this module decides
 * when each one goes.
 *
 * Why: several replicas of the messages service commit to one database
 * (seqs are gapless, in commit order) and each publishes its own `message`
 * events on chan.<id>. The bus keeps one publisher's order only, so a
 * gateway may receive seq 6 (replica B) before seq 5 (replica A); a client
 * that keeps the highest seq it holds would then drop 5 (docs/protocol.md).
 * So each channel topic of a gateway delivers `message` events in seq order:
 *  - seq <= last delivered: a duplicate (or a late arrival after a skipped
 *    gap): dropped;
 *  - seq == last + 1: delivered, then every held event that became
 *    contiguous;
 *  - seq > last + 1: held, sorted by seq, until the gap fills. A gap is not
 *    waited for forever: when an event has been held GW_ORDER_HOLD_MS (seen
 *    by gw_order_sweep, driven by one coarse timer for the whole gateway), or
 *    when more than GW_ORDER_HOLD_MAX events would be held, everything held
 *    is delivered in seq order anyway and the gap is reported once (the
 *    client sees the seq gap and fetches history);
 *  - any other event (seq 0: edits, deletes, typing, presence, ...) passes
 *    at once, untouched.
 * Where `last` starts (gw_order_join, for each member that joins before
 * the first message event): the channel's last_seq as each member learnt
 * it (hello's channel list, channel_joined), the lowest winning. Too low
 * only costs a hold (the first event waits for a gap that may never fill);
 * too high would drop a message some member still needs, so a member that
 * joins without a last_seq makes the order "blind": the first event then
 * sets the start and is delivered.
 *
 * Memory: gw_order_t is 24 bytes inside each channel topic; the hold (its
 * array and list links) exists only while something is held and is freed
 * when it empties or by gw_order_clear.
 *
 * Re-entrancy: deliver may do anything the fan-out does (close connections,
 * tear topics down, so gw_order_clear any order, this one included), but
 * must not push to an order (bus callbacks never nest). Held events are
 * popped one at a time before being delivered, so a clear from inside
 * deliver releases the rest undelivered. The caller keeps `o` itself valid
 * (pins its topic) for the duration of each call.
 *
 * Ownership: a held event keeps a reference to its frame (net_chunk_ref);
 * deliver borrows the frame for the call. Times are loop milliseconds mod
 * 2^32 (wrap-safe differences). Not thread-safe (the loop thread).
 */
#ifndef STORM_SERVICES_GATEWAY_ORDER_H
#define STORM_SERVICES_GATEWAY_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/chunk.h"

/* Events held per channel at most: a bound on memory a lost message can
 * pin (1,024 shared frames), above what two replicas committing batches of
 * 100 can reorder. */
#define GW_ORDER_HOLD_MAX 1024
/* How long a held event waits for its gap to fill: replicas publish right
 * after their commit, so a reordering usually fills in milliseconds; but a
 * replica starved of CPU (a loaded 2-core host running the whole cluster
 * dropped gaps at 500 ms) can take much longer, and giving up costs the
 * client a history fetch. A gap still open after this is a lost publish. */
#define GW_ORDER_HOLD_MS 2000
/* Period of the sweep timer while something is held: a gap is given up
 * between HOLD_MS and HOLD_MS + TICK_MS after it was first held. */
#define GW_ORDER_TICK_MS 100

typedef struct gw_order_hold gw_order_hold_t;

/* One channel's ordering state (zero-initialised: unseeded, nothing held). */
typedef struct gw_order {
  int64_t last;          /* highest seq delivered (or the seed); valid when known */
  gw_order_hold_t *hold; /* events waiting for a gap to fill; NULL when none */
  bool known;            /* last is set (seeded or an event came) */
  bool live;             /* a message event came: joins no longer change last */
  bool blind;            /* a member joined without a last_seq: ignore seeds */
} gw_order_t;

/* Totals since start, for metrics. */
typedef struct {
  uint64_t dropped; /* message events at or below last delivered (or held twice) */
  uint64_t held;    /* message events that arrived ahead of a gap */
  uint64_t gaps;    /* gaps given up (timeout or bound): held events sent anyway */
  uint64_t skipped; /* seqs never delivered because their gap was given up */
} gw_order_stats_t;

/* All orders of a gateway that hold something (zero-initialised: none). */
typedef struct {
  gw_order_hold_t *holds; /* list of holds, in no particular order */
  uint32_t holding;       /* orders with a hold */
  gw_order_stats_t stats;
} gw_order_set_t;

typedef enum {
  GW_ORDER_GAP_TIMEOUT = 1, /* held GW_ORDER_HOLD_MS without the gap filling */
  GW_ORDER_GAP_FULL = 2,    /* more than GW_ORDER_HOLD_MAX events would be held */
} gw_order_gap_reason_t;

typedef struct {
  /* Sends one event (seq 0: not a message) to the channel's members. */
  void (*deliver)(void *arg, int64_t seq, net_chunk_t *frame);
  /* Called once per gap given up, before the held events go: from..to is
   * the first missing range, skipped the number of missing seqs in all.
   * May be NULL. */
  void (*gap)(void *arg, int64_t from, int64_t to, uint64_t skipped, gw_order_gap_reason_t why);
} gw_order_cb_t;

typedef enum {
  GW_ORDER_PASSED = 0,    /* not a message event: delivered untouched */
  GW_ORDER_DELIVERED = 1, /* in order: delivered (and held ones after it) */
  GW_ORDER_HELD = 2,      /* ahead of a gap: held (the hold may have been flushed: FULL) */
  GW_ORDER_DROPPED = 3,   /* a duplicate: nothing delivered */
} gw_order_result_t;

/* A member joined the channel knowing its last_seq (< 0: unknown). Only
 * before the first message event: the lowest last_seq wins, and one
 * unknown makes the first event set the start (see above). */
void gw_order_join(gw_order_t *o, int64_t last_seq);

/* One live event of the channel: seq > 0 for a `message` event (from
 * gw_event_message_seq), 0 for anything else. now_ms: loop time. A hold that
 * cannot be allocated delivers the event at once (out of order rather than
 * lost). */
gw_order_result_t gw_order_push(gw_order_set_t *set, gw_order_t *o, int64_t seq,
                                net_chunk_t *frame, uint32_t now_ms, const gw_order_cb_t *cb,
                                void *arg);

/* Delivers everything o holds, in seq order, skipping the gaps (reported
 * once through cb->gap with why). Nothing held: nothing happens. */
void gw_order_flush(gw_order_set_t *set, gw_order_t *o, gw_order_gap_reason_t why,
                    const gw_order_cb_t *cb, void *arg);

/* Calls due(arg, o) once for each order whose oldest held event has waited
 * hold_ms or more; due is expected to pin o's owner and gw_order_flush it
 * (GW_ORDER_GAP_TIMEOUT). due may clear or flush any order meanwhile. */
void gw_order_sweep(gw_order_set_t *set, uint32_t now_ms, uint32_t hold_ms,
                    void (*due)(void *arg, gw_order_t *o), void *arg);

/* Releases what o holds undelivered (topic teardown). Idempotent. */
void gw_order_clear(gw_order_set_t *set, gw_order_t *o);

/* Events o holds. */
uint32_t gw_order_held(const gw_order_t *o);


#endif
