/* msg_idgen.c — see msg_idgen.h. */
#include "store/msg_idgen.h"

#include "store/messages_store.h"

int64_t msg_idgen_next(msg_idgen_t *g, unsigned node, int64_t now_ms, int64_t *created_at) {
  int64_t t = now_ms - MSG_ID_EPOCH_MS;
  if (t > g->ms) {
    g->ms = t;
    g->ctr = 0;
  } else if (++g->ctr > 0xFFF) {
    g->ms++;
    g->ctr = 0;
  }
  *created_at = g->ms + MSG_ID_EPOCH_MS;
  return g->ms << 22 | (int64_t)node << 12 | g->ctr;
}

int64_t msg_idgen_above(msg_idgen_t *g, unsigned node, int64_t now_ms, int64_t floor,
                        int64_t *created_at) {
  int64_t id = msg_idgen_next(g, node, now_ms, created_at);
  if (id > floor) return id;
  g->ms = (floor >> 22) + 1;
  g->ctr = 0;
  *created_at = g->ms + MSG_ID_EPOCH_MS;
  return g->ms << 22 | (int64_t)node << 12;
}
