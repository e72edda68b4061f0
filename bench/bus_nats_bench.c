/* bus_nats_bench — publish/subscribe throughput and request/reply latency of
 * the NATS bus engine over a local nats-server:
 *
 *   make BUILD=release bench-build
 *   nats-server -a 127.0.0.1 -p 4333 &  build/release/bench/bus_nats_bench nats://127.0.0.1:4333
 *
 * Two buses (two connections) on one loop: one publishes, the other
 * subscribes or answers, so every message crosses the server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>
#include <uv.h>

#include "bus/bus_nats.h"

enum { MSGS = 200000, SIZE = 64, BATCH = 1000, WINDOW = 20000, REQS = 10000 };

static bus_t *pub, *sub;
static uv_loop_t loop;
static int sent, got, reqs_done;
static uint64_t t_start, lat[REQS], t_req;

static void on_msg(bus_t *b, const bus_msg_t *m, void *arg) { got++; }

static void on_idle(uv_idle_t *h) {
  static char data[SIZE];
  /* a window keeps the subscriber's inbound queue (64 Ki messages) from
   * overflowing: publisher and subscriber share this one thread */
  for (int i = 0; i < BATCH && sent < MSGS && sent - got < WINDOW; i++, sent++)
    if (bus_publish(pub, "bench.x", NULL, data, SIZE) < 0) abort();
  if (sent == MSGS) uv_idle_stop(h);
}

static void echo(bus_t *b, const bus_msg_t *m, void *arg) { bus_respond(b, m, m->data, m->len); }

static void next_req(void);
static void on_reply(bus_t *b, int status, const bus_msg_t *m, void *arg) {
  if (status != 0) abort();
  lat[reqs_done++] = uv_hrtime() - t_req;
  if (reqs_done < REQS) next_req();
}
static void next_req(void) {
  t_req = uv_hrtime();
  if (bus_request(pub, "bench.echo", "ping", 4, 5000, on_reply, NULL, NULL) < 0) abort();
}

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void closed(void *arg) {}

int main(int argc, char **argv) {
  bus_nats_opts_t o = {.servers = argc > 1 ? argv[1] : "nats://127.0.0.1:4222", .fail_if_down = true};
  uv_loop_init(&loop);
  if (bus_nats_open(&loop, &o, &pub) < 0 || bus_nats_open(&loop, &o, &sub) < 0) {
    fprintf(stderr, "cannot connect to %s\n", o.servers);
    return 1;
  }
  bus_subscribe(sub, "bench.x", NULL, on_msg, NULL, NULL);
  bus_subscribe(sub, "bench.echo", NULL, echo, NULL, NULL);
  uv_sleep(100); /* let the SUBs reach the server (sent on the first loop turn) */
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_sleep(100);

  uv_idle_t idle;
  uv_idle_init(&loop, &idle);
  t_start = uv_hrtime();
  uv_idle_start(&idle, on_idle);
  while (got < MSGS) uv_run(&loop, UV_RUN_ONCE);
  double secs = (double)(uv_hrtime() - t_start) / 1e9;
  bus_nats_stats_t st = {0};
  bus_nats_stats(sub, &st);
  printf("pub/sub: %d x %d B in %.3f s = %.0f msg/s (dropped %llu)\n", MSGS, SIZE, secs,
         MSGS / secs, (unsigned long long)st.dropped_full);
  uv_close((uv_handle_t *)&idle, NULL);

  next_req();
  while (reqs_done < REQS) uv_run(&loop, UV_RUN_ONCE);
  qsort(lat, REQS, sizeof lat[0], cmp);
  uint64_t sum = 0;
  for (int i = 0; i < REQS; i++) sum += lat[i];
  printf("request/reply: %d sequential, mean %.1f us, p50 %.1f us, p99 %.1f us\n", REQS,
         sum / 1e3 / REQS, lat[REQS / 2] / 1e3, lat[REQS * 99 / 100] / 1e3);

  bus_close(pub, closed, NULL);
  bus_close(sub, closed, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  nats_CloseAndWait(2000);
  return 0;
}
