/*
 * msg_nonces.h — the recent nonces of one message writer, in memory: which
 * stored message ids may carry a given (author, channel, nonce).
 *
 * Why not a unique index: clients send random nonces (UUIDs), and a b-tree
 * keyed by them gets every insert on a random page. The SQLite writer then
 * wrote a page per message to the WAL and fell seconds behind at 50,000
 * appends/s (docs/storage.md). Retries come seconds or minutes after the
 * original, so the writer remembers recent nonces here, and the database
 * keeps the nonce only as a column of the message.
 *
 * What it holds: a 64-bit keyed hash of each (author, channel, nonce) with
 * the message's id. The key is random per table (SipHash-2-4, libsodium's
 * crypto_shorthash), so clients cannot aim nonces at one slot. A hash is
 * not proof: the caller reads each candidate message and compares, so its
 * answers are exact, and an id whose transaction was rolled back simply
 * fails that comparison.
 *
 * Two generations. Adds go to the current one; msg_nonces_reserve turns
 * it into the previous one (dropping the previous) once it holds gen_max
 * entries, or once its first entry is gen_ms older than the time given.
 * So a nonce among the last gen_max added and no older than gen_ms is
 * always found; older ones may or may not be. Memory: a generation's table
 * stays at most half full, so at most 2 × 2 × gen_max × 16 bytes.
 *
 * Not thread-safe: one writer thread owns a table.
 */
#ifndef STORM_STORE_MSG_NONCES_H
#define STORM_STORE_MSG_NONCES_H

#include <stddef.h>
#include <stdint.h>

#define MSG_NONCES_GEN_MS (5 * 60 * 1000) /* default: a generation spans ≤ 5 minutes */
#define MSG_NONCES_GEN_MAX 500000         /* default: and ≤ 500,000 nonces */
#define MSG_NONCES_HASHED 64              /* nonce bytes that go into the hash */

typedef struct {
  uint64_t h;
  int64_t id; /* 0: free slot */
} msg_nonce_slot_t;

typedef struct {
  msg_nonce_slot_t *slots; /* open addressing, linear probing; NULL until the first add */
  size_t cap, n;           /* cap: a power of two */
  int64_t first_ms;        /* time of the first entry */
} msg_nonce_gen_t;

typedef struct {
  unsigned char key[16];
  int64_t gen_ms;
  size_t gen_max;
  msg_nonce_gen_t gen[2]; /* gen[cur] takes adds; the other is the previous */
  int cur;
  uint64_t mask; /* hash bits kept: all but in tests (msg_nonces_weaken) */
} msg_nonces_t;

/* Where a lookup stands (msg_nonces_next); zero it before the first call. */
typedef struct {
  int step; /* 0: current generation, 1: previous, 2: done */
  size_t i;
  int started;
} msg_nonces_iter_t;

/* An empty table (nothing allocated yet) with a fresh random key. gen_ms
 * and gen_max of 0 take the defaults. Returns 0, or -EIO if libsodium
 * cannot initialise. */
int msg_nonces_init(msg_nonces_t *t, int64_t gen_ms, size_t gen_max);
void msg_nonces_free(msg_nonces_t *t);

/* For tests: keep only the low `bits` (1..63) of every hash from now on,
 * so that different nonces share hashes and the caller's comparison is
 * what tells them apart. */
void msg_nonces_weaken(msg_nonces_t *t, unsigned bits);

/* The keyed hash of (author, channel, the first MSG_NONCES_HASHED bytes
 * of the nonce). */
uint64_t msg_nonces_hash(const msg_nonces_t *t, int64_t author_id, int64_t channel_id,
                         const void *nonce, size_t nonce_n);

/* Makes room for one add at time now_ms: turns the generation if it is
 * full or old, grows the table if needed. Returns 0, or -ENOMEM (the table
 * is unchanged; the caller must not store a message it could not
 * remember, or its retry would be stored twice). */
int msg_nonces_reserve(msg_nonces_t *t, int64_t now_ms);

/* Remembers that message id (> 0) carries hash h. Call after a successful
 * msg_nonces_reserve, at most once per reserve. */
void msg_nonces_add(msg_nonces_t *t, uint64_t h, int64_t id);

/* The next id remembered with hash h (current generation first, newest
 * duplicates of a hash in no particular order), or 0 when there are no
 * more. Adds between calls invalidate the iterator. */
int64_t msg_nonces_next(const msg_nonces_t *t, uint64_t h, msg_nonces_iter_t *it);

/* Entries held, both generations. */
size_t msg_nonces_count(const msg_nonces_t *t);

#endif
