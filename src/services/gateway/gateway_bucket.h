/*
 * gateway_bucket.h — a token bucket small enough to live in every
 * WebSocket session (8 bytes): `rate` tokens per second refill it up to
 * `burst`; each rate-limited operation takes one.
 *
 * Time is the loop's millisecond clock truncated to 32 bits; differences
 * are taken modulo 2^32, so wrap-around is harmless except after 49 days
 * without a single operation, when the refill may come out short (the next
 * operations are then limited for at most burst/rate seconds).
 * Not thread-safe (the loop).
 */
#ifndef STORM_SERVICES_GATEWAY_BUCKET_H
#define STORM_SERVICES_GATEWAY_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
  float tokens;
  uint32_t last_ms;
} gw_bucket_t;

/* A full bucket at now_ms. */
void gw_bucket_init(gw_bucket_t *b, float burst, uint32_t now_ms);
/* Takes one token if there is one: true; else false and nothing changes
 * but the refill. rate > 0, burst >= 1. */
bool gw_bucket_take(gw_bucket_t *b, uint32_t now_ms, float rate, float burst);

#endif
