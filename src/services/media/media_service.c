/*
 * media_service.c — subscriptions, jobs and the work done on the thread
 * pool (contract in media_service.h).
 *
 * A request's life, as in the users service: the bus callback (loop)
 * parses and validates the payload into a job, answering bad input at
 * once; a valid job goes to uv_queue_work, whose work callback (pool) does
 * every store and storage call and writes the reply into the job; the
 * after-work callback (loop) sends it and frees the job.
 */
#include "services/media/media_service.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "core/buf.h"
#include "core/json_object.h"
#include "core/log.h"
#include "services/media/media_key.h"

#define COMPONENT "media"
#define QUEUE_GROUP "media"
#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))
#define SMALL_REQUEST_MAX 4096

_Static_assert(MEDIA_REC_KEY_MAX == MEDIA_KEY_MAX, "the store holds every key");
/* base64 of MEDIA_BUS_UPLOAD_MAX plus the other fields and some slack. */
#define UPLOAD_REQUEST_MAX (MEDIA_BUS_UPLOAD_MAX / 3 * 4 + 8192)

static const char OOM_REPLY[] =
    "{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\",\"status\":503}}";

typedef enum { OP_RECORD, OP_GET, OP_UPLOAD, OP_DELETE, OP_COUNT } op_t;

static const char *const subjects[OP_COUNT] = {
    [OP_RECORD] = "media.record",
    [OP_GET] = "media.get",
    [OP_UPLOAD] = "media.upload.requested",
    [OP_DELETE] = "media.delete.requested",
};
static const char *const op_names[OP_COUNT] = {"record", "get", "upload", "delete"};

typedef struct job {
  uv_work_t work;
  struct media_service *svc;
  struct job *prev, *next;
  op_t op;
  int64_t user_id;
  char key[MEDIA_KEY_MAX + 1];
  char id[MEDIA_OBJECT_ID_LEN + 1];
  char mime[MEDIA_REC_MIME_MAX + 1];
  int64_t size;
  uint8_t sha256[32];
  char *filename; /* upload: raw, sanitized on the pool */
  size_t filename_len;
  char *b64;      /* upload: the base64 text */
  size_t b64_len;
  bool owner_only; /* get: ownerOnly */
  bool ask;        /* get: not the owner's; out holds the answer if visible */
  bool asking;     /* messages.attachment.check in flight (req_id) */
  uint64_t req_id;
  int status;     /* 0 = success, else the HTTP status of the error */
  const char *code;
  char message[200];
  buf_t out;
  char reply[];
} job_t;

typedef struct {
  struct media_service *svc;
  op_t op;
} route_t;

struct media_service {
  media_service_opts_t o;
  route_t routes[OP_COUNT];
  bus_sub_t *subs[OP_COUNT];
  job_t *running;
  int nrunning;
  uv_idle_t done_handle; /* never started: finishes stop through uv_close */
  bool stopping, closing;
  void (*done)(void *);
  void *done_arg;
  metrics_family_t *requests;
};

/* ---- policy ---- */

void media_service_opts_default(media_service_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->max_image = 10ULL << 20;
  o->max_video = 100ULL << 20;
  o->check_timeout_ms = 2000;
}

uint64_t media_kind_limit(const media_service_opts_t *o, media_kind_t kind) {
  return kind == MEDIA_KIND_IMAGE ? o->max_image : kind == MEDIA_KIND_VIDEO ? o->max_video : 0;
}

media_read_t media_read_decision(const media_rec_t *rec, int64_t user_id, bool owner_only) {
  if (rec->owner_id == user_id) return MEDIA_READ_OWNER;
  return owner_only ? MEDIA_READ_DENIED : MEDIA_READ_ASK;
}

