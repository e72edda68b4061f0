/*
 * media_storage_s3.c — media objects in an S3 bucket (contract in
 * media_storage_s3.h and media_storage.h).
 *
 * Every request blocks, so each runs inside a uv_queue_work job (writers'
 * commit, readers' window fills) or in the blocking ops the interface
 * already reserves for pool threads (size, remove, put). The loop thread
 * only spools bytes to the temporary file and copies windows out.
 */
#include "services/media/media_storage_s3.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "services/media/media_tmpfile.h"
#include "services/media/s3_xml.h"

#define PROBE_TIMEOUT_MS 3000
#define KEY_PREFIX "media/"
#define KEY_MAX (sizeof KEY_PREFIX + MEDIA_OBJECT_ID_LEN)

typedef struct {
  media_storage_t base;
  uv_loop_t *loop;
  s3_client_t *cli;
  s3_client_t *probe_cli; /* same server, short timeouts: close joins the probe */
  char dir[PATH_MAX - 80];
  uint64_t part_size;
  size_t window;
  /* readiness */
  atomic_bool ready;
  uv_mutex_t probe_mu; /* serialises probes and guards the fields below */
  int last_rc;         /* 1 = never probed */
  char last_msg[512];
  atomic_uint_fast64_t n_puts, n_multipart, n_parts, n_aborts, n_fills;
  /* probe thread */
  uint64_t interval_ms;
  bool thread_started, stop;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cond;
} s3_t;

struct media_reader {
  s3_t *st;
  char key[KEY_MAX];
  uint64_t off, left; /* the next byte to deliver, and how many remain */
  bool checked;       /* the range has been checked against the object */
  char *win;          /* window of undelivered bytes win[pos..len) */
  size_t win_cap, win_len, win_pos;
  bool pending;
  void *ubuf;
  size_t ucap;
  media_read_cb cb;
  void *arg;
  ssize_t result;
  uv_work_t work;
};

static void make_key(const char *id, char out[KEY_MAX]) {
  snprintf(out, KEY_MAX, KEY_PREFIX "%s", id);
}

/* ---- readiness ---- */

static bool creds_code(const char *code) {
  return !strcmp(code, "SignatureDoesNotMatch") || !strcmp(code, "InvalidAccessKeyId") ||
         !strcmp(code, "AccessDenied") || !strcmp(code, "InvalidToken") ||
         !strcmp(code, "ExpiredToken") || !strcmp(code, "AuthorizationHeaderMalformed");
}

/* One probe: list one key under media/; on NoSuchBucket create the bucket. */
static int probe_once(s3_t *st, char *msg, size_t n, bool *created) {
  s3_result_t *res = malloc(sizeof *res);
  if (!res) {
    snprintf(msg, n, "out of memory");
    return -ENOMEM;
  }
  char why[300];
  const char *bucket = s3_client_bucket(st->probe_cli), *ep = s3_client_endpoint(st->probe_cli);
  *created = false;
  int rc = s3_client_request(st->probe_cli, "GET", NULL, "max-keys=1&prefix=media%2F", NULL,
                             NULL, NULL, 0, NULL, res);
  if (rc == -ENOENT) {
    rc = s3_client_request(st->probe_cli, "PUT", NULL, NULL, NULL, NULL, NULL, 0, NULL, res);
    if (rc == 0) *created = true;
    /* Another process (a replica starting at the same time) may have
     * created it in between: AWS says BucketAlreadyOwnedByYou, MinIO and
     * s3rver BucketAlreadyExists, which on AWS also means "someone else's
     * bucket". Listing again tells the two apart: ours lists. */
    if (rc < 0 && (!strcmp(res->code, "BucketAlreadyOwnedByYou") ||
                   !strcmp(res->code, "BucketAlreadyExists")))
      rc = s3_client_request(st->probe_cli, "GET", NULL, "max-keys=1&prefix=media%2F", NULL,
                             NULL, NULL, 0, NULL, res);
  }
  s3_result_describe(res, why, sizeof why);
  if (rc == 0)
    snprintf(msg, n, "S3 bucket %s at %s is ready%s", bucket, ep, *created ? " (created)" : "");
  else if (rc == -EACCES && creds_code(res->code))
    snprintf(msg, n,
             "S3 refused our credentials (%s) for bucket %s at %s: check MINIO_ACCESS_KEY / "
             "MINIO_SECRET_KEY (and MINIO_REGION)",
             why, bucket, ep);
  else if (rc == -EACCES)
    snprintf(msg, n, "S3 refused access to bucket %s at %s (%s)", bucket, ep, why);
  else if (res->status == 0)
    snprintf(msg, n, "S3 endpoint %s cannot be reached (%s)", ep, why);
  else
    snprintf(msg, n, "S3 bucket %s at %s is not usable (%s)", bucket, ep, why);
  free(res);
  return rc;
}

