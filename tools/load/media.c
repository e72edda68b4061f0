/* media.c — scenario `media`, the mirror of tests/k6/media-upload.js: each
 * VU registers and logs in once, then every iteration uploads the same 1×1
 * PNG (POST /media/upload, multipart/form-data, field `file`) and checks
 * 201 with "mime":"image/png" (docs/media.md: the server types the bytes,
 * so a wrong answer means the upload path broke, not the client's label).
 * Thresholds as in the k6 script: upload p95 < 2000 ms and failed uploads
 * < 5%; the report says whether each held, exit 1 if not.
 *
 * An iteration is one upload. A VU whose login failed counts the iteration
 * it claimed as failed and stops (k6 would send it without a token and get
 * 401): the error rate sees it without hammering a server that refuses. */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/hist.h"
#include "load/report.h"
#include "load/run.h"
#include "load/setup.h"
#include "load/vu.h"

#define MEDIA_P95_MS 2000.0
#define MEDIA_MAX_ERROR_RATE 0.05
#define MEDIA_BOUNDARY "storm-load-media-8c1f2a"
#define MEDIA_STATUS_MAX 600 /* status codes counted by value; 0: no answer */

/* A valid 1×1 RGBA PNG: signature, IHDR (1×1, depth 8, color type 6), an
 * IDAT holding the zlib stream of one filtered row (filter 0, one red
 * opaque pixel), IEND; every chunk with its CRC-32. The same 70 bytes as
 * the k6 script's base64, so both measure the same upload. */
static const unsigned char png_1x1[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a,                         /* signature */
    0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, /* IHDR: width 1 */
    0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, /* height 1, 8, RGBA; CRC */
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, /* IDAT: zlib header */
    0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, /* deflate, adler32, CRC */
    0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, /* IEND */
    0x60, 0x82};

typedef struct {
  const load_opts_t *o;
  vu_ctl_t ctl;
  buf_t form; /* the multipart body, built once, read by every VU */
  pthread_mutex_t mu;
  lhist_t upload;
  uint64_t iterations, requests, ok, mime_mismatch, no_token_vus;
  uint64_t status[MEDIA_STATUS_MAX];
} media_run_t;

/* One part, field `file`; the file name is fixed because the key's name
 * part does not matter here and the body can then be shared. */
static void build_form(buf_t *b) {
  buf_append_str(b, "--" MEDIA_BOUNDARY "\r\n"
                    "Content-Disposition: form-data; name=\"file\"; filename=\"storm-load.png\"\r\n"
                    "Content-Type: image/png\r\n\r\n");
  buf_append(b, png_1x1, sizeof png_1x1);
  buf_append_str(b, "\r\n--" MEDIA_BOUNDARY "--\r\n");
}

/* One upload: true on 201 with mime image/png. Records it either way. */
static bool upload(media_run_t *m, const char *token) {
  buf_t b = BUF_INIT;
  int status = 0;
  uint64_t t = vu_now_us();
  int rc = target_request(&m->o->target, "POST", "/media/upload", token,
                          "multipart/form-data; boundary=" MEDIA_BOUNDARY, m->form.data, m->form.len, &status, &b);
  uint64_t us = vu_now_us() - t;
  bool ok = false, mismatch = false;
  if (rc == 0 && status == 201) {
    json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    const char *mime = json_string_value(json_object_get(j, "mime"));
    ok = mime && !strcmp(mime, "image/png");
    mismatch = !ok;
    json_decref(j);
  }
  int slot = rc == 0 && status > 0 && status < MEDIA_STATUS_MAX ? status : 0;
  pthread_mutex_lock(&m->mu);
  lhist_record(&m->upload, us);
  m->requests++;
  m->status[slot]++;
  m->ok += ok;
  m->mime_mismatch += mismatch;
  uint64_t failed = m->requests - m->ok;
  pthread_mutex_unlock(&m->mu);
  if (!ok && failed <= 3) { /* the first few say why; the report counts them all */
    if (rc < 0) fprintf(stderr, "storm-load: POST /media/upload: %s\n", strerror(-rc));
    else
      fprintf(stderr, "storm-load: POST /media/upload: HTTP %d%s %.200s\n", status,
              mismatch ? " without mime image/png" : "", b.data ? b.data : "");
  }
  buf_free(&b);
  return ok;
}

