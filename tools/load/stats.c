/* stats.c — see stats.h. */
#include "load/stats.h"

#include <stdlib.h>

load_result_t *load_result_new(unsigned nsteps) {
  load_result_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  lhist_init(&r->connect);
  lhist_init(&r->hello);
  lhist_init(&r->ack);
  lhist_init(&r->delivery);
  r->nsteps = nsteps > PLAN_MAX_STEPS ? PLAN_MAX_STEPS : nsteps;
  for (unsigned i = 0; i < PLAN_MAX_STEPS; i++) lhist_init(&r->steps[i].delivery);
  return r;
}

void load_counts_add(load_counts_t *d, const load_counts_t *s) {
  d->started += s->started;
  d->opened += s->opened;
  d->helloed += s->helloed;
  d->failed += s->failed;
  d->dropped += s->dropped;
  d->open_now += s->open_now;
  d->sent += s->sent;
  d->acks += s->acks;
  d->deliveries += s->deliveries;
  d->errors += s->errors;
}

void load_code_count(load_result_t *r, int code, uint32_t n) {
  for (unsigned i = 0; i < r->ncodes; i++)
    if (r->codes[i].code == code) {
      r->codes[i].n += n;
      return;
    }
  if (r->ncodes < LOAD_MAX_CODES) {
    r->codes[r->ncodes].code = code;
    r->codes[r->ncodes++].n = n;
  } else {
    r->codes_other += n;
  }
}

static uint64_t min_nz(uint64_t a, uint64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

void load_result_merge(load_result_t *d, const load_result_t *s) {
  load_counts_add(&d->n, &s->n);
  lhist_merge(&d->connect, &s->connect);
  lhist_merge(&d->hello, &s->hello);
  lhist_merge(&d->ack, &s->ack);
  lhist_merge(&d->delivery, &s->delivery);
  for (unsigned i = 0; i < s->ncodes && i < LOAD_MAX_CODES; i++) load_code_count(d, s->codes[i].code, s->codes[i].n);
  d->codes_other += s->codes_other;
  if (s->nsteps > d->nsteps) d->nsteps = s->nsteps > PLAN_MAX_STEPS ? PLAN_MAX_STEPS : s->nsteps;
  for (unsigned k = 0; k < s->nsteps && k < PLAN_MAX_STEPS; k++) {
    d->steps[k].sent += s->steps[k].sent;
    d->steps[k].acks += s->steps[k].acks;
    d->steps[k].deliveries += s->steps[k].deliveries;
    lhist_merge(&d->steps[k].delivery, &s->steps[k].delivery);
  }
  d->first_send_us = min_nz(d->first_send_us, s->first_send_us);
  if (s->last_delivery_us > d->last_delivery_us) d->last_delivery_us = s->last_delivery_us;
}
