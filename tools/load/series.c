/* series.c — see series.h. */
#include "load/series.h"

#include <errno.h>
#include <stdlib.h>

int series_init(series_t *s) {
  s->n = 0;
  s->dropped = 0;
  s->pts = calloc(SERIES_MAX_SECS, sizeof *s->pts);
  s->ring = calloc(SERIES_WINDOW, sizeof *s->ring);
  if (!s->pts || !s->ring) {
    series_free(s);
    return -ENOMEM;
  }
  return 0;
}

static void settle(series_t *s, unsigned slot) {
  if (!s->ring[slot].used) return;
  series_pt_t *p = &s->pts[s->ring[slot].sec];
  p->p50_us = lhist_percentile(&s->ring[slot].h, 50);
  p->p99_us = lhist_percentile(&s->ring[slot].h, 99);
  s->ring[slot].used = false;
}

void series_add(series_t *s, const load_sec_t *sec, const lhist_t *h) {
  if (sec->sec >= SERIES_MAX_SECS) {
    s->dropped++;
    return;
  }
  series_pt_t *p = &s->pts[sec->sec];
  p->open += sec->open_now;
  p->sends += sec->sends;
  p->acks += sec->acks;
  p->deliveries += sec->deliveries;
  p->errors += sec->errors;
  if (sec->sec + 1 > s->n) s->n = (unsigned)sec->sec + 1;
  if (!h || !h->total) return;
  unsigned slot = (unsigned)(sec->sec % SERIES_WINDOW);
  if (s->ring[slot].used && s->ring[slot].sec > sec->sec) return; /* too late for latencies */
  if (s->ring[slot].used && s->ring[slot].sec < sec->sec) settle(s, slot);
  if (!s->ring[slot].used) {
    s->ring[slot].used = true;
    s->ring[slot].sec = sec->sec;
    lhist_init(&s->ring[slot].h);
  }
  lhist_merge(&s->ring[slot].h, h);
}

void series_finish(series_t *s) {
  for (unsigned i = 0; i < SERIES_WINDOW; i++) settle(s, i);
}

void series_free(series_t *s) {
  free(s->pts);
  free(s->ring);
  s->pts = NULL;
  s->ring = NULL;
}
