/*
 * gateway_media.h — the media HTTP routes of a gateway (docs/media.md):
 *
 *   POST   /media/upload   multipart/form-data, field "file" -> 201 {key, url, mime, size, sha256}
 *   GET    /media/{key}    the bytes (Range, ETag/If-None-Match, HEAD)
 *   DELETE /media/{key}    204 for the uploader, 404 for anyone else
 *
 * Where the bytes go: bulk data never crosses the bus. The gateway parses
 * the upload as it arrives (net/multipart.h), decides its type from the
 * first bytes (media_sniff.h) and streams it into the storage backend
 * (media_storage.h) itself, then asks the media service to record the
 * metadata (media.record). Downloads ask the media service for metadata
 * and the read decision (media.get), then stream from storage. The media
 * service owns the metadata and deletes (media.delete.requested).
 *
 * Every route needs "Authorization: Bearer <access token>" (401 without).
 * Memory per upload: the parser (~9 KiB) plus the storage writer's buffers
 * (256 KiB for the local backend), whatever the file size; per download
 * one 64 KiB read buffer plus at most ~256 KiB of queued output.
 * Everything runs on the loop thread.
 */
#ifndef STORM_SERVICES_GATEWAY_MEDIA_H
#define STORM_SERVICES_GATEWAY_MEDIA_H

#include <stdint.h>

#include "services/gateway/gateway.h"
#include "services/media/media_storage.h"

/* Bytes a form may carry besides the file (other fields, part headers,
 * boundaries): the route's body limit is the video limit plus this, and a
 * declared Content-Length over a kind's limit plus this is refused (413)
 * as soon as the type is known. */
#define GW_MEDIA_FORM_OVERHEAD (64 * 1024)

typedef struct gateway_media gateway_media_t;

typedef struct {
  media_storage_t *storage;   /* borrowed; must outlive the routes' last request */
  uint64_t max_image;         /* bytes (--media-max-image) */
  uint64_t max_video;         /* bytes (--media-max-video) */
} gateway_media_opts_t;

/* Registers the routes on g's server. Returns 0 and *out, or -EINVAL,
 * -ENOMEM, or a route registration error. */
int gateway_media_start(gateway_t *g, const gateway_media_opts_t *o, gateway_media_t **out);

/* After the server has drained (no request in flight). */
void gateway_media_free(gateway_media_t *m);

#endif
