/*
 * media_storage_local.c — media objects as files (contract in
 * media_storage_local.h and media_storage.h).
 *
 * Writers are media_tmpfile's (double-buffered write-behind, backpressure,
 * deferred cleanup); this file adds only the publish step, fsync and
 * rename on the pool.
 */
#include "services/media/media_storage_local.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "services/media/media_tmpfile.h"

typedef struct {
  media_storage_t base;
  uv_loop_t *loop;
  char dir[PATH_MAX - 80]; /* room for "/objects/xx/<id>" and "/tmp/<id>.part" */
} local_t;

struct media_reader {
  local_t *st;
  uv_file fd;
  uint64_t off, left;
  bool pending;
  media_read_cb cb;
  void *arg;
  uv_fs_t req;
};

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

/* ---- writers (staged by media_tmpfile) ---- */

/* On the pool: the durable part of commit, fsync → rename → fsync of the
 * directories. The fd is closed here so that a late write error reported
 * by close fails the commit. */
static int local_publish(void *backend, media_tmpfile_job_t *job) {
  local_t *st = backend;
  char dir[PATH_MAX], dst[PATH_MAX];
  obj_dir(st, job->id, dir, sizeof dir);
  obj_path(st, job->id, dst, sizeof dst);
  int rc = fsync(job->fd) < 0 ? -errno : 0;
  if (close(job->fd) < 0 && rc == 0) rc = -errno;
  job->fd = -1;
  if (rc == 0) rc = mkdir_p1(dir);
  if (rc == 0 && rename(job->path, dst) < 0) rc = -errno;
  if (rc < 0) return rc; /* media_tmpfile unlinks the temporary file */
  job->moved = true;
  rc = sync_dir(dir);
  /* A new fan-out directory must itself be durable in objects/. */
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%s/objects", st->dir);
  if (rc == 0) rc = sync_dir(parent);
  if (rc < 0) unlink(dst); /* not durable: not there */
  return rc;
}

static int local_writer_open(media_storage_t *s, const char *id, media_storage_cb on_ready,
                             void *arg, media_writer_t **out) {
  local_t *st = (local_t *)s;
  return media_tmpfile_open(st->loop, st->dir, id, local_publish, st, on_ready, arg, out);
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
  media_tmpfile_path(st->dir, id, tmp, sizeof tmp);
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
    .write = media_tmpfile_write,
    .commit = media_tmpfile_commit,
    .abort = media_tmpfile_abort,
    .reader_open = local_reader_open,
    .read = local_read,
    .reader_close = local_reader_close,
    .size = local_size,
    .remove = local_remove,
    .put = local_put,
    .close = local_close,
};

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
  media_tmpfile_sweep(dir, MEDIA_TMPFILE_STALE_S);
  *out = &st->base;
  return 0;
}
