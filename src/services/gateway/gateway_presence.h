/*
 * gateway_presence.h — presence transitions (online/offline), decided
 * locally or, with Redis, across every gateway.
 *
 * Each gateway counts its own devices per user (the user topic's `online`).
 * Without Redis that count is the truth: first device → `online`, last →
 * `offline` in every channel of the user. With Redis, every change of the
 * local count is written to the shared hash (store/redis/redis_shared.h)
 * and the answer, the user's devices on all live gateways, decides: a
 * local first device announces `online` only if it is the first anywhere,
 * a local last device announces `offline` only if none is left anywhere.
 * The channels and name used in the announcement are copied when the
 * change happens, so a session that closed meanwhile does not matter.
 *
 * Redis down or failing: the local decision is used (a user connected to
 * two gateways may then be announced twice, or offline early) — presence
 * degrades, messaging is untouched.
 */
#ifndef STORM_SERVICES_GATEWAY_PRESENCE_H
#define STORM_SERVICES_GATEWAY_PRESENCE_H

#include "services/gateway/gateway_internal.h"

/* Starts the instance heartbeat when g->redis is set. 0 or -errno. */
int gw_presence_start(gateway_t *g);
/* Stops the heartbeat and marks the instance gone (its devices no longer
 * count anywhere). Idempotent. */
void gw_presence_stop(gateway_t *g);

/* s just got hello: count it (and announce if it is a transition). */
void gw_presence_connected(gateway_t *g, gw_session_t *s);
/* s is closing: uncount it (and announce if it is a transition). */
void gw_presence_disconnected(gateway_t *g, gw_session_t *s);

/* {"op":op, channel_id, user_id, username[, status]} on chan.<chan_id>. */
void gw_publish_user_event_as(gateway_t *g, int64_t user_id, const char *username, const char *op,
                              int64_t chan_id, const char *status);

#endif
