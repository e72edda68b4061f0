/* Fuzz target: the hand-written S3 XML bits (services/media/s3_xml.h).
 * Any bytes: element lookups by the names the S3 backend asks for, with
 * small and large output buffers, walking every match with *pos, and the
 * root-element check. The decoded text must fit its buffer, be
 * NUL-terminated, and the position must only move forward. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "services/media/s3_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const names[] = {"UploadId", "Code", "Message", "Key", "ETag", "Error", "A"};
  const char *x = (const char *)data;
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char small[8], big[512];
    ssize_t n = s3_xml_text(x, size, names[i], NULL, small, sizeof small);
    if (n >= (ssize_t)sizeof small || (n >= 0 && strlen(small) != (size_t)n) || (n < 0 && small[0]))
      __builtin_trap();
    size_t pos = 0;
    for (int k = 0; k < 64; k++) {
      size_t before = pos;
      n = s3_xml_text(x, size, names[i], &pos, big, sizeof big);
      if (n < 0) break;
      if (pos <= before || pos > size || (size_t)n >= sizeof big || strlen(big) != (size_t)n) __builtin_trap();
    }
    (void)s3_xml_root_is(x, size, names[i]);
  }
  return 0;
}
