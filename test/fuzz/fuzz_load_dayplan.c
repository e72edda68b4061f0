/* Fuzz target: storm-load's storm-day plan parser (tools/load/dayplan.h)
 * on arbitrary bytes. It must refuse or accept without crashing, and an
 * accepted plan must satisfy the bounds its header promises. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "load/dayplan.h"
#include "load/run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > DAY_MAX_FILE) return 0;
  day_plan_t p;
  char err[256];
  if (dayplan_parse((const char *)data, size, &p, err, sizeof err) != 0) return 0;
  if (p.n < 1 || p.n > DAY_MAX_PHASES) abort();
  for (unsigned i = 0; i < p.n; i++) {
    if (!(p.ph[i].secs > 0) || p.ph[i].conns > LOAD_MAX_TOTAL_CONNS) abort();
    if (p.ph[i].ramp_s < 0 || p.ph[i].ramp_s > p.ph[i].secs) abort();
    double t = dayplan_target(&p, p.ph[i].start + p.ph[i].secs / 2);
    if (t < 0 || t > LOAD_MAX_TOTAL_CONNS) abort();
  }
  return 0;
}
