/*
 * media_tmpfile.c — staged media writers (contract in media_tmpfile.h).
 *
 * Every pool operation of a writer (a uv_fs_write, then the publish job)
 * runs one at a time, so the writer's fields need no lock: the loop
 * thread touches them only while nothing is in flight, or in a callback.
 */
#include "services/media/media_tmpfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

struct media_writer {
  uv_loop_t *loop;
  media_tmpfile_publish_fn publish;
  void *backend;
  char id[MEDIA_OBJECT_ID_LEN + 1];
  char path[PATH_MAX];
  uv_file fd;
  char *buf[2];
  size_t fill; /* bytes in buf[cur] */
  int cur;
  bool inflight; /* a uv_fs_write of buf[!cur] runs */
  size_t out_len, out_done;
  uint64_t offset; /* file offset of the next write */
  int err;         /* sticky background failure */
  bool want_ready; /* the caller was told BUSY */
  bool committing, aborted;
  media_storage_cb on_ready, done;
  void *arg, *done_arg;
  uv_fs_t req;
  uv_work_t work;
  media_tmpfile_job_t job;
  int publish_rc;
};

int media_tmpfile_path(const char *dir, const char *id, char *out, size_t n) {
  int len = snprintf(out, n, "%s/tmp/%s.part", dir, id);
  return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

/* Closes and unlinks the file (unless publish moved it), frees w (loop
 * thread, nothing in flight). */
static void free_now(media_writer_t *w) {
  if (w->fd >= 0) close(w->fd);
  if (!w->job.moved && unlink(w->path) < 0 && errno != ENOENT)
    log_warn("media", "could not remove %s: %s", w->path, strerror(errno));
  free(w->buf[0]);
  free(w->buf[1]);
  free(w);
}

/* The end of a commit: the writer goes before done runs. */
static void finish(media_writer_t *w, int status) {
  media_storage_cb done = w->done;
  void *arg = w->done_arg;
  free_now(w);
  done(status, arg);
}

int media_tmpfile_open(uv_loop_t *loop, const char *dir, const char *id,
                       media_tmpfile_publish_fn publish, void *backend, media_storage_cb on_ready,
                       void *arg, media_writer_t **out) {
  if (!loop || !dir || !media_object_id_valid(id) || !publish || !on_ready) return -EINVAL;
  media_writer_t *w = calloc(1, sizeof *w);
  if (!w) return -ENOMEM;
  if (media_tmpfile_path(dir, id, w->path, sizeof w->path) < 0) {
    free(w);
    return -EINVAL;
  }
  int fd = open(w->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = -errno;
    free(w);
    return e;
  }
  w->loop = loop;
  w->publish = publish;
  w->backend = backend;
  memcpy(w->id, id, sizeof w->id);
  w->fd = fd;
  w->on_ready = on_ready;
  w->arg = arg;
  *out = w;
  return 0;
}

/* ---- the publish job ---- */

static void publish_work(uv_work_t *wk) {
  media_writer_t *w = wk->data;
  w->publish_rc = w->publish(w->backend, &w->job);
}

static void publish_after(uv_work_t *wk, int status) {
  media_writer_t *w = wk->data;
  w->fd = w->job.fd; /* -1 if the hook closed it */
  finish(w, status < 0 ? status : w->publish_rc);
}

static void publish_start(media_writer_t *w) {
  w->job = (media_tmpfile_job_t){.id = w->id, .path = w->path, .fd = w->fd, .size = w->offset};
  w->work.data = w;
  int rc = uv_queue_work(w->loop, &w->work, publish_work, publish_after);
  if (rc < 0) finish(w, rc);
}

/* ---- write-behind ---- */

static void submit(media_writer_t *w);

static void after_write(uv_fs_t *req) {
  media_writer_t *w = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  w->inflight = false;
  if (w->aborted) {
    free_now(w);
    return;
  }
  if (n < 0 && !w->err) w->err = (int)n;
  if (n == 0 && !w->err) w->err = -EIO;
  if (!w->err) {
    w->offset += (uint64_t)n;
    w->out_done += (size_t)n;
    if (w->out_done < w->out_len) { /* short write: the rest of the same buffer */
      uv_buf_t b = uv_buf_init(w->buf[!w->cur] + w->out_done, (unsigned)(w->out_len - w->out_done));
      w->req.data = w;
      int rc = uv_fs_write(w->loop, &w->req, w->fd, &b, 1, (int64_t)w->offset, after_write);
      if (rc == 0) {
        w->inflight = true;
        return;
      }
      w->err = rc;
    }
  }
  if (w->committing) {
    if (!w->err && w->fill > 0) {
      submit(w);
      if (w->inflight) return;
    }
    if (w->err) finish(w, w->err);
    else publish_start(w);
    return;
  }
  if (!w->err && w->fill >= MEDIA_TMPFILE_FLUSH) submit(w);
  if (w->want_ready && (w->err || !(w->inflight && w->fill >= MEDIA_TMPFILE_FLUSH))) {
    w->want_ready = false;
    w->on_ready(w->err, w->arg); /* may abort w: touch nothing after */
  }
}

/* Hands the fill buffer to the pool. */
static void submit(media_writer_t *w) {
  w->out_len = w->fill;
  w->out_done = 0;
  w->cur = !w->cur;
  w->fill = 0;
  uv_buf_t b = uv_buf_init(w->buf[!w->cur], (unsigned)w->out_len);
  w->req.data = w;
  int rc = uv_fs_write(w->loop, &w->req, w->fd, &b, 1, (int64_t)w->offset, after_write);
  if (rc < 0)
    w->err = rc;
  else
    w->inflight = true;
}

int media_tmpfile_write(media_writer_t *w, const void *data, size_t len) {
  if (w->err) return w->err;
  if (w->committing || w->aborted) return -EINVAL;
  if (len == 0) return 0;
  if (!w->buf[0]) {
    w->buf[0] = malloc(MEDIA_TMPFILE_BUF);
    w->buf[1] = malloc(MEDIA_TMPFILE_BUF);
    if (!w->buf[0] || !w->buf[1]) return w->err = -ENOMEM;
  }
  if (len > MEDIA_TMPFILE_BUF - w->fill) return -ENOBUFS; /* past the slack: the caller's bug */
  memcpy(w->buf[w->cur] + w->fill, data, len);
  w->fill += len;
  if (w->fill < MEDIA_TMPFILE_FLUSH) return 0;
  if (!w->inflight) {
    submit(w);
    return w->err;
  }
  w->want_ready = true;
  return MEDIA_STORAGE_BUSY;
}

int media_tmpfile_commit(media_writer_t *w, media_storage_cb done, void *arg) {
  if (w->err) return w->err;
  if (w->committing || w->aborted || !done) return -EINVAL;
  w->committing = true;
  w->want_ready = false;
  w->done = done;
  w->done_arg = arg;
  if (w->inflight) return 0; /* after_write continues */
  if (w->fill > 0) {
    submit(w);
    if (w->err) {
      w->committing = false;
      return w->err;
    }
    return 0;
  }
  publish_start(w); /* done runs from the loop, never from inside this call */
  return 0;
}

void media_tmpfile_abort(media_writer_t *w) {
  if (!w) return;
  w->aborted = true;
  if (!w->inflight) free_now(w); /* else after_write does it */
}

/* ---- crash leftovers ---- */

void media_tmpfile_sweep(const char *dir, time_t max_age_s) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/tmp", dir);
  DIR *d = opendir(p);
  if (!d) return;
  time_t now = time(NULL);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n < 5 || strcmp(e->d_name + n - 5, ".part") != 0) continue;
    struct stat sb;
    if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
        now - sb.st_mtime > max_age_s && unlinkat(dirfd(d), e->d_name, 0) == 0)
      log_info("media", "removed stale temporary file %s/%s", p, e->d_name);
  }
  closedir(d);
}