int media_storage_s3_probe(media_storage_t *s, char *msg, size_t n) {
  s3_t *st = (s3_t *)s;
  char m[512];
  bool created;
  uv_mutex_lock(&st->probe_mu);
  int rc = probe_once(st, m, sizeof m, &created);
  atomic_store(&st->ready, rc == 0);
  /* Log changes only: a wrong key checked every few seconds must not
   * flood the log, but the first failure and every recovery are news. */
  bool changed = rc != st->last_rc || (rc < 0 && strncmp(m, st->last_msg, sizeof st->last_msg - 1));
  if (changed) {
    if (rc == 0) log_info("media", "media storage: %s", m);
    else log_error("media", "media storage: %s; /readyz stays red until this is fixed", m);
  }
  st->last_rc = rc;
  memcpy(st->last_msg, m, sizeof st->last_msg);
  uv_mutex_unlock(&st->probe_mu);
  if (msg && n) snprintf(msg, n, "%s", m);
  return rc;
}

void media_storage_s3_counts(media_storage_t *s, media_s3_counts_t *out) {
  s3_t *st = (s3_t *)s;
  out->single_puts = atomic_load(&st->n_puts);
  out->multipart = atomic_load(&st->n_multipart);
  out->parts = atomic_load(&st->n_parts);
  out->aborts = atomic_load(&st->n_aborts);
  out->window_fills = atomic_load(&st->n_fills);
}

bool media_storage_s3_ready(void *s) { return atomic_load(&((s3_t *)s)->ready); }

static void probe_thread(void *arg) {
  s3_t *st = arg;
  for (;;) {
    media_storage_s3_probe(&st->base, NULL, 0);
    uv_mutex_lock(&st->mu);
    if (!st->stop) {
      uint64_t interval = st->interval_ms;
      /* A red probe is retried sooner, so a fix shows up quickly. */
      if (!atomic_load(&st->ready) && interval > 2000) interval = 2000;
      uv_cond_timedwait(&st->cond, &st->mu, interval * 1000000ULL);
    }
    bool stop = st->stop;
    uv_mutex_unlock(&st->mu);
    if (stop) return;
  }
}

/* ---- writers (staged by media_tmpfile) ---- */

/* Part size for an object of size bytes: the configured one, grown in
 * MiB steps when the object would need more than S3's 10,000 parts. */
static uint64_t part_size_for(const s3_t *st, uint64_t size) {
  uint64_t p = st->part_size;
  if (size / p >= MEDIA_S3_MAX_PARTS) {
    p = size / (MEDIA_S3_MAX_PARTS - 1);
    p = (p + (1 << 20) - 1) & ~(uint64_t)((1 << 20) - 1);
  }
  return p;
}

static void log_failure(const char *what, const char *id, const s3_result_t *res, int rc) {
  char why[300];
  s3_result_describe(res, why, sizeof why);
  log_error("media", "S3 %s of %s failed: %s (%s)", what, id, why, strerror(-rc));
}

/* ETags are quoted hex from the server; anything that would need XML
 * escaping, or is empty, is refused. */
