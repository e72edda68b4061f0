/*
 * media_store.h — durable metadata of the media service: one row per
 * object (key, owner, type, size, SHA-256, creation time). The bytes are
 * elsewhere (services/media/media_storage.h). One interface, several
 * backends (SQLite now, PostgreSQL with the distributed-mode work).
 *
 * Calls are blocking and thread-safe: the media service runs them on
 * libuv's thread pool. Every call returns 0 or a negative errno: -ENOENT
 * (no such row, or not the owner's: a caller cannot tell the two apart),
 * -EEXIST (key taken), -EINVAL (a string beyond its limit: nothing is
 * truncated), -EIO (backend failure, logged by the backend). SQL goes
 * through prepared statements only.
 */
#ifndef STORM_STORE_MEDIA_STORE_H
#define STORM_STORE_MEDIA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEDIA_REC_KEY_MAX 97   /* 32 hex + '-' + 64 name bytes (media_key.h) */
#define MEDIA_REC_MIME_MAX 31

typedef struct {
  char key[MEDIA_REC_KEY_MAX + 1];
  int64_t owner_id;
  char mime[MEDIA_REC_MIME_MAX + 1];
  int64_t size;
  uint8_t sha256[32];
  int64_t created_at;          /* unix milliseconds */
} media_rec_t;

typedef struct media_store media_store_t;

typedef struct {
  int (*insert)(media_store_t *s, const media_rec_t *rec);
  int (*get)(media_store_t *s, const char *key, media_rec_t *out);
  /* Deletes key if owner_id owns it; -ENOENT otherwise. */
  int (*remove)(media_store_t *s, const char *key, int64_t owner_id);
  bool (*healthy)(media_store_t *s);
  void (*close)(media_store_t *s);
} media_store_ops_t;

struct media_store {
  const media_store_ops_t *ops;
};

#endif
