/*
 * gateway_media.c — media upload, download and delete routes (contract in
 * gateway_media.h; design in docs/media.md).
 *
 * Upload pipeline, per request: socket → http_req_read_body (no server
 * buffering) → multipart_feed → the "file" part's bytes: the first
 * MEDIA_SNIFF_MAX are held to decide the type (415 if refused), then every
 * byte goes to SHA-256 and the storage writer, counted against the kind's
 * limit (413). The writer's BUSY pauses the socket. The body's end
 * commits (fsync + rename on the pool), then media.record; a refused
 * record removes the object again. Every failure aborts the writer, so an
 * upload that does not end in 201 leaves no object and no temporary file.
 *
 * Downloads: media.get decides (metadata and who may read, attachments
 * included), then the object streams with Range (If-Range: a strong
 * ETag match, else the whole object), ETag/304 and Content-Disposition
 * (filename + RFC 8187 filename*).
 *
 * Ownership: an upload_t lives from the handler to the request's answer;
 * whoever answers frees it right after (the request goes with the answer).
 * Errors found inside a multipart callback are only recorded there: the
 * parser state lives in the upload_t, so it is answered (and freed) once
 * multipart_feed has returned.
 */
#include "services/gateway/gateway_media.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "core/log.h"
#include "net/http.h"
#include "net/multipart.h"
#include "services/gateway/gateway_internal.h"
#include "services/media/media_key.h"
#include "services/media/media_sniff.h"

#define MEDIA_CALL_TIMEOUT_MS 10000
#define READ_BUF (64 * 1024)
#define OUT_HIGH (256 * 1024) /* queued download bytes before waiting */
#define OUT_LOW (64 * 1024)
#define CACHE_HDRS "Cache-Control: private, max-age=31536000, immutable\r\n"

struct gateway_media {
  gateway_t *g;
  gateway_media_opts_t o;
};

/* ---------------------------------------------------------------- upload */

typedef struct {
  gateway_media_t *m;
  http_req_t *r;
  int64_t user_id;
  media_writer_t *w;
  char key[MEDIA_KEY_MAX + 1];
  char id[MEDIA_OBJECT_ID_LEN + 1];
  const char *mime;
  media_kind_t kind;
  uint64_t limit, size;
  crypto_hash_sha256_state sha;
  uint8_t digest[32];
  size_t sniff_len;
  unsigned char sniff[MEDIA_SNIFF_MAX];
  bool in_file, file_seen, file_done, sniffed, paused;
  /* An error found inside a parser callback, answered after the feed. */
  int err_status;
  const char *err_code;
  char err_msg[160];
  multipart_t mp;
} upload_t;

static void upload_free(upload_t *u) {
  if (u->w) u->m->o.storage->ops->abort(u->w);
  free(u);
}

/* Answers with an error and frees u (aborting the writer). msg may point
 * into u: answer first. */
static void upload_fail(upload_t *u, int status, const char *code, const char *msg) {
  http_respond_error(u->r, status, code, msg);
  upload_free(u);
}