static bool etag_ok(const char *e) {
  if (!e[0]) return false;
  for (const char *p = e; *p; p++)
    if (*p < 0x21 || *p > 0x7e || *p == '<' || *p == '>' || *p == '&') return false;
  return true;
}

/* The multipart upload of fd[0..size), on a pool thread. */
static int upload_multipart(s3_t *st, const char *id, int fd, uint64_t size, s3_result_t *res) {
  char key[KEY_MAX], upload_id[512], esc[1600], q[1700];
  make_key(id, key);
  int rc = s3_client_request(st->cli, "POST", key, "uploads=", NULL, NULL, NULL, 0, NULL, res);
  if (rc < 0) {
    log_failure("CreateMultipartUpload", id, res, rc);
    return rc;
  }
  if (s3_xml_text(res->body, res->body_len, "UploadId", NULL, upload_id, sizeof upload_id) <= 0 ||
      s3_query_escape(upload_id, esc, sizeof esc) < 0) {
    log_error("media", "S3 CreateMultipartUpload of %s: no usable UploadId in the answer", id);
    return -EIO;
  }
  uint64_t part = part_size_for(st, size);
  buf_t xml = BUF_INIT;
  buf_append_str(&xml, "<CompleteMultipartUpload>");
  unsigned num = 0;
  for (uint64_t off = 0; rc == 0 && off < size; off += part) {
    num++;
    uint64_t len = size - off < part ? size - off : part;
    snprintf(q, sizeof q, "partNumber=%u&uploadId=%s", num, esc);
    s3_body_t b = {NULL, fd, off, len};
    rc = s3_client_request(st->cli, "PUT", key, q, NULL, &b, NULL, 0, NULL, res);
    if (rc < 0) {
      log_failure("UploadPart", id, res, rc);
    } else if (!etag_ok(res->etag)) {
      log_error("media", "S3 UploadPart %u of %s: no usable ETag in the answer", num, id);
      rc = -EIO;
    } else {
      atomic_fetch_add(&st->n_parts, 1);
      buf_printf(&xml, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>", num, res->etag);
    }
  }
  buf_append_str(&xml, "</CompleteMultipartUpload>");
  if (rc == 0 && xml.oom) rc = -ENOMEM;
  if (rc == 0) {
    snprintf(q, sizeof q, "uploadId=%s", esc);
    s3_body_t b = {xml.data, -1, 0, xml.len};
    rc = s3_client_request(st->cli, "POST", key, q, NULL, &b, NULL, 0, NULL, res);
    /* CompleteMultipartUpload may answer 200 and fail in the body. */
    if (rc == 0 && s3_xml_root_is(res->body, res->body_len, "Error")) {
      s3_xml_text(res->body, res->body_len, "Code", NULL, res->code, sizeof res->code);
      s3_xml_text(res->body, res->body_len, "Message", NULL, res->message, sizeof res->message);
      rc = -EIO;
    }
    if (rc < 0) log_failure("CompleteMultipartUpload", id, res, rc);
    else atomic_fetch_add(&st->n_multipart, 1);
  }
  buf_free(&xml);
  if (rc < 0) {
    snprintf(q, sizeof q, "uploadId=%s", esc);
    atomic_fetch_add(&st->n_aborts, 1);
    int arc = s3_client_request(st->cli, "DELETE", key, q, NULL, NULL, NULL, 0, NULL, res);
    /* Not fatal: nothing is visible under the key; a lifecycle rule on
     * the bucket reclaims parts a failed abort leaves behind. */
    if (arc < 0) log_failure("AbortMultipartUpload", id, res, arc);
  }
  return rc;
}

/* On the pool, once the whole upload is in the temporary file (which
 * media_tmpfile removes after this, before done runs). */
static int s3_publish(void *backend, media_tmpfile_job_t *job) {
  s3_t *st = backend;
  s3_result_t *res = malloc(sizeof *res);
  if (!res) return -ENOMEM;
  int rc;
  if (job->size <= st->part_size) {
    char key[KEY_MAX];
    make_key(job->id, key);
    s3_body_t b = {NULL, job->fd, 0, job->size};
    rc = s3_client_request(st->cli, "PUT", key, NULL, NULL, &b, NULL, 0, NULL, res);
    if (rc < 0) log_failure("PutObject", job->id, res, rc);
    else atomic_fetch_add(&st->n_puts, 1);
  } else {
    rc = upload_multipart(st, job->id, job->fd, job->size, res);
  }
  free(res);
  return rc;
}

static int s3_writer_open(media_storage_t *s, const char *id, media_storage_cb on_ready, void *arg,
                          media_writer_t **out) {
  s3_t *st = (s3_t *)s;
  return media_tmpfile_open(st->loop, st->dir, id, s3_publish, st, on_ready, arg, out);
}

/* ---- readers ---- */

static int s3_reader_open(media_storage_t *s, const char *id, uint64_t off, uint64_t len,
                          media_reader_t **out) {
  s3_t *st = (s3_t *)s;
  if (!media_object_id_valid(id) || len > UINT64_MAX - off || off > INT64_MAX ||
      len > INT64_MAX)
    return -EINVAL;
  media_reader_t *r = calloc(1, sizeof *r);
  if (!r) return -ENOMEM;
  r->st = st;
  make_key(id, r->key);
  r->off = off;
  r->left = len;
  *out = r;
  return 0;
}

/* Existence and bounds of an empty range: a HEAD. */
static ssize_t check_empty(media_reader_t *r, s3_result_t *res) {
  int rc = s3_client_request(r->st->cli, "HEAD", r->key, NULL, NULL, NULL, NULL, 0, NULL, res);
  if (rc < 0) return rc;
  if (res->content_length < 0) return -EIO;
  return r->off > (uint64_t)res->content_length ? -EINVAL : 0;
}

/* Fills the window with the next bytes of the range: one ranged GET. */
static ssize_t fill_window(media_reader_t *r, s3_result_t *res) {
  size_t want = r->left < r->win_cap ? (size_t)r->left : r->win_cap;
  char range[64];
  snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)r->off,
           (unsigned long long)(r->off + want - 1));
  size_t got = 0;
  atomic_fetch_add(&r->st->n_fills, 1);
  int rc = s3_client_request(r->st->cli, "GET", r->key, NULL, range, NULL, r->win, want, &got, res);
  if (rc == -ERANGE) return -EINVAL; /* 416: the range starts past the end */
  if (rc == -EOVERFLOW) return -EIO; /* a server that ignored Range on a larger object */
  if (rc < 0) return rc;
  if (!r->checked) {
    /* The object must hold the whole range the caller opened. */
    int64_t total = res->total_size >= 0 ? res->total_size
                    : res->status == 200 ? (int64_t)got : -1;
    if (total < 0) return -EIO;
    if ((uint64_t)total < r->off || r->left > (uint64_t)total - r->off) return -EINVAL;
    r->checked = true;
  }
  if (got != want) return -EIO; /* the object changed or the answer was cut */
  r->win_len = got;
  r->win_pos = 0;
  return 0;
}

