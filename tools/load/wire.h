/*
 * wire.h — the pipe protocol between the storm-load parent and its workers.
 *
 * Contract:
 * - A frame is [u32 type][u32 payload length][payload], host byte order:
 *   both ends are the same binary on the same machine (fork), so fixed
 *   structs travel as they are. Histograms travel sparse (non-zero buckets
 *   only), so a frame stays small; WIRE_MAX_FRAME bounds any frame.
 * - Worker -> parent: W_COUNTS (cumulative counters + whether the worker's
 *   senders are done, a few times a second), W_SEC (one second: deltas and
 *   that second's delivery histogram), W_FINAL (the whole result, last).
 *   Parent -> worker: C_GO (the plan's start time, uv_hrtime µs), C_STOP.
 * - wire_put_* append to a buf_t (check buf.oom once). wire_get_* decode a
 *   payload and return 0 or -EPROTO when it is short, too long or
 *   inconsistent (a histogram whose counts do not add up, a bucket index
 *   out of range, more steps or codes than fit).
 * - wire_next finds the next complete frame in [data, data+len): returns
 *   the bytes it spans (> 0), 0 when incomplete, -EPROTO when the declared
 *   length exceeds WIRE_MAX_FRAME.
 */
#ifndef STORM_LOAD_WIRE_H
#define STORM_LOAD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "load/stats.h"

#define WIRE_MAX_FRAME (16u << 20)

enum { W_COUNTS = 1, W_SEC = 2, W_FINAL = 3, C_GO = 10, C_STOP = 11 };

typedef struct {
  load_counts_t n;
  uint32_t sending_done;
  uint64_t last_delivery_us;
} wire_counts_t;

void wire_put_frame(buf_t *b, uint32_t type, const void *payload, size_t len);
void wire_put_hist(buf_t *b, const lhist_t *h);
void wire_put_sec(buf_t *b, const load_sec_t *s, const lhist_t *h);   /* a whole W_SEC frame */
void wire_put_result(buf_t *b, const load_result_t *r);              /* a whole W_FINAL frame */

long wire_next(const uint8_t *data, size_t len, uint32_t *type, const uint8_t **payload, size_t *plen);
int wire_get_hist(const uint8_t **p, const uint8_t *end, lhist_t *h);
int wire_get_sec(const uint8_t *p, size_t len, load_sec_t *s, lhist_t *h);
int wire_get_result(const uint8_t *p, size_t len, load_result_t *r);

#endif
