/* msg.c — see msg.h. The server's JSON is compact (jansson, JSON.stringify)
 * but a space after a colon is tolerated so another peer server still works. */
#include "load/msg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int fit(int n, size_t cap) { return n < 0 || (size_t)n >= cap ? -ENOSPC : n; }

/* A bijection on 64 bits (odd multiplier), so nonces stay distinct. */
uint64_t msg_nonce_scatter(uint64_t index) { return index * UINT64_C(0x9E3779B97F4A7C15); }

int msg_format_send(char *out, size_t cap, long long channel, unsigned step, uint64_t t_us,
                    uint64_t index, const char *nonce_prefix, uint64_t nonce_n) {
  return fit(snprintf(out, cap,
                      "{\"op\":\"send\",\"channel_id\":%lld,\"body\":\"s=%u t=%" PRIu64 " i=%" PRIu64
                      " storm-load\",\"nonce\":\"%s%lld_%" PRIu64 "\",\"ref\":\"%u_%" PRIu64 "\"}",
                      channel, step, t_us, index, nonce_prefix, channel, nonce_n, step, t_us),
             cap);
}

int msg_format_broadcast(char *out, size_t cap, long long channel, unsigned step, uint64_t t_us,
                         uint64_t index) {
  return fit(snprintf(out, cap,
                      "{\"op\":\"broadcast\",\"channel_id\":%lld,\"body\":\"s=%u t=%" PRIu64 " i=%" PRIu64
                      " storm-load\"}",
                      channel, step, t_us, index),
             cap);
}

int msg_format_chat_send(char *out, size_t cap, long long channel, unsigned step, uint64_t t_us, uint64_t index,
                         uint32_t user, const char *nonce_prefix) {
  return fit(snprintf(out, cap,
                      "{\"op\":\"send\",\"channel_id\":%lld,\"body\":\"s=%u t=%" PRIu64 " i=%" PRIu64
                      " u=%" PRIu32 " storm-load\",\"nonce\":\"%su%" PRIu32 "_%" PRIu64 "\",\"ref\":\"%u_%" PRIu64 "\"}",
                      channel, step, t_us, index, user, nonce_prefix, user, index, step, t_us),
             cap);
}

int msg_format_typing(char *out, size_t cap, long long channel) {
  return fit(snprintf(out, cap, "{\"op\":\"typing\",\"channel_id\":%lld}", channel), cap);
}

int msg_format_history(char *out, size_t cap, long long channel, unsigned limit, uint64_t t_us) {
  return fit(snprintf(out, cap, "{\"op\":\"history\",\"channel_id\":%lld,\"limit\":%u,\"ref\":\"0_%" PRIu64 "\"}",
                      channel, limit, t_us),
             cap);
}

int msg_format_read(char *out, size_t cap, long long channel, uint64_t seq, uint64_t t_us) {
  return fit(snprintf(out, cap, "{\"op\":\"read\",\"channel_id\":%lld,\"seq\":%" PRIu64 ",\"ref\":\"0_%" PRIu64 "\"}",
                      channel, seq, t_us),
             cap);
}

/* The first `key` (a quoted name) in [p, end). memchr for the letter
 * after the quote, then a compare: glibc's memmem set-up cost more than
 * the search on these ~100-byte messages (7 % of a client core in S2). */
static bool same(const char *a, const char *b, size_t n) {
  while (n && *a == *b) a++, b++, n--; /* keys are a few bytes: no call */
  return n == 0;
}

static const char *find_key(const char *p, const char *end, const char *key, size_t kl) {
  if ((size_t)(end - p) < kl) return NULL;
  const char *s = p + 1;
  while (s < end && (s = memchr(s, key[1], (size_t)(end - s))) != NULL) {
    if (s[-1] == '"' && (size_t)(end - s) >= kl - 1 && same(s, key + 1, kl - 1)) return s - 1;
    s++;
  }
  return NULL;
}