static void read_work(uv_work_t *wk) {
  media_reader_t *r = wk->data;
  if (r->win_pos == r->win_len && (r->left > 0 || !r->checked)) {
    s3_result_t *res = malloc(sizeof *res);
    if (!res) {
      r->result = -ENOMEM;
      return;
    }
    ssize_t rc = r->left == 0 ? check_empty(r, res) : fill_window(r, res);
    if (rc < 0 && rc != -ENOENT && rc != -EINVAL) {
      char why[300];
      s3_result_describe(res, why, sizeof why);
      log_error("media", "S3 GET of %s failed: %s (%s)", r->key, why, strerror((int)-rc));
    }
    if (r->left == 0 && rc == 0) r->checked = true;
    free(res);
    if (rc < 0) {
      r->result = rc;
      return;
    }
  }
  size_t avail = r->win_len - r->win_pos;
  size_t n = avail < r->ucap ? avail : r->ucap;
  if (n) memcpy(r->ubuf, r->win + r->win_pos, n);
  r->win_pos += n;
  r->off += n;
  r->left -= n;
  r->result = (ssize_t)n;
}

static void read_after(uv_work_t *wk, int status) {
  media_reader_t *r = wk->data;
  r->pending = false;
  r->cb(status < 0 ? status : r->result, r->arg);
}

