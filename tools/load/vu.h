/*
 * vu.h — virtual users for the request/response scenarios (auth, ws): N
 * threads, each running one VU's iterations until a shared iteration count
 * or a deadline runs out (k6's --iterations / --duration).
 *
 * Contract:
 * - vu_run starts n threads calling fn(vu, arg) and joins them; returns 0
 *   or -errno if a thread could not start (those started are joined).
 * - Inside fn, vu_next claims the next iteration: true with its number in
 *   *iter, false once `iterations` were claimed (when non-zero) or the
 *   deadline passed. Thread-safe.
 * - vu_sleep_ms sleeps unless the deadline comes first.
 */
#ifndef STORM_LOAD_VU_H
#define STORM_LOAD_VU_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
  uint64_t iterations;  /* 0: until the deadline */
  uint64_t deadline_us; /* uv_hrtime µs; 0: none */
  atomic_uint_fast64_t claimed;
} vu_ctl_t;

typedef void (*vu_fn)(unsigned vu, void *arg);

int vu_run(unsigned n, vu_fn fn, void *arg);
bool vu_next(vu_ctl_t *c, uint64_t *iter);
void vu_sleep_ms(const vu_ctl_t *c, unsigned ms);
uint64_t vu_now_us(void);

#endif
