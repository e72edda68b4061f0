/*
 * health.h — readiness checks behind GET /readyz.
 *
 * Each dependency a process needs (the bus, a database, Redis) registers a
 * check; /readyz is ready only when every check passes. Checks must be
 * cheap and non-blocking: they report state that the dependency's own code
 * keeps up to date (connected or not), they do not probe.
 */
#ifndef STORM_CORE_HEALTH_H
#define STORM_CORE_HEALTH_H

#include <stdbool.h>

#include "core/buf.h"

typedef bool (*health_check_fn)(void *arg);

typedef struct health health_t;

health_t *health_new(void);
void health_free(health_t *h);
/* name is copied. Returns 0 or -ENOMEM. */
int health_add(health_t *h, const char *name, health_check_fn fn, void *arg);
/* Runs every check; writes {"status":"ready|not_ready","checks":{"bus":"ok|down",...}} into out. */
bool health_ready(const health_t *h, buf_t *out);

#endif
