#include "core/utf8.h"

#include <string.h>

/*
 * A DFA in the style of Bjoern Hoehrmann's decoder, with our own tables.
 * Each byte maps to one of 12 classes; the classes split the continuation
 * range 80..BF into the three sub-ranges that the second byte after E0, ED,
 * F0 and F4 is restricted to (RFC 3629 section 4), which is how overlongs,
 * surrogates and code points above U+10FFFF are rejected without decoding.
 *
 * States are stored premultiplied by 16 (the row width of the transition
 * table) so that a step is one add and one load.
 */
enum {
  C_ASCII, /* 00..7F */
  C_C80,   /* 80..8F */
  C_C90,   /* 90..9F */
  C_CA0,   /* A0..BF */
  C_BAD,   /* C0, C1 (always overlong), F5..FF (above U+10FFFF) */
  C_L2,    /* C2..DF: one continuation follows */
  C_E0,    /* E0: next A0..BF, else overlong */
  C_L3,    /* E1..EC, EE, EF: two continuations follow */
  C_ED,    /* ED: next 80..9F, else a surrogate */
  C_F0,    /* F0: next 90..BF, else overlong */
  C_L4,    /* F1..F3: three continuations follow */
  C_F4,    /* F4: next 80..8F, else above U+10FFFF */
};

enum {
  S_ACCEPT = 0 * 16, /* between code points */
  S_REJECT = 1 * 16, /* sink */
  S_NEED1 = 2 * 16,  /* one continuation (any) left */
  S_NEED2 = 3 * 16,  /* two continuations (any) left */
  S_E0 = 4 * 16,     /* after E0 */
  S_ED = 5 * 16,     /* after ED */
  S_NEED3 = 6 * 16,  /* after F1..F3 */
  S_F0 = 7 * 16,     /* after F0 */
  S_F4 = 8 * 16,     /* after F4 */
};

static const uint8_t byte_class[256] = {
    /* 00..7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80..8F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 90..9F */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* A0..BF */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* C0..CF: C0 and C1 can only encode overlongs */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* D0..DF */
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* E0..EF */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    /* F0..FF */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

#define R S_REJECT
/* transition[state + class]; columns in the order of the C_* enum, the last
 * four columns of each row are padding. */
static const uint8_t transition[9 * 16] = {
    /*            ASCII     80..8F   90..9F   A0..BF   bad C2..DF   E0    E1..EF  ED    F0    F1..F3   F4 */
    /* ACCEPT */ S_ACCEPT, R, R, R, R, S_NEED1, S_E0, S_NEED2, S_ED, S_F0, S_NEED3, S_F4, R, R, R, R,
    /* REJECT */ R, R, R, R, R, R, R, R, R, R, R, R, R, R, R, R,
    /* NEED1  */ R, S_ACCEPT, S_ACCEPT, S_ACCEPT, R, R, R, R, R, R, R, R, R, R, R, R,
    /* NEED2  */ R, S_NEED1, S_NEED1, S_NEED1, R, R, R, R, R, R, R, R, R, R, R, R,
    /* E0     */ R, R, R, S_NEED1, R, R, R, R, R, R, R, R, R, R, R, R,
    /* ED     */ R, S_NEED1, S_NEED1, R, R, R, R, R, R, R, R, R, R, R, R, R,
    /* NEED3  */ R, S_NEED2, S_NEED2, S_NEED2, R, R, R, R, R, R, R, R, R, R, R, R,
    /* F0     */ R, R, S_NEED2, S_NEED2, R, R, R, R, R, R, R, R, R, R, R, R,
    /* F4     */ R, S_NEED2, R, R, R, R, R, R, R, R, R, R, R, R, R, R,
};
#undef R

#define HIGH_BITS 0x8080808080808080ull

/* Index of the first byte >= 0x80 at or after i, or len. Reads whole words
 * with memcpy (no alignment or aliasing assumptions); the compiler turns
 * those into plain unaligned loads. */
static size_t skip_ascii(const uint8_t *s, size_t i, size_t len) {
  while (len - i >= 16) {
    uint64_t a, b;
    memcpy(&a, s + i, 8);
    memcpy(&b, s + i + 8, 8);
    if ((a | b) & HIGH_BITS) break;
    i += 16;
  }
  while (len - i >= 8) {
    uint64_t a;
    memcpy(&a, s + i, 8);
    if (a & HIGH_BITS) break;
    i += 8;
  }
  while (i < len && s[i] < 0x80) i++;
  return i;
}

/* Runs the DFA from `state` over s[0..len) and returns the final state.
 * Stops at the first rejecting byte (fail fast). */
static uint8_t run(uint8_t state, const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    /* Between code points, jump over ASCII runs; the byte test first keeps
     * non-Latin text (mostly multi-byte) from paying for the word scan. */
    if (state == S_ACCEPT && s[i] < 0x80) {
      i = skip_ascii(s, i, len);
      if (i == len) break;
    }
    state = transition[state + byte_class[s[i++]]];
    if (state == S_REJECT) break;
  }
  return state;
}

bool utf8_valid(const uint8_t *s, size_t len) { return run(S_ACCEPT, s, len) == S_ACCEPT; }

void utf8_stream_init(utf8_stream_t *u) { u->state = S_ACCEPT; }

bool utf8_stream_feed(utf8_stream_t *u, const uint8_t *s, size_t len) {
  if (u->state == S_REJECT) return false;
  u->state = run(u->state, s, len);
  return u->state != S_REJECT;
}

bool utf8_stream_complete(const utf8_stream_t *u) { return u->state == S_ACCEPT; }
