/*
 * media_storage_local.c — media objects as files (contract in
 * media_storage_local.h and media_storage.h).
 *
 * A writer double-buffers: the caller fills one 128 KiB buffer while the
 * pool writes the other (uv_fs_write at an explicit offset). The writer is
 * BUSY while a write is in flight and the fill buffer has reached
 * MEDIA_LOCAL_FLUSH; the slack above that absorbs what the caller may still
 * deliver. A writer that is aborted, or whose commit fails, while a pool
 * operation is in flight is cleaned up (close, unlink) by that operation's
 * callback: libuv gives no way to cancel a running fs request.
 */
#include "services/media/media_storage_local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define STALE_TEMP_S (24 * 3600)

typedef struct {
  media_storage_t base;
  uv_loop_t *loop;
  char dir[PATH_MAX - 80]; /* room for "/objects/xx/<id>" and "/tmp/<id>.part" */
} local_t;

struct media_writer {
  local_t *st;
  char id[MEDIA_OBJECT_ID_LEN + 1];
  uv_file fd;
  char *buf[2];
  size_t fill;            /* bytes in buf[cur] */
  int cur;
  bool inflight;          /* a uv_fs_write of buf[!cur] runs */
  size_t out_len, out_done;
  uint64_t offset;        /* file offset of the next write */
  int err;                /* sticky background failure */
  bool want_ready;        /* the caller was told BUSY */
  bool aborted, committing;
  media_storage_cb on_ready, done;
  void *arg, *done_arg;
  uv_fs_t req;
  uv_work_t work;
  int commit_rc;
};

struct media_reader {
  local_t *st;
  uv_file fd;
  uint64_t off, left;
  bool pending;
  media_read_cb cb;
  void *arg;
  uv_fs_t req;
};

static void tmp_path(const local_t *st, const char *id, char *out, size_t n) {
  snprintf(out, n, "%s/tmp/%s.part", st->dir, id);
}

static void obj_dir(const local_t *st, const char *id, char *out, size_t n) {
  snprintf(out, n, "%s/objects/%.2s", st->dir, id);
}

static void obj_path(const local_t *st, const char *id, char *out, size_t n) {
  snprintf(out, n, "%s/objects/%.2s/%s", st->dir, id, id);
}

/* fsync of a directory: makes a rename or unlink in it durable. */
static int sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) < 0 ? -errno : 0;
  close(fd);
  return rc;
}

static int mkdir_p1(const char *path) {
  if (mkdir(path, 0700) == 0 || errno == EEXIST) return 0;
  return -errno;
}

/* ---- writers ---- */

static void writer_free(media_writer_t *w) {
  free(w->buf[0]);
  free(w->buf[1]);
  free(w);
}

/* Closes and unlinks the temporary file, frees the writer (loop thread,
 * nothing in flight). */
static void writer_discard(media_writer_t *w) {
  char p[PATH_MAX];
  if (w->fd >= 0) {
    uv_fs_t r;
    uv_fs_close(NULL, &r, w->fd, NULL);
    uv_fs_req_cleanup(&r);
    w->fd = -1;
  }
  tmp_path(w->st, w->id, p, sizeof p);
  if (unlink(p) < 0 && errno != ENOENT)
    log_warn("media", "could not remove %s: %s", p, strerror(errno));
  writer_free(w);
}

static int local_writer_open(media_storage_t *s, const char *id, media_storage_cb on_ready,
                             void *arg, media_writer_t **out) {
  local_t *st = (local_t *)s;
  if (!media_object_id_valid(id) || !on_ready) return -EINVAL;
  media_writer_t *w = calloc(1, sizeof *w);
  if (!w) return -ENOMEM;
  w->st = st;
  memcpy(w->id, id, sizeof w->id);
  w->on_ready = on_ready;
  w->arg = arg;
  char p[PATH_MAX];
  tmp_path(st, id, p, sizeof p);
  uv_fs_t r;
  int fd = uv_fs_open(NULL, &r, p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600, NULL);
  uv_fs_req_cleanup(&r);
  if (fd < 0) {
    free(w);
    return fd;
  }
  w->fd = fd;
  *out = w;
  return 0;
}

static void commit_start(media_writer_t *w);
static void submit(media_writer_t *w);

