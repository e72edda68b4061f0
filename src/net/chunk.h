/*
 * chunk.h — reference-counted immutable byte chunks for output.
 *
 * Everything a connection writes is queued as chunks. A frame that goes to
 * many sockets (a channel message fanned out to 18,000 members, the shared
 * heartbeat ping) is encoded once into one chunk and each connection's queue
 * takes a reference: memory and encoding cost are paid once per message, not
 * once per recipient (the uWebSockets design).
 *
 * Lifetime: net_chunk_new returns a chunk with one reference held by the
 * caller; every queue that holds it adds one; the last net_chunk_unref frees
 * it. Contents must not change once a chunk has been queued anywhere.
 * Single-threaded: counts are not atomic (everything runs on the loop thread).
 */
#ifndef STORM_NET_CHUNK_H
#define STORM_NET_CHUNK_H

#include <stddef.h>
#include <stdint.h>

typedef struct net_chunk {
  uint32_t refs;
  uint32_t len;
  char data[];
} net_chunk_t;

/* Returns a chunk of len bytes (contents uninitialised) or NULL on OOM. */
net_chunk_t *net_chunk_new(size_t len);
/* Returns a new chunk holding a copy of data. */
net_chunk_t *net_chunk_copy(const void *data, size_t len);

static inline net_chunk_t *net_chunk_ref(net_chunk_t *c) {
  c->refs++;
  return c;
}

void net_chunk_unref(net_chunk_t *c);

#endif
