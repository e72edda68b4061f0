/*
 * test_gateway_order.c — per-channel seq ordering of live `message` events
 * (gateway_order.h): in order, out of order, duplicates, gaps filled, gaps
 * given up (timeout, bound), events without a seq, where `last` starts,
 * teardown and re-entrant teardown from a delivery.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "services/gateway/gateway_order.h"

/* The sweep takes the hold time as an argument: these tests use their own. */
#define TEST_HOLD_MS 500

/* ---- a recording sink ---- */

enum { LOG_MAX = GW_ORDER_HOLD_MAX + 64 };

typedef struct {
  int64_t seq[LOG_MAX];
  net_chunk_t *frame[LOG_MAX];
  int n;
  int gaps;
  int64_t gap_from, gap_to;
  uint64_t gap_skipped;
  gw_order_gap_reason_t gap_why;
  /* Re-entrancy: clear this order when delivering seq clear_at. */
  gw_order_set_t *set;
  gw_order_t *clear_me;
  int64_t clear_at;
} sink_t;

static void on_deliver(void *arg, int64_t seq, net_chunk_t *f) {
  sink_t *k = arg;
  assert_true(k->n < LOG_MAX);
  assert_true(f->refs >= 1);
  k->seq[k->n] = seq;
  k->frame[k->n] = f;
  k->n++;
  if (k->clear_me && seq == k->clear_at) gw_order_clear(k->set, k->clear_me);
}

static void on_gap(void *arg, int64_t from, int64_t to, uint64_t skipped,
                   gw_order_gap_reason_t why) {
  sink_t *k = arg;
  k->gaps++;
  k->gap_from = from;
  k->gap_to = to;
  k->gap_skipped = skipped;
  k->gap_why = why;
}

static const gw_order_cb_t cb = {on_deliver, on_gap};

/* Frames made by the tests, released at the end of each test. */
static net_chunk_t *frames[LOG_MAX];
static int nframes;

static net_chunk_t *frame(void) {
  assert_true(nframes < LOG_MAX);
  char text[32];
  int n = snprintf(text, sizeof text, "frame %d", nframes);
  net_chunk_t *f = net_chunk_copy(text, (size_t)n);
  assert_non_null(f);
  frames[nframes++] = f;
  return f;
}

/* Every frame is back to the test's own reference: nothing leaked or held. */
static void release_frames(void) {
  for (int i = 0; i < nframes; i++) {
    assert_int_equal(frames[i]->refs, 1);
    net_chunk_unref(frames[i]);
  }
  nframes = 0;
}

static gw_order_result_t push(gw_order_set_t *set, gw_order_t *o, sink_t *k, int64_t seq,
                              uint32_t now) {
  return gw_order_push(set, o, seq, frame(), now, &cb, k);
}

static void expect_seqs(const sink_t *k, const int64_t *want, int n) {
  assert_int_equal(k->n, n);
  for (int i = 0; i < n; i++) assert_int_equal(k->seq[i], want[i]);
}

/* ---- tests ---- */

static void test_in_order(void **state) {
  gw_order_set_t set = {0};
  gw_order_t o = {0};
  sink_t k = {0};
  gw_order_join(&o, 0);
  for (int64_t s = 1; s <= 5; s++)
    assert_int_equal(push(&set, &o, &k, s, 0), GW_ORDER_DELIVERED);
  expect_seqs(&k, (int64_t[]){1, 2, 3, 4, 5}, 5);
  /* The frame delivered is the one pushed (framed once, passed through). */
  assert_ptr_equal(k.frame[4], frames[4]);
  assert_int_equal(o.last, 5);
  assert_null(o.hold);
  assert_int_equal(set.holding, 0);
  assert_int_equal(set.stats.held + set.stats.dropped + set.stats.gaps, 0);
  release_frames();
}

