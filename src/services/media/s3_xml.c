/*
 * s3_xml.c — element text extraction (contract in s3_xml.h).
 */
#include "services/media/s3_xml.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* Finds needle in hay[from..len); returns its offset or len. */
static size_t find(const char *hay, size_t len, size_t from, const char *needle, size_t nlen) {
  if (nlen == 0 || len < nlen) return len;
  for (size_t i = from; i + nlen <= len; i++)
    if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0) return i;
  return len;
}

/* Appends code point cp as UTF-8. Returns bytes written or -1. */
static int put_utf8(uint32_t cp, char *out, size_t room) {
  unsigned char b[4];
  int n;
  if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return -1;
  if (cp < 0x80) {
    b[0] = (unsigned char)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (unsigned char)(0xC0 | (cp >> 6));
    b[1] = (unsigned char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (unsigned char)(0xE0 | (cp >> 12));
    b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (unsigned char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    b[0] = (unsigned char)(0xF0 | (cp >> 18));
    b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (unsigned char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  if ((size_t)n > room) return -2;
  memcpy(out, b, (size_t)n);
  return n;
}

/* Decodes one entity starting at s[0] == '&' (s[0..n)). Returns the
 * entity's length in the input and writes the text, or -EINVAL/-ENOSPC. */
static ssize_t entity(const char *s, size_t n, char *out, size_t room, size_t *wrote) {
  static const struct {
    const char *name;
    char c;
  } named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
  for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
    size_t l = strlen(named[i].name);
    if (n >= 1 + l && memcmp(s + 1, named[i].name, l) == 0) {
      if (room < 1) return -ENOSPC;
      out[0] = named[i].c;
      *wrote = 1;
      return (ssize_t)(1 + l);
    }
  }
  if (n < 4 || s[1] != '#') return -EINVAL;
  size_t i = 2;
  int base = 10;
  if (s[i] == 'x') {
    base = 16;
    i++;
  }
  uint32_t cp = 0;
  size_t digits = 0;
  for (; i < n && s[i] != ';'; i++, digits++) {
    int d;
    char c = s[i];
    if (c >= '0' && c <= '9') d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return -EINVAL;
    if (digits >= 8) return -EINVAL;
    cp = cp * (uint32_t)base + (uint32_t)d;
  }
  if (i >= n || digits == 0) return -EINVAL;
  int w = put_utf8(cp, out, room);
  if (w == -2) return -ENOSPC;
  if (w < 0) return -EINVAL;
  *wrote = (size_t)w;
  return (ssize_t)(i + 1);
}

ssize_t s3_xml_text(const char *xml, size_t len, const char *name, size_t *pos, char *out,
                    size_t cap) {
  if (!xml || !name || !out || cap == 0) return -EINVAL;
  out[0] = '\0';
  size_t nl = strlen(name);
  if (nl == 0 || nl > 64) return -EINVAL;
  char open[68], close[69];
  open[0] = '<';
  memcpy(open + 1, name, nl);
  open[nl + 1] = '>';
  close[0] = '<';
  close[1] = '/';
  memcpy(close + 2, name, nl);
  close[nl + 2] = '>';
  size_t at = pos ? *pos : 0;
  if (at > len) return -ENOENT;
  size_t s = find(xml, len, at, open, nl + 2);
  if (s == len) return -ENOENT;
  size_t t = s + nl + 2;             /* text start */
  size_t lt = t;
  while (lt < len && xml[lt] != '<') lt++;
  if (lt == len || len - lt < nl + 3 || memcmp(xml + lt, close, nl + 3) != 0) return -ENOENT;
  size_t o = 0;
  for (size_t i = t; i < lt;) {
    if (xml[i] == '&') {
      size_t w = 0;
      ssize_t el = entity(xml + i, lt - i, out + o, cap - 1 - o, &w);
      if (el < 0) {
        out[0] = '\0';
        return el;
      }
      o += w;
      i += (size_t)el;
      continue;
    }
    if (xml[i] == '\0') { /* not XML; and the output is a C string */
      out[0] = '\0';
      return -EINVAL;
    }
    if (o >= cap - 1) {
      out[0] = '\0';
      return -ENOSPC;
    }
    out[o++] = xml[i++];
  }
  out[o] = '\0';
  if (pos) *pos = lt + nl + 3;
  return (ssize_t)o;
}

int s3_xml_root_is(const char *xml, size_t len, const char *name) {
  if (!xml || !name) return 0;
  size_t i = 0;
  while (i < len && (xml[i] == ' ' || xml[i] == '\t' || xml[i] == '\r' || xml[i] == '\n')) i++;
  if (len - i >= 5 && memcmp(xml + i, "<?xml", 5) == 0) {
    size_t e = find(xml, len, i, "?>", 2);
    if (e == len) return 0;
    i = e + 2;
  }
  while (i < len && (xml[i] == ' ' || xml[i] == '\t' || xml[i] == '\r' || xml[i] == '\n')) i++;
  size_t nl = strlen(name);
  if (i >= len || xml[i] != '<' || len - i - 1 < nl + 1 || memcmp(xml + i + 1, name, nl) != 0)
    return 0;
  char c = xml[i + 1 + nl];
  return c == '>' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '/';
}
