/*
 * media_service.h — the media service: owns media metadata (media_store_t)
 * and, with the storage backend, the objects' lifetime. Reached over the
 * bus only (queue group "media"; payloads in docs/media.md):
 *
 *   media.record            {userId, key, mime, size, sha256}  -> {key, url, mime, size, sha256}
 *       a gateway streamed an upload into storage itself and records it;
 *   media.get               {userId, key, ownerOnly?}  -> {key, url, mime, size, sha256, created_at}
 *       metadata plus the read decision (media_read_decision): the
 *       uploader; else, unless ownerOnly, whoever the messages service
 *       says may see the key as a message attachment (one
 *       `messages.attachment.check {userId, key}` -> {visible} round trip);
 *   media.upload.requested  {userId, filename, data (base64), contentType?}
 *                                          -> {key, url, mime, size, sha256}
 *       small uploads from other services (≤ MEDIA_BUS_UPLOAD_MAX decoded);
 *   media.delete.requested  {userId, key}  -> {ok: true}
 *
 * Failures reply {"error":{"code","message","status"}} (status: the HTTP
 * status a gateway answers with). A key that does not exist and a key
 * the caller may not see are the same 404 media_not_found. When the
 * attachments check cannot be had (timeout, no messages service, an error
 * reply) a non-owner gets 503 unavailable, never a guess: keys are
 * unguessable, so this tells nothing to someone who does not hold one.
 *
 * Threads: blocking work (store calls, storage put/remove, base64 decode,
 * hashing) runs on libuv's thread pool; the loop parses and replies.
 * Lifetimes: loop, bus, store, storage and metrics are borrowed and must
 * outlive the service (until stop's done has run).
 */
#ifndef STORM_SERVICES_MEDIA_SERVICE_H
#define STORM_SERVICES_MEDIA_SERVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "bus/bus.h"
#include "core/metrics.h"
#include "services/media/media_sniff.h"
#include "services/media/media_storage.h"
#include "store/media_store.h"

/* Largest decoded upload over the bus. The bus's own payload limit (1 MiB
 * by default, NATS's default too) applies first to the base64 text, so in
 * practice ~768 KiB of file fit; bigger files go through HTTP. */
#define MEDIA_BUS_UPLOAD_MAX (1024 * 1024)

typedef struct media_service media_service_t;

typedef struct {
  uv_loop_t *loop;
  bus_t *bus;
  media_store_t *store;
  media_storage_t *storage;
  uint64_t max_image;          /* bytes; default 10 MiB */
  uint64_t max_video;          /* bytes; default 100 MiB */
  uint64_t check_timeout_ms;   /* messages.attachment.check; default 2000 */
  metrics_registry_t *metrics; /* NULL: metrics_default() */
} media_service_opts_t;

/* Defaults as above; pointers NULL. */
void media_service_opts_default(media_service_opts_t *o);

/* Size limit of a kind (MEDIA_KIND_NONE: 0). */
uint64_t media_kind_limit(const media_service_opts_t *o, media_kind_t kind);

/* Who may read rec (issue 7): its uploader; or a member of a channel
 * where a message carries the key, which only the messages service knows
 * (MEDIA_READ_ASK: ask messages.attachment.check). owner_only: the
 * question of the messages service itself when a message is sent ("did
 * the author upload it?"): no attachments path. */
typedef enum {
  MEDIA_READ_OWNER,  /* yes */
  MEDIA_READ_ASK,    /* ask the messages service */
  MEDIA_READ_DENIED, /* 404 */
} media_read_t;
media_read_t media_read_decision(const media_rec_t *rec, int64_t user_id, bool owner_only);

/* Subscribes. Returns 0 and *out, or -EINVAL (missing pointer, zero
 * limit or timeout), -ENOMEM, or a bus_subscribe error. */
int media_service_start(const media_service_opts_t *o, media_service_t **out);

/* Unsubscribes, cancels pool jobs that have not started and attachment
 * checks in flight (answered 503), lets running ones finish and reply,
 * then calls done(arg) from the loop,
 * never inside this call. A second call is ignored. */
void media_service_stop(media_service_t *s, void (*done)(void *arg), void *arg);

/* After stop's done has run (or from inside it). */
void media_service_free(media_service_t *s);

#endif
