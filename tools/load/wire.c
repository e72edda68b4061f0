/* wire.c — see wire.h. */
#include "load/wire.h"

#include <errno.h>
#include <string.h>

void wire_put_frame(buf_t *b, uint32_t type, const void *payload, size_t len) {
  uint32_t h[2] = {type, (uint32_t)len};
  buf_append(b, h, sizeof h);
  if (len) buf_append(b, payload, len);
}

void wire_put_hist(buf_t *b, const lhist_t *h) {
  uint32_t nz = 0;
  for (unsigned i = 0; i < LHIST_BUCKETS; i++) nz += h->counts[i] != 0;
  uint64_t head[5] = {h->total, h->clamped, h->min, h->max, h->sum};
  buf_append(b, &nz, sizeof nz);
  buf_append(b, head, sizeof head);
  for (uint32_t i = 0; i < LHIST_BUCKETS; i++) {
    if (!h->counts[i]) continue;
    buf_append(b, &i, sizeof i);
    buf_append(b, &h->counts[i], sizeof h->counts[i]);
  }
}

/* The payload length is patched in once the body is written. */
static size_t begin(buf_t *b, uint32_t type) {
  size_t at = b->len;
  wire_put_frame(b, type, NULL, 0);
  return at;
}

static void end(buf_t *b, size_t at) {
  if (b->oom) return;
  uint32_t len = (uint32_t)(b->len - at - 8);
  memcpy(b->data + at + 4, &len, sizeof len);
}

void wire_put_sec(buf_t *b, const load_sec_t *s, const lhist_t *h) {
  size_t at = begin(b, W_SEC);
  buf_append(b, s, sizeof *s);
  wire_put_hist(b, h);
  end(b, at);
}

void wire_put_result(buf_t *b, const load_result_t *r) {
  size_t at = begin(b, W_FINAL);
  buf_append(b, &r->n, sizeof r->n);
  wire_put_hist(b, &r->connect);
  wire_put_hist(b, &r->hello);
  wire_put_hist(b, &r->ack);
  wire_put_hist(b, &r->delivery);
  wire_put_hist(b, &r->history);
  wire_put_hist(b, &r->read);
  buf_append(b, &r->ncodes, sizeof r->ncodes);
  buf_append(b, r->codes, sizeof r->codes[0] * r->ncodes);
  buf_append(b, &r->codes_other, sizeof r->codes_other);
  buf_append(b, &r->first_send_us, sizeof r->first_send_us);
  buf_append(b, &r->last_delivery_us, sizeof r->last_delivery_us);
  buf_append(b, &r->nsteps, sizeof r->nsteps);
  for (unsigned k = 0; k < r->nsteps; k++) {
    const load_step_t *s = &r->steps[k];
    uint64_t c[11] = {s->sent,   s->acks,   s->deliveries, s->skipped,   s->errors,    s->started,
                      s->opened, s->failed, s->dropped,    s->conns_end, s->conns_peak};
    buf_append(b, c, sizeof c);
    wire_put_hist(b, &s->delivery);
    wire_put_hist(b, &s->connect);
    buf_append(b, &s->ncodes, sizeof s->ncodes);
    buf_append(b, s->codes, sizeof s->codes[0] * s->ncodes);
    buf_append(b, &s->codes_other, sizeof s->codes_other);
  }
  end(b, at);
}

long wire_next(const uint8_t *data, size_t len, uint32_t *type, const uint8_t **payload, size_t *plen) {
  if (len < 8) return 0;
  uint32_t h[2];
  memcpy(h, data, sizeof h);
  if (h[1] > WIRE_MAX_FRAME) return -EPROTO;
  if (len - 8 < h[1]) return 0;
  *type = h[0];
  *payload = data + 8;
  *plen = h[1];
  return (long)(8 + h[1]);
}

static int take(const uint8_t **p, const uint8_t *e, void *out, size_t n) {
  if ((size_t)(e - *p) < n) return -EPROTO;
  memcpy(out, *p, n);
  *p += n;
  return 0;
}

int wire_get_hist(const uint8_t **p, const uint8_t *e, lhist_t *h) {
  uint32_t nz;
  uint64_t head[5];
  if (take(p, e, &nz, sizeof nz) || take(p, e, head, sizeof head) || nz > LHIST_BUCKETS) return -EPROTO;
  lhist_init(h);
  uint64_t seen = 0;
  for (uint32_t i = 0; i < nz; i++) {
    uint32_t idx;
    uint64_t c;
    if (take(p, e, &idx, sizeof idx) || take(p, e, &c, sizeof c) || idx >= LHIST_BUCKETS) return -EPROTO;
    h->counts[idx] += c;
    seen += c;
  }
  if (seen != head[0]) return -EPROTO;
  h->total = head[0];
  h->clamped = head[1];
  h->min = head[2];
  h->max = head[3];
  h->sum = head[4];
  return 0;
}

int wire_get_sec(const uint8_t *p, size_t len, load_sec_t *s, lhist_t *h) {
  const uint8_t *e = p + len;
  if (take(&p, e, s, sizeof *s) || wire_get_hist(&p, e, h) || p != e) return -EPROTO;
  return 0;
}

int wire_get_result(const uint8_t *p, size_t len, load_result_t *r) {
  const uint8_t *e = p + len;
  if (take(&p, e, &r->n, sizeof r->n) || wire_get_hist(&p, e, &r->connect) || wire_get_hist(&p, e, &r->hello) ||
      wire_get_hist(&p, e, &r->ack) || wire_get_hist(&p, e, &r->delivery) || wire_get_hist(&p, e, &r->history) ||
      wire_get_hist(&p, e, &r->read) ||
      take(&p, e, &r->ncodes, sizeof r->ncodes) || r->ncodes > LOAD_MAX_CODES ||
      take(&p, e, r->codes, sizeof r->codes[0] * r->ncodes) || take(&p, e, &r->codes_other, sizeof r->codes_other) ||
      take(&p, e, &r->first_send_us, sizeof r->first_send_us) ||
      take(&p, e, &r->last_delivery_us, sizeof r->last_delivery_us) || take(&p, e, &r->nsteps, sizeof r->nsteps) ||
      r->nsteps > PLAN_MAX_STEPS)
    return -EPROTO;
  for (unsigned k = 0; k < r->nsteps; k++) {
    uint64_t c[11];
    load_step_t *s = &r->steps[k];
    if (take(&p, e, c, sizeof c) || wire_get_hist(&p, e, &s->delivery) || wire_get_hist(&p, e, &s->connect) ||
        take(&p, e, &s->ncodes, sizeof s->ncodes) || s->ncodes > LOAD_STEP_CODES ||
        take(&p, e, s->codes, sizeof s->codes[0] * s->ncodes) || take(&p, e, &s->codes_other, sizeof s->codes_other))
      return -EPROTO;
    s->sent = c[0];
    s->acks = c[1];
    s->deliveries = c[2];
    s->skipped = c[3];
    s->errors = c[4];
    s->started = c[5];
    s->opened = c[6];
    s->failed = c[7];
    s->dropped = c[8];
    s->conns_end = c[9];
    s->conns_peak = c[10];
  }
  return p == e ? 0 : -EPROTO;
}