static void after_write(uv_fs_t *req) {
  media_writer_t *w = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  w->inflight = false;
  if (w->aborted) {
    writer_discard(w);
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
      int rc = uv_fs_write(w->st->loop, &w->req, w->fd, &b, 1, (int64_t)w->offset, after_write);
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
    if (w->err) {
      media_storage_cb done = w->done;
      void *darg = w->done_arg;
      int err = w->err;
      writer_discard(w);
      done(err, darg);
    } else {
      commit_start(w);
    }
    return;
  }
  if (!w->err && w->fill >= MEDIA_LOCAL_FLUSH) submit(w);
  if (w->want_ready && (w->err || !(w->inflight && w->fill >= MEDIA_LOCAL_FLUSH))) {
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
  int rc = uv_fs_write(w->st->loop, &w->req, w->fd, &b, 1, (int64_t)w->offset, after_write);
  if (rc < 0)
    w->err = rc;
  else
    w->inflight = true;
}

static int local_write(media_writer_t *w, const void *data, size_t len) {
  if (w->err) return w->err;
  if (w->committing || w->aborted) return -EINVAL;
  if (len == 0) return 0;
  if (!w->buf[0]) {
    w->buf[0] = malloc(MEDIA_LOCAL_BUF);
    w->buf[1] = malloc(MEDIA_LOCAL_BUF);
    if (!w->buf[0] || !w->buf[1]) return w->err = -ENOMEM;
  }
  if (len > MEDIA_LOCAL_BUF - w->fill) return -ENOBUFS; /* past the slack: caller's bug */
  memcpy(w->buf[w->cur] + w->fill, data, len);
  w->fill += len;
  if (w->fill < MEDIA_LOCAL_FLUSH) return 0;
  if (!w->inflight) {
    submit(w);
    if (w->err) return w->err;
    return 0;
  }
  w->want_ready = true;
  return MEDIA_STORAGE_BUSY;
}

/* On the pool: the durable part of commit. */
static void commit_work(uv_work_t *wk) {
  media_writer_t *w = wk->data;
  char tmp[PATH_MAX], dir[PATH_MAX], dst[PATH_MAX];
  tmp_path(w->st, w->id, tmp, sizeof tmp);
  obj_dir(w->st, w->id, dir, sizeof dir);
  obj_path(w->st, w->id, dst, sizeof dst);
  int rc = fsync(w->fd) < 0 ? -errno : 0;
  if (close(w->fd) < 0 && rc == 0) rc = -errno;
  w->fd = -1;
  if (rc == 0) rc = mkdir_p1(dir);
  if (rc == 0 && rename(tmp, dst) < 0) rc = -errno;
  if (rc == 0) {
    rc = sync_dir(dir);
    /* A new fan-out directory must itself be durable in objects/. */
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s/objects", w->st->dir);
    if (rc == 0) rc = sync_dir(parent);
    if (rc < 0) unlink(dst); /* not durable: not there */
  } else {
    unlink(tmp);
  }
  w->commit_rc = rc;
}

static void commit_after(uv_work_t *wk, int status) {
  media_writer_t *w = wk->data;
  int rc = status < 0 ? status : w->commit_rc;
  media_storage_cb done = w->done;
  void *arg = w->done_arg;
  writer_free(w);
  done(rc, arg);
}

static void commit_start(media_writer_t *w) {
  w->work.data = w;
  int rc = uv_queue_work(w->st->loop, &w->work, commit_work, commit_after);
  if (rc < 0) {
    media_storage_cb done = w->done;
    void *arg = w->done_arg;
    writer_discard(w);
    done(rc, arg);
  }
}

static int local_commit(media_writer_t *w, media_storage_cb done, void *arg) {
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
  commit_start(w);
  return 0;
}

static void local_abort(media_writer_t *w) {
  if (!w) return;
  w->aborted = true;
  if (!w->inflight) writer_discard(w); /* else after_write does it */
}

/* ---- readers ---- */

static int local_reader_open(media_storage_t *s, const char *id, uint64_t off, uint64_t len,
                             media_reader_t **out) {
  local_t *st = (local_t *)s;
  if (!media_object_id_valid(id)) return -EINVAL;
  char p[PATH_MAX];
  obj_path(st, id, p, sizeof p);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat sb;
  if (fstat(fd, &sb) < 0 || off > (uint64_t)sb.st_size || len > (uint64_t)sb.st_size - off) {
    close(fd);
    return -EINVAL;
  }
  media_reader_t *r = calloc(1, sizeof *r);
  if (!r) {
    close(fd);
    return -ENOMEM;
  }
  r->st = st;
  r->fd = fd;
  r->off = off;
  r->left = len;
  *out = r;
  return 0;
}

static void after_read(uv_fs_t *req) {
  media_reader_t *r = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  r->pending = false;
  if (n == 0 && r->left > 0) n = -EIO; /* the file shrank under us */
  if (n > 0) {
    r->off += (uint64_t)n;
    r->left -= (uint64_t)n;
  }
  r->cb(n, r->arg);
}

static int local_read(media_reader_t *r, void *buf, size_t cap, media_read_cb cb, void *arg) {
  if (r->pending || !cb || (cap == 0 && r->left > 0)) return -EINVAL;
  size_t n = r->left < cap ? (size_t)r->left : cap;
  r->cb = cb;
  r->arg = arg;
  r->req.data = r;
  uv_buf_t b = uv_buf_init(buf, (unsigned)n);
  int rc = uv_fs_read(r->st->loop, &r->req, r->fd, &b, 1, (int64_t)r->off, after_read);
  if (rc < 0) return rc;
  r->pending = true;
  return 0;
}

static void local_reader_close(media_reader_t *r) {
  if (!r) return;
  close(r->fd);
  free(r);
}

/* ---- blocking operations ---- */

static int64_t local_size(media_storage_t *s, const char *id) {
  if (!media_object_id_valid(id)) return -EINVAL;
  char p[PATH_MAX];
  obj_path((local_t *)s, id, p, sizeof p);
  struct stat sb;
  if (stat(p, &sb) < 0) return -errno;
  return (int64_t)sb.st_size;
}

static int local_remove(media_storage_t *s, const char *id) {
  local_t *st = (local_t *)s;
  if (!media_object_id_valid(id)) return -EINVAL;
  char p[PATH_MAX], d[PATH_MAX];
  obj_path(st, id, p, sizeof p);
  if (unlink(p) < 0) return -errno;
  obj_dir(st, id, d, sizeof d);
  sync_dir(d);
  return 0;
}

static int local_put(media_storage_t *s, const char *id, const void *data, size_t len) {
  local_t *st = (local_t *)s;
  if (!media_object_id_valid(id) || (!data && len)) return -EINVAL;
  char tmp[PATH_MAX], dir[PATH_MAX], dst[PATH_MAX], parent[PATH_MAX];
  tmp_path(st, id, tmp, sizeof tmp);
  obj_dir(st, id, dir, sizeof dir);
  obj_path(st, id, dst, sizeof dst);
  snprintf(parent, sizeof parent, "%s/objects", st->dir);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  int rc = 0;
  const char *p = data;
  size_t left = len;
  while (rc == 0 && left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) rc = n < 0 ? -errno : -EIO;
    else {
      p += n;
      left -= (size_t)n;
    }
  }
  if (rc == 0 && fsync(fd) < 0) rc = -errno;
  if (close(fd) < 0 && rc == 0) rc = -errno;
  if (rc == 0) rc = mkdir_p1(dir);
  if (rc == 0 && rename(tmp, dst) < 0) rc = -errno;
  if (rc < 0) {
    unlink(tmp);
    return rc;
  }
  rc = sync_dir(dir);
  if (rc == 0) rc = sync_dir(parent);
  if (rc < 0) unlink(dst);
  return rc;
}