static bool mime_accepted(const char *m) {
  static const char *const ok[] = {"image/jpeg", "image/png", "image/gif", "image/webp",
                                   "video/mp4",  "video/webm", "video/avi"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    if (strcmp(m, ok[i]) == 0) return true;
  return false;
}

static void set_err(job_t *j, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_err(job_t *j, int status, const char *code, const char *fmt, ...) {
  j->status = status;
  j->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->message, sizeof j->message, fmt, ap);
  va_end(ap);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* {key, url, mime, size, sha256[, created_at]} */
static void rec_json(const media_rec_t *r, bool created, buf_t *out) {
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, r->sha256, 32);
  buf_append_str(out, "{\"key\":\"");
  buf_append_json_escaped(out, r->key, strlen(r->key));
  buf_append_str(out, "\",\"url\":\"/media/");
  buf_append_json_escaped(out, r->key, strlen(r->key));
  buf_printf(out, "\",\"mime\":\"%s\",\"size\":%" PRId64 ",\"sha256\":\"%s\"", r->mime, r->size, hex);
  if (created) buf_printf(out, ",\"created_at\":%" PRId64, r->created_at);
  buf_append_char(out, '}');
}

static void store_failed(job_t *j, const char *what, int rc) {
  log_debug(COMPONENT, "%s: store error %d", what, rc);
  set_err(j, 503, "unavailable", "media store temporarily unavailable");
}

/* ---- the pool side ---- */

static void work_record(job_t *j) {
  media_service_t *s = j->svc;
  media_rec_t r = {.owner_id = j->user_id, .size = j->size, .created_at = now_ms()};
  snprintf(r.key, sizeof r.key, "%s", j->key);
  snprintf(r.mime, sizeof r.mime, "%s", j->mime);
  memcpy(r.sha256, j->sha256, 32);
  int rc = s->o.store->ops->insert(s->o.store, &r);
  if (rc == -EEXIST) {
    set_err(j, 409, "media_exists", "this key is already recorded");
    return;
  }
  if (rc < 0) {
    store_failed(j, "insert", rc);
    return;
  }
  rec_json(&r, false, &j->out);
}

static void work_get(job_t *j) {
  media_service_t *s = j->svc;
  media_rec_t r;
  int rc = s->o.store->ops->get(s->o.store, j->key, &r);
  media_read_t d = rc == 0 ? media_read_decision(&r, j->user_id, j->owner_only) : MEDIA_READ_DENIED;
  if (rc == 0 && d == MEDIA_READ_DENIED) rc = -ENOENT;
  if (rc == -ENOENT) {
    set_err(j, 404, "media_not_found", "no such media");
    return;
  }
  if (rc < 0) {
    store_failed(j, "get", rc);
    return;
  }
  j->ask = d == MEDIA_READ_ASK; /* the answer waits for the messages service */
  rec_json(&r, true, &j->out);
}

static void work_delete(job_t *j) {
  media_service_t *s = j->svc;
  /* Metadata first: once it is gone nobody can reach the bytes; a failed
   * file removal then only leaves an orphan, which is logged. */
  int rc = s->o.store->ops->remove(s->o.store, j->key, j->user_id);
  if (rc == -ENOENT) {
    set_err(j, 404, "media_not_found", "no such media");
    return;
  }
  if (rc < 0) {
    store_failed(j, "remove", rc);
    return;
  }
  rc = s->o.storage->ops->remove(s->o.storage, j->id);
  if (rc < 0 && rc != -ENOENT)
    log_warn(COMPONENT, "object %s of deleted media not removed: %s", j->id, strerror(-rc));
  buf_append_str(&j->out, "{\"ok\":true}");
}

static void work_upload(job_t *j) {
  media_service_t *s = j->svc;
  size_t cap = j->b64_len / 4 * 3 + 3;
  unsigned char *bin = malloc(cap ? cap : 1);
  if (!bin) {
    set_err(j, 503, "unavailable", "out of memory");
    return;
  }
  size_t n = 0;
  if (sodium_base642bin(bin, cap, j->b64, j->b64_len, " \r\n", &n, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    set_err(j, 400, "bad_request", "data is not valid base64");
    goto out;
  }
  if (n > MEDIA_BUS_UPLOAD_MAX) {
    set_err(j, 413, "payload_too_large", "bus uploads are limited to %d bytes; use HTTP",
            MEDIA_BUS_UPLOAD_MAX);
    goto out;
  }
  media_kind_t kind;
  const char *mime = media_sniff(bin, n, &kind);
  if (kind == MEDIA_KIND_NONE) {
    set_err(j, 415, "unsupported_media_type", "unsupported media type: detected %s", mime);
    goto out;
  }
  if (n > media_kind_limit(&s->o, kind)) {
    set_err(j, 413, "payload_too_large", "%s files are limited to %" PRIu64 " bytes",
            kind == MEDIA_KIND_IMAGE ? "image" : "video", media_kind_limit(&s->o, kind));
    goto out;
  }
  media_rec_t r = {.owner_id = j->user_id, .size = (int64_t)n, .created_at = now_ms()};
  media_key_new(j->filename, j->filename_len, r.key);
  snprintf(r.mime, sizeof r.mime, "%s", mime);
  crypto_hash_sha256(r.sha256, bin, n);
  char id[MEDIA_OBJECT_ID_LEN + 1];
  memcpy(id, r.key, MEDIA_OBJECT_ID_LEN);
  id[MEDIA_OBJECT_ID_LEN] = '\0';
  int rc = s->o.storage->ops->put(s->o.storage, id, bin, n);
  if (rc < 0) {
    log_error(COMPONENT, "storing %s failed: %s", id, strerror(-rc));
    set_err(j, 503, "storage_unavailable", "media storage failed");
    goto out;
  }
  rc = s->o.store->ops->insert(s->o.store, &r);
  if (rc < 0) {
    s->o.storage->ops->remove(s->o.storage, id);
    store_failed(j, "insert", rc);
    goto out;
  }
  rec_json(&r, false, &j->out);
out:
  free(bin);
}

static void on_work(uv_work_t *w) {
  job_t *j = container_of(w, job_t, work);
  switch (j->op) {
  case OP_RECORD: work_record(j); break;
  case OP_GET: work_get(j); break;
  case OP_UPLOAD: work_upload(j); break;
  case OP_DELETE: work_delete(j); break;
  default: set_err(j, 503, "unavailable", "unknown operation"); break;
  }
  if (j->status == 0 && j->out.oom) set_err(j, 503, "unavailable", "out of memory");
}

/* ---- the loop side ---- */

static void job_free(job_t *j) {
  free(j->filename);
  free(j->b64);
  buf_free(&j->out);
  free(j);
}

static void send_reply(media_service_t *s, const char *reply, const char *data, size_t len) {
  bus_msg_t m = {.subject = reply, .reply = reply};
  int rc = bus_respond(s->o.bus, &m, data, len);
  if (rc < 0) log_debug(COMPONENT, "reply to %s not sent: %d", reply, rc);
}

static void job_finish(media_service_t *s, job_t *j) {
  const char *labels[2] = {op_names[j->op], j->status ? j->code : "ok"};
  metrics_inc(metrics_series(s->requests, labels));
  if (j->status == 0) {
    send_reply(s, j->reply, j->out.data, j->out.len);
  } else {
    buf_t b = BUF_INIT;
    buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":\"", j->code);
    buf_append_json_escaped(&b, j->message, strlen(j->message));
    buf_printf(&b, "\",\"status\":%d}}", j->status);
    if (b.oom)
      send_reply(s, j->reply, OOM_REPLY, sizeof OOM_REPLY - 1);
    else
      send_reply(s, j->reply, b.data, b.len);
    buf_free(&b);
  }
  job_free(j);
}

static void on_done_closed(uv_handle_t *h) {
  media_service_t *s = h->data;
  if (s->done) s->done(s->done_arg);
}

static void maybe_done(media_service_t *s) {
  if (!s->stopping || s->closing || s->nrunning > 0) return;
  s->closing = true;
  uv_close((uv_handle_t *)&s->done_handle, on_done_closed);
}

static void job_unlink(media_service_t *s, job_t *j) {
  if (j->prev)
    j->prev->next = j->next;
  else
    s->running = j->next;
  if (j->next) j->next->prev = j->prev;
  s->nrunning--;
}

/* messages.attachment.check answered: the key is visible to the reader
 * ({visible: true}: j->out is the answer), not (404), or unknown (503). */
static void on_check_answer(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  job_t *j = arg;
  media_service_t *s = j->svc;
  j->asking = false;
  json_t *root = status == 0 ? json_loadb(msg->data ? msg->data : "", msg->len, 0, NULL) : NULL;
  json_t *v = json_object_get(root, "visible");
  if (json_is_false(v)) {
    set_err(j, 404, "media_not_found", "no such media");
  } else if (!json_is_true(v)) {
    log_debug(COMPONENT, "messages.attachment.check failed (%d)", status);
    set_err(j, 503, "unavailable", "the messages service did not answer the read check");
  }
  json_decref(root);
  job_unlink(s, j);
  job_finish(s, j);
  maybe_done(s);
}

/* Asks whether the reader of j may see its key as an attachment; 0 when
 * asked (the job stays running until the answer), else j's error set. */
static int ask_messages(media_service_t *s, job_t *j) {
  if (s->stopping) {
    set_err(j, 503, "unavailable", "the media service is stopping");
    return -ESHUTDOWN;
  }
  buf_t b = BUF_INIT;
  buf_printf(&b, "{\"userId\":%" PRId64 ",\"key\":\"", j->user_id);
  buf_append_json_escaped(&b, j->key, strlen(j->key));
  buf_append_str(&b, "\"}");
  int rc = b.oom ? -ENOMEM
                 : bus_request(s->o.bus, "messages.attachment.check", b.data, b.len,
                               s->o.check_timeout_ms, on_check_answer, j, &j->req_id);
  buf_free(&b);
  if (rc < 0) {
    log_debug(COMPONENT, "messages.attachment.check not sent: %d", rc);
    set_err(j, 503, "unavailable", "the messages service did not answer the read check");
    return rc;
  }
  j->asking = true;
  return 0;
}

static void on_after_work(uv_work_t *w, int status) {
  job_t *j = container_of(w, job_t, work);
  media_service_t *s = j->svc;
  if (status == UV_ECANCELED)
    set_err(j, 503, "unavailable", "the media service is stopping");
  else if (j->status == 0 && j->ask && ask_messages(s, j) == 0)
    return; /* still running: on_check_answer finishes it */
  job_unlink(s, j);
  job_finish(s, j);
  maybe_done(s);
}

/* Field readers: each sets the job's error and returns false. */
static bool get_user(job_t *j, json_t *o) {
  json_t *v = json_object_get(o, "userId");
  if (!json_is_integer(v) || json_integer_value(v) <= 0) {
    set_err(j, 400, "bad_request", "userId must be a positive integer");
    return false;
  }
  j->user_id = json_integer_value(v);
  return true;
}

static bool get_key(job_t *j, json_t *o, int bad_status) {
  const char *k = json_string_value(json_object_get(o, "key"));
  size_t n = k ? json_string_length(json_object_get(o, "key")) : 0;
  if (!k || !media_key_parse(k, n, j->id)) {
    if (bad_status == 404)
      set_err(j, 404, "media_not_found", "no such media");
    else
      set_err(j, 400, "bad_request", "key is not a media key");
    return false;
  }
  memcpy(j->key, k, n + 1);
  return true;
}

static bool get_owner_only(job_t *j, json_t *o) {
  json_t *v = json_object_get(o, "ownerOnly");
  if (v && !json_is_boolean(v)) {
    set_err(j, 400, "bad_request", "ownerOnly must be a boolean");
    return false;
  }
  j->owner_only = json_is_true(v);
  return true;
}

static bool parse_record(job_t *j, json_t *o) {
  if (!get_user(j, o) || !get_key(j, o, 400)) return false;
  const char *mime = json_string_value(json_object_get(o, "mime"));
  json_t *size = json_object_get(o, "size");
  const char *sha = json_string_value(json_object_get(o, "sha256"));
  if (!mime || !mime_accepted(mime)) {
    set_err(j, 400, "bad_request", "mime must be one of the accepted types");
    return false;
  }
  if (!json_is_integer(size) || json_integer_value(size) < 0) {
    set_err(j, 400, "bad_request", "size must be a non-negative integer");
    return false;
  }
  size_t bl = 0;
  if (!sha || strlen(sha) != 64 ||
      sodium_hex2bin(j->sha256, 32, sha, 64, NULL, &bl, NULL) != 0 || bl != 32) {
    set_err(j, 400, "bad_request", "sha256 must be 64 hex characters");
    return false;
  }
  snprintf(j->mime, sizeof j->mime, "%s", mime);
  j->size = json_integer_value(size);
  return true;
}

static bool parse_upload(job_t *j, json_t *o) {
  if (!get_user(j, o)) return false;
  json_t *fn = json_object_get(o, "filename"), *data = json_object_get(o, "data");
  json_t *ct = json_object_get(o, "contentType");
  if (fn && !json_is_string(fn)) {
    set_err(j, 400, "bad_request", "filename must be a string");
    return false;
  }
  if (!json_is_string(data)) {
    set_err(j, 400, "bad_request", "data must be a base64 string");
    return false;
  }
  /* contentType is accepted for the record but never trusted: the bytes decide. */
  if (ct && !json_is_string(ct) && !json_is_null(ct)) {
    set_err(j, 400, "bad_request", "contentType must be a string");
    return false;
  }
  j->filename_len = fn ? json_string_length(fn) : 0;
  j->b64_len = json_string_length(data);
  j->filename = malloc(j->filename_len + 1);
  j->b64 = malloc(j->b64_len + 1);
  if (!j->filename || !j->b64) {
    set_err(j, 503, "unavailable", "out of memory");
    return false;
  }
  if (j->filename_len) memcpy(j->filename, json_string_value(fn), j->filename_len);
  memcpy(j->b64, json_string_value(data), j->b64_len);
  return true;
}

static void on_msg(bus_t *bus, const bus_msg_t *msg, void *arg) {
  route_t *rt = arg;
  media_service_t *s = rt->svc;
  if (!msg->reply) {
    log_debug(COMPONENT, "%s without a reply subject dropped", msg->subject);
    return;
  }
  size_t rlen = strlen(msg->reply);
  job_t *j = calloc(1, sizeof *j + rlen + 1);
  if (!j) {
    send_reply(s, msg->reply, OOM_REPLY, sizeof OOM_REPLY - 1);
    return;
  }
  memcpy(j->reply, msg->reply, rlen + 1);
  j->svc = s;
  j->op = rt->op;
  const char *detail = NULL;
  json_t *o = json_object_load_bounded(msg->data, msg->len,
                                       rt->op == OP_UPLOAD ? UPLOAD_REQUEST_MAX : SMALL_REQUEST_MAX,
                                       &detail);
  bool ok = false;
  if (!o) {
    set_err(j, detail && strstr(detail, "large") ? 413 : 400,
            detail && strstr(detail, "large") ? "payload_too_large" : "bad_request", "%s",
            detail ? detail : "malformed request");
  } else {
    switch (rt->op) {
    case OP_RECORD: ok = parse_record(j, o); break;
    case OP_GET: ok = get_user(j, o) && get_key(j, o, 404) && get_owner_only(j, o); break;
    case OP_DELETE: ok = get_user(j, o) && get_key(j, o, 404); break;
    case OP_UPLOAD: ok = parse_upload(j, o); break;
    default: break;
    }
    json_decref(o);
  }
  if (!ok) {
    job_finish(s, j);
    return;
  }
  int rc = uv_queue_work(s->o.loop, &j->work, on_work, on_after_work);
  if (rc < 0) {
    set_err(j, 503, "unavailable", "could not queue the request");
    job_finish(s, j);
    return;
  }
  j->next = s->running;
  if (s->running) s->running->prev = j;
  s->running = j;
  s->nrunning++;
}

/* ---- lifecycle ---- */

static void unsubscribe_all(media_service_t *s) {
  for (int i = 0; i < OP_COUNT; i++) {
    if (s->subs[i]) bus_unsubscribe(s->subs[i]);
    s->subs[i] = NULL;
  }
}

int media_service_start(const media_service_opts_t *o, media_service_t **out) {
  *out = NULL;
  if (!o || !o->loop || !o->bus || !o->store || !o->storage || !o->max_image || !o->max_video ||
      !o->check_timeout_ms)
    return -EINVAL;
  media_service_t *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->o = *o;
  static const char *const labels[] = {"op", "result"};
  s->requests = metrics_counter_new(o->metrics ? o->metrics : metrics_default(),
                                    "storm_media_requests_total",
                                    "Media service requests by operation and result code.", 2,
                                    labels);
  for (int i = 0; i < OP_COUNT; i++) {
    s->routes[i] = (route_t){s, (op_t)i};
    int rc = bus_subscribe(o->bus, subjects[i], QUEUE_GROUP, on_msg, &s->routes[i], &s->subs[i]);
    if (rc < 0) {
      log_error(COMPONENT, "subscribing to %s failed: %d", subjects[i], rc);
      unsubscribe_all(s);
      free(s);
      return rc;
    }
  }
  uv_idle_init(o->loop, &s->done_handle);
  s->done_handle.data = s;
  *out = s;
  return 0;
}

void media_service_stop(media_service_t *s, void (*done)(void *), void *arg) {
  if (!s || s->stopping) return;
  s->stopping = true;
  s->done = done;
  s->done_arg = arg;
  unsubscribe_all(s);
  job_t *j = s->running;
  while (j) {
    job_t *next = j->next;
    if (j->asking) { /* past the pool: only the bus answer is awaited */
      bus_request_cancel(s->o.bus, j->req_id);
      j->asking = false;
      set_err(j, 503, "unavailable", "the media service is stopping");
      job_unlink(s, j);
      job_finish(s, j);
    } else {
      uv_cancel((uv_req_t *)&j->work);
    }
    j = next;
  }
  maybe_done(s);
}

void media_service_free(media_service_t *s) { free(s); }