/* After `key` (found first in [p, end)), skips spaces, ':' and spaces; NULL if absent. */
static const char *value_of(const char *p, const char *end, const char *key) {
  size_t kl = strlen(key);
  const char *k = find_key(p, end, key, kl);
  if (!k) return NULL;
  k += kl;
  while (k < end && *k == ' ') k++;
  if (k >= end || *k != ':') return NULL;
  k++;
  while (k < end && *k == ' ') k++;
  return k;
}

/* Decimal digits at *p (at least one, at most 19); advances *p. */
static bool digits(const char **p, const char *end, uint64_t *v) {
  const char *s = *p;
  uint64_t x = 0;
  int n = 0;
  while (s < end && *s >= '0' && *s <= '9' && n < 19) {
    x = x * 10 + (uint64_t)(*s - '0');
    s++;
    n++;
  }
  if (n == 0) return false;
  *p = s;
  *v = x;
  return true;
}

static bool lit(const char **p, const char *end, const char *l) {
  size_t n = strlen(l);
  if ((size_t)(end - *p) < n || !same(*p, l, n)) return false;
  *p += n;
  return true;
}

/* Returns where the stamp ended (NULL when there was none). */
static const char *stamp(msg_in_t *m, const char *v, const char *end, const char *pre, const char *mid) {
  uint64_t s, t;
  if (v && lit(&v, end, pre) && digits(&v, end, &s) && lit(&v, end, mid) && digits(&v, end, &t) &&
      s <= UINT32_MAX) {
    m->stamped = true;
    m->step = (unsigned)s;
    m->t_us = t;
    return v;
  }
  return NULL;
}

static void number_of(const char *d, const char *end, const char *key, uint64_t *out) {
  const char *v = value_of(d, end, key);
  uint64_t x;
  if (v && digits(&v, end, &x)) *out = x;
}

void msg_parse(const char *d, size_t n, msg_in_t *m) {
#define KIND(s, k) {s, sizeof s - 1, k}
  static const struct { const char *name; size_t n; enum msg_kind kind; } kinds[] = {
      KIND("\"broadcast\"", MSG_BROADCAST), KIND("\"message\"", MSG_MESSAGE),
      KIND("\"ack\"", MSG_ACK),             KIND("\"hello\"", MSG_HELLO),
      KIND("\"error\"", MSG_ERROR),         KIND("\"history\"", MSG_HISTORY),
      KIND("\"read_ack\"", MSG_READ_ACK),   KIND("\"typing\"", MSG_TYPING),
  };
#undef KIND
  const char *end = d + n;
  memset(m, 0, sizeof *m);
  const char *v = value_of(d, end, "\"op\"");
  if (!v) return;
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    if ((size_t)(end - v) >= kinds[i].n && same(v, kinds[i].name, kinds[i].n)) {
      m->kind = kinds[i].kind;
      break;
    }
  }
  if (m->kind == MSG_ACK || m->kind == MSG_HISTORY || m->kind == MSG_READ_ACK)
    stamp(m, value_of(d, end, "\"ref\""), end, "\"", "_");
  if (m->kind == MSG_MESSAGE || m->kind == MSG_BROADCAST) {
    const char *q = stamp(m, value_of(d, end, "\"body\""), end, "\"s=", " t=");
    uint64_t i, u;
    if (q && lit(&q, end, " i=") && digits(&q, end, &i) && lit(&q, end, " u=") && digits(&q, end, &u) &&
        u <= UINT32_MAX) {
      m->has_user = true;
      m->user = (uint32_t)u;
    }
  }
  if (m->kind == MSG_ACK || m->kind == MSG_MESSAGE || m->kind == MSG_TYPING) {
    uint64_t ch = 0;
    number_of(d, end, "\"channel_id\"", &ch);
    m->channel = ch <= (uint64_t)INT64_MAX ? (long long)ch : 0;
    if (m->kind != MSG_TYPING) number_of(d, end, "\"seq\"", &m->seq);
  }
}
