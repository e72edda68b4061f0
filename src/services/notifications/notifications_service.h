/*
 * notifications_service.h — pending notifications: stored per user
 * (store/notifications_store.h: at most 100, 7 days), pushed live to every
 * device of the user, muted per channel. Reached only over the bus, queue
 * group "notifications" (contract in docs/subjects.md, design in
 * docs/notifications.md):
 *   notification.send      {userId, type, payload}       -> {id}
 *   notification.get       {userId}                      -> {notifications:[...]} newest first
 *   notification.read      {userId, ids?}                -> {read:n}
 *   notification.mute      {userId, channelId, muted}    -> {channelId, muted}
 *   notification.mute.get  {userId, channelId}           -> {channelId, muted}
 *   message.sent           {recipientId, senderUsername, conversationId, messageId}
 *                          (event) -> a "dm" or "mention" notification unless muted
 * A stored notification is published on user.<userId> as
 * {"op":"notification","notification":{id, type, payload, created_at}};
 * every gateway forwards user.<id> events to the user's connections.
 * Failures reply {"error":{code,message,status}} (400 bad_request, 503
 * unavailable / overloaded) and log a line; nothing a client sends can
 * crash the service.
 *
 * Everything runs on the loop thread (the store is asynchronous). The
 * kind of a conversation (DM or channel) is not in message.sent: it is
 * asked once per conversation with messages.channel.get and cached.
 * Ids are snowflakes (store/msg_idgen.h) of a random node per process.
 */
#ifndef STORM_SERVICES_NOTIFICATIONS_SERVICE_H
#define STORM_SERVICES_NOTIFICATIONS_SERVICE_H

#include <stdint.h>
#include <uv.h>

#include "bus/bus.h"
#include "core/metrics.h"
#include "store/notifications_store.h"

typedef struct notifications_service notifications_service_t;

typedef struct {
  uv_loop_t *loop;
  bus_t *bus;
  notif_store_t *store;          /* borrowed; close it after stop's done */
  metrics_registry_t *metrics;   /* NULL = metrics_default() */
  uint64_t lookup_timeout_ms;    /* messages.channel.get; 0 = 2000 */
  int max_inflight;              /* store ops at once; 0 = 8192 */
  int max_queued_events;         /* message.sent waiting beyond that; 0 = 100000 */
} notifications_service_opts_t;

/* Subscribes. 0 and *out, or -EINVAL, -ENOMEM, a bus_subscribe error. */
int notifications_service_start(const notifications_service_opts_t *o,
                                notifications_service_t **out);

/* Unsubscribes, cancels conversation lookups (their events are dropped)
 * and queued events, lets store ops in flight finish (requests are still
 * answered), then calls done(arg) from the loop, never inside this call.
 * Bus, store and loop must live until then. A second call is ignored. */
void notifications_service_stop(notifications_service_t *s, void (*done)(void *arg), void *arg);

/* After done. NULL is a no-op. */
void notifications_service_free(notifications_service_t *s);

#endif