static void test_out_of_order(void **state) {
  gw_order_set_t set = {0};
  gw_order_t o = {0};
  sink_t k = {0};
  gw_order_join(&o, 4);
  assert_int_equal(push(&set, &o, &k, 6, 10), GW_ORDER_HELD);
  assert_int_equal(k.n, 0);
  assert_int_equal(gw_order_held(&o), 1);
  assert_int_equal(set.holding, 1);
  assert_int_equal(frames[0]->refs, 2); /* the hold keeps a reference */
  assert_int_equal(push(&set, &o, &k, 5, 20), GW_ORDER_DELIVERED);
  expect_seqs(&k, (int64_t[]){5, 6}, 2);
  assert_ptr_equal(k.frame[1], frames[0]);
  assert_int_equal(o.last, 6);
  /* Nothing held any more: the hold is freed and off the set. */
  assert_null(o.hold);
  assert_null(set.holds);
  assert_int_equal(set.holding, 0);
  assert_int_equal(set.stats.held, 1);
  assert_int_equal(set.stats.gaps, 0);
  release_frames();
}

static void test_duplicates(void **state) {
  gw_order_set_t set = {0};
  gw_order_t o = {0};
  sink_t k = {0};
  gw_order_join(&o, 4);
  assert_int_equal(push(&set, &o, &k, 5, 0), GW_ORDER_DELIVERED);
  assert_int_equal(push(&set, &o, &k, 5, 0), GW_ORDER_DROPPED); /* delivered already */
  assert_int_equal(push(&set, &o, &k, 3, 0), GW_ORDER_DROPPED); /* below the seed */
  assert_int_equal(push(&set, &o, &k, 8, 0), GW_ORDER_HELD);
  assert_int_equal(push(&set, &o, &k, 8, 0), GW_ORDER_DROPPED); /* held already */
  assert_int_equal(gw_order_held(&o), 1);
  assert_int_equal(set.stats.dropped, 3);
  assert_int_equal(push(&set, &o, &k, 6, 0), GW_ORDER_DELIVERED);
  assert_int_equal(push(&set, &o, &k, 7, 0), GW_ORDER_DELIVERED);
  expect_seqs(&k, (int64_t[]){5, 6, 7, 8}, 4);
  assert_ptr_equal(k.frame[3], frames[3]); /* the first copy of 8 */
  release_frames();
}

static void test_gaps_filled_in_steps(void **state) {
  gw_order_set_t set = {0};
  gw_order_t o = {0};
  sink_t k = {0};
  gw_order_join(&o, 4);
  assert_int_equal(push(&set, &o, &k, 8, 0), GW_ORDER_HELD);
  assert_int_equal(push(&set, &o, &k, 6, 0), GW_ORDER_HELD);
  assert_int_equal(push(&set, &o, &k, 10, 0), GW_ORDER_HELD);
  assert_int_equal(push(&set, &o, &k, 7, 0), GW_ORDER_HELD);
  assert_int_equal(gw_order_held(&o), 4);
  assert_int_equal(push(&set, &o, &k, 5, 0), GW_ORDER_DELIVERED);
  expect_seqs(&k, (int64_t[]){5, 6, 7, 8}, 4);
  assert_int_equal(gw_order_held(&o), 1); /* 10 waits for 9 */
  assert_int_equal(set.holding, 1);
  assert_int_equal(push(&set, &o, &k, 9, 0), GW_ORDER_DELIVERED);
  expect_seqs(&k, (int64_t[]){5, 6, 7, 8, 9, 10}, 6);
  assert_int_equal(set.holding, 0);
  assert_int_equal(set.stats.held, 4);
  assert_int_equal(set.stats.gaps, 0);
  release_frames();
}

/* The sweep's due callback, as the fan-out does it (minus the pin). */
typedef struct {
  gw_order_set_t *set;
  sink_t *k;
  int calls;
} sweep_ctx_t;

static void due_flush(void *arg, gw_order_t *o) {
  sweep_ctx_t *c = arg;
  c->calls++;
  gw_order_flush(c->set, o, GW_ORDER_GAP_TIMEOUT, &cb, c->k);
}

