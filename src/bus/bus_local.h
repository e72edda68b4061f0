/*
 * bus_local.h — the in-process bus engine (embedded mode).
 *
 * All services of one process share one bus_local on one libuv loop; the
 * full contract is bus.h's. What this engine adds or decides:
 * - Delivery is asynchronous through a uv_idle_t that is active only while
 *   messages are queued: delivery runs in the next loop iteration's idle
 *   phase (it does not wait for I/O or timers), and an idle bus keeps the loop
 *   neither awake nor alive. At most BUS_LOCAL_DRAIN_BATCH messages are
 *   delivered per iteration so that a publish storm cannot starve sockets.
 * - One FIFO for the whole bus, so delivery order is publish order across all
 *   publishers and subjects (stronger than NATS's per-publisher order).
 * - Subscriptions are matched when a message is delivered, not when it is
 *   published: a subscription made between the two receives it, one removed
 *   in between does not. A subscription made inside a callback does not
 *   receive the message being delivered.
 * - A pending request keeps the loop alive (its timeout timer is active);
 *   nothing else does.
 * - Only requests made on this bus can fail with no responders; a plain
 *   publish with a reply subject and no subscriber is just dropped (NATS
 *   would send a 503 status message, which bus_msg_t cannot express).
 *
 * Memory: one allocation per published message (subjects and payload
 * together) and one per pending request; matching uses a hash of literal
 * patterns plus a list of distinct wildcard patterns, so a publish costs one
 * hash lookup plus one match per distinct wildcard pattern.
 */
#ifndef STORM_BUS_BUS_LOCAL_H
#define STORM_BUS_BUS_LOCAL_H

#include <uv.h>

#include "bus/bus.h"

/* Messages delivered per loop iteration before yielding to I/O. */
#define BUS_LOCAL_DRAIN_BATCH 1024

/* Creates a bus on `loop` (which must outlive it: see bus_close).
 * max_payload 0 means BUS_DEFAULT_MAX_PAYLOAD (1 MiB, as NATS).
 * Returns NULL when out of memory. */
bus_t *bus_local_new(uv_loop_t *loop, size_t max_payload);

#endif