static int record_err(upload_t *u, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int record_err(upload_t *u, int status, const char *code, const char *fmt, ...) {
  u->err_status = status;
  u->err_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(u->err_msg, sizeof u->err_msg, fmt, ap);
  va_end(ap);
  return -ECANCELED;
}

static void on_storage_ready(int status, void *arg) {
  upload_t *u = arg;
  if (status < 0) {
    log_error("media", "storage write failed: %s", strerror(-status));
    upload_fail(u, 503, "storage_unavailable", "media storage failed");
    return;
  }
  if (u->paused) {
    u->paused = false;
    http_req_body_resume(u->r);
  }
}

static int file_bytes(upload_t *u, const void *data, size_t len) {
  if (u->size + len > u->limit)
    return record_err(u, 413, "payload_too_large", "%s files are limited to %" PRIu64 " bytes",
                      u->kind == MEDIA_KIND_IMAGE ? "image" : "video", u->limit);
  u->size += len;
  crypto_hash_sha256_update(&u->sha, data, len);
  int rc = u->m->o.storage->ops->write(u->w, data, len);
  if (rc == MEDIA_STORAGE_BUSY) {
    if (!u->paused) {
      u->paused = true;
      http_req_body_pause(u->r);
    }
    return 0;
  }
  if (rc < 0) {
    log_error("media", "storage write failed: %s", strerror(-rc));
    return record_err(u, 503, "storage_unavailable", "media storage failed");
  }
  return 0;
}

/* The type is known from the held prefix: refuse it, or open the writer
 * and pass the prefix on. */
static int sniffed(upload_t *u) {
  u->sniffed = true;
  u->mime = media_sniff(u->sniff, u->sniff_len, &u->kind);
  if (u->kind == MEDIA_KIND_NONE)
    return record_err(u, 415, "unsupported_media_type", "unsupported media type: detected %s",
                      u->mime);
  u->limit = u->kind == MEDIA_KIND_IMAGE ? u->m->o.max_image : u->m->o.max_video;
  str_t cl = http_req_header(u->r, "content-length");
  unsigned long long declared;
  if (cl.p && str_to_u64(cl, UINT64_MAX, &declared) == 0 &&
      declared > u->limit + GW_MEDIA_FORM_OVERHEAD)
    return record_err(u, 413, "payload_too_large", "%s files are limited to %" PRIu64 " bytes",
                      u->kind == MEDIA_KIND_IMAGE ? "image" : "video", u->limit);
  memcpy(u->id, u->key, MEDIA_OBJECT_ID_LEN);
  u->id[MEDIA_OBJECT_ID_LEN] = '\0';
  int rc = u->m->o.storage->ops->writer_open(u->m->o.storage, u->id, on_storage_ready, u, &u->w);
  if (rc < 0) {
    log_error("media", "opening a storage writer failed: %s", strerror(-rc));
    return record_err(u, 503, "storage_unavailable", "media storage failed");
  }
  crypto_hash_sha256_init(&u->sha);
  return u->sniff_len ? file_bytes(u, u->sniff, u->sniff_len) : 0;
}

static int on_part_begin(void *arg, const multipart_part_t *p) {
  upload_t *u = arg;
  u->in_file = str_eq_cstr(p->name, "file");
  if (!u->in_file) return 0; /* other fields are skipped */
  if (u->file_seen) return record_err(u, 400, "bad_multipart", "only one file field is allowed");
  u->file_seen = true;
  media_key_new(p->filename.p, p->filename.n, u->key);
  return 0;
}

static int on_part_data(void *arg, const char *data, size_t len) {
  upload_t *u = arg;
  if (!u->in_file) return 0;
  if (!u->sniffed) {
    size_t take = MEDIA_SNIFF_MAX - u->sniff_len;
    if (take > len) take = len;
    memcpy(u->sniff + u->sniff_len, data, take);
    u->sniff_len += take;
    data += take;
    len -= take;
    if (u->sniff_len < MEDIA_SNIFF_MAX) return 0;
    int rc = sniffed(u);
    if (rc < 0) return rc;
  }
  return len ? file_bytes(u, data, len) : 0;
}

static int on_part_end(void *arg) {
  upload_t *u = arg;
  if (!u->in_file) return 0;
  u->in_file = false;
  u->file_done = true;
  return u->sniffed ? 0 : sniffed(u); /* a file shorter than the sniff window */
}

static const multipart_callbacks_t mp_callbacks = {on_part_begin, on_part_data, on_part_end};

static void upload_data(http_req_t *r, const char *data, size_t len, void *arg) {
  upload_t *u = arg;
  ssize_t n = multipart_feed(&u->mp, data, len, &mp_callbacks, u);
  if (n >= 0) return;
  if (u->err_status)
    upload_fail(u, u->err_status, u->err_code, u->err_msg);
  else
    upload_fail(u, 400, "bad_multipart", multipart_strerror((int)n));
}

/* ---- after the body: commit, record ---- */

typedef struct {
  media_storage_t *st;
  char id[MEDIA_OBJECT_ID_LEN + 1];
  uv_work_t work;
} orphan_t;

static void orphan_work(uv_work_t *w) {
  orphan_t *o = w->data;
  int rc = o->st->ops->remove(o->st, o->id);
  if (rc < 0 && rc != -ENOENT) log_warn("media", "could not remove unrecorded object %s: %d", o->id, rc);
}

static void orphan_done(uv_work_t *w, int status) { free(w->data); }

/* The media service did not record the object: it must not stay. */
static void remove_unrecorded(upload_t *u) {
  orphan_t *o = malloc(sizeof *o);
  if (!o) goto leak;
  o->st = u->m->o.storage;
  memcpy(o->id, u->id, sizeof o->id);
  o->work.data = o;
  if (uv_queue_work(u->m->g->loop, &o->work, orphan_work, orphan_done) == 0) return;
  free(o);
leak:
  log_error("media", "object %s stored but not recorded, and not removed", u->id);
}

static void on_recorded(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  upload_t *u = arg;
  http_req_t *r = u->r;
  if (status < 0) {
    remove_unrecorded(u);
    upload_free(u);
    if (status == BUS_ETIMEDOUT)
      http_respond_error(r, 504, "upstream_timeout", "the media service did not answer in time");
    else
      http_respond_error(r, 503, "service_unavailable", "no instance of the media service is running");
    return;
  }
  json_t *j = json_loadb(msg->data, msg->len, 0, NULL);
  json_t *e = j ? json_object_get(j, "error") : NULL;
  if (!json_is_object(j) || e) {
    remove_unrecorded(u);
    upload_free(u);
    json_int_t st = json_integer_value(json_object_get(e, "status"));
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *message = json_string_value(json_object_get(e, "message"));
    http_respond_error(r, st >= 400 && st <= 599 ? (int)st : 502, code ? code : "bad_upstream_reply",
                       message ? message : "the media service answered something unreadable");
  } else {
    char loc[MEDIA_KEY_MAX + 32];
    snprintf(loc, sizeof loc, "Location: /media/%s\r\n", u->key); /* key bytes are URL-safe */
    upload_free(u);
    http_respond(r, 201, "application/json", loc, msg->data, msg->len);
  }
  json_decref(j);
}

static void on_committed(int status, void *arg) {
  upload_t *u = arg;
  u->w = NULL; /* freed by the backend in every case */
  if (status < 0) {
    log_error("media", "committing %s failed: %s", u->id, strerror(-status));
    upload_fail(u, 503, "storage_unavailable", "media storage failed");
    return;
  }
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, u->digest, sizeof u->digest);
  json_t *p = json_pack("{s:I, s:s, s:s, s:I, s:s}", "userId", (json_int_t)u->user_id, "key",
                        u->key, "mime", u->mime, "size", (json_int_t)u->size, "sha256", hex);
  char *s = p ? json_dumps(p, JSON_COMPACT) : NULL;
  json_decref(p);
  int rc = s ? bus_request(u->m->g->bus, "media.record", s, strlen(s), MEDIA_CALL_TIMEOUT_MS,
                           on_recorded, u, NULL)
             : -ENOMEM;
  free(s);
  if (rc < 0) {
    remove_unrecorded(u);
    upload_fail(u, 503, "service_unavailable", "the bus is not available");
  }
}

