#include "core/str.h"

#include <errno.h>

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

bool str_list_has_token(str_t list, const char *tok) {
  str_t want = str_from(tok);
  size_t i = 0;
  while (i < list.n) {
    while (i < list.n && (is_ows(list.p[i]) || list.p[i] == ',')) i++;
    size_t start = i;
    while (i < list.n && list.p[i] != ',') i++;
    size_t end = i;
    while (end > start && is_ows(list.p[end - 1])) end--;
    if (str_ieq((str_t){list.p + start, end - start}, want)) return true;
  }
  return false;
}

int str_to_u64(str_t s, unsigned long long max, unsigned long long *out) {
  if (s.n == 0) return -EINVAL;
  unsigned long long v = 0;
  for (size_t i = 0; i < s.n; i++) {
    char c = s.p[i];
    if (c < '0' || c > '9') return -EINVAL;
    unsigned d = (unsigned)(c - '0');
    if (v > (max - d) / 10) return -ERANGE;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}
