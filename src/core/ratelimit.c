#include "core/ratelimit.h"

#include <stdlib.h>
#include <string.h>

#define PROBES 8

typedef struct {
  char key[RATELIMIT_KEY_MAX + 1]; /* "" = empty slot */
  double tokens;
  uint64_t last_ms;
} bucket_t;

struct ratelimit {
  double rate, burst;
  size_t nslots;
  bucket_t *slots;
};

ratelimit_t *ratelimit_new(double rate, double burst, size_t slots) {
  if (!(rate > 0) || !(burst >= 1) || slots == 0) return NULL;
  ratelimit_t *rl = calloc(1, sizeof *rl);
  if (!rl) return NULL;
  rl->slots = calloc(slots, sizeof *rl->slots);
  if (!rl->slots) {
    free(rl);
    return NULL;
  }
  rl->rate = rate;
  rl->burst = burst;
  rl->nslots = slots;
  return rl;
}

void ratelimit_free(ratelimit_t *rl) {
  if (!rl) return;
  free(rl->slots);
  free(rl);
}

static uint64_t hash(const char *s) { /* FNV-1a: short keys, no adversarial collisions matter beyond eviction */
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

static bucket_t *find(ratelimit_t *rl, const char *key, uint64_t now_ms) {
  size_t start = (size_t)(hash(key) % rl->nslots);
  bucket_t *victim = NULL;
  for (size_t i = 0; i < PROBES && i < rl->nslots; i++) {
    bucket_t *b = &rl->slots[(start + i) % rl->nslots];
    if (strcmp(b->key, key) == 0) return b;
    if (!b->key[0]) {
      victim = b;
      break;
    }
    if (!victim || b->last_ms < victim->last_ms) victim = b;
  }
  /* New or evicted: starts full. */
  strcpy(victim->key, key);
  victim->tokens = rl->burst;
  victim->last_ms = now_ms;
  return victim;
}

bool ratelimit_take(ratelimit_t *rl, const char *key, uint64_t now_ms, uint64_t *retry_after_ms) {
  char k[RATELIMIT_KEY_MAX + 1];
  size_t n = strlen(key);
  if (n > RATELIMIT_KEY_MAX) n = RATELIMIT_KEY_MAX;
  memcpy(k, key, n);
  k[n] = '\0';
  if (!k[0]) strcpy(k, "-");
  bucket_t *b = find(rl, k, now_ms);
  if (now_ms > b->last_ms) {
    b->tokens += (double)(now_ms - b->last_ms) * rl->rate / 1000.0;
    if (b->tokens > rl->burst) b->tokens = rl->burst;
    b->last_ms = now_ms;
  }
  if (b->tokens >= 1.0) {
    b->tokens -= 1.0;
    return true;
  }
  if (retry_after_ms) {
    double wait = (1.0 - b->tokens) * 1000.0 / rl->rate;
    *retry_after_ms = (uint64_t)wait + 1;
  }
  return false;
}
