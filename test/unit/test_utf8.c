/* Tests for core/utf8: fixed vectors, an exhaustive comparison with a
 * straightforward reference decoder, and the streaming validator fed in
 * every split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/utf8.h"

/* Decodes code point by code point, the slow obvious way (RFC 3629). */
static bool ref_valid(const uint8_t *s, size_t n) {
  static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
  size_t i = 0;
  while (i < n) {
    uint8_t b = s[i];
    uint32_t cp;
    size_t need;
    if (b < 0x80) {
      i++;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      cp = b & 0x1F;
      need = 1;
    } else if ((b & 0xF0) == 0xE0) {
      cp = b & 0x0F;
      need = 2;
    } else if ((b & 0xF8) == 0xF0) {
      cp = b & 0x07;
      need = 3;
    } else {
      return false;
    }
    for (size_t k = 1; k <= need; k++) {
      if (i + k >= n || (s[i + k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    if (cp < min_cp[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += need + 1;
  }
  return true;
}

/* utf8_valid and the streaming validator fed in every 2-way and 3-way
 * split must agree with `expect`. */
static void check_all_ways(const uint8_t *s, size_t n, bool expect) {
  assert_int_equal(utf8_valid(s, n), expect);
  for (size_t a = 0; a <= n; a++) {
    for (size_t b = a; b <= n; b++) {
      utf8_stream_t u;
      utf8_stream_init(&u);
      bool ok = utf8_stream_feed(&u, s, a) && utf8_stream_feed(&u, s + a, b - a) &&
                utf8_stream_feed(&u, s + b, n - b);
      assert_int_equal(ok && utf8_stream_complete(&u), expect);
    }
  }
}

struct vec {
  const char *s;
  size_t n;
};
#define V(lit) {lit, sizeof(lit) - 1}

static const struct vec valid_vecs[] = {
    V(""),
    V("hello, world"),
    V("\x00"),
    V("\x7f"),
    V("\xc2\x80"),         /* U+0080, smallest 2-byte */
    V("\xdf\xbf"),         /* U+07FF */
    V("\xc3\xa9t\xc3\xa9"), /* "été" */
    V("\xe0\xa0\x80"),     /* U+0800, smallest 3-byte */
    V("\xe1\x80\x80"),
    V("\xec\xbf\xbf"),
    V("\xed\x9f\xbf"),     /* U+D7FF, just below the surrogates */
    V("\xee\x80\x80"),     /* U+E000, just above */
    V("\xef\xbf\xbf"),     /* U+FFFF */
    V("\xef\xbb\xbf"),     /* BOM */
    V("\xf0\x90\x80\x80"), /* U+10000, smallest 4-byte */
    V("\xf0\x9f\x98\x80"), /* emoji */
    V("\xf1\x80\x80\x80"),
    V("\xf3\xbf\xbf\xbf"),
    V("\xf4\x8f\xbf\xbf"), /* U+10FFFF, the largest */
    V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), /* "κόσμε" */
};

static const struct vec invalid_vecs[] = {
    V("\x80"),             /* stray continuation */
    V("\xbf"),
    V("a\x80"),
    V("\xc2\x80\x80"),     /* one continuation too many */
    V("\xc0\x80"),         /* overlong NUL */
    V("\xc1\xbf"),         /* overlong U+007F */
    V("\xe0\x80\x80"),     /* overlong */
    V("\xe0\x9f\xbf"),     /* overlong U+07FF */
    V("\xf0\x80\x80\x80"), /* overlong */
    V("\xf0\x8f\xbf\xbf"), /* overlong U+FFFF */
    V("\xed\xa0\x80"),     /* U+D800 */
    V("\xed\xbf\xbf"),     /* U+DFFF */
    V("\xed\xa0\x80\xed\xb0\x80"), /* surrogate pair, CESU-8 */
    V("\xf4\x90\x80\x80"), /* U+110000 */
    V("\xf5\x80\x80\x80"),
    V("\xf8\x88\x80\x80\x80"), /* 5-byte form */
    V("\xfe"),
    V("\xff"),
    V("\xc2"),             /* truncated sequences */
    V("\xe0\xa0"),
    V("\xe1"),
    V("\xf0\x90\x80"),
    V("\xf4\x8f\xbf"),
    V("abc\xf0\x9f\x98"),
    V("\xc2\x41"),         /* lead followed by ASCII */
    V("\xe1\x80\x41"),
    V("\xf1\x80\x80\xc0"),
};

static void test_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof valid_vecs / sizeof valid_vecs[0]; i++) {
    const uint8_t *s = (const uint8_t *)valid_vecs[i].s;
    assert_true(ref_valid(s, valid_vecs[i].n));
    check_all_ways(s, valid_vecs[i].n, true);
  }
  for (size_t i = 0; i < sizeof invalid_vecs / sizeof invalid_vecs[0]; i++) {
    const uint8_t *s = (const uint8_t *)invalid_vecs[i].s;
    assert_false(ref_valid(s, invalid_vecs[i].n));
    check_all_ways(s, invalid_vecs[i].n, false);
  }
}

static void test_null_empty(void **state) {
  (void)state;
  assert_true(utf8_valid(NULL, 0));
  utf8_stream_t u;
  utf8_stream_init(&u);
  assert_true(utf8_stream_feed(&u, NULL, 0));
  assert_true(utf8_stream_complete(&u));
}

/* Every 1-, 2- and 3-byte string, and 4-byte strings built from the bytes
 * at the class boundaries, against the reference decoder. */
static void test_exhaustive_vs_reference(void **state) {
  (void)state;
  uint8_t s[4];
  for (unsigned a = 0; a < 256; a++) {
    s[0] = (uint8_t)a;
    assert_int_equal(utf8_valid(s, 1), ref_valid(s, 1));
    for (unsigned b = 0; b < 256; b++) {
      s[1] = (uint8_t)b;
      assert_int_equal(utf8_valid(s, 2), ref_valid(s, 2));
      for (unsigned c = 0; c < 256; c++) {
        s[2] = (uint8_t)c;
        if (utf8_valid(s, 3) != ref_valid(s, 3)) fail_msg("3-byte %02x %02x %02x", a, b, c);
      }
    }
  }
  static const uint8_t edge[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
                                 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xf0, 0xf4, 0xff};
  for (unsigned a = 0xf0; a <= 0xff; a++)
    for (size_t i = 0; i < sizeof edge; i++)
      for (size_t j = 0; j < sizeof edge; j++)
        for (size_t k = 0; k < sizeof edge; k++) {
          s[0] = (uint8_t)a;
          s[1] = edge[i];
          s[2] = edge[j];
          s[3] = edge[k];
          if (utf8_valid(s, 4) != ref_valid(s, 4))
            fail_msg("4-byte %02x %02x %02x %02x", s[0], s[1], s[2], s[3]);
        }
}

/* The ASCII fast path reads whole words: a bad byte or a multi-byte
 * sequence must be found at every offset and word alignment. */
static void test_fast_path_positions(void **state) {
  (void)state;
  enum { N = 80 };
  uint8_t *s = malloc(N + 8);
  assert_non_null(s);
  for (size_t start = 0; start < 8; start++) {
    uint8_t *p = s + start;
    for (size_t pos = 0; pos < N; pos++) {
      memset(p, 'a', N);
      assert_true(utf8_valid(p, N));
      p[pos] = 0x80;
      assert_false(utf8_valid(p, N));
      p[pos] = 0xff;
      assert_false(utf8_valid(p, N));
      if (pos + 1 < N) {
        p[pos] = 0xc3;
        p[pos + 1] = 0xa9;
        assert_true(utf8_valid(p, N));
        assert_false(utf8_valid(p, pos + 1)); /* cut inside the sequence */
      }
      if (pos + 3 < N) {
        memcpy(p + pos, "\xf0\x9f\x98\x80", 4);
        assert_true(utf8_valid(p, N));
        memcpy(p + pos, "\xed\xa0\x80", 3);
        assert_false(utf8_valid(p, N));
      }
    }
  }
  free(s);
}

/* A random mix of ASCII runs and multi-byte sequences, valid and not,
 * checked against the reference and in random splits. */
static void test_random_mixed(void **state) {
  (void)state;
  static const char *pieces[] = {"abcdefgh", "x", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                 "0123456789abcdef0123", "\xed\x9f\xbf", "\xf4\x8f\xbf\xbf"};
  static const char *bad[] = {"\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"};
  uint8_t s[512];
  unsigned seed = 12345;
  for (int iter = 0; iter < 2000; iter++) {
    size_t n = 0;
    int npieces = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 40;
    for (int k = 0; k < npieces; k++) {
      seed = seed * 1103515245u + 12345u;
      const char *p = (seed >> 16) % 50 == 0 ? bad[(seed >> 8) % 5] : pieces[(seed >> 20) % 8];
      size_t l = strlen(p);
      if (n + l > sizeof s) break;
      memcpy(s + n, p, l);
      n += l;
    }
    bool expect = ref_valid(s, n);
    assert_int_equal(utf8_valid(s, n), expect);
    seed = seed * 1103515245u + 12345u;
    size_t cut = n ? (seed >> 16) % (n + 1) : 0;
    utf8_stream_t u;
    utf8_stream_init(&u);
    bool ok = utf8_stream_feed(&u, s, cut) && utf8_stream_feed(&u, s + cut, n - cut);
    assert_int_equal(ok && utf8_stream_complete(&u), expect);
  }
}

static void test_stream_fail_fast_and_sticky(void **state) {
  (void)state;
  utf8_stream_t u;
  utf8_stream_init(&u);
  assert_true(utf8_stream_feed(&u, (const uint8_t *)"ok \xe0", 4));
  assert_false(utf8_stream_complete(&u));
  /* E0 80 is already hopeless: the feed that brings 80 fails, before any
   * later bytes. */
  assert_false(utf8_stream_feed(&u, (const uint8_t *)"\x80", 1));
  assert_false(utf8_stream_complete(&u));
  /* Sticky: valid bytes afterwards do not revive it. */
  assert_false(utf8_stream_feed(&u, (const uint8_t *)"abc", 3));
  assert_false(utf8_stream_feed(&u, NULL, 0));
  assert_false(utf8_stream_complete(&u));

  /* Fails at the bad byte even when more valid bytes follow in the call. */
  utf8_stream_init(&u);
  assert_false(utf8_stream_feed(&u, (const uint8_t *)"a\xff" "bcdefghijklmnop", 17));
}

static void test_stream_split_sequences(void **state) {
  (void)state;
  /* A 4-byte sequence split 1+3, 2+2, 3+1 and byte by byte. */
  const uint8_t *e = (const uint8_t *)"\xf0\x9f\x98\x80";
  for (size_t cut = 1; cut < 4; cut++) {
    utf8_stream_t u;
    utf8_stream_init(&u);
    assert_true(utf8_stream_feed(&u, e, cut));
    assert_false(utf8_stream_complete(&u));
    assert_true(utf8_stream_feed(&u, e + cut, 4 - cut));
    assert_true(utf8_stream_complete(&u));
  }
  utf8_stream_t u;
  utf8_stream_init(&u);
  for (size_t i = 0; i < 4; i++) {
    assert_false(utf8_stream_complete(&u) && i > 0);
    assert_true(utf8_stream_feed(&u, e + i, 1));
  }
  assert_true(utf8_stream_complete(&u));
  /* Surrogate detected at its second byte even when split. */
  utf8_stream_init(&u);
  assert_true(utf8_stream_feed(&u, (const uint8_t *)"\xed", 1));
  assert_false(utf8_stream_feed(&u, (const uint8_t *)"\xa0", 1));
  /* Above U+10FFFF likewise. */
  utf8_stream_init(&u);
  assert_true(utf8_stream_feed(&u, (const uint8_t *)"\xf4", 1));
  assert_false(utf8_stream_feed(&u, (const uint8_t *)"\x90", 1));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors),
      cmocka_unit_test(test_null_empty),
      cmocka_unit_test(test_exhaustive_vs_reference),
      cmocka_unit_test(test_fast_path_positions),
      cmocka_unit_test(test_random_mixed),
      cmocka_unit_test(test_stream_fail_fast_and_sticky),
      cmocka_unit_test(test_stream_split_sequences),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
