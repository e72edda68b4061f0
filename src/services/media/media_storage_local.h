/*
 * media_storage_local.h — the local-disk media backend (embedded default).
 *
 * Layout under dir (created 0700 if missing):
 *   tmp/<id>.part            objects being written (O_EXCL, 0600)
 *   objects/<id[0:2]>/<id>   committed objects (256-way fan-out keeps
 *                            directories small)
 * Only the object id (hex, checked) ever reaches a path. Commit is
 * write → fsync(file) → rename into objects/ → fsync(directory), so an
 * object is either absent or complete after a crash; a crash mid-upload
 * leaves a .part file, which the next open removes once it is a day old
 * (younger ones may belong to another process sharing the directory).
 *
 * Memory per writer: two buffers of 128 KiB (one being filled, one being
 * written by the thread pool), allocated on the first write. Reads use the
 * caller's buffer. Blocking work (writes, fsync, rename, reads) runs on
 * libuv's thread pool via uv_fs_* and uv_queue_work; open(2) of a reader
 * and of a temporary file, close(2) and unlink(2) of an aborted temporary
 * file are done on the loop (metadata calls on a local file system).
 */
#ifndef STORM_SERVICES_MEDIA_STORAGE_LOCAL_H
#define STORM_SERVICES_MEDIA_STORAGE_LOCAL_H

#include <uv.h>

#include "services/media/media_storage.h"
#include "services/media/media_tmpfile.h"

/* Staging buffer size and the fill at which it is handed to the pool. */
#define MEDIA_LOCAL_BUF MEDIA_TMPFILE_BUF
#define MEDIA_LOCAL_FLUSH MEDIA_TMPFILE_FLUSH

/* Opens (creating) the backend rooted at dir. Returns 0 and *out, or
 * -EINVAL (empty or over-long dir), -ENOMEM, or the -errno of mkdir. */
int media_storage_local_open(uv_loop_t *loop, const char *dir, media_storage_t **out);

#endif
