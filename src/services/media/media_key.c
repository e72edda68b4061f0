/* media_key.c — key generation, parsing and file-name sanitizing
 * (contract in media_key.h). */
#include "services/media/media_key.h"

#include <string.h>

#include <sodium.h>

static bool name_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool media_object_id_valid(const char *id) {
  if (!id) return false;
  for (size_t i = 0; i < MEDIA_OBJECT_ID_LEN; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return false;
  return id[MEDIA_OBJECT_ID_LEN] == '\0';
}

void media_name_sanitize(const char *name, size_t len, char out[MEDIA_NAME_MAX + 1]) {
  size_t start = 0;
  for (size_t i = 0; i < len; i++)
    if (name[i] == '/' || name[i] == '\\') start = i + 1;
  char tmp[1024];
  size_t n = 0;
  for (size_t i = start; i < len && n < sizeof tmp; i++) {
    unsigned char c = (unsigned char)name[i];
    if (n == 0 && c == '.') continue; /* no leading dots */
    tmp[n++] = name_byte(c) ? (char)c : '_';
  }
  if (n == 0) {
    strcpy(out, "file");
    return;
  }
  if (n <= MEDIA_NAME_MAX) {
    memcpy(out, tmp, n);
    out[n] = '\0';
    return;
  }
  /* Too long: keep the extension (up to 16 bytes) after a cut stem. */
  size_t ext = 0;
  for (size_t i = n; i-- > 1;)
    if (tmp[i] == '.') {
      ext = n - i;
      break;
    }
  if (ext > 16) ext = 0;
  size_t stem = MEDIA_NAME_MAX - ext;
  memcpy(out, tmp, stem);
  memcpy(out + stem, tmp + n - ext, ext);
  out[MEDIA_NAME_MAX] = '\0';
}

void media_key_new(const char *name, size_t len, char key[MEDIA_KEY_MAX + 1]) {
  unsigned char rnd[MEDIA_OBJECT_ID_LEN / 2];
  randombytes_buf(rnd, sizeof rnd);
  sodium_bin2hex(key, MEDIA_OBJECT_ID_LEN + 1, rnd, sizeof rnd);
  key[MEDIA_OBJECT_ID_LEN] = '-';
  media_name_sanitize(name ? name : "", name ? len : 0, key + MEDIA_OBJECT_ID_LEN + 1);
}

bool media_key_parse(const char *key, size_t len, char id[MEDIA_OBJECT_ID_LEN + 1]) {
  if (!key || len < MEDIA_OBJECT_ID_LEN + 2 || len > MEDIA_KEY_MAX) return false;
  if (key[MEDIA_OBJECT_ID_LEN] != '-' || key[MEDIA_OBJECT_ID_LEN + 1] == '.') return false;
  for (size_t i = MEDIA_OBJECT_ID_LEN + 1; i < len; i++)
    if (!name_byte((unsigned char)key[i])) return false;
  memcpy(id, key, MEDIA_OBJECT_ID_LEN);
  id[MEDIA_OBJECT_ID_LEN] = '\0';
  return media_object_id_valid(id);
}
