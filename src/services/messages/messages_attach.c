/*
 * messages_attach.c — message attachments: the ownership check of a send
 * and the messages.attachment.check subject.
 *
 * Rule (issue 7): a message may carry media keys its author uploaded;
 * members of its channel may then download them. Ownership is the media
 * service's data, membership ours, so each service checks its half:
 *
 *   - On send, before the append, every distinct key is asked to the
 *     media service as `media.get {userId: author, key, ownerOnly: true}`
 *     (404 unless the author uploaded it), all in parallel. A 404 fails
 *     the send with 400 invalid_attachments; any other failure (timeout,
 *     no responder, 5xx) with 503 unavailable: nothing is stored unchecked.
 *     The requests use the service's users_timeout_ms: one setting for
 *     the questions this service asks other services.
 *     A send without attachments never gets here (no extra hop).
 *     Ordering: while the check is in flight the job waits in its
 *     channel's queue (messages_send.c), and later sends of that channel
 *     wait behind it, so the seqs still follow arrival order. The checked keys go to the store
 *     with the append, which indexes them in the message's transaction.
 *   - `messages.attachment.check {userId, key}` → `{visible: bool}`: asked
 *     by the media service for a reader who is not the uploader; answered
 *     from the store's index on the pool (attachment_visible).
 *
 * Loop only, except the work function of the check subject (pool: its
 * job and the thread-safe store).
 */
#include "services/messages/messages_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/json_object.h"
#include "core/log.h"

#define COMPONENT "messages"
/* {userId, key}: a key of at most 200 bytes, escaped, fits many times. */
#define CHECK_REQUEST_MAX 4096

_Static_assert(MESSAGES_ATTACHMENTS_MAX <= MSG_ATTACH_KEYS_MAX, "the store indexes every key");
_Static_assert(MESSAGES_ATTACHMENT_KEY_MAX <= MSG_ATTACH_KEY_MAX, "the store takes every key");

typedef struct {
  msg_attach_t *a;
  uint64_t id;
  bool live; /* request in flight */
} attach_req_t;

struct msg_attach {
  msg_job_t *job;
  size_t nkeys;
  str_t keys[MESSAGES_ATTACHMENTS_MAX]; /* distinct, into text */
  attach_req_t reqs[MESSAGES_ATTACHMENTS_MAX];
  int waiting;      /* requests in flight */
  bool not_owned;   /* a 404: some key is not the author's */
  bool failed;      /* some answer could not be had */
  char text[];
};

/* ---- the ownership check of a send ---- */

static void cancel_all(msg_attach_t *a) {
  messages_service_t *s = a->job->svc;
  for (size_t i = 0; i < a->nkeys; i++) {
    if (!a->reqs[i].live) continue;
    bus_request_cancel(s->o.bus, a->reqs[i].id);
    a->reqs[i].live = false;
  }
  a->waiting = 0;
}

/* The media service's answer about one key: owned, not owned (404), or
 * no answer to be had. */
static void read_answer(msg_attach_t *a, int status, const bus_msg_t *msg) {
  if (status < 0) {
    a->failed = true;
    return;
  }
  json_t *root = json_loadb(msg->data ? msg->data : "", msg->len, 0, NULL);
  json_t *err = json_object_get(root, "error");
  if (json_is_string(json_object_get(root, "key")) && !err)
    ; /* owned */
  else if (json_integer_value(json_object_get(err, "status")) == 404)
    a->not_owned = true;
  else
    a->failed = true;
  json_decref(root);
}

static void on_media_answer(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  attach_req_t *r = arg;
  msg_attach_t *a = r->a;
  msg_job_t *j = a->job;
  r->live = false;
  read_answer(a, status, msg);
  if (status < 0) log_debug(COMPONENT, "media.get for an attachment failed: %d", status);
  if (--a->waiting > 0) return;
  /* A refusal is definitive; a failure alone only means "try again". */
  if (a->not_owned) {
    j->err = MSG_E_INVALID_ATTACHMENTS;
    j->detail = "attachments must be media keys you uploaded";
  } else if (a->failed) {
    j->err = MSG_E_UNAVAILABLE;
    j->detail = "the media service is unavailable";
  }
  msg_send_attach_done(j);
}

/* The distinct keys of the attachments text (a JSON array of strings
 * built by msg_req_parse). NULL when out of memory or malformed. */
static msg_attach_t *parse_keys(msg_job_t *j) {
  json_t *arr = json_loadb(j->req.attachments, j->req.attachments_len, 0, NULL);
  size_t n = json_array_size(arr), bytes = 0;
  if (!json_is_array(arr) || n == 0 || n > MESSAGES_ATTACHMENTS_MAX) {
    json_decref(arr);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) bytes += json_string_length(json_array_get(arr, i)) + 1;
  msg_attach_t *a = calloc(1, sizeof *a + bytes);
  if (!a) {
    json_decref(arr);
    return NULL;
  }
  a->job = j;
  char *p = a->text;
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_array_get(arr, i);
    str_t k = {json_string_value(v), json_string_length(v)};
    if (!k.p) {
      free(a);
      json_decref(arr);
      return NULL;
    }
    bool seen = false;
    for (size_t q = 0; q < a->nkeys && !seen; q++) seen = str_eq(a->keys[q], k);
    if (seen) continue;
    memcpy(p, k.p, k.n);
    p[k.n] = '\0';
    a->keys[a->nkeys++] = (str_t){p, k.n};
    p += k.n + 1;
  }
  json_decref(arr);
  return a;
}

