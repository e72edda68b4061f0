/* msg_nonces.c — recent nonces in two hash generations. Contract in
 * msg_nonces.h. */
#include "store/msg_nonces.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define GEN_MIN_CAP 1024 /* slots of a new generation: 16 KiB */

int msg_nonces_init(msg_nonces_t *t, int64_t gen_ms, size_t gen_max) {
  memset(t, 0, sizeof *t);
  if (sodium_init() < 0) return -EIO; /* idempotent and thread-safe */
  _Static_assert(sizeof t->key == crypto_shorthash_KEYBYTES, "SipHash key size");
  randombytes_buf(t->key, sizeof t->key);
  t->gen_ms = gen_ms > 0 ? gen_ms : MSG_NONCES_GEN_MS;
  t->gen_max = gen_max > 0 ? gen_max : MSG_NONCES_GEN_MAX;
  t->mask = UINT64_MAX;
  return 0;
}

void msg_nonces_weaken(msg_nonces_t *t, unsigned bits) {
  if (bits >= 1 && bits <= 63) t->mask = (UINT64_C(1) << bits) - 1;
}

void msg_nonces_free(msg_nonces_t *t) {
  free(t->gen[0].slots);
  free(t->gen[1].slots);
  memset(t, 0, sizeof *t);
}

uint64_t msg_nonces_hash(const msg_nonces_t *t, int64_t author_id, int64_t channel_id,
                         const void *nonce, size_t nonce_n) {
  /* Fixed-width ids first, so (1, 23, "x") and (12, 3, "x") differ. Bytes
   * past MSG_NONCES_HASHED only cost a comparison: callers compare every
   * candidate anyway. */
  unsigned char in[16 + MSG_NONCES_HASHED];
  if (nonce_n > MSG_NONCES_HASHED) nonce_n = MSG_NONCES_HASHED;
  memcpy(in, &author_id, 8);
  memcpy(in + 8, &channel_id, 8);
  if (nonce_n) memcpy(in + 16, nonce, nonce_n);
  unsigned char h[crypto_shorthash_BYTES];
  crypto_shorthash(h, in, 16 + nonce_n, t->key);
  uint64_t out;
  memcpy(&out, h, sizeof out);
  return out & t->mask;
}

/* Rehashes g into a table of cap slots; -ENOMEM leaves g as it was. */
static int gen_resize(msg_nonce_gen_t *g, size_t cap) {
  msg_nonce_slot_t *s = calloc(cap, sizeof *s);
  if (!s) return -ENOMEM;
  size_t mask = cap - 1;
  for (size_t k = 0; k < g->cap; k++) {
    if (!g->slots[k].id) continue;
    size_t i = g->slots[k].h & mask;
    while (s[i].id) i = (i + 1) & mask;
    s[i] = g->slots[k];
  }
  free(g->slots);
  g->slots = s;
  g->cap = cap;
  return 0;
}

int msg_nonces_reserve(msg_nonces_t *t, int64_t now_ms) {
  msg_nonce_gen_t *g = &t->gen[t->cur];
  if (g->n >= t->gen_max || (g->n > 0 && now_ms - g->first_ms >= t->gen_ms)) {
    /* Allocate before dropping anything, so that a failure changes nothing. */
    msg_nonce_slot_t *s = calloc(GEN_MIN_CAP, sizeof *s);
    if (!s) return -ENOMEM;
    msg_nonce_gen_t *old = &t->gen[1 - t->cur];
    free(old->slots);
    *old = (msg_nonce_gen_t){.slots = s, .cap = GEN_MIN_CAP, .first_ms = now_ms};
    t->cur = 1 - t->cur;
    return 0;
  }
  /* At most half full: probe chains stay short, and a lookup always meets
   * a free slot. */
  if (!g->slots || (g->n + 1) * 2 > g->cap) {
    int r = gen_resize(g, g->cap ? g->cap * 2 : GEN_MIN_CAP);
    if (r < 0) return r;
  }
  if (g->n == 0) g->first_ms = now_ms;
  return 0;
}

void msg_nonces_add(msg_nonces_t *t, uint64_t h, int64_t id) {
  msg_nonce_gen_t *g = &t->gen[t->cur];
  size_t mask = g->cap - 1, i = h & mask;
  while (g->slots[i].id) i = (i + 1) & mask;
  g->slots[i] = (msg_nonce_slot_t){.h = h, .id = id};
  g->n++;
}

int64_t msg_nonces_next(const msg_nonces_t *t, uint64_t h, msg_nonces_iter_t *it) {
  while (it->step < 2) {
    const msg_nonce_gen_t *g = &t->gen[it->step == 0 ? t->cur : 1 - t->cur];
    if (g->slots) {
      size_t mask = g->cap - 1;
      if (!it->started) {
        it->i = h & mask;
        it->started = 1;
      }
      while (g->slots[it->i].id) {
        const msg_nonce_slot_t *s = &g->slots[it->i];
        it->i = (it->i + 1) & mask;
        if (s->h == h) return s->id;
      }
    }
    it->step++;
    it->started = 0;
  }
  return 0;
}

size_t msg_nonces_count(const msg_nonces_t *t) { return t->gen[0].n + t->gen[1].n; }