static void test_gap_timeout_flush(void **state) {
  gw_order_set_t set = {0};
  gw_order_t o = {0};
  sink_t k = {0};
  sweep_ctx_t c = {&set, &k, 0};
  gw_order_join(&o, 5);
  assert_int_equal(push(&set, &o, &k, 9, 1000), GW_ORDER_HELD);
  assert_int_equal(push(&set, &o, &k, 7, 1200), GW_ORDER_HELD);
  gw_order_sweep(&set, 1499, TEST_HOLD_MS, due_flush, &c);
  assert_int_equal(c.calls, 0);
  assert_int_equal(k.n, 0);
  gw_order_sweep(&set, 1500, TEST_HOLD_MS, due_flush, &c);
  assert_int_equal(c.calls, 1);
  expect_seqs(&k, (int64_t[]){7, 9}, 2);
  /* Reported once for the whole flush: first range 6..6, 2 missing (6, 8). */
  assert_int_equal(k.gaps, 1);
  assert_int_equal(k.gap_from, 6);
  assert_int_equal(k.gap_to, 6);
  assert_int_equal(k.gap_skipped, 2);
  assert_int_equal(k.gap_why, GW_ORDER_GAP_TIMEOUT);
  assert_int_equal(set.stats.gaps, 1);
  assert_int_equal(set.stats.skipped, 2);
  assert_int_equal(set.holding, 0);
  assert_int_equal(o.last, 9);
  /* The late ones are dropped (the client fetches them), the next goes on. */
  assert_int_equal(push(&set, &o, &k, 6, 1600), GW_ORDER_DROPPED);
  assert_int_equal(push(&set, &o, &k, 8, 1600), GW_ORDER_DROPPED);
  assert_int_equal(push(&set, &o, &k, 10, 1600), GW_ORDER_DELIVERED);
  expect_seqs(&k, (int64_t[]){7, 9, 10}, 3);
  /* Nothing held: a sweep does nothing. */
  gw_order_sweep(&set, 99999, TEST_HOLD_MS, due_flush, &c);
  assert_int_equal(c.calls, 1);
  /* Flushing an order that holds nothing does nothing. */
  gw_order_flush(&set, &o, GW_ORDER_GAP_TIMEOUT, &cb, &k);
  assert_int_equal(k.n, 3);
  assert_int_equal(k.gaps, 1);
  release_frames();
}

/* The wait counts from the oldest event still held: after a partial fill,
 * the rest gets its own time; loop time may wrap. */
static void test_timeout_follows_oldest_held(void **state) {
  gw_order_set_t set = {0};
  gw_order_t o = {0};
  sink_t k = {0};
  sweep_ctx_t c = {&set, &k, 0};
  const uint32_t t0 = UINT32_MAX - 100; /* wraps during the test */
  gw_order_join(&o, 5);
  assert_int_equal(push(&set, &o, &k, 7, t0), GW_ORDER_HELD);
  assert_int_equal(push(&set, &o, &k, 10, t0 + 400), GW_ORDER_HELD);
  assert_int_equal(push(&set, &o, &k, 9, t0 + 420), GW_ORDER_HELD);
  assert_int_equal(push(&set, &o, &k, 6, t0 + 450), GW_ORDER_DELIVERED);
  expect_seqs(&k, (int64_t[]){6, 7}, 2);
  /* 9 and 10 are left, the oldest held at t0 + 400. */
  gw_order_sweep(&set, t0 + 600, TEST_HOLD_MS, due_flush, &c);
  assert_int_equal(c.calls, 0);
  gw_order_sweep(&set, t0 + 899, TEST_HOLD_MS, due_flush, &c);
  assert_int_equal(c.calls, 0);
  gw_order_sweep(&set, t0 + 900, TEST_HOLD_MS, due_flush, &c);
  assert_int_equal(c.calls, 1);
  expect_seqs(&k, (int64_t[]){6, 7, 9, 10}, 4);
  assert_int_equal(k.gap_from, 8);
  assert_int_equal(k.gap_to, 8);
  assert_int_equal(k.gap_skipped, 1);
  release_frames();
}

