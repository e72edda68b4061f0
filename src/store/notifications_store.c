/* notifications_store.c — the argument checks both notification backends
 * share (contract in notifications_store.h), so that they refuse exactly
 * the same input. */
#include "store/notifications_store.h"

#include <string.h>

bool notif_type_valid(const char *type) {
  if (!type) return false;
  size_t n = strnlen(type, NOTIF_TYPE_MAX + 1);
  if (n == 0 || n > NOTIF_TYPE_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = type[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return false;
  }
  return true;
}

bool notif_valid(const notif_t *n) {
  return n && n->id > 0 && n->user_id > 0 && n->mute_channel >= 0 && notif_type_valid(n->type) &&
         n->payload && n->payload_len >= 2 && n->payload_len <= NOTIF_PAYLOAD_MAX &&
         n->payload[0] == '{' && n->payload[n->payload_len - 1] == '}' &&
         !memchr(n->payload, '\0', n->payload_len);
}