static int s3_read(media_reader_t *r, void *buf, size_t cap, media_read_cb cb, void *arg) {
  if (r->pending || !cb || (cap == 0 && r->left > 0)) return -EINVAL;
  if (!r->win && r->left > 0) {
    r->win_cap = r->left < r->st->window ? (size_t)r->left : r->st->window;
    r->win = malloc(r->win_cap);
    if (!r->win) return -ENOMEM;
  }
  r->ubuf = buf;
  r->ucap = cap;
  r->cb = cb;
  r->arg = arg;
  r->work.data = r;
  int rc = uv_queue_work(r->st->loop, &r->work, read_work, read_after);
  if (rc < 0) return rc;
  r->pending = true;
  return 0;
}

static void s3_reader_close(media_reader_t *r) {
  if (!r) return;
  free(r->win);
  free(r);
}

/* ---- blocking operations ---- */

/* The start of size and remove: checks id, names its key, allocates *res
 * (the caller frees it) and sends a HEAD. -EINVAL or -ENOMEM leave *res
 * NULL; otherwise the HEAD's result. */
static int head_object(s3_t *st, const char *id, char key[KEY_MAX], s3_result_t **res) {
  *res = NULL;
  if (!media_object_id_valid(id)) return -EINVAL;
  make_key(id, key);
  *res = malloc(sizeof **res);
  if (!*res) return -ENOMEM;
  return s3_client_request(st->cli, "HEAD", key, NULL, NULL, NULL, NULL, 0, NULL, *res);
}

static int64_t s3_size(media_storage_t *s, const char *id) {
  char key[KEY_MAX];
  s3_result_t *res;
  int rc = head_object((s3_t *)s, id, key, &res);
  if (!res) return rc;
  int64_t out = rc < 0 ? rc : res->content_length >= 0 ? res->content_length : -EIO;
  if (rc < 0 && rc != -ENOENT) log_failure("HeadObject", id, res, rc);
  free(res);
  return out;
}

/* S3's DELETE answers 204 whether or not the key existed; the interface
 * promises -ENOENT for a missing object, hence the HEAD first. */
static int s3_remove(media_storage_t *s, const char *id) {
  s3_t *st = (s3_t *)s;
  char key[KEY_MAX];
  s3_result_t *res;
  int rc = head_object(st, id, key, &res);
  if (!res) return rc;
  if (rc == 0) {
    rc = s3_client_request(st->cli, "DELETE", key, NULL, NULL, NULL, NULL, 0, NULL, res);
    if (rc < 0) log_failure("DeleteObject", id, res, rc);
  } else if (rc != -ENOENT) {
    log_failure("HeadObject", id, res, rc);
  }
  free(res);
  return rc;
}

static int s3_put(media_storage_t *s, const char *id, const void *data, size_t len) {
  s3_t *st = (s3_t *)s;
  if (!media_object_id_valid(id) || (!data && len)) return -EINVAL;
  char key[KEY_MAX];
  make_key(id, key);
  s3_result_t *res = malloc(sizeof *res);
  if (!res) return -ENOMEM;
  s3_body_t b = {data ? data : "", -1, 0, len};
  int rc = s3_client_request(st->cli, "PUT", key, NULL, NULL, &b, NULL, 0, NULL, res);
  if (rc < 0) log_failure("PutObject", id, res, rc);
  else atomic_fetch_add(&st->n_puts, 1);
  free(res);
  return rc;
}