static void test_bound_reached(void **state) {
  gw_order_set_t set = {0};
  gw_order_t o = {0};
  sink_t k = {0};
  gw_order_join(&o, 0);
  /* 1 is missing; 2 .. HOLD_MAX + 1 are held, in a scrambled order. */
  for (int64_t i = 0; i < GW_ORDER_HOLD_MAX; i++) {
    int64_t s = 2 + (i * 97) % GW_ORDER_HOLD_MAX; /* 97 is prime to the bound (a power of two): a permutation */
    assert_int_equal(push(&set, &o, &k, s, 0), GW_ORDER_HELD);
  }
  assert_int_equal(k.n, 0);
  assert_int_equal(gw_order_held(&o), GW_ORDER_HOLD_MAX);
  /* One more: everything goes, in seq order, the gap reported once. */
  assert_int_equal(push(&set, &o, &k, GW_ORDER_HOLD_MAX + 5, 0), GW_ORDER_HELD);
  assert_int_equal(k.n, GW_ORDER_HOLD_MAX + 1);
  for (int i = 0; i < GW_ORDER_HOLD_MAX; i++) assert_int_equal(k.seq[i], 2 + i);
  assert_int_equal(k.seq[GW_ORDER_HOLD_MAX], GW_ORDER_HOLD_MAX + 5);
  assert_int_equal(k.gaps, 1);
  assert_int_equal(k.gap_from, 1);
  assert_int_equal(k.gap_to, 1);
  assert_int_equal(k.gap_skipped, 1 + 3); /* 1, and 258..260 */
  assert_int_equal(k.gap_why, GW_ORDER_GAP_FULL);
  assert_int_equal(set.holding, 0);
  assert_int_equal(o.last, GW_ORDER_HOLD_MAX + 5);
  release_frames();
}

/* A partial fill pops from the front; later arrivals at the end reuse that
 * space (compaction) instead of growing past the bound. */
static void test_hold_reuses_space(void **state) {
  gw_order_set_t set = {0};
  gw_order_t o = {0};
  sink_t k = {0};
  gw_order_join(&o, 0);
  for (int64_t s = 2; s <= 250; s++)
    if (s != 151) assert_int_equal(push(&set, &o, &k, s, 0), GW_ORDER_HELD);
  assert_int_equal(push(&set, &o, &k, 1, 0), GW_ORDER_DELIVERED); /* 1..150 go */
  assert_int_equal(k.n, 150);
  assert_int_equal(gw_order_held(&o), 99);
  for (int64_t s = 252; s <= 300; s++)
    assert_int_equal(push(&set, &o, &k, s, 0), GW_ORDER_HELD); /* 148 held: no flush */
  assert_int_equal(gw_order_held(&o), 148);
  assert_int_equal(push(&set, &o, &k, 151, 0), GW_ORDER_DELIVERED); /* ..250 */
  assert_int_equal(push(&set, &o, &k, 251, 0), GW_ORDER_DELIVERED); /* ..300 */
  assert_int_equal(k.n, 300);
  for (int i = 0; i < 300; i++) assert_int_equal(k.seq[i], i + 1);
  assert_int_equal(set.stats.gaps, 0);
  assert_int_equal(set.holding, 0);
  release_frames();
}

static void test_non_message_events_pass(void **state) {
  gw_order_set_t set = {0};
  gw_order_t o = {0};
  sink_t k = {0};
  gw_order_join(&o, 4);
  assert_int_equal(push(&set, &o, &k, 0, 0), GW_ORDER_PASSED);
  assert_int_equal(push(&set, &o, &k, 6, 0), GW_ORDER_HELD);
  /* While 6 waits, typing/edits/... still go at once, untouched. */
  assert_int_equal(push(&set, &o, &k, 0, 0), GW_ORDER_PASSED);
  assert_int_equal(push(&set, &o, &k, -3, 0), GW_ORDER_PASSED);
  expect_seqs(&k, (int64_t[]){0, 0, 0}, 3);
  assert_ptr_equal(k.frame[1], frames[2]);
  assert_int_equal(o.last, 4);
  assert_int_equal(gw_order_held(&o), 1);
  /* They do not start the order either. */
  gw_order_t fresh = {0};
  assert_int_equal(push(&set, &fresh, &k, 0, 0), GW_ORDER_PASSED);
  assert_false(fresh.known);
  assert_false(fresh.live);
  gw_order_clear(&set, &o);
  release_frames();
}

static void test_teardown_frees(void **state) {
  gw_order_set_t set = {0};
  gw_order_t a = {0}, b = {0};
  sink_t k = {0};
  gw_order_join(&a, 0);
  gw_order_join(&b, 0);
  for (int64_t s = 3; s < 40; s++) push(&set, &a, &k, s, 0);
  push(&set, &b, &k, 5, 0);
  assert_int_equal(set.holding, 2);
  gw_order_clear(&set, &a);
  assert_null(a.hold);
  assert_int_equal(set.holding, 1);
  assert_ptr_equal(set.holds, b.hold); /* b is still linked */
  gw_order_clear(&set, &a); /* idempotent */
  assert_int_equal(set.holding, 1);
  gw_order_clear(&set, &b);
  assert_int_equal(set.holding, 0);
  assert_null(set.holds);
  assert_int_equal(k.n, 0);
  release_frames(); /* asserts every held reference was released */
}

