/*
 * messages_mentions.c — @username mentions in a message body.
 *
 * Only the syntax is decided here; whether a mentioned name is a member of
 * the channel is the service's question (messages_send.c). Bytes >= 0x80
 * are never username characters, so multi-byte UTF-8 sequences simply end
 * or precede a mention and cannot be split wrongly.
 */
#include "services/messages/messages_internal.h"

#include <string.h>

static bool name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '.' || c == '-';
}

size_t msg_mentions(const char *body, size_t len, char out[][USER_NAME_MAX + 1], size_t max) {
  const unsigned char *p = (const unsigned char *)body;
  size_t n = 0;
  for (size_t i = 0; i < len && n < max; i++) {
    if (p[i] != '@') continue;
    /* "mail@example.org" and "@@x": the '@' must not follow a name char. */
    if (i > 0 && (name_char(p[i - 1]) || p[i - 1] == '@')) continue;
    size_t start = i + 1, end = start;
    while (end < len && name_char(p[end])) end++;
    size_t stop = end;
    while (stop > start && p[stop - 1] == '.') stop--;
    i = end - 1; /* the loop's i++ moves past the name */
    char name[USER_NAME_MAX + 1];
    if (!msg_username_fold(body + start, stop - start, name)) continue;
    bool seen = false;
    for (size_t k = 0; k < n && !seen; k++) seen = strcmp(out[k], name) == 0;
    if (!seen) memcpy(out[n++], name, sizeof name);
  }
  return n;
}
