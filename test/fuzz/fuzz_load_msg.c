/* Fuzz target: storm-load's reader of server messages (tools/load/msg.h),
 * which sees whatever a server under test sends. It must never read out of
 * bounds or crash, whatever the bytes. */
#include <stddef.h>
#include <stdint.h>

#include "load/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msg_in_t m;
  msg_parse((const char *)data, size, &m);
  return 0;
}
