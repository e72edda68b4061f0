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
  lhist_init(&r->history);
  lhist_init(&r->read);
  r->nsteps = nsteps > PLAN_MAX_STEPS ? PLAN_MAX_STEPS : nsteps;
  for (unsigned i = 0; i < PLAN_MAX_STEPS; i++) {
    lhist_init(&r->steps[i].delivery);
    lhist_init(&r->steps[i].connect);
  }
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
  d->expected += s->expected;
  d->skipped += s->skipped;
  d->typing += s->typing;
  d->typing_rx += s->typing_rx;
  d->history += s->history;
  d->history_rx += s->history_rx;
  d->reads += s->reads;
  d->reads_rx += s->reads_rx;
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

void load_step_code_count(load_step_t *s, int code, uint32_t n) {
  for (unsigned i = 0; i < s->ncodes; i++)
    if (s->codes[i].code == code) {
      s->codes[i].n += n;
      return;
    }
  if (s->ncodes < LOAD_STEP_CODES) {
    s->codes[s->ncodes].code = code;
    s->codes[s->ncodes++].n = n;
  } else {
    s->codes_other += n;
  }
}

static uint64_t min_nz(uint64_t a, uint64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

void load_result_merge(load_result_t *d, const load_result_t *s) {
  load_counts_add(&d->n, &s->n);
  lhist_merge(&d->connect, &s->connect);
  lhist_merge(&d->hello, &s->hello);
  lhist_merge(&d->ack, &s->ack);
  lhist_merge(&d->delivery, &s->delivery);
  lhist_merge(&d->history, &s->history);
  lhist_merge(&d->read, &s->read);
  for (unsigned i = 0; i < s->ncodes && i < LOAD_MAX_CODES; i++) load_code_count(d, s->codes[i].code, s->codes[i].n);
  d->codes_other += s->codes_other;
  if (s->nsteps > d->nsteps) d->nsteps = s->nsteps > PLAN_MAX_STEPS ? PLAN_MAX_STEPS : s->nsteps;
  for (unsigned k = 0; k < s->nsteps && k < PLAN_MAX_STEPS; k++) {
    d->steps[k].sent += s->steps[k].sent;
    d->steps[k].acks += s->steps[k].acks;
    d->steps[k].deliveries += s->steps[k].deliveries;
    lhist_merge(&d->steps[k].delivery, &s->steps[k].delivery);
    load_step_t *ds = &d->steps[k];
    const load_step_t *ss = &s->steps[k];
    ds->skipped += ss->skipped;
    ds->errors += ss->errors;
    ds->started += ss->started;
    ds->opened += ss->opened;
    ds->failed += ss->failed;
    ds->dropped += ss->dropped;
    ds->conns_end += ss->conns_end;
    ds->conns_peak += ss->conns_peak;
    lhist_merge(&ds->connect, &ss->connect);
    for (unsigned i = 0; i < ss->ncodes && i < LOAD_STEP_CODES; i++) load_step_code_count(ds, ss->codes[i].code, ss->codes[i].n);
    ds->codes_other += ss->codes_other;
  }
  d->first_send_us = min_nz(d->first_send_us, s->first_send_us);
  if (s->last_delivery_us > d->last_delivery_us) d->last_delivery_us = s->last_delivery_us;
}
