/*
 * media_storage.h — where media bytes live: one interface, several
 * backends (local disk now, S3-compatible later), chosen at start-up.
 *
 * Objects are named by an object id: MEDIA_OBJECT_ID_LEN lowercase hex
 * characters, the random part of a media key and nothing a client typed
 * (media_object_id_valid checks it; every backend refuses anything else).
 * A backend maps the id to its own namespace (a path under the data
 * directory, an S3 key) and stores no other metadata: type, owner, size
 * and hash are the media store's (store/media_store.h).
 *
 * Streaming writes: writer_open → write... → commit | abort. Nothing is
 * visible under the id before commit succeeds; abort, or a failed commit,
 * leaves nothing behind (no object, no temporary file). A writer holds a
 * bounded buffer (MEDIA_STORAGE_WRITE_BUF bytes at most) whatever the
 * object size: write returns MEDIA_STORAGE_BUSY once it has enough in
 * hand; the caller stops feeding it until on_ready runs. The write that
 * returned BUSY and any after it, before on_ready, may total at most
 * MEDIA_STORAGE_SLACK bytes: what one socket read (64 KiB) brings, plus a
 * little held back by the caller (a sniffing prefix).
 *
 * Streaming reads: reader_open (a byte range) → read... → reader_close;
 * reads complete through a callback, at most one pending per reader.
 *
 * Threads: writer_*, reader_* and the callbacks run on the loop thread
 * (backends do their blocking I/O on libuv's thread pool). remove and put
 * are blocking and thread-safe: call them from a pool thread (the media
 * service does). open/close on the loop thread at start-up and shutdown;
 * close only when no writer or reader is open.
 *
 * Errors: negative errno values. -EINVAL bad id or argument; -ENOENT no
 * such object; -EIO and other -errno from the backend's I/O; -ENOSPC etc.
 */
#ifndef STORM_SERVICES_MEDIA_STORAGE_H
#define STORM_SERVICES_MEDIA_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#define MEDIA_OBJECT_ID_LEN 32                 /* 128 random bits, hex */
#define MEDIA_STORAGE_BUSY 1                   /* write accepted; wait for on_ready */
#define MEDIA_STORAGE_SLACK (66 * 1024)        /* accepted from a BUSY write until on_ready */

typedef struct media_storage media_storage_t;
typedef struct media_writer media_writer_t;
typedef struct media_reader media_reader_t;

/* status: 0 or a negative errno. */
typedef void (*media_storage_cb)(int status, void *arg);
/* n: bytes read into the caller's buffer (> 0), 0 at the end of the
 * range, or a negative errno. */
typedef void (*media_read_cb)(ssize_t n, void *arg);

typedef struct {
  const char *kind; /* "local", "s3" */
  /* Creates a writer for id. on_ready(0, arg) runs after a BUSY write once
   * more may be written, or on_ready(<0) when a background write failed
   * (the next write returns the error too; abort the writer). */
  int (*writer_open)(media_storage_t *s, const char *id, media_storage_cb on_ready, void *arg,
                     media_writer_t **out);
  /* 0, MEDIA_STORAGE_BUSY, or a negative errno (then abort). */
  int (*write)(media_writer_t *w, const void *data, size_t len);
  /* Makes everything written durable and visible under the id, then
   * done(status, arg); the writer is freed before done runs, in every
   * case. Returns 0, or a negative errno (then done never runs and the
   * writer is still the caller's to abort). */
  int (*commit)(media_writer_t *w, media_storage_cb done, void *arg);
  /* Drops the writer and everything it wrote. No callback runs after it. */
  void (*abort)(media_writer_t *w);
  /* Opens [off, off + len) of id; the range must lie inside the object
   * (-EINVAL otherwise). */
  int (*reader_open)(media_storage_t *s, const char *id, uint64_t off, uint64_t len,
                     media_reader_t **out);
  /* Reads the next bytes of the range into buf. Returns 0 (cb will run
   * from the loop) or a negative errno (cb never runs). */
  int (*read)(media_reader_t *r, void *buf, size_t cap, media_read_cb cb, void *arg);
  /* Frees the reader; not while a read is pending. */
  void (*reader_close)(media_reader_t *r);
  /* Blocking, any thread. Object size, or -ENOENT. */
  int64_t (*size)(media_storage_t *s, const char *id);
  /* Blocking, any thread: deletes the object (-ENOENT if absent). */
  int (*remove)(media_storage_t *s, const char *id);
  /* Blocking, any thread: stores a small object whole (bus uploads). */
  int (*put)(media_storage_t *s, const char *id, const void *data, size_t len);
  void (*close)(media_storage_t *s);
} media_storage_ops_t;

struct media_storage {
  const media_storage_ops_t *ops;
};

/* True for exactly MEDIA_OBJECT_ID_LEN characters of [0-9a-f]. */
bool media_object_id_valid(const char *id);

#endif
