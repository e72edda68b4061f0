#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"

int log__min_level = LOG_LEVEL_INFO;
static int log_fd = 2;
static log_format_t log_format = LOG_FORMAT_JSON;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const level_upper[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

/* Components are literals chosen in code; the cap keeps the message budget
 * positive whatever a caller passes. */
#define COMPONENT_MAX 64

void log_set_level(int level) {
  if (level < LOG_LEVEL_DEBUG) level = LOG_LEVEL_DEBUG;
  if (level > LOG_LEVEL_ERROR) level = LOG_LEVEL_ERROR;
  log__min_level = level;
}

int log_get_level(void) { return log__min_level; }

int log_level_parse(const char *s) {
  if (!s) return -EINVAL;
  for (int i = 0; i < 4; i++)
    if (strcasecmp(s, level_names[i]) == 0) return i;
  if (strcasecmp(s, "warning") == 0) return LOG_LEVEL_WARN;
  return -EINVAL;
}

const char *log_level_name(int level) {
  return level >= LOG_LEVEL_DEBUG && level <= LOG_LEVEL_ERROR ? level_names[level] : "?";
}

void log_set_fd(int fd) { log_fd = fd; }

void log_set_format(log_format_t f) { log_format = f; }

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 if it is not
 * one (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else return 0;
  if (n < len || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  return len;
}

/* Replaces every byte that does not start a well-formed sequence by '?'. */
static void utf8_sanitize(char *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq(s + i, n - i);
    if (k == 0) {
      p[i++] = '?';
    } else {
      i += k;
    }
  }
}

/* Bytes that buf_append_json_escaped produces for c. */
static size_t json_escaped_size(unsigned char c) {
  if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t') return 2;
  return c < 0x20 ? 6 : 1;
}

/* The longest prefix of the (valid UTF-8) message whose escaped form fits
 * in budget bytes, ending on a character boundary. */
static size_t fit_prefix(const char *s, size_t n, size_t budget) {
  size_t used = 0, i = 0;
  for (; i < n; i++) {
    used += json_escaped_size((unsigned char)s[i]);
    if (used > budget) break;
  }
  while (i > 0 && i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
  return i;
}

static void format_ts(char out[32]) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ts.tv_nsec / 1000000) % 1000u);
}

/* One write(2) for the whole line; a short write is finished (it only
 * happens on signals or full disks) but EAGAIN drops the rest. */
static void write_line(const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(log_fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

void log_write(int level, const char *component, const char *fmt, ...) {
  if (level < log__min_level) return;
  int saved_errno = errno;
  if (level > LOG_LEVEL_ERROR) level = LOG_LEVEL_ERROR;
  if (level < LOG_LEVEL_DEBUG) level = LOG_LEVEL_DEBUG;
  if (!component) component = "-";

  char msg[LOG_LINE_MAX];
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t mlen;
  bool cut = false;
  if (m < 0) {
    mlen = (size_t)snprintf(msg, sizeof msg, "(bad log format: %s)", fmt);
  } else if ((size_t)m >= sizeof msg) {
    mlen = sizeof msg - 1;
    /* A character split here becomes '?', but the line budget below is
     * smaller than this buffer, so the cut always falls before it. */
    cut = true;
  } else {
    mlen = (size_t)m;
  }
  utf8_sanitize(msg, mlen);

  char ts[32];
  format_ts(ts);
  size_t clen = strnlen(component, COMPONENT_MAX);

  buf_t b = BUF_INIT;
  buf_reserve(&b, 256 + mlen);
  const char *tail;
  if (log_format == LOG_FORMAT_TEXT) {
    buf_printf(&b, "%s %s ", ts, level_upper[level]);
    buf_append_json_escaped(&b, component, clen);
    buf_append(&b, ": ", 2);
    tail = "\n";
  } else {
    buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"", ts, level_names[level]);
    buf_append_json_escaped(&b, component, clen);
    buf_append_str(&b, "\",\"msg\":\"");
    tail = "\"}\n";
  }
  size_t reserved = b.len + strlen(tail) + 3; /* 3: the "..." of a cut message */
  size_t keep = fit_prefix(msg, mlen, LOG_LINE_MAX - reserved);
  buf_append_json_escaped(&b, msg, keep);
  if (cut || keep < mlen) buf_append(&b, "...", 3);
  buf_append_str(&b, tail);

  if (!b.oom) {
    write_line(b.data, b.len);
  } else {
    char fallback[128];
    int n = snprintf(fallback, sizeof fallback,
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"log\","
                     "\"msg\":\"line dropped: out of memory\"}\n",
                     ts, level_names[level]);
    if (n > 0 && (size_t)n < sizeof fallback) write_line(fallback, (size_t)n);
  }
  buf_free(&b);
  errno = saved_errno;
}
