/*
 * media_sniff.h — what a file is, from its first bytes (signatures).
 *
 * The only source of a media object's type: the client's Content-Type and
 * file name are never consulted, because both are whatever the client
 * says. Seven types are accepted (image/jpeg, image/png, image/gif,
 * image/webp, video/mp4, video/webm, video/avi); a few common others are
 * recognised only so that the refusal can name them (text/html,
 * application/x-elf, ...), the rest is "unknown".
 *
 * Pure functions over a byte prefix: no state, any thread. MEDIA_SNIFF_MAX
 * bytes are always enough; fewer (a short file) give the best answer for
 * what is there, e.g. an EBML header cut before its DocType is "unknown".
 */
#ifndef STORM_SERVICES_MEDIA_SNIFF_H
#define STORM_SERVICES_MEDIA_SNIFF_H

#include <stddef.h>

/* Bytes a caller should collect before sniffing (an EBML header carries
 * its DocType within its first ~40 bytes; 64 leaves room for padding). */
#define MEDIA_SNIFF_MAX 64

typedef enum {
  MEDIA_KIND_NONE = 0, /* not one of the accepted types */
  MEDIA_KIND_IMAGE,
  MEDIA_KIND_VIDEO,
} media_kind_t;

/* Returns the detected MIME type (a static string; "unknown" when nothing
 * matched) and sets *kind (may be NULL) to the accepted kind, or
 * MEDIA_KIND_NONE when the type is not accepted. */
const char *media_sniff(const void *data, size_t len, media_kind_t *kind);

#endif