int msg_attach_start(msg_job_t *j) {
  messages_service_t *s = j->svc;
  msg_attach_t *a = parse_keys(j);
  if (!a) {
    j->err = MSG_E_UNAVAILABLE;
    return -ENOMEM;
  }
  j->attach = a;
  for (size_t i = 0; i < a->nkeys; i++) {
    buf_t b = BUF_INIT;
    buf_printf(&b, "{\"userId\":%" PRId64 ",\"key\":\"", j->req.user_id);
    buf_append_json_escaped(&b, a->keys[i].p, a->keys[i].n);
    buf_append_str(&b, "\",\"ownerOnly\":true}");
    attach_req_t *r = &a->reqs[i];
    r->a = a;
    int rc = b.oom ? -ENOMEM
                   : bus_request(s->o.bus, "media.get", b.data, b.len, s->o.users_timeout_ms,
                                 on_media_answer, r, &r->id);
    buf_free(&b);
    if (rc < 0) {
      log_debug(COMPONENT, "media.get for an attachment not sent: %d", rc);
      cancel_all(a);
      j->err = MSG_E_UNAVAILABLE;
      j->detail = "the media service is unavailable";
      return rc;
    }
    r->live = true;
    a->waiting++;
  }
  /* Answers never arrive inside bus_request: the caller queues the job
   * before any can. */
  return 0;
}

bool msg_attach_waiting(const msg_job_t *j) { return j->attach && j->attach->waiting > 0; }

const str_t *msg_attach_keys(const msg_job_t *j, size_t *n) {
  *n = j->attach ? j->attach->nkeys : 0;
  return j->attach ? j->attach->keys : NULL;
}

void msg_attach_free(msg_job_t *j) {
  if (!j->attach) return;
  cancel_all(j->attach);
  free(j->attach);
  j->attach = NULL;
}

/* ---- messages.attachment.check ---- */

static const char CHECK_OP[] = "attachment.check"; /* metrics label */

static void check_answer(messages_service_t *s, const char *reply, msg_err_t e,
                         const char *detail, const char *data, size_t len) {
  const char *labels[2] = {CHECK_OP, msg_err_code(e)};
  metrics_inc(metrics_series(s->requests, labels));
  buf_t b = BUF_INIT;
  if (e != MSG_OK) {
    msg_err_json(e, detail, &b);
    data = b.data;
    len = b.len;
  }
  bus_msg_t m = {.subject = reply, .reply = reply};
  int rc = b.oom ? -ENOMEM : bus_respond(s->o.bus, &m, data, len);
  if (rc < 0) log_debug(COMPONENT, "reply to %s not sent: %d", reply, rc);
  buf_free(&b);
}

/* Pool: the store's answer, kept in j->num (1, 0 or -errno). */
static void check_work(msg_job_t *j) {
  messages_store_t *st = j->svc->o.store;
  j->num = st->ops->attachment_visible(st, j->req.body, j->req.user_id);
}

static void check_after(msg_job_t *j) {
  messages_service_t *s = j->svc;
  j->replied = true;
  if (j->num < 0) {
    log_debug(COMPONENT, "attachment_visible failed: %" PRId64, j->num);
    check_answer(s, j->reply, MSG_E_UNAVAILABLE, NULL, NULL, 0);
  } else if (j->num) {
    check_answer(s, j->reply, MSG_OK, NULL, "{\"visible\":true}", 16);
  } else {
    check_answer(s, j->reply, MSG_OK, NULL, "{\"visible\":false}", 17);
  }
  msg_job_end(j);
}

void msg_attach_on_check(bus_t *bus, const bus_msg_t *msg, void *arg) {
  messages_service_t *s = arg;
  if (!msg->reply) {
    log_debug(COMPONENT, "%s without a reply subject dropped", msg->subject);
    return;
  }
  const char *detail = NULL;
  json_t *o = json_object_load_bounded(msg->data, msg->len, CHECK_REQUEST_MAX, &detail);
  json_t *uid = json_object_get(o, "userId"), *key = json_object_get(o, "key");
  size_t kn = json_string_length(key);
  const char *kp = json_string_value(key);
  if (!o) {
    /* detail from the loader */
  } else if (!json_is_integer(uid) || json_integer_value(uid) <= 0) {
    detail = "userId must be a positive integer";
  } else if (!kp || kn < 1 || kn > MESSAGES_ATTACHMENT_KEY_MAX || memchr(kp, 0, kn)) {
    detail = "key must be a string of 1-200 bytes";
  }
  msg_job_t *j = detail ? NULL : msg_job_new(s, msg->reply);
  if (detail || !j) {
    json_decref(o);
    check_answer(s, msg->reply, detail ? MSG_E_BAD_REQUEST : MSG_E_UNAVAILABLE,
                 detail ? detail : "out of memory", NULL, 0);
    return;
  }
  j->req.op = MSG_OP_COUNT; /* not a msg_req_parse op */
  j->req.user_id = (int64_t)json_integer_value(uid);
  j->req.body = malloc(kn + 1); /* the key; freed with the request */
  if (j->req.body) {
    memcpy(j->req.body, kp, kn);
    j->req.body[kn] = '\0';
    j->req.body_len = kn;
  }
  json_decref(o);
  if (!j->req.body) {
    j->replied = true;
    check_answer(s, msg->reply, MSG_E_UNAVAILABLE, "out of memory", NULL, 0);
    msg_job_end(j);
    return;
  }
  msg_job_submit(j, check_work, check_after);
}
