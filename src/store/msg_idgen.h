/*
 * msg_idgen.h — the message-id generator both messages-store backends use
 * (snowflake layout in messages_store.h: ms since MSG_ID_EPOCH_MS << 22 |
 * node << 12 | counter).
 *
 * Ids are monotonic whatever the wall clock does: after 4,096 ids in one
 * millisecond, or when the clock goes back, the generator borrows the
 * next millisecond. Not thread-safe: one writer thread owns a generator.
 * Seed `ms`/`ctr` from the newest stored id before the first call (ms -1:
 * nothing stored yet).
 */
#ifndef STORM_STORE_MSG_IDGEN_H
#define STORM_STORE_MSG_IDGEN_H

#include <stdint.h>

typedef struct {
  int64_t ms;  /* ms since MSG_ID_EPOCH_MS of the last id */
  int64_t ctr; /* and its counter */
} msg_idgen_t;

/* The next id of `node` at wall time now_ms; *created_at gets the time in it. */
int64_t msg_idgen_next(msg_idgen_t *g, unsigned node, int64_t now_ms, int64_t *created_at);

/* The next id, and above `floor` (a channel's newest id, perhaps written
 * by a process whose clock runs ahead): ids grow with seq in a channel. */
int64_t msg_idgen_above(msg_idgen_t *g, unsigned node, int64_t now_ms, int64_t floor,
                        int64_t *created_at);

#endif
