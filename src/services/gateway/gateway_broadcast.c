/*
 * gateway_broadcast.c — the event of the `broadcast` op (docs/protocol.md,
 * Broadcast): ephemeral data a member relays to everyone subscribed to a
 * channel, the sender's own connections included.
 *
 * Nothing is stored and nothing is numbered: the event goes straight onto
 * chan.<id>, the subject the channel's stored events use, so every gateway
 * with a member delivers it, and gateway_fanout.c frames it once for all of
 * its local members. At most once: a publish that fails is lost (the
 * sender is told), and a member that is resuming holds it with the other
 * live events.
 */
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "services/gateway/gateway_internal.h"

bool gw_broadcast_body_ok(const char *body, size_t len) {
  /* jansson hands out valid UTF-8 without NUL (it refuses \u0000 by
   * default), so characters are the bytes that do not continue one. The
   * byte bound keeps the count cheap on a hostile 64 KiB frame. */
  if (len == 0 || len > (size_t)GW_BROADCAST_BODY_MAX_CHARS * 4) return false;
  size_t chars = 0;
  for (size_t i = 0; i < len; i++) chars += ((unsigned char)body[i] & 0xC0) != 0x80;
  return chars <= GW_BROADCAST_BODY_MAX_CHARS;
}

int gw_broadcast_publish(gateway_t *g, int64_t user_id, int64_t chan_id, const char *body,
                         size_t len) {
  /* Encoded here once; the bus copies it and the fanout frames that copy
   * once per gateway, whatever the number of members. */
  buf_t b = BUF_INIT;
  buf_append_str(&b, "{\"op\":\"broadcast\",\"channel_id\":");
  buf_append_i64(&b, chan_id);
  buf_append_str(&b, ",\"user_id\":");
  buf_append_i64(&b, user_id);
  buf_append_str(&b, ",\"body\":\"");
  buf_append_json_escaped(&b, body, len);
  buf_append(&b, "\"}", 2);
  int rc = -ENOMEM;
  if (!b.oom) {
    char subject[32];
    snprintf(subject, sizeof subject, "chan.%lld", (long long)chan_id);
    rc = bus_publish(g->bus, subject, NULL, b.data, b.len);
  }
  if (rc < 0)
    log_warn("gateway", "broadcast on channel %lld failed: %d", (long long)chan_id, rc);
  buf_free(&b);
  return rc;
}
