/* gateway_presence.c — see gateway_presence.h. */
#include "services/gateway/gateway_presence.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/redis/redis_shared.h"

/* Well inside REDIS_SHARED_GW_TTL_MS: two heartbeats may be lost before
 * this gateway's devices stop counting. */
#define HEARTBEAT_MS 5000

enum { TR_NONE = 0, TR_FIRST, TR_LAST };

/* One change in flight to Redis, with what its announcement needs. */
typedef struct {
  gateway_t *g;
  int64_t user_id;
  int transition;
  char username[33];
  uint32_t nchans;
  int64_t chans[];
} change_t;

static void announce(gateway_t *g, const change_t *c) {
  const char *status = c->transition == TR_FIRST ? "online" : "offline";
  for (uint32_t i = 0; i < c->nchans; i++)
    gw_publish_user_event_as(g, c->user_id, c->username, "presence", c->chans[i], status);
}

static void on_shared(int status, int64_t total, void *arg) {
  change_t *c = arg;
  bool go;
  if (status < 0 || c->g->presence_stopped)
    go = c->transition != TR_NONE; /* Redis failed: the local decision */
  else if (c->transition == TR_FIRST)
    go = total == 1;
  else
    go = c->transition == TR_LAST && total == 0;
  if (go) announce(c->g, c);
  free(c);
}

static void change(gateway_t *g, gw_session_t *s, uint32_t devices, int transition) {
  if (!g->redis) {
    if (transition != TR_NONE)
      gw_presence_publish(g, s, transition == TR_FIRST ? "online" : "offline");
    return;
  }
  change_t *c = malloc(sizeof *c + (size_t)s->cs.nchans * sizeof(int64_t));
  if (!c) {
    if (transition != TR_NONE)
      gw_presence_publish(g, s, transition == TR_FIRST ? "online" : "offline");
    return;
  }
  c->g = g;
  c->user_id = s->user_id;
  c->transition = transition;
  memcpy(c->username, s->username, sizeof c->username);
  c->nchans = s->cs.nchans;
  for (uint16_t i = 0; i < s->cs.nchans; i++) c->chans[i] = s->cs.chans[i].topic->id;
  int rc = redis_presence_set(g->redis, g->instance, s->user_id, devices, on_shared, c);
  if (rc < 0) on_shared(rc, 0, c); /* down: decide locally, now */
}

void gw_presence_connected(gateway_t *g, gw_session_t *s) {
  if (!s->cs.user) return;
  s->online = true;
  uint32_t n = ++s->cs.user->online;
  change(g, s, n, n == 1 ? TR_FIRST : TR_NONE);
}

void gw_presence_disconnected(gateway_t *g, gw_session_t *s) {
  if (!s->online) return;
  s->online = false;
  uint32_t n = --s->cs.user->online;
  change(g, s, n, n == 0 ? TR_LAST : TR_NONE);
}

static void on_heartbeat(uv_timer_t *t) {
  gateway_t *g = t->data;
  redis_presence_heartbeat(g->redis, g->instance); /* down: the next one retries */
}

int gw_presence_start(gateway_t *g) {
  unsigned char id[12];
  randombytes_buf(id, sizeof id);
  sodium_bin2hex(g->instance, sizeof g->instance, id, sizeof id);
  if (!g->redis) return 0;
  int rc = uv_timer_init(g->loop, &g->presence_hb);
  if (rc < 0) return rc;
  g->presence_hb.data = g;
  g->presence_hb_open = true;
  uv_unref((uv_handle_t *)&g->presence_hb);
  /* At once (the first devices may connect right away), then periodically;
   * a heartbeat refused while Redis is still connecting is retried. */
  uv_timer_start(&g->presence_hb, on_heartbeat, 0, HEARTBEAT_MS);
  return 0;
}

void gw_presence_stop(gateway_t *g) {
  if (g->presence_stopped) return;
  g->presence_stopped = true;
  if (!g->presence_hb_open) return;
  g->presence_hb_open = false;
  uv_close((uv_handle_t *)&g->presence_hb, NULL);
  /* Our devices stop counting for everyone now rather than at the TTL. */
  redis_presence_forget(g->redis, g->instance);
}
