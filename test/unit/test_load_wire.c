/* Unit tests for storm-load's worker pipe protocol (tools/load/wire.c),
 * result merging (stats.c) and per-second series (series.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "load/series.h"
#include "load/stats.h"
#include "load/wire.h"

static void fill(lhist_t *h, uint64_t from, uint64_t to) {
  lhist_init(h);
  for (uint64_t v = from; v <= to; v++) lhist_record(h, v);
}

static void test_hist_roundtrip(void **state) {
  lhist_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
  fill(a, 100, 50000);
  buf_t w = BUF_INIT;
  wire_put_hist(&w, a);
  assert_false(w.oom);
  assert_true(w.len < sizeof *a / 2); /* sparse */
  const uint8_t *p = (const uint8_t *)w.data;
  assert_int_equal(wire_get_hist(&p, p + w.len, b), 0);
  assert_ptr_equal(p, (const uint8_t *)w.data + w.len);
  assert_memory_equal(a, b, sizeof *a);
  /* Truncated anywhere: -EPROTO. */
  for (size_t cut = 0; cut < w.len; cut += 97) {
    p = (const uint8_t *)w.data;
    assert_int_equal(wire_get_hist(&p, p + cut, b), -EPROTO);
  }
  /* Counts that do not add up to the total, and a bucket out of range. */
  uint64_t bad_total = a->total + 1;
  memcpy(w.data + 4, &bad_total, 8);
  p = (const uint8_t *)w.data;
  assert_int_equal(wire_get_hist(&p, p + w.len, b), -EPROTO);
  memcpy(w.data + 4, &a->total, 8);
  uint32_t idx = LHIST_BUCKETS;
  memcpy(w.data + 4 + 40, &idx, 4);
  p = (const uint8_t *)w.data;
  assert_int_equal(wire_get_hist(&p, p + w.len, b), -EPROTO);
  buf_free(&w);
  free(a);
  free(b);
}

static void test_result_roundtrip_and_merge(void **state) {
  load_result_t *r = load_result_new(3), *back = load_result_new(0), *m = load_result_new(0);
  r->n.helloed = 10;
  r->n.sent = 30;
  r->n.acks = 29;
  r->n.deliveries = 270;
  r->n.open_now = 10;
  fill(&r->delivery, 1000, 1270);
  fill(&r->steps[2].delivery, 2000, 2100);
  r->steps[2].sent = 7;
  r->steps[2].deliveries = 101;
  load_code_count(r, 1006, 2);
  load_code_count(r, -401, 1);
  load_code_count(r, 1006, 1);
  assert_int_equal(r->ncodes, 2);
  assert_int_equal(r->codes[0].n, 3);
  r->first_send_us = 500;
  r->last_delivery_us = 900;
  /* chat and storm-day fields travel too. */
  r->n.expected = 261;
  r->n.skipped = 4;
  r->n.history = 6;
  r->n.history_rx = 5;
  r->n.reads_rx = 3;
  fill(&r->history, 300, 320);
  fill(&r->read, 10, 12);
  r->steps[1].skipped = 2;
  r->steps[1].conns_end = 40;
  r->steps[1].conns_peak = 45;
  r->steps[1].opened = 41;
  r->steps[1].errors = 1;
  fill(&r->steps[1].connect, 700, 900);
  load_step_code_count(&r->steps[1], 1006, 2);
  load_step_code_count(&r->steps[1], -503, 1);
  buf_t w = BUF_INIT;
  wire_put_result(&w, r);
  uint32_t type;
  const uint8_t *pl;
  size_t plen;
  long used = wire_next((const uint8_t *)w.data, w.len, &type, &pl, &plen);
  assert_int_equal(used, (long)w.len);
  assert_int_equal(type, W_FINAL);
  assert_int_equal(wire_next((const uint8_t *)w.data, w.len - 1, &type, &pl, &plen), 0); /* incomplete */
  assert_int_equal(wire_get_result(pl, plen, back), 0);
  assert_memory_equal(r, back, sizeof *r);
  load_result_t *scratch = load_result_new(0);
  assert_int_equal(wire_get_result(pl, plen - 1, scratch), -EPROTO); /* leaves scratch partial */
  free(scratch);
  /* Merging twice doubles every count; extremes and first/last are kept. */
  load_result_merge(m, back);
  load_result_merge(m, r);
  assert_int_equal(m->n.deliveries, 540);
  assert_int_equal(m->n.open_now, 20);
  assert_int_equal(m->delivery.total, 2 * 271);
  assert_int_equal(m->delivery.min, 1000);
  assert_int_equal(m->nsteps, 3);
  assert_int_equal(m->steps[2].deliveries, 202);
  assert_int_equal(m->steps[2].delivery.total, 202);
  assert_int_equal(m->codes[0].code, 1006);
  assert_int_equal(m->codes[0].n, 6);
  assert_int_equal(m->first_send_us, 500);
  assert_int_equal(m->last_delivery_us, 900);
  assert_int_equal(m->n.expected, 522);
  assert_int_equal(m->n.history_rx, 10);
  assert_int_equal(m->history.total, 42);
  assert_int_equal(m->steps[1].conns_end, 80);
  assert_int_equal(m->steps[1].connect.total, 402);
  assert_int_equal(m->steps[1].ncodes, 2);
  assert_int_equal(m->steps[1].codes[1].code, -503);
  assert_int_equal(m->steps[1].codes[1].n, 2);
  /* A step with more codes than it keeps: the rest in codes_other, also on the wire. */
  for (int i = 0; i < LOAD_STEP_CODES + 2; i++) load_step_code_count(&r->steps[0], 4000 + i, 1);
  assert_int_equal(r->steps[0].ncodes, LOAD_STEP_CODES);
  assert_int_equal(r->steps[0].codes_other, 2);
  buf_reset(&w);
  wire_put_result(&w, r);
  assert_true(wire_next((const uint8_t *)w.data, w.len, &type, &pl, &plen) > 0);
  assert_int_equal(wire_get_result(pl, plen, back), 0);
  assert_memory_equal(r, back, sizeof *r);
  /* A step claiming more codes than fit is refused: the last step ends with
   * [ncodes][codes][codes_other], so its count sits at a known place. */
  load_result_t *one = load_result_new(1);
  for (int i = 0; i < LOAD_STEP_CODES; i++) load_step_code_count(&one->steps[0], 4000 + i, 1);
  buf_reset(&w);
  wire_put_result(&w, one);
  assert_true(wire_next((const uint8_t *)w.data, w.len, &type, &pl, &plen) > 0);
  assert_int_equal(wire_get_result(pl, plen, back), 0);
  size_t at = plen - 4 - LOAD_STEP_CODES * sizeof(load_code_t) - 4;
  uint32_t nc;
  memcpy(&nc, pl + at, 4);
  assert_int_equal(nc, LOAD_STEP_CODES);
  nc++;
  memcpy((uint8_t *)pl + at, &nc, 4);
  assert_int_equal(wire_get_result(pl, plen, back), -EPROTO);
  free(one);
  buf_free(&w);
  free(r);
  free(back);
  free(m);
}

