/* chatmix.c — see chatmix.h. */
#include "load/chatmix.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const chat_action_names[CHAT_NACTIONS] = {"send", "typing", "history", "read"};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && errlen) vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return rc;
}

uint64_t chat_rand(uint64_t *s) {
  uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

void chat_default_classes(unsigned users, chat_class_t *out, unsigned *n) {
  unsigned k = 0;
  out[k++] = (chat_class_t){.count = 1, .all = true};
  if (users >= 100) out[k++] = (chat_class_t){.count = users / 50, .size = 50};
  out[k++] = (chat_class_t){.count = users / 5 ? users / 5 : 1, .size = users < 5 ? users : 5};
  *n = k;
}

/* A decimal in [lo, hi] at *p; advances *p. */
static bool dec(const char **p, unsigned long lo, unsigned long hi, unsigned *out) {
  const char *s = *p;
  unsigned long v = 0;
  int n = 0;
  while (*s >= '0' && *s <= '9' && n < 9) v = v * 10 + (unsigned long)(*s++ - '0'), n++;
  if (!n || (*s >= '0' && *s <= '9') || v < lo || v > hi) return false;
  *p = s;
  *out = (unsigned)v;
  return true;
}

int chat_parse_classes(const char *spec, unsigned users, chat_class_t *out, unsigned *n, char *err, size_t errlen) {
  const char *p = spec;
  unsigned k = 0;
  uint64_t memberships = 0;
  if (users < 2) return fail(err, errlen, -EINVAL, "a chat needs at least 2 users");
  for (;;) {
    chat_class_t c = {0};
    if (k == CHAT_MAX_CLASSES) return fail(err, errlen, -E2BIG, "at most %d channel classes", CHAT_MAX_CLASSES);
    if (!dec(&p, 1, 100000, &c.count) || *p++ != 'x')
      return fail(err, errlen, -EINVAL, "channel class %u: expected COUNTxSIZE (COUNT 1..100000), e.g. 4x50", k + 1);
    if (*p == '*') {
      c.all = true;
      p++;
    } else if (!dec(&p, 2, users, &c.size)) {
      return fail(err, errlen, -EINVAL, "channel class %u: SIZE must be 2..%u (the users) or *", k + 1, users);
    }
    memberships += (uint64_t)c.count * (c.all ? users : c.size);
    if (memberships > CHAT_MAX_MEMBERSHIPS)
      return fail(err, errlen, -E2BIG, "more than %d channel memberships in all", CHAT_MAX_MEMBERSHIPS);
    out[k++] = c;
    if (!*p) break;
    if (*p++ != ',') return fail(err, errlen, -EINVAL, "channel class %u: expected ',' or the end", k);
  }
  *n = k;
  return 0;
}

void chat_default_weights(chat_weights_t *w) {
  *w = (chat_weights_t){.w = {50, 30, 10, 10}, .total = 100};
}

int chat_parse_weights(const char *spec, chat_weights_t *w, char *err, size_t errlen) {
  memset(w, 0, sizeof *w);
  const char *p = spec;
  bool seen[CHAT_NACTIONS] = {0};
  for (;;) {
    int a = -1;
    for (int i = 0; i < CHAT_NACTIONS; i++) {
      size_t l = strlen(chat_action_names[i]);
      if (!strncmp(p, chat_action_names[i], l) && p[l] == '=') {
        a = i;
        p += l + 1;
        break;
      }
    }
    if (a < 0) return fail(err, errlen, -EINVAL, "weights: expected send=, typing=, history= or read= at \"%.20s\"", p);
    if (seen[a]) return fail(err, errlen, -EINVAL, "weights: %s given twice", chat_action_names[a]);
    seen[a] = true;
    if (!dec(&p, 0, CHAT_MAX_WEIGHT, &w->w[a]))
      return fail(err, errlen, -EINVAL, "weights: %s must be 0..%d", chat_action_names[a], CHAT_MAX_WEIGHT);
    w->total += w->w[a];
    if (!*p) break;
    if (*p++ != ',') return fail(err, errlen, -EINVAL, "weights: expected ',' after %s", chat_action_names[a]);
  }
  if (!w->total) return fail(err, errlen, -EINVAL, "weights: all 0");
  return 0;
}

enum chat_action chat_pick(const chat_weights_t *w, uint32_t r) {
  uint64_t x = ((uint64_t)r * w->total) >> 32; /* [0, total) */
  for (int a = 0; a < CHAT_NACTIONS; a++) {
    if (x < w->w[a]) return (enum chat_action)a;
    x -= w->w[a];
  }
  return CHAT_SEND; /* unreachable with total = sum of w */
}

void chat_layout_free(chat_layout_t *l) {
  free(l->conv_off);
  free(l->members);
  free(l->user_off);
  free(l->user_convs);
  free(l->conv_id);
  memset(l, 0, sizeof *l);
}

static void shuffle(uint32_t *a, unsigned n, uint64_t *rs) {
  for (unsigned i = 0; i < n; i++) a[i] = i;
  for (unsigned i = n; i > 1; i--) {
    unsigned j = (unsigned)(chat_rand(rs) % i);
    uint32_t t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  }
}

/* DMs: `dms` distinct unordered pairs, kept in an open-addressing set. */
static int dm_pairs(unsigned users, unsigned dms, uint64_t *rs, uint64_t *pairs) {
  size_t cap = 16;
  while (cap < (size_t)dms * 2) cap <<= 1;
  uint64_t *set = calloc(cap, sizeof *set); /* key + 1, 0 = empty */
  if (!set) return -ENOMEM;
  unsigned got = 0;
  for (uint64_t tries = 0; got < dms && tries < (uint64_t)dms * 50 + 1000; tries++) {
    uint32_t a = (uint32_t)(chat_rand(rs) % users), b = (uint32_t)(chat_rand(rs) % users);
    if (a == b) continue;
    uint64_t key = a < b ? ((uint64_t)a << 32 | b) : ((uint64_t)b << 32 | a);
    size_t h = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
    while (set[h] && set[h] != key + 1) h = (h + 1) & (cap - 1);
    if (set[h]) continue;
    set[h] = key + 1;
    pairs[got++] = (uint64_t)a << 32 | b; /* a opens the DM */
  }
  free(set);
  return got == dms ? 0 : -EINVAL;
}

int chat_layout_build(chat_layout_t *l, unsigned users, const chat_class_t *cls, unsigned ncls, unsigned dms,
                      uint64_t seed, char *err, size_t errlen) {
  memset(l, 0, sizeof *l);
  if (users < 2) return fail(err, errlen, -EINVAL, "a chat needs at least 2 users");
  if (dms > users * 4ull || dms > (uint64_t)users * (users - 1) / 2)
    return fail(err, errlen, -EINVAL, "--dms %u: at most 4 per user and one per pair", dms);
  uint64_t nch = 0, mem = 2ull * dms;
  for (unsigned k = 0; k < ncls; k++) {
    unsigned s = cls[k].all ? users : cls[k].size;
    if (s < 2 || s > users) return fail(err, errlen, -EINVAL, "channel class %u: size %u, need 2..%u", k + 1, s, users);
    nch += cls[k].count;
    mem += (uint64_t)cls[k].count * s;
  }
  if (mem > CHAT_MAX_MEMBERSHIPS + 2ull * 4 * 100000)
    return fail(err, errlen, -E2BIG, "more than %d memberships", CHAT_MAX_MEMBERSHIPS);
  l->users = users;
  l->nchannels = (unsigned)nch;
  l->nconvs = (unsigned)(nch + dms);
  l->conv_off = calloc(l->nconvs + 1, sizeof *l->conv_off);
  l->members = calloc(mem ? mem : 1, sizeof *l->members);
  l->user_off = calloc(users + 1, sizeof *l->user_off);
  l->user_convs = calloc(mem ? mem : 1, sizeof *l->user_convs);
  l->conv_id = calloc(l->nconvs ? l->nconvs : 1, sizeof *l->conv_id);
  uint32_t *perm = calloc(users, sizeof *perm);
  uint64_t *pairs = calloc(dms ? dms : 1, sizeof *pairs);
  int rc = 0;
  if (!l->conv_off || !l->members || !l->user_off || !l->user_convs || !l->conv_id || !perm || !pairs) {
    rc = fail(err, errlen, -ENOMEM, "out of memory for the layout");
    goto out;
  }
  uint64_t rs = seed ? seed : 1;
  unsigned c = 0;
  uint32_t m = 0;
  for (unsigned k = 0; k < ncls; k++) {
    unsigned s = cls[k].all ? users : cls[k].size;
    shuffle(perm, users, &rs);
    for (unsigned i = 0; i < cls[k].count; i++, c++) {
      l->conv_off[c] = m;
      for (unsigned j = 0; j < s; j++) l->members[m++] = perm[((uint64_t)i * s + j) % users];
    }
  }
  if (dm_pairs(users, dms, &rs, pairs) < 0) {
    rc = fail(err, errlen, -EINVAL, "could not draw %u distinct DM pairs", dms);
    goto out;
  }
  for (unsigned i = 0; i < dms; i++, c++) {
    l->conv_off[c] = m;
    l->members[m++] = (uint32_t)(pairs[i] >> 32);
    l->members[m++] = (uint32_t)pairs[i];
  }
  l->conv_off[c] = m;
  /* Invert: conversations per user (counting pass, then fill). */
  for (uint32_t i = 0; i < m; i++) l->user_off[l->members[i] + 1]++;
  for (unsigned u = 0; u < users; u++) {
    if (l->user_off[u + 1] > CHAT_MAX_CONVS_PER_USER) {
      rc = fail(err, errlen, -EINVAL, "user %u is in %u conversations, more than the %d a connection receives", u,
                l->user_off[u + 1], CHAT_MAX_CONVS_PER_USER);
      goto out;
    }
    l->user_off[u + 1] += l->user_off[u];
  }
  uint32_t *fill = perm; /* reuse: next free slot per user */
  for (unsigned u = 0; u < users; u++) fill[u] = l->user_off[u];
  for (unsigned cv = 0; cv < l->nconvs; cv++)
    for (uint32_t i = l->conv_off[cv]; i < l->conv_off[cv + 1]; i++) l->user_convs[fill[l->members[i]]++] = cv;
out:
  free(perm);
  free(pairs);
  if (rc < 0) chat_layout_free(l);
  return rc;
}