static void upload_end(http_req_t *r, int status, void *arg) {
  upload_t *u = arg;
  if (status < 0) {
    upload_free(u);
    if (status == -EMSGSIZE)
      http_respond_error(r, 413, "payload_too_large", "upload exceeds the largest accepted file");
    else
      http_respond_body_error(r, status);
    return;
  }
  if (!u->mp.done) {
    upload_fail(u, 400, "bad_multipart", "truncated multipart body (no closing boundary)");
    return;
  }
  if (!u->file_done) {
    upload_fail(u, 400, "bad_multipart", "the form has no \"file\" field");
    return;
  }
  crypto_hash_sha256_final(&u->sha, u->digest);
  int rc = u->m->o.storage->ops->commit(u->w, on_committed, u);
  if (rc < 0) {
    log_error("media", "committing %s failed: %s", u->id, strerror(-rc));
    upload_fail(u, 503, "storage_unavailable", "media storage failed");
  }
}

static const http_body_reader_t upload_reader = {upload_data, upload_end};

static bool auth_user(gateway_t *g, http_req_t *r, int64_t *user_id) {
  jwt_claims_t c;
  if (gw_authenticate(g, r, gw_bearer(r), &c) < 0) return false;
  *user_id = (int64_t)strtoll(c.sub, NULL, 10);
  return true;
}

static void on_upload(http_req_t *r, void *arg) {
  gateway_media_t *m = arg;
  int64_t uid;
  if (!auth_user(m->g, r, &uid)) return;
  upload_t *u = calloc(1, sizeof *u);
  if (!u) {
    http_respond_error(r, 503, "overloaded", "out of memory");
    return;
  }
  if (multipart_init(&u->mp, http_req_header(r, "content-type")) < 0) {
    free(u);
    http_respond_error(r, 400, "bad_multipart", multipart_strerror(MULTIPART_E_BOUNDARY));
    return;
  }
  u->m = m;
  u->r = r;
  u->user_id = uid;
  http_req_read_body(r, &upload_reader, u);
}

