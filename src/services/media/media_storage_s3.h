/*
 * media_storage_s3.h — the S3-compatible media backend (AWS S3, MinIO,
 * s3rver): the distributed counterpart of media_storage_local.h, behind
 * the same interface (media_storage.h). docs/media.md, "S3 backend".
 *
 * Objects: key "media/<id>" in one bucket, path-style URLs; only the
 * checked hex id reaches a key. Requests: s3_client.h (libcurl, SigV4),
 * always on libuv's thread pool or the probe thread, never on the loop.
 *
 * Writes: S3 needs each part's length up front and an upload's length is
 * unknown until its body ends, so a writer spools to a temporary file
 * (<dir>/tmp/<id>.part, media_tmpfile.h: two 128 KiB buffers, backpressure
 * as the local backend). commit sends the file from the pool: one PUT when it
 * fits in a part, else CreateMultipartUpload, UploadPart for each part
 * (streamed from the file by curl's read callback, never held whole),
 * CompleteMultipartUpload; AbortMultipartUpload after any failure. The
 * temporary file is removed in every case, before done runs; abort
 * removes it at once. Memory per upload: the spool's 256 KiB plus curl's
 * buffers, whatever the size.
 *
 * Reads: reader_open does no I/O (it runs on the loop); each read serves
 * the caller from a window of up to read_window bytes filled by one ranged
 * GET on the pool. So a missing object or a range past its end is
 * reported by the first read's callback (-ENOENT, -EINVAL), not by
 * reader_open, which only refuses ranges that overflow.
 *
 * Readiness: the probe (a ListObjects of one key; on NoSuchBucket the
 * bucket is created) runs on a thread of its own, at open and then every
 * probe_interval_ms; media_storage_s3_ready reports its last result (for
 * /readyz). A refused key pair is logged at once as an error naming the
 * S3 error code, e.g. "S3 refused our credentials (403
 * SignatureDoesNotMatch)", and logged again only when the cause changes.
 *
 * Threads and errors: as media_storage.h. open/close on the loop thread;
 * close joins the probe thread (a probe gives up after 3 s).
 */
#ifndef STORM_SERVICES_MEDIA_STORAGE_S3_H
#define STORM_SERVICES_MEDIA_STORAGE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "services/media/media_storage.h"
#include "services/media/s3_client.h"

#define MEDIA_S3_PART_SIZE (8ULL * 1024 * 1024)  /* default part size */
#define MEDIA_S3_MIN_PART (64ULL * 1024)         /* tests; AWS wants >= 5 MiB */
#define MEDIA_S3_MAX_PARTS 10000                 /* S3's limit: larger parts past it */
#define MEDIA_S3_READ_WINDOW (1024 * 1024)       /* default ranged-GET window */

typedef struct {
  s3_client_opts_t s3;
  const char *dir;            /* temporary files go to <dir>/tmp (created 0700) */
  uint64_t part_size;         /* 0 = MEDIA_S3_PART_SIZE; >= MEDIA_S3_MIN_PART */
  size_t read_window;         /* 0 = MEDIA_S3_READ_WINDOW; 4 KiB .. 8 MiB */
  uint64_t probe_interval_ms; /* 0: no probe thread (call media_storage_s3_probe) */
} media_s3_opts_t;

/* Opens the backend: checks the options, creates <dir>/tmp, removes
 * day-old temporary files, starts the probe thread. No request is made
 * here. Returns 0, -EINVAL (reason in err), -ENOMEM, or a mkdir -errno. */
int media_storage_s3_open(uv_loop_t *loop, const media_s3_opts_t *o, media_storage_t **out,
                          char *err, size_t errlen);

/* Blocking (not on the loop): checks that the endpoint answers, the key
 * pair is accepted and the bucket exists, creating it if missing. Returns
 * 0, -EACCES (credentials or permissions refused), or another negative
 * errno (s3_client.h); msg gets one line saying why. Updates the
 * readiness state as the probe thread does. */
int media_storage_s3_probe(media_storage_t *s, char *msg, size_t n);

/* What the backend has sent so far (any thread; for tests and logs). */
typedef struct {
  uint64_t single_puts;    /* objects sent whole (PutObject, commits and put) */
  uint64_t multipart;      /* multipart uploads completed */
  uint64_t parts;          /* UploadPart requests that succeeded */
  uint64_t aborts;         /* AbortMultipartUpload sent after a failure */
  uint64_t window_fills;   /* ranged GETs made by readers */
} media_s3_counts_t;

void media_storage_s3_counts(media_storage_t *s, media_s3_counts_t *out);

/* The last probe's verdict; false until a probe succeeded. Any thread;
 * the signature is health_check_fn's (arg: the media_storage_t). */
bool media_storage_s3_ready(void *s);

#endif
