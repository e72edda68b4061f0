/* Fuzzes the subject grammar and matcher of bus/bus against a slow reference
 * written differently (split into tokens first, then compare token arrays).
 * Input: "<pattern>\n<subject>"; without a newline the whole input is both.
 * Invariants checked besides agreement with the reference: a literal subject
 * is also a valid pattern, matches itself, and is matched by ">". */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"

#define MAX_TOKENS (BUS_SUBJECT_MAX + 1)

typedef struct {
  const char *p[MAX_TOKENS];
  size_t n[MAX_TOKENS];
  size_t count;
} toks_t;

static void split(const char *s, toks_t *t) {
  t->count = 0;
  const char *start = s;
  for (const char *c = s;; c++) {
    if (*c == '.' || *c == '\0') {
      t->p[t->count] = start;
      t->n[t->count] = (size_t)(c - start);
      t->count++;
      if (*c == '\0') return;
      start = c + 1;
    }
  }
}

static bool tok_is(const toks_t *t, size_t i, char c) { return t->n[i] == 1 && t->p[i][0] == c; }

static bool ref_valid(const char *s, bool wild) {
  size_t len = strlen(s);
  if (len == 0 || len > BUS_SUBJECT_MAX) return false;
  static toks_t t;
  split(s, &t);
  for (size_t i = 0; i < t.count; i++) {
    if (t.n[i] == 0) return false;
    for (size_t j = 0; j < t.n[i]; j++) {
      unsigned char c = (unsigned char)t.p[i][j];
      if (c <= 0x20 || c == 0x7f) return false;
      if ((c == '*' || c == '>') && (!wild || t.n[i] != 1)) return false;
    }
    if (tok_is(&t, i, '>') && i != t.count - 1) return false;
  }
  return true;
}

static bool ref_match(const char *pattern, const char *subject) {
  static toks_t p, s;
  split(pattern, &p);
  split(subject, &s);
  for (size_t i = 0; i < p.count; i++) {
    if (tok_is(&p, i, '>')) return s.count > i;
    if (i >= s.count) return false;
    if (tok_is(&p, i, '*')) continue;
    if (p.n[i] != s.n[i] || memcmp(p.p[i], s.p[i], p.n[i]) != 0) return false;
  }
  return p.count == s.count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 2 * BUS_SUBJECT_MAX + 8) return 0;
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  const char *pattern = buf, *subject = buf;
  char *nl = memchr(buf, '\n', size);
  if (nl) {
    *nl = '\0';
    subject = nl + 1;
  }

  bool pv = bus_subject_valid(pattern, true), sv = bus_subject_valid(subject, false);
  if (pv != ref_valid(pattern, true)) abort();
  if (sv != ref_valid(subject, false)) abort();
  if (bus_subject_valid(pattern, false) != ref_valid(pattern, false)) abort();
  if (bus_subject_valid(subject, true) != ref_valid(subject, true)) abort();

  bool m = bus_subject_match(pattern, subject);
  if (m != (pv && sv && ref_match(pattern, subject))) abort();
  if (sv) {
    if (!bus_subject_valid(subject, true)) abort();
    if (!bus_subject_match(subject, subject)) abort();
    if (!bus_subject_match(">", subject)) abort();
  }
  free(buf);
  return 0;
}
