/*
 * s3_spool.h — a temporary file filled from the loop with bounded memory:
 * how the S3 backend collects an upload whose length nobody knows yet
 * (S3 wants each part's length up front; a multipart/form-data body does
 * not reveal the file's), before sending it in parts from the file.
 *
 * The file is created O_EXCL, 0600; it is never fsynced (it only has to
 * outlive the upload, not a crash). Two buffers of S3_SPOOL_BUF bytes: the
 * caller fills one while libuv's pool writes the other (uv_fs_write at an
 * explicit offset). write answers MEDIA_STORAGE_BUSY while a write is in
 * flight and the fill buffer has reached S3_SPOOL_FLUSH, then on_ready
 * runs once the caller may go on, exactly as media_storage.h describes
 * for writers (the slack above S3_SPOOL_FLUSH absorbs MEDIA_STORAGE_SLACK).
 *
 * Lifetime: open → write... → finish(done) → (done runs: the file holds
 * every byte; read it through s3_spool_fd) → discard. discard closes and
 * unlinks the file and frees the spool, at any point: when a pool write
 * is in flight, that write's callback finishes the job (libuv cannot
 * cancel a running fs request) and no callback of the caller runs after
 * discard. A crash leaves the file behind; the backend sweeps old ones.
 *
 * Threads: everything on the loop thread, except that the fd may be read
 * (pread) from a pool thread between done and discard.
 *
 * Errors: negative errno; a background write failure is sticky (the next
 * write, or finish's done, reports it).
 */
#ifndef STORM_SERVICES_MEDIA_S3_SPOOL_H
#define STORM_SERVICES_MEDIA_S3_SPOOL_H

#include <stdint.h>
#include <uv.h>

#include "services/media/media_storage.h"

#define S3_SPOOL_BUF (128 * 1024)
#define S3_SPOOL_FLUSH (S3_SPOOL_BUF - MEDIA_STORAGE_SLACK)

typedef struct s3_spool s3_spool_t;

/* Creates path (must not exist: -EEXIST). on_ready as for media writers. */
int s3_spool_open(uv_loop_t *loop, const char *path, media_storage_cb on_ready, void *arg,
                  s3_spool_t **out);
/* 0, MEDIA_STORAGE_BUSY, or a negative errno (-ENOBUFS past the slack). */
int s3_spool_write(s3_spool_t *s, const void *data, size_t len);
/* Writes out what is buffered, then done(status, arg) from the loop.
 * Returns 0 or a negative errno (then done never runs). */
int s3_spool_finish(s3_spool_t *s, media_storage_cb done, void *arg);
/* After a successful finish: the open file and its length. */
uv_file s3_spool_fd(const s3_spool_t *s);
uint64_t s3_spool_size(const s3_spool_t *s);
/* Closes, unlinks, frees (deferred while a pool write runs). NULL: no-op. */
void s3_spool_discard(s3_spool_t *s);

#endif