static void s3_close(media_storage_t *s) {
  s3_t *st = (s3_t *)s;
  if (st->thread_started) {
    uv_mutex_lock(&st->mu);
    st->stop = true;
    uv_cond_signal(&st->cond);
    uv_mutex_unlock(&st->mu);
    uv_thread_join(&st->thread);
  }
  uv_cond_destroy(&st->cond);
  uv_mutex_destroy(&st->mu);
  uv_mutex_destroy(&st->probe_mu);
  s3_client_free(st->cli);
  s3_client_free(st->probe_cli);
  free(st);
}

static const media_storage_ops_t s3_ops = {
    .kind = "s3",
    .writer_open = s3_writer_open,
    .write = media_tmpfile_write,
    .commit = media_tmpfile_commit,
    .abort = media_tmpfile_abort,
    .reader_open = s3_reader_open,
    .read = s3_read,
    .reader_close = s3_reader_close,
    .size = s3_size,
    .remove = s3_remove,
    .put = s3_put,
    .close = s3_close,
};

static int mkdir1(const char *path) {
  if (mkdir(path, 0700) == 0 || errno == EEXIST) return 0;
  return -errno;
}

int media_storage_s3_open(uv_loop_t *loop, const media_s3_opts_t *o, media_storage_t **out,
                          char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (!loop || !o || !out || !o->dir || !o->dir[0]) {
    if (err && errlen) snprintf(err, errlen, "no loop, options or directory");
    return -EINVAL;
  }
  uint64_t part = o->part_size ? o->part_size : MEDIA_S3_PART_SIZE;
  size_t window = o->read_window ? o->read_window : MEDIA_S3_READ_WINDOW;
  if (part < MEDIA_S3_MIN_PART || part > (5ULL << 30) || window < 4096 || window > (8u << 20)) {
    if (err && errlen) snprintf(err, errlen, "part size or read window out of range");
    return -EINVAL;
  }
  s3_t *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  if (strlen(o->dir) >= sizeof st->dir) {
    free(st);
    if (err && errlen) snprintf(err, errlen, "directory path too long");
    return -EINVAL;
  }
  int rc = s3_client_new(&o->s3, &st->cli, err, errlen);
  if (rc < 0) {
    free(st);
    return rc;
  }
  /* A probe gives up within PROBE_TIMEOUT_MS, so shutdown never waits
   * long for a hung server. */
  s3_client_opts_t po = o->s3;
  if (!po.connect_timeout_ms || po.connect_timeout_ms > PROBE_TIMEOUT_MS) po.connect_timeout_ms = PROBE_TIMEOUT_MS;
  po.total_timeout_ms = PROBE_TIMEOUT_MS;
  rc = s3_client_new(&po, &st->probe_cli, err, errlen);
  if (rc < 0) {
    s3_client_free(st->cli);
    free(st);
    return rc;
  }
  st->base.ops = &s3_ops;
  st->loop = loop;
  strcpy(st->dir, o->dir);
  st->part_size = part;
  st->window = window;
  st->last_rc = 1;
  atomic_init(&st->ready, false);
  st->interval_ms = o->probe_interval_ms;
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/tmp", o->dir);
  rc = mkdir1(o->dir);
  if (rc == 0) rc = mkdir1(p);
  if (rc < 0) {
    if (err && errlen) snprintf(err, errlen, "cannot create %s: %s", p, strerror(-rc));
    s3_client_free(st->cli);
    s3_client_free(st->probe_cli);
    free(st);
    return rc;
  }
  if (uv_mutex_init(&st->probe_mu) || uv_mutex_init(&st->mu) || uv_cond_init(&st->cond)) {
    s3_client_free(st->cli);
    s3_client_free(st->probe_cli);
    free(st);
    return -ENOMEM;
  }
  media_tmpfile_sweep(o->dir, MEDIA_TMPFILE_STALE_S);
  if (st->interval_ms) {
    rc = uv_thread_create(&st->thread, probe_thread, st);
    if (rc < 0) {
      s3_close(&st->base);
      return rc;
    }
    st->thread_started = true;
  }
  *out = &st->base;
  return 0;
}