/* -------------------------------------------------------------- download */

typedef struct {
  gateway_media_t *m;
  http_req_t *r;
  int64_t user_id;
  char key[MEDIA_KEY_MAX + 1];
  char id[MEDIA_OBJECT_ID_LEN + 1];
  media_reader_t *rd;
  char *buf;
} download_t;

static void download_end(download_t *d) {
  if (d->rd) d->m->o.storage->ops->reader_close(d->rd);
  http_req_t *r = d->r;
  free(d->buf);
  free(d);
  http_respond_stream_end(r);
}

static void download_pump(http_req_t *r, void *arg);

static void on_chunk(ssize_t n, void *arg) {
  download_t *d = arg;
  if (n < 0) log_error("media", "reading object %s failed: %s", d->id, strerror((int)-n));
  if (n <= 0 || http_respond_stream_write(d->r, d->buf, (size_t)n) < 0) {
    download_end(d); /* short of the announced length: the connection closes */
    return;
  }
  if (http_respond_stream_pending(d->r) > OUT_HIGH)
    http_respond_stream_wait(d->r, OUT_LOW, download_pump, d);
  else
    download_pump(d->r, d);
}

static void download_pump(http_req_t *r, void *arg) {
  download_t *d = arg;
  if (!http_req_alive(r) ||
      d->m->o.storage->ops->read(d->rd, d->buf, READ_BUF, on_chunk, d) < 0)
    download_end(d);
}

/* Parses a Range header against size. Returns 1 with [*from, *to] for one
 * satisfiable range, 0 to ignore it (absent, malformed, several ranges:
 * RFC 9110 lets a server serve the whole object), -1 when unsatisfiable. */
static int parse_range(str_t h, uint64_t size, uint64_t *from, uint64_t *to) {
  if (!h.p || h.n < 7 || strncasecmp(h.p, "bytes=", 6) != 0) return 0;
  str_t v = {h.p + 6, h.n - 6};
  while (v.n && v.p[0] == ' ') v.p++, v.n--;
  while (v.n && v.p[v.n - 1] == ' ') v.n--;
  if (memchr(v.p, ',', v.n)) return 0;
  const char *dash = memchr(v.p, '-', v.n);
  if (!dash) return 0;
  str_t a = {v.p, (size_t)(dash - v.p)}, b = {dash + 1, v.n - a.n - 1};
  unsigned long long x, y;
  if (a.n == 0) { /* suffix: the last y bytes */
    if (str_to_u64(b, UINT64_MAX, &y) < 0) return 0;
    if (y == 0 || size == 0) return -1;
    *from = y >= size ? 0 : size - y;
    *to = size - 1;
    return 1;
  }
  if (str_to_u64(a, UINT64_MAX, &x) < 0) return 0;
  if (b.n == 0)
    y = UINT64_MAX;
  else if (str_to_u64(b, UINT64_MAX, &y) < 0 || y < x)
    return 0;
  if (x >= size) return -1;
  *from = x;
  *to = y >= size ? size - 1 : y;
  return 1;
}

/* If-None-Match: "*" or a list containing our entity tag (weak
 * comparison, RFC 9110 13.1.2). */
static bool etag_matches(str_t inm, const char *etag) {
  if (!inm.p) return false;
  size_t i = 0;
  while (i < inm.n) {
    while (i < inm.n && (inm.p[i] == ' ' || inm.p[i] == ',')) i++;
    size_t s = i;
    while (i < inm.n && inm.p[i] != ',') i++;
    str_t t = {inm.p + s, i - s};
    while (t.n && t.p[t.n - 1] == ' ') t.n--;
    if (t.n >= 2 && strncmp(t.p, "W/", 2) == 0) t.p += 2, t.n -= 2;
    if (str_eq_cstr(t, "*") || str_eq_cstr(t, etag)) return true;
  }
  return false;
}

/* If-Range (RFC 9110 13.1.5): the Range applies only if the validator
 * still matches. An entity tag must match ours by strong comparison (so a
 * weak W/"..." never does); a date never matches, since we send no
 * Last-Modified to compare it with: the whole object is then served,
 * which is always correct. */
