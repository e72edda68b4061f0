#include "net/chunk.h"

#include <stdlib.h>
#include <string.h>

net_chunk_t *net_chunk_new(size_t len) {
  if (len > UINT32_MAX) return NULL;
  net_chunk_t *c = malloc(sizeof *c + len);
  if (!c) return NULL;
  c->refs = 1;
  c->len = (uint32_t)len;
  return c;
}

net_chunk_t *net_chunk_copy(const void *data, size_t len) {
  net_chunk_t *c = net_chunk_new(len);
  if (c && len) memcpy(c->data, data, len);
  return c;
}

void net_chunk_unref(net_chunk_t *c) {
  if (c && --c->refs == 0) free(c);
}
