/*
 * s3_spool.c — double-buffered temporary file (contract in s3_spool.h).
 * The buffer discipline is the local backend's (media_storage_local.c),
 * without the fsync and rename: this file is thrown away after upload.
 */
#include "services/media/s3_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

struct s3_spool {
  uv_loop_t *loop;
  char path[PATH_MAX];
  uv_file fd;
  char *buf[2];
  size_t fill; /* bytes in buf[cur] */
  int cur;
  bool inflight; /* a uv_fs_write of buf[!cur] runs */
  size_t out_len, out_done;
  uint64_t offset; /* file offset of the next write */
  int err;
  bool want_ready, finishing, discarded;
  media_storage_cb on_ready, done;
  void *arg, *done_arg;
  uv_fs_t req;
};

static void spool_free_now(s3_spool_t *s) {
  if (s->fd >= 0) close(s->fd);
  if (unlink(s->path) < 0 && errno != ENOENT)
    log_warn("media", "could not remove %s: %s", s->path, strerror(errno));
  free(s->buf[0]);
  free(s->buf[1]);
  free(s);
}

int s3_spool_open(uv_loop_t *loop, const char *path, media_storage_cb on_ready, void *arg,
                  s3_spool_t **out) {
  if (!loop || !path || !on_ready || strlen(path) >= PATH_MAX) return -EINVAL;
  s3_spool_t *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = -errno;
    free(s);
    return e;
  }
  s->loop = loop;
  strcpy(s->path, path);
  s->fd = fd;
  s->on_ready = on_ready;
  s->arg = arg;
  *out = s;
  return 0;
}

static void submit(s3_spool_t *s);

static void after_write(uv_fs_t *req) {
  s3_spool_t *s = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  s->inflight = false;
  if (s->discarded) {
    spool_free_now(s);
    return;
  }
  if (n < 0 && !s->err) s->err = (int)n;
  if (n == 0 && !s->err) s->err = -EIO;
  if (!s->err) {
    s->offset += (uint64_t)n;
    s->out_done += (size_t)n;
    if (s->out_done < s->out_len) { /* short write: the rest of the same buffer */
      uv_buf_t b = uv_buf_init(s->buf[!s->cur] + s->out_done, (unsigned)(s->out_len - s->out_done));
      s->req.data = s;
      int rc = uv_fs_write(s->loop, &s->req, s->fd, &b, 1, (int64_t)s->offset, after_write);
      if (rc == 0) {
        s->inflight = true;
        return;
      }
      s->err = rc;
    }
  }
  if (s->finishing) {
    if (!s->err && s->fill > 0) {
      submit(s);
      if (s->inflight) return;
    }
    s->finishing = false;
    s->done(s->err, s->done_arg);
    return;
  }
  if (!s->err && s->fill >= S3_SPOOL_FLUSH) submit(s);
  if (s->want_ready && (s->err || !(s->inflight && s->fill >= S3_SPOOL_FLUSH))) {
    s->want_ready = false;
    s->on_ready(s->err, s->arg); /* may discard s: touch nothing after */
  }
}

/* Hands the fill buffer to the pool. */
static void submit(s3_spool_t *s) {
  s->out_len = s->fill;
  s->out_done = 0;
  s->cur = !s->cur;
  s->fill = 0;
  uv_buf_t b = uv_buf_init(s->buf[!s->cur], (unsigned)s->out_len);
  s->req.data = s;
  int rc = uv_fs_write(s->loop, &s->req, s->fd, &b, 1, (int64_t)s->offset, after_write);
  if (rc < 0)
    s->err = rc;
  else
    s->inflight = true;
}

int s3_spool_write(s3_spool_t *s, const void *data, size_t len) {
  if (s->err) return s->err;
  if (s->finishing || s->discarded) return -EINVAL;
  if (len == 0) return 0;
  if (!s->buf[0]) {
    s->buf[0] = malloc(S3_SPOOL_BUF);
    s->buf[1] = malloc(S3_SPOOL_BUF);
    if (!s->buf[0] || !s->buf[1]) return s->err = -ENOMEM;
  }
  if (len > S3_SPOOL_BUF - s->fill) return -ENOBUFS; /* past the slack: the caller's bug */
  memcpy(s->buf[s->cur] + s->fill, data, len);
  s->fill += len;
  if (s->fill < S3_SPOOL_FLUSH) return 0;
  if (!s->inflight) {
    submit(s);
    return s->err;
  }
  s->want_ready = true;
  return MEDIA_STORAGE_BUSY;
}

/* Runs done from the loop when there was nothing left to write. */
static void after_noop(uv_fs_t *req) {
  s3_spool_t *s = req->data;
  uv_fs_req_cleanup(req);
  s->inflight = false;
  if (s->discarded) {
    spool_free_now(s);
    return;
  }
  s->finishing = false;
  s->done(s->err, s->done_arg);
}

int s3_spool_finish(s3_spool_t *s, media_storage_cb done, void *arg) {
  if (s->err) return s->err;
  if (s->finishing || s->discarded || !done) return -EINVAL;
  s->finishing = true;
  s->want_ready = false;
  s->done = done;
  s->done_arg = arg;
  if (s->inflight) return 0; /* after_write continues */
  if (s->fill > 0) {
    submit(s);
    if (s->err) {
      s->finishing = false;
      return s->err;
    }
    return 0;
  }
  /* Nothing to write: an fdatasync-free no-op through the pool, so done
   * still runs from the loop and never from inside this call. */
  s->req.data = s;
  int rc = uv_fs_fstat(s->loop, &s->req, s->fd, after_noop);
  if (rc < 0) {
    s->finishing = false;
    return rc;
  }
  s->inflight = true;
  return 0;
}

uv_file s3_spool_fd(const s3_spool_t *s) { return s->fd; }
uint64_t s3_spool_size(const s3_spool_t *s) { return s->offset; }

void s3_spool_discard(s3_spool_t *s) {
  if (!s) return;
  s->discarded = true;
  if (!s->inflight) spool_free_now(s);
}