static void local_close(media_storage_t *s) { free(s); }

static const media_storage_ops_t local_ops = {
    .kind = "local",
    .writer_open = local_writer_open,
    .write = local_write,
    .commit = local_commit,
    .abort = local_abort,
    .reader_open = local_reader_open,
    .read = local_read,
    .reader_close = local_reader_close,
    .size = local_size,
    .remove = local_remove,
    .put = local_put,
    .close = local_close,
};

/* Removes crash leftovers: .part files a day old. */
static void sweep_stale(const local_t *st) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/tmp", st->dir);
  DIR *d = opendir(p);
  if (!d) return;
  time_t now = time(NULL);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n < 5 || strcmp(e->d_name + n - 5, ".part") != 0) continue;
    struct stat sb;
    if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
        now - sb.st_mtime > STALE_TEMP_S && unlinkat(dirfd(d), e->d_name, 0) == 0)
      log_info("media", "removed stale temporary file %s/%s", p, e->d_name);
  }
  closedir(d);
}

int media_storage_local_open(uv_loop_t *loop, const char *dir, media_storage_t **out) {
  if (!loop || !dir || !dir[0]) return -EINVAL;
  local_t *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  if (strlen(dir) >= sizeof st->dir) {
    free(st);
    return -EINVAL;
  }
  st->base.ops = &local_ops;
  st->loop = loop;
  strcpy(st->dir, dir);
  char p[PATH_MAX];
  int rc = mkdir_p1(dir);
  snprintf(p, sizeof p, "%s/tmp", dir);
  if (rc == 0) rc = mkdir_p1(p);
  snprintf(p, sizeof p, "%s/objects", dir);
  if (rc == 0) rc = mkdir_p1(p);
  if (rc < 0) {
    free(st);
    return rc;
  }
  sweep_stale(st);
  *out = &st->base;
  return 0;
}