/* A delivery tears the topic down (its last member closed): the rest of
 * what was held is released undelivered, nothing is touched afterwards. */
static void test_clear_from_deliver(void **state) {
  gw_order_set_t set = {0};
  gw_order_t o = {0};
  sink_t k = {0};
  gw_order_join(&o, 0);
  for (int64_t s = 2; s <= 6; s++) push(&set, &o, &k, s, 0);
  k.set = &set;
  k.clear_me = &o;
  k.clear_at = 3;
  assert_int_equal(push(&set, &o, &k, 1, 0), GW_ORDER_DELIVERED);
  expect_seqs(&k, (int64_t[]){1, 2, 3}, 3);
  assert_null(o.hold);
  assert_int_equal(set.holding, 0);
  /* The same during a timeout flush. */
  gw_order_t p = {0};
  gw_order_join(&p, 0);
  push(&set, &p, &k, 3, 0);
  push(&set, &p, &k, 5, 0);
  push(&set, &p, &k, 7, 0);
  k.clear_me = &p;
  k.clear_at = 5;
  sweep_ctx_t c = {&set, &k, 0};
  gw_order_sweep(&set, TEST_HOLD_MS, TEST_HOLD_MS, due_flush, &c);
  assert_int_equal(c.calls, 1);
  expect_seqs(&k, (int64_t[]){1, 2, 3, 3, 5}, 5);
  assert_int_equal(set.holding, 0);
  release_frames();
}

/* The sweep survives a flush that tears down another due order, and one
 * that is not due, and calls due exactly for the due ones left. */
typedef struct {
  gw_order_set_t *set;
  sink_t *k;
  gw_order_t *victims[2];
  int calls;
} sweep_kill_t;

static void due_and_kill(void *arg, gw_order_t *o) {
  sweep_kill_t *c = arg;
  c->calls++;
  for (int i = 0; i < 2; i++) gw_order_clear(c->set, c->victims[i]);
  gw_order_flush(c->set, o, GW_ORDER_GAP_TIMEOUT, &cb, c->k);
}

static void test_sweep_with_teardown(void **state) {
  gw_order_set_t set = {0};
  gw_order_t o[4] = {{0}};
  sink_t k = {0};
  for (int i = 0; i < 4; i++) {
    gw_order_join(&o[i], 0);
    push(&set, &o[i], &k, 2, i == 3 ? 400 : 0); /* o[3] is not due at 500 */
  }
  assert_int_equal(set.holding, 4);
  /* Whichever due order comes first clears o[1] (due, set aside by the
   * sweep) and o[3] (not due): o[1] is then never flushed (or its flush
   * finds nothing), o[0] and o[2] are. */
  sweep_kill_t c = {&set, &k, {&o[1], &o[3]}, 0};
  gw_order_sweep(&set, 500, TEST_HOLD_MS, due_and_kill, &c);
  assert_true(c.calls >= 2 && c.calls <= 3);
  assert_int_equal(k.n, 2);
  assert_int_equal(o[1].last, 0);
  assert_int_equal(set.holding, 0);
  assert_null(o[0].hold);
  assert_null(o[2].hold);
  assert_int_equal(o[0].last, 2);
  assert_int_equal(o[2].last, 2);
  assert_int_equal(o[3].last, 0); /* cleared, never delivered */
  release_frames();
}

