/* notifications_bench.c — notifications stored per second from a burst of
 * message.sent events (issue 8), through the real service over the
 * in-process bus, on SQLite or Redis:
 *   notifications_bench sqlite            (a temporary data directory)
 *   notifications_bench redis HOST:PORT
 * 100,000 events for 1,000 recipients in 100 conversations are published
 * at once; the clock stops when the last notification's user.<id> event
 * (published after it is stored) arrives. The conversation lookup is
 * answered by this program, as the messages service would. Prints one line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "bus/bus_local.h"
#include "core/log.h"
#include "services/notifications/notifications_service.h"
#include "store/redis/notifications_redis.h"
#include "store/redis/redis_client.h"
#include "store/sqlite/notifications_sqlite.h"
#include "store/sqlite/sqlite_db.h"

#define EVENTS 100000

static int stored;

static void on_event(bus_t *bus, const bus_msg_t *msg, void *arg) { stored++; }

static void on_lookup(bus_t *bus, const bus_msg_t *msg, void *arg) {
  static const char r[] = "{\"channel\":{\"kind\":\"channel\"}}";
  bus_respond(bus, msg, r, sizeof r - 1);
}

int main(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "redis") == 0 && argc < 3)) {
    fprintf(stderr, "usage: %s sqlite | redis HOST:PORT\n", argv[0]);
    return 2;
  }
  log_set_level(LOG_LEVEL_WARN);
  uv_loop_t *loop = uv_default_loop();
  bus_t *bus = bus_local_new(loop, 0);
  notif_store_t *store = NULL;
  sqlite_db_t *db = NULL;
  redis_client_t *rc = NULL;
  char dir[] = "/tmp/storm-nbench-XXXXXX";
  if (strcmp(argv[1], "redis") == 0) {
    redis_client_opts_t ro = {.addr = argv[2], .timeout_ms = 10000};
    if (redis_client_open(loop, &ro, &rc) < 0) return 1;
    for (int i = 0; i < 300 && !redis_client_ready(rc); i++) {
      uv_run(loop, UV_RUN_NOWAIT);
      usleep(10000);
    }
    notif_redis_opts_t o = {.redis = rc};
    if (notif_redis_open(&o, &store) < 0) return 1;
  } else {
    char err[256];
    if (!mkdtemp(dir) || sqlite_db_open(dir, &db, err, sizeof err) < 0) return 1;
    notif_sqlite_opts_t o = {.loop = loop, .db = db};
    if (notif_sqlite_open(&o, &store) < 0) return 1;
  }
  notifications_service_t *svc;
  notifications_service_opts_t so = {.loop = loop, .bus = bus, .store = store};
  if (notifications_service_start(&so, &svc) < 0) return 1;
  bus_subscribe(bus, "user.*", NULL, on_event, NULL, NULL);
  bus_subscribe(bus, "messages.channel.get", NULL, on_lookup, NULL, NULL);
  int64_t base = (int64_t)getpid() * 10000;
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < EVENTS; i++) {
    char p[160];
    int n = snprintf(p, sizeof p,
                     "{\"recipientId\":%lld,\"senderUsername\":\"bench\",\"conversationId\":%d,"
                     "\"messageId\":\"%d\"}",
                     (long long)(base + i % 1000), 1 + i % 100, i + 1);
    bus_publish(bus, "message.sent", NULL, p, (size_t)n);
  }
  while (stored < EVENTS) uv_run(loop, UV_RUN_ONCE);
  double s = (double)(uv_hrtime() - t0) / 1e9;
  printf("%s: %d notifications stored in %.2f s = %.0f/s\n", argv[1], EVENTS, s, EVENTS / s);
  return 0;
}