static void test_codes_overflow(void **state) {
  load_result_t *r = load_result_new(0);
  for (int i = 0; i < LOAD_MAX_CODES + 3; i++) load_code_count(r, 4000 + i, 1);
  assert_int_equal(r->ncodes, LOAD_MAX_CODES);
  assert_int_equal(r->codes_other, 3);
  free(r);
}

static void test_frames(void **state) {
  buf_t w = BUF_INIT;
  uint64_t go = 12345;
  wire_put_frame(&w, C_GO, &go, sizeof go);
  wire_put_frame(&w, C_STOP, NULL, 0);
  uint32_t type;
  const uint8_t *pl;
  size_t plen;
  long used = wire_next((const uint8_t *)w.data, w.len, &type, &pl, &plen);
  assert_int_equal(used, 16);
  assert_int_equal(type, C_GO);
  assert_int_equal(plen, 8);
  used = wire_next((const uint8_t *)w.data + 16, w.len - 16, &type, &pl, &plen);
  assert_int_equal(used, 8);
  assert_int_equal(type, C_STOP);
  uint32_t huge[2] = {W_SEC, WIRE_MAX_FRAME + 1};
  assert_int_equal(wire_next((const uint8_t *)huge, sizeof huge, &type, &pl, &plen), -EPROTO);
  buf_free(&w);
}

static void test_series(void **state) {
  series_t s;
  assert_int_equal(series_init(&s), 0);
  lhist_t *h = malloc(sizeof *h);
  /* Two workers report second 0; their latencies merge before the percentiles. */
  fill(h, 1000, 1099); /* 100 values, 1.000-1.099 ms */
  load_sec_t a = {.sec = 0, .open_now = 5, .sends = 10, .deliveries = 100};
  series_add(&s, &a, h);
  fill(h, 9000, 9899); /* 900 values around 9 ms */
  load_sec_t b = {.sec = 0, .open_now = 7, .deliveries = 900};
  series_add(&s, &b, h);
  load_sec_t c = {.sec = 2, .open_now = 12, .errors = 1};
  series_add(&s, &c, NULL);
  /* Second 9 reuses second 1's ring slot; second 1 had no latencies. */
  fill(h, 500, 500);
  load_sec_t d = {.sec = 9, .deliveries = 1};
  series_add(&s, &d, h);
  /* Too late for latencies (second 1 < 9 in the same slot): counts only. */
  load_sec_t e = {.sec = 1, .deliveries = 3};
  series_add(&s, &e, h);
  load_sec_t far = {.sec = SERIES_MAX_SECS};
  series_add(&s, &far, NULL);
  series_finish(&s);
  assert_int_equal(s.n, 10);
  assert_int_equal(s.dropped, 1);
  assert_int_equal(s.pts[0].open, 12);
  assert_int_equal(s.pts[0].deliveries, 1000);
  assert_true(s.pts[0].p50_us >= 9000 && s.pts[0].p50_us < 9900);
  assert_true(s.pts[0].p99_us >= 9800 && s.pts[0].p99_us <= 9899);
  assert_int_equal(s.pts[1].deliveries, 3);
  assert_int_equal(s.pts[1].p50_us, 0);
  assert_int_equal(s.pts[2].errors, 1);
  assert_int_equal(s.pts[9].p99_us, 500);
  series_free(&s);
  free(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hist_roundtrip), cmocka_unit_test(test_result_roundtrip_and_merge),
      cmocka_unit_test(test_codes_overflow), cmocka_unit_test(test_frames),
      cmocka_unit_test(test_series),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