static void test_where_last_starts(void **state) {
  gw_order_set_t set = {0};
  sink_t k = {0};
  /* Unseeded: the first event sets it and goes. */
  gw_order_t a = {0};
  assert_int_equal(push(&set, &a, &k, 42, 0), GW_ORDER_DELIVERED);
  assert_int_equal(push(&set, &a, &k, 44, 0), GW_ORDER_HELD);
  assert_int_equal(push(&set, &a, &k, 41, 0), GW_ORDER_DROPPED);
  gw_order_clear(&set, &a);
  /* Several members: the lowest last_seq wins. */
  gw_order_t b = {0};
  gw_order_join(&b, 10);
  gw_order_join(&b, 7);
  gw_order_join(&b, 12);
  assert_true(b.known);
  assert_int_equal(b.last, 7);
  assert_int_equal(push(&set, &b, &k, 8, 0), GW_ORDER_DELIVERED);
  /* Once live, joins change nothing (even an unknown one). */
  gw_order_join(&b, 3);
  gw_order_join(&b, -1);
  assert_int_equal(b.last, 8);
  assert_true(b.known);
  assert_int_equal(push(&set, &b, &k, 9, 0), GW_ORDER_DELIVERED);
  /* A member without a last_seq: the seeds are forgotten and ignored, so the
   * first event goes whatever its seq. */
  gw_order_t c = {0};
  gw_order_join(&c, 10);
  gw_order_join(&c, -1);
  gw_order_join(&c, 11);
  assert_false(c.known);
  assert_int_equal(push(&set, &c, &k, 15, 0), GW_ORDER_DELIVERED);
  assert_int_equal(c.last, 15);
  /* Seed 0 (an empty channel) is a real start: 1 goes, 2 waits for... */
  gw_order_t d = {0};
  gw_order_join(&d, 0);
  assert_int_equal(push(&set, &d, &k, 2, 0), GW_ORDER_HELD);
  assert_int_equal(push(&set, &d, &k, 1, 0), GW_ORDER_DELIVERED);
  expect_seqs(&k, (int64_t[]){42, 8, 9, 15, 1, 2}, 6);
  assert_int_equal(set.holding, 0);
  release_frames();
}

/* Random reorderings within a window plus duplicates, nothing lost: every
 * seq is delivered exactly once, in order, and nothing is left held. */
static void test_random_reorder(void **state) {
  enum { N = 800, WINDOW = 12 };
  gw_order_set_t set = {0};
  gw_order_t o = {0};
  sink_t k = {0};
  srand(11);
  int64_t order[N];
  for (int i = 0; i < N; i++) order[i] = i + 1;
  for (int i = 0; i < N; i++) { /* swaps within the window only */
    int j = i + rand() % WINDOW;
    if (j >= N) j = N - 1;
    int64_t tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
  gw_order_join(&o, 0);
  for (int i = 0; i < N; i++) {
    push(&set, &o, &k, order[i], (uint32_t)i);
    if (rand() % 5 == 0) push(&set, &o, &k, order[rand() % (i + 1)], (uint32_t)i);
    if (nframes > LOG_MAX - 4) { /* keep the frame table small */
      for (int f = 0; f < nframes; f++) {
        if (frames[f]->refs == 1) {
          net_chunk_unref(frames[f]);
          frames[f] = frames[--nframes];
          f--;
        }
      }
    }
    if (k.n > LOG_MAX - 4) {
      for (int j = 1; j < k.n; j++) assert_int_equal(k.seq[j], k.seq[j - 1] + 1);
      k.seq[0] = k.seq[k.n - 1];
      k.n = 1;
    }
  }
  for (int j = 1; j < k.n; j++) assert_int_equal(k.seq[j], k.seq[j - 1] + 1);
  assert_int_equal(o.last, N);
  assert_int_equal(set.holding, 0);
  assert_int_equal(set.stats.gaps, 0);
  assert_true(set.stats.held > 0);
  assert_true(set.stats.dropped > 0);
  release_frames();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_in_order),
      cmocka_unit_test(test_out_of_order),
      cmocka_unit_test(test_duplicates),
      cmocka_unit_test(test_gaps_filled_in_steps),
      cmocka_unit_test(test_gap_timeout_flush),
      cmocka_unit_test(test_timeout_follows_oldest_held),
      cmocka_unit_test(test_bound_reached),
      cmocka_unit_test(test_hold_reuses_space),
      cmocka_unit_test(test_non_message_events_pass),
      cmocka_unit_test(test_teardown_frees),
      cmocka_unit_test(test_clear_from_deliver),
      cmocka_unit_test(test_sweep_with_teardown),
      cmocka_unit_test(test_where_last_starts),
      cmocka_unit_test(test_random_reorder),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
