/*
 * media_tmpfile.h — the writer half of a media backend that stages each
 * upload in a temporary file: <dir>/tmp/<id>.part, filled from the loop
 * with bounded memory (write-behind on libuv's pool), then handed to the
 * backend's publish hook on the pool. The local backend's hook fsyncs and
 * renames the file into place; the S3 backend's sends it (S3 wants each
 * part's length up front; a multipart/form-data body does not reveal the
 * file's). Both backends put media_tmpfile_write, _commit and _abort in
 * their ops table as they are: this module implements media_storage.h's
 * writer contract (BUSY and on_ready, commit, abort) for them.
 *
 * The file is created O_RDWR | O_EXCL, 0600; this module never fsyncs it.
 * Two buffers of MEDIA_TMPFILE_BUF bytes, allocated on the first write:
 * the caller fills one while the pool writes the other (uv_fs_write at an
 * explicit offset). write answers MEDIA_STORAGE_BUSY while a write is in
 * flight and the fill buffer has reached MEDIA_TMPFILE_FLUSH (the slack
 * above it absorbs MEDIA_STORAGE_SLACK).
 *
 * commit: once every byte is in the file, publish(backend, job) runs on a
 * pool thread; then, on the loop, the file is closed and unlinked (unless
 * the hook closed it or moved it away, see media_tmpfile_job_t), the
 * writer is freed, and done(status, arg) runs: publish's result, or the
 * write or queueing failure that came first. abort: closes, unlinks and
 * frees at once, or, while a pool write is in flight, from that write's
 * callback (libuv cannot cancel a running fs request); no callback of the
 * caller runs after abort. A crash leaves the file behind:
 * media_tmpfile_sweep removes old ones.
 *
 * Threads: writer calls and callbacks on the loop thread; publish on a
 * pool thread; media_tmpfile_sweep and media_tmpfile_path anywhere.
 *
 * Errors: negative errno; a background write failure is sticky (the next
 * write or commit returns it, or on_ready(<0) reports it first).
 */
#ifndef STORM_SERVICES_MEDIA_TMPFILE_H
#define STORM_SERVICES_MEDIA_TMPFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "services/media/media_storage.h"

#define MEDIA_TMPFILE_BUF (128 * 1024)
#define MEDIA_TMPFILE_FLUSH (MEDIA_TMPFILE_BUF - MEDIA_STORAGE_SLACK)
/* Crash leftovers younger than this may belong to another process
 * sharing the directory. */
#define MEDIA_TMPFILE_STALE_S (24 * 3600)

/* What the publish hook gets, on a pool thread; owned by the writer. */
typedef struct {
  const char *id;   /* the object id (checked) */
  const char *path; /* the temporary file */
  uv_file fd;       /* open on path; a hook that closes it sets -1 */
  uint64_t size;    /* bytes in the file */
  bool moved;       /* set by a hook that renamed path away: no unlink */
} media_tmpfile_job_t;

/* Makes the staged object visible under job->id. 0 or a negative errno. */
typedef int (*media_tmpfile_publish_fn)(void *backend, media_tmpfile_job_t *job);

/* Creates <dir>/tmp/<id>.part (it must not exist: -EEXIST) and a writer
 * on it. -EINVAL: bad id, no on_ready or publish, or dir too long. */
int media_tmpfile_open(uv_loop_t *loop, const char *dir, const char *id,
                       media_tmpfile_publish_fn publish, void *backend, media_storage_cb on_ready,
                       void *arg, media_writer_t **out);
/* media_storage_ops_t's write, commit and abort (contract there). */
int media_tmpfile_write(media_writer_t *w, const void *data, size_t len);
int media_tmpfile_commit(media_writer_t *w, media_storage_cb done, void *arg);
void media_tmpfile_abort(media_writer_t *w);

/* <dir>/tmp/<id>.part into out (n bytes). -ENAMETOOLONG if it does not fit. */
int media_tmpfile_path(const char *dir, const char *id, char *out, size_t n);
/* Blocking: removes regular *.part files in <dir>/tmp whose mtime is more
 * than max_age_s seconds old, logging each. A missing directory is no
 * error. */
void media_tmpfile_sweep(const char *dir, time_t max_age_s);

#endif