static bool if_range_matches(str_t ir, const char *etag) {
  while (ir.n && (ir.p[0] == ' ' || ir.p[0] == '\t')) ir.p++, ir.n--;
  while (ir.n && (ir.p[ir.n - 1] == ' ' || ir.p[ir.n - 1] == '\t')) ir.n--;
  return str_eq_cstr(ir, etag);
}

/* RFC 8187 attr-char: what may stand unencoded in filename*. */
static bool attr_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$&+-.^_`|~", c) != NULL);
}

/* Content-Disposition (RFC 6266) for the object's human name (the key
 * after the id: sanitized at upload, media_key.h): inline, since chat
 * clients display images and videos in place; filename="..." as an ASCII
 * fallback (anything but printable ASCII, '"' and '\' becomes '_') for
 * old clients, and filename*=UTF-8''... percent-encoded (RFC 8187), which
 * clients that know it prefer. Sanitized names are ASCII today, so the
 * two agree; both are written from the bytes, so a name that keeps UTF-8
 * later needs no change here. Appends to out[0..cap), returns the length
 * written (0 if it does not fit). */
static size_t content_disposition(const char *name, char *out, size_t cap) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(name), len = 0;
  if (cap < 64 + 4 * n) return 0; /* both forms at their largest */
  len += (size_t)snprintf(out, cap, "Content-Disposition: inline; filename=\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    out[len++] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '_';
  }
  len += (size_t)snprintf(out + len, cap - len, "\"; filename*=UTF-8''");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (attr_char(c)) {
      out[len++] = (char)c;
    } else {
      out[len++] = '%';
      out[len++] = hex[c >> 4];
      out[len++] = hex[c & 15];
    }
  }
  out[len++] = '\r';
  out[len++] = '\n';
  out[len] = '\0';
  return len;
}

static void serve_object(download_t *d, const char *mime, uint64_t size, const char *sha) {
  http_req_t *r = d->r;
  char etag[70], hdrs[1024];
  snprintf(etag, sizeof etag, "\"%s\"", sha);
  if (etag_matches(http_req_header(r, "if-none-match"), etag)) {
    snprintf(hdrs, sizeof hdrs, "ETag: %s\r\n" CACHE_HDRS, etag);
    free(d);
    http_respond_stream_begin(r, 304, NULL, hdrs, size);
    http_respond_stream_end(r);
    return;
  }
  uint64_t from = 0, to = size ? size - 1 : 0, len = size;
  int status = 200;
  str_t range = http_req_header(r, "range"), if_range = http_req_header(r, "if-range");
  if (range.p && if_range.p && !if_range_matches(if_range, etag)) range = (str_t){NULL, 0};
  int rg = parse_range(range, size, &from, &to);
  if (rg < 0) {
    snprintf(hdrs, sizeof hdrs, "Content-Range: bytes */%" PRIu64 "\r\nAccept-Ranges: bytes\r\n", size);
    free(d);
    http_respond_error_with(r, 416, hdrs, "range_not_satisfiable", "the range is outside the object");
    return;
  }
  int n = snprintf(hdrs, sizeof hdrs,
                   "ETag: %s\r\n" CACHE_HDRS "Accept-Ranges: bytes\r\nX-Content-Type-Options: nosniff\r\n",
                   etag);
  n += (int)content_disposition(d->key + MEDIA_OBJECT_ID_LEN + 1, hdrs + n, sizeof hdrs - (size_t)n);
  if (rg > 0) {
    status = 206;
    len = to - from + 1;
    snprintf(hdrs + n, sizeof hdrs - (size_t)n,
             "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n", from, to, size);
  }
  int rc = d->m->o.storage->ops->reader_open(d->m->o.storage, d->id, from, len, &d->rd);
  if (rc < 0) {
    log_error("media", "object %s of recorded media %s unreadable: %s", d->id, d->key, strerror(-rc));
    free(d);
    http_respond_error(r, rc == -ENOENT ? 404 : 503, rc == -ENOENT ? "media_not_found" : "storage_unavailable",
                       rc == -ENOENT ? "no such media" : "media storage failed");
    return;
  }
  http_respond_stream_begin(r, status, mime, hdrs, len);
  bool head = str_eq_cstr(http_req_method(r), "HEAD");
  if (head || len == 0) {
    download_end(d);
    return;
  }
  d->buf = malloc(READ_BUF);
  if (!d->buf) {
    download_end(d);
    return;
  }
  download_pump(r, d);
}

static void on_meta(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  download_t *d = arg;
  http_req_t *r = d->r;
  if (status < 0) {
    free(d);
    if (status == BUS_ETIMEDOUT)
      http_respond_error(r, 504, "upstream_timeout", "the media service did not answer in time");
    else
      http_respond_error(r, 503, "service_unavailable", "no instance of the media service is running");
    return;
  }
  json_t *j = json_loadb(msg->data, msg->len, 0, NULL);
  json_t *e = json_object_get(j, "error");
  const char *mime = json_string_value(json_object_get(j, "mime"));
  const char *sha = json_string_value(json_object_get(j, "sha256"));
  json_t *size = json_object_get(j, "size");
  if (e) {
    json_int_t st = json_integer_value(json_object_get(e, "status"));
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *message = json_string_value(json_object_get(e, "message"));
    free(d);
    http_respond_error(r, st >= 400 && st <= 599 ? (int)st : 502, code ? code : "internal",
                       message ? message : "internal error");
  } else if (!mime || !sha || strlen(sha) != 64 || strlen(mime) > 64 || !json_is_integer(size) ||
             json_integer_value(size) < 0) {
    free(d);
    http_respond_error(r, 502, "bad_upstream_reply", "the media service answered something unreadable");
  } else {
    serve_object(d, mime, (uint64_t)json_integer_value(size), sha);
  }
  json_decref(j);
}

static void on_download(http_req_t *r, void *arg) {
  gateway_media_t *m = arg;
  int64_t uid;
  if (!auth_user(m->g, r, &uid)) return;
  download_t *d = calloc(1, sizeof *d);
  if (!d) {
    http_respond_error(r, 503, "overloaded", "out of memory");
    return;
  }
  str_t key = http_req_param(r, "key");
  if (!media_key_parse(key.p, key.n, d->id)) {
    free(d);
    http_respond_error(r, 404, "media_not_found", "no such media");
    return;
  }
  d->m = m;
  d->r = r;
  d->user_id = uid;
  memcpy(d->key, key.p, key.n);
  json_t *p = json_pack("{s:I, s:s}", "userId", (json_int_t)uid, "key", d->key);
  char *s = p ? json_dumps(p, JSON_COMPACT) : NULL;
  json_decref(p);
  int rc = s ? bus_request(m->g->bus, "media.get", s, strlen(s), MEDIA_CALL_TIMEOUT_MS, on_meta, d, NULL)
             : -ENOMEM;
  free(s);
  if (rc < 0) {
    free(d);
    http_respond_error(r, 503, "service_unavailable", "the bus is not available");
  }
}

/* ---------------------------------------------------------------- delete */

static void on_delete(http_req_t *r, void *arg) {
  gateway_media_t *m = arg;
  int64_t uid;
  if (!auth_user(m->g, r, &uid)) return;
  str_t key = http_req_param(r, "key");
  char id[MEDIA_OBJECT_ID_LEN + 1];
  if (!media_key_parse(key.p, key.n, id)) {
    http_respond_error(r, 404, "media_not_found", "no such media");
    return;
  }
  gw_forward_json(m->g, r, "media.delete.requested",
                  json_pack("{s:I, s:s%}", "userId", (json_int_t)uid, "key", key.p, key.n), 204);
}

/* ------------------------------------------------------------- lifecycle */

int gateway_media_start(gateway_t *g, const gateway_media_opts_t *o, gateway_media_t **out) {
  if (!g || !o || !o->storage || !o->max_image || !o->max_video) return -EINVAL;
  gateway_media_t *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->g = g;
  m->o = *o;
  uint64_t max = o->max_image > o->max_video ? o->max_image : o->max_video;
  int rc = net_server_route_stream(g->server, "POST", "/media/upload", on_upload, m,
                                   max + GW_MEDIA_FORM_OVERHEAD);
  if (rc == 0) rc = net_server_route(g->server, "GET", "/media/{key}", on_download, m, 0);
  if (rc == 0) rc = net_server_route(g->server, "DELETE", "/media/{key}", on_delete, m, 0);
  if (rc < 0) {
    free(m); /* routes already added point at m: the caller must not serve */
    return rc;
  }
  *out = m;
  return 0;
}

void gateway_media_free(gateway_media_t *m) { free(m); }
