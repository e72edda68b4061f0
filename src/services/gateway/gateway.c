#include "services/gateway/gateway.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "services/gateway/gateway_internal.h"
#include "services/gateway/gateway_presence.h"

/* An idle connection costs its net_conn_t (~430 bytes) plus this session
 * plus 32 bytes per channel (its entry and its slot in the channel's
 * member array): about 1 KiB with a dozen channels. Keep it that way. */
_Static_assert(sizeof(gw_session_t) <= 160, "the per-connection session must stay small");

size_t gateway_conn_user_size(void) { return sizeof(gw_session_t); }

int gateway_start(const gateway_opts_t *o, gateway_t **out) {
  gateway_t *g = calloc(1, sizeof *g);
  if (!g) return -ENOMEM;
  g->server = o->server;
  g->bus = o->bus;
  g->health = o->health;
  g->metrics = o->metrics;
  g->heartbeat_ms = o->heartbeat_ms;
  g->loop = o->loop;
  g->keys = o->keys;
  g->trusted_proxies = o->trusted_proxies ? o->trusted_proxies : "";
  g->resume_limit = o->resume_limit ? o->resume_limit : GW_DEFAULT_RESUME_LIMIT;
  g->presence_max_members = o->presence_max_members;
  g->send_rate = (float)(o->ws_send_rate > 0 ? o->ws_send_rate : GW_DEFAULT_SEND_RATE);
  g->send_burst = (float)(o->ws_send_burst >= 1 ? o->ws_send_burst : GW_DEFAULT_SEND_BURST);
  g->serial_sends = strcmp(bus_kind(g->bus), "local") != 0;
  gw_fanout_init(g, o->max_channels ? o->max_channels : GW_DEFAULT_MAX_CHANNELS);
  /* 64K buckets (~5 MiB): enough distinct IPs for a launch, bounded against floods. */
  g->auth_limit = ratelimit_new(o->auth_rate, o->auth_burst, 65536);
  g->auth_rate = o->auth_rate;
  g->auth_burst = o->auth_burst;
  g->redis = o->redis;
  int rc = g->auth_limit ? 0 : -ENOMEM;
  if (rc == 0) rc = gw_presence_start(g);
  if (rc == 0) rc = gateway_auth_routes(g);
  if (rc == 0) rc = gateway_messages_routes(g);
  if (rc == 0) rc = gateway_notifications_routes(g);
  if (rc == 0) rc = gateway_ws_routes(g);
  if (rc < 0) {
    gateway_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

void gateway_stop(gateway_t *g) {
  if (!g) return;
  gw_fanout_stop(g);
  gw_presence_stop(g);
}

void gateway_free(gateway_t *g) {
  if (!g) return;
  ratelimit_free(g->auth_limit);
  gw_subs_destroy(&g->subs);
  free(g);
}