static void vu_main(unsigned vu, void *arg) {
  media_run_t *m = arg;
  char name[48];
  snprintf(name, sizeof name, "%sm%u", m->o->prefix, vu);
  char *token = setup_user(&m->o->target, name);
  uint64_t iter;
  while (vu_next(&m->ctl, &iter)) {
    if (!token) {
      pthread_mutex_lock(&m->mu);
      m->iterations++;
      m->no_token_vus++;
      pthread_mutex_unlock(&m->mu);
      break;
    }
    upload(m, token);
    pthread_mutex_lock(&m->mu);
    m->iterations++;
    pthread_mutex_unlock(&m->mu);
  }
  free(token);
}

static json_t *status_json(const media_run_t *m) {
  json_t *s = json_object();
  for (int i = 0; i < MEDIA_STATUS_MAX; i++) {
    if (!m->status[i]) continue;
    char k[16];
    snprintf(k, sizeof k, "%d", i);
    json_object_set_new(s, k, json_integer((json_int_t)m->status[i]));
  }
  return s;
}

int load_run_media(const load_opts_t *o) {
  media_run_t *m = calloc(1, sizeof *m);
  if (!m) return 2;
  m->o = o;
  build_form(&m->form);
  if (m->form.oom) {
    buf_free(&m->form);
    free(m);
    return 2;
  }
  m->ctl.iterations = o->iterations;
  lhist_init(&m->upload);
  pthread_mutex_init(&m->mu, NULL);
  json_object_seed(0); /* before threads: jansson seeds its hash once */
  uint64_t t0 = vu_now_us();
  if (o->duration > 0) m->ctl.deadline_us = t0 + (uint64_t)(o->duration * 1e6);
  int vrc = vu_run(o->vus, vu_main, m);
  double secs = (double)(vu_now_us() - t0) / 1e6;
  int rc = 2;
  if (vrc < 0) {
    fprintf(stderr, "storm-load: cannot start the VUs: %s\n", strerror(-vrc));
    goto out;
  }
  /* Failed iterations: uploads that did not end in 201 + image/png, and
   * iterations a VU without a token could not run. */
  uint64_t failed = m->iterations - m->ok;
  double p95 = (double)lhist_percentile(&m->upload, 95) / 1000.0;
  double err_rate = m->iterations ? (double)failed / (double)m->iterations : 1.0;
  bool p95_ok = m->requests && p95 < MEDIA_P95_MS, err_ok = err_rate < MEDIA_MAX_ERROR_RATE;
  json_t *j = json_pack("{s:s,s:s,s:i,s:f,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:o,s:f,s:o,"
                        "s:{s:{s:f,s:f,s:b},s:{s:f,s:f,s:b}},s:[]}",
                        "scenario", "media", "target", o->target.host, "vus", (int)o->vus, "duration_s", secs,
                        "iterations", (json_int_t)m->iterations, "requests", (json_int_t)m->requests, "uploads_ok",
                        (json_int_t)m->ok, "failed_requests", (json_int_t)failed, "error_rate", err_rate,
                        "mime_mismatch", (json_int_t)m->mime_mismatch, "vus_without_token",
                        (json_int_t)m->no_token_vus, "png_bytes", (json_int_t)sizeof png_1x1, "status_codes",
                        status_json(m), "requests_per_s", secs > 0 ? (double)m->requests / secs : 0.0,
                        "http_req_ms", report_hist(&m->upload), "thresholds", "http_req_p95_ms", "limit",
                        MEDIA_P95_MS, "value", p95, "ok", p95_ok, "error_rate", "limit", MEDIA_MAX_ERROR_RATE,
                        "value", err_rate, "ok", err_ok, "series");
  if (!j) goto out;
  rc = report_output(o, j);
  json_decref(j);
  if (rc == 0 && (!p95_ok || !err_ok)) {
    fprintf(stderr, "storm-load: thresholds violated: upload p95 %.1f ms (limit %.0f), error rate %.4f (limit %.2f)\n",
            p95, MEDIA_P95_MS, err_rate, MEDIA_MAX_ERROR_RATE);
    rc = 1;
  }
out:
  pthread_mutex_destroy(&m->mu);
  buf_free(&m->form);
  free(m);
  return rc;
}
