/*
 * notifications_store.h — pending notifications of the notifications
 * service: per user, at most NOTIF_CAP (the newest kept), each for at most
 * NOTIF_TTL_MS, plus a per-(user, channel) mute flag. Two backends behind
 * these ops, held to the same test-suite (test/unit/notifications_store_suite.h):
 * SQLite (embedded, store/sqlite/notifications_sqlite.h) and Redis
 * (distributed, store/redis/notifications_redis.h). Key layout and choices
 * in docs/notifications.md.
 *
 * Asynchronous, because Redis is: every op returns 0 and later calls its
 * callback exactly once, on the loop thread, never from inside the call;
 * or returns a negative errno and never calls back (libuv's rule):
 *   -EINVAL   bad argument (ids <= 0, type or payload outside the limits)
 *   -ENOTCONN the backend is down (Redis disconnected): fail fast, nothing
 *             queued behind a dead server
 *   -ENOBUFS  too many operations in flight
 *   -ENOMEM
 * Callback statuses: 0, or -EIO (the backend failed or answered nonsense;
 * logged), -ENOTCONN (the connection dropped with the op in flight).
 *
 * Semantics (both backends):
 * - add stores one notification at the head of the user's list, then
 *   keeps only the NOTIF_CAP newest. With mute_channel > 0 the add is
 *   skipped (status NOTIF_MUTED) when the user has muted that channel;
 *   the check and the add are one atomic step.
 * - list answers the user's notifications newest first (at most
 *   NOTIF_CAP), never one whose created_at is NOTIF_TTL_MS or more before
 *   the store's clock. Only unread ones exist: marking one read removes it
 *   (nothing ever lists read notifications, so keeping them would only
 *   cost space and cap slots).
 * - mark_read removes the given ids of that user (ids of other users, or
 *   unknown ones, are not touched and not counted), or with ids == NULL all
 *   of the user's; answers the count removed.
 * - mute_set/mute_get: the flag per (user, channel); mutes do not expire.
 *
 * Memory: the store copies what it needs before returning; a list
 * callback's items (and their strings) are borrowed for the callback only.
 * Threads: loop thread only. Lifetime: close only when no op is pending
 * (the service waits for its callbacks first); it frees the store.
 */
#ifndef STORM_STORE_NOTIFICATIONS_STORE_H
#define STORM_STORE_NOTIFICATIONS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NOTIF_CAP 100
#define NOTIF_TTL_MS ((int64_t)7 * 24 * 3600 * 1000)
#define NOTIF_TYPE_MAX 32        /* bytes of [a-z0-9_.-] */
#define NOTIF_PAYLOAD_MAX 4096   /* bytes of compact JSON (an object) */
#define NOTIF_READ_IDS_MAX 100   /* ids in one mark_read */

/* add's status when mute_channel was muted: nothing stored. */
#define NOTIF_MUTED 1

typedef struct {
  int64_t id;           /* > 0; newer notifications of a user have larger ids */
  int64_t user_id;      /* > 0 */
  int64_t created_at;   /* unix milliseconds */
  const char *type;     /* NUL-terminated, 1..NOTIF_TYPE_MAX of [a-z0-9_.-] */
  const char *payload;  /* a JSON object's text, 2..NOTIF_PAYLOAD_MAX bytes */
  size_t payload_len;
  int64_t mute_channel; /* add only: > 0 = skip if the user muted it */
} notif_t;

typedef struct notif_store notif_store_t;

/* Clock for expiry (tests inject one); NULL in opts = the wall clock. */
typedef int64_t (*notif_clock_fn)(void *arg);

typedef void (*notif_status_fn)(void *arg, int status);
/* n: mark_read = removed; mute_get = 1 muted, 0 not. */
typedef void (*notif_count_fn)(void *arg, int status, int64_t n);
typedef void (*notif_list_fn)(void *arg, int status, const notif_t *items, size_t n);

typedef struct {
  int (*add)(notif_store_t *s, const notif_t *n, notif_status_fn fn, void *arg);
  int (*list)(notif_store_t *s, int64_t user_id, notif_list_fn fn, void *arg);
  /* ids: nids (1..NOTIF_READ_IDS_MAX) ids, or NULL (nids 0) for all. */
  int (*mark_read)(notif_store_t *s, int64_t user_id, const int64_t *ids, size_t nids,
                   notif_count_fn fn, void *arg);
  int (*mute_set)(notif_store_t *s, int64_t user_id, int64_t channel_id, bool muted,
                  notif_status_fn fn, void *arg);
  int (*mute_get)(notif_store_t *s, int64_t user_id, int64_t channel_id, notif_count_fn fn,
                  void *arg);
  /* For /readyz: ops are accepted (Redis connected; SQLite: last op ok). */
  bool (*ready)(notif_store_t *s);
  void (*close)(notif_store_t *s);
} notif_store_ops_t;

struct notif_store {
  const notif_store_ops_t *ops;
};

/* Shared argument checks of the backends: type charset and length,
 * payload a JSON object's text within the limit (only the braces are
 * checked: the service produced it with jansson), ids positive. */
bool notif_type_valid(const char *type);
bool notif_valid(const notif_t *n);

#endif
