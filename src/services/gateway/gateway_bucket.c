/*
 * gateway_bucket.c — see gateway_bucket.h.
 */
#include "services/gateway/gateway_bucket.h"

void gw_bucket_init(gw_bucket_t *b, float burst, uint32_t now_ms) {
  b->tokens = burst;
  b->last_ms = now_ms;
}

bool gw_bucket_take(gw_bucket_t *b, uint32_t now_ms, float rate, float burst) {
  uint32_t elapsed = now_ms - b->last_ms;
  b->last_ms = now_ms;
  /* In double: elapsed * rate may exceed float's exact integer range. */
  double t = (double)b->tokens + (double)elapsed * (double)rate / 1000.0;
  if (t > burst) t = burst;
  bool ok = t >= 1.0;
  if (ok) t -= 1.0;
  b->tokens = (float)t;
  return ok;
}
