/*
 * bus_bench.c — throughput of the in-process bus: 1,000 subscribers on
 * distinct literal subjects ("chan.<i>.events", the gateway's shape) plus one
 * wildcard subscription that matches nothing, 1M publishes of 64 bytes
 * spread over them, delivered by the real loop. Prints msgs/s.
 *
 *   make BUILD=release bench-build && build/release/bench/bus_bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bus/bus.h"
#include "bus/bus_local.h"

enum { SUBS = 1000, MSGS = 1000000, BATCH = 10000 };

static uint64_t delivered;

static void on_msg(bus_t *bus, const bus_msg_t *msg, void *arg) {
  delivered += msg->len > 0;
}

int main(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  bus_t *bus = bus_local_new(&loop, 0);
  if (!bus) return 1;
  static char subjects[SUBS][32];
  for (int i = 0; i < SUBS; i++) {
    snprintf(subjects[i], sizeof subjects[i], "chan.%d.events", i);
    if (bus_subscribe(bus, subjects[i], NULL, on_msg, NULL, NULL) != 0) return 1;
  }
  if (bus_subscribe(bus, "presence.*.changed", NULL, on_msg, NULL, NULL) != 0) return 1;

  char payload[64];
  memset(payload, 'p', sizeof payload);
  uint64_t t0 = uv_hrtime();
  /* publish in batches, as a busy loop would: the queue never holds 1M */
  for (int sent = 0; sent < MSGS; sent += BATCH) {
    for (int i = 0; i < BATCH; i++)
      if (bus_publish(bus, subjects[(sent + i) % SUBS], NULL, payload, sizeof payload) != 0) return 1;
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uint64_t ns = uv_hrtime() - t0;
  if (delivered != MSGS) {
    fprintf(stderr, "delivered %llu of %d\n", (unsigned long long)delivered, MSGS);
    return 1;
  }
  printf("%d msgs to %d subjects in %.3f s: %.0f msgs/s\n", MSGS, SUBS, (double)ns / 1e9,
         (double)MSGS * 1e9 / (double)ns);
  bus_close(bus, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
