/* Unit tests for services/media/media_sniff: each accepted type from a
 * minimal real header, the near misses that must not pass (other ftyp
 * brands, Matroska, WAVE), truncated signatures, and the refused types
 * named in 415 messages (HTML, ELF, ...). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "services/media/media_sniff.h"

#define S(lit) (lit), sizeof(lit) - 1

static void expect(const char *data, size_t len, const char *mime, media_kind_t kind) {
  media_kind_t k = (media_kind_t)99;
  const char *m = media_sniff(data, len, &k);
  if (strcmp(m, mime) != 0 || k != kind)
    fail_msg("sniffed %s/%d from %zu bytes, want %s/%d", m, (int)k, len, mime, (int)kind);
}

/* The EBML header mkvmerge/ffmpeg write: EBMLVersion, EBMLReadVersion,
 * EBMLMaxIDLength, EBMLMaxSizeLength, DocType, DocTypeVersion,
 * DocTypeReadVersion. */
static const char WEBM[] = "\x1A\x45\xDF\xA3\x9F"
                           "\x42\x86\x81\x01" "\x42\xF7\x81\x01" "\x42\xF2\x81\x04"
                           "\x42\xF3\x81\x08" "\x42\x82\x84webm" "\x42\x87\x81\x04"
                           "\x42\x85\x81\x02";

static void test_accepted(void **state) {
  (void)state;
  expect(S("\xFF\xD8\xFF\xE0\0\x10JFIF\0"), "image/jpeg", MEDIA_KIND_IMAGE);
  expect(S("\x89PNG\r\n\x1A\n\0\0\0\rIHDR"), "image/png", MEDIA_KIND_IMAGE);
  expect(S("GIF89a\1\0\1\0"), "image/gif", MEDIA_KIND_IMAGE);
  expect(S("GIF87a\1\0\1\0"), "image/gif", MEDIA_KIND_IMAGE);
  expect(S("RIFF\x1A\0\0\0WEBPVP8L\x0D\0\0\0"), "image/webp", MEDIA_KIND_IMAGE);
  expect(S("RIFF\0\0\0\0WEBPVP8X"), "image/webp", MEDIA_KIND_IMAGE);
  expect(S("\0\0\0\x18" "ftypisom\0\0\x02\0isomiso2"), "video/mp4", MEDIA_KIND_VIDEO);
  expect(S("\0\0\0\x1C" "ftypmp42\0\0\0\0mp42isomavc1"), "video/mp4", MEDIA_KIND_VIDEO);
  expect(S(WEBM), "video/webm", MEDIA_KIND_VIDEO);
  expect(S("RIFF\0\x10\0\0" "AVI LIST"), "video/avi", MEDIA_KIND_VIDEO);
  /* kind may be NULL. */
  assert_string_equal(media_sniff(S("GIF89a"), NULL), "image/gif");
}

static void test_refused_containers(void **state) {
  (void)state;
  expect(S("\0\0\0\x14" "ftypqt  \0\0\0\0qt  "), "video/quicktime", MEDIA_KIND_NONE);
  expect(S("\0\0\0\x18" "ftypheic\0\0\0\0mif1heic"), "image/heic", MEDIA_KIND_NONE);
  expect(S("\0\0\0\x1C" "ftypavif\0\0\0\0avifmif1"), "image/avif", MEDIA_KIND_NONE);
  expect(S("\0\0\0\x18" "ftypM4A \0\0\0\0M4A mp42"), "audio/mp4", MEDIA_KIND_NONE);
  expect(S("\0\0\0\x18" "ftypzzzz\0\0\0\0zzzzzzzz"), "unknown", MEDIA_KIND_NONE);
  expect(S("\0\0\0\x08" "ftypisom\0\0\0\0"), "unknown", MEDIA_KIND_NONE); /* box too small */
  char mkv[sizeof WEBM + 8];
  memcpy(mkv, "\x1A\x45\xDF\xA3\xA3" "\x42\x86\x81\x01" "\x42\x82\x88matroska" "\x42\x87\x81\x04", 24);
  expect(mkv, 24, "video/x-matroska", MEDIA_KIND_NONE);
  expect(S("\x1A\x45\xDF\xA3\x87" "\x42\x82\x84mkv2"), "unknown", MEDIA_KIND_NONE);
  expect(S("\x1A\x45\xDF\xA3\x8B" "\x42\x82\x88webm\0\0\0\0"), "video/webm", MEDIA_KIND_VIDEO); /* padded */
  expect(S("RIFF\0\0\0\0WAVEfmt "), "audio/wav", MEDIA_KIND_NONE);
  expect(S("RIFF\0\0\0\0XXXX"), "unknown", MEDIA_KIND_NONE);
}

static void test_named_refusals(void **state) {
  (void)state;
  expect(S("<!DOCTYPE html><html><body>x</body></html>"), "text/html", MEDIA_KIND_NONE);
  expect(S("\xEF\xBB\xBF \r\n\t<HTML>"), "text/html", MEDIA_KIND_NONE);
  expect(S("<script>alert(1)</script>"), "text/html", MEDIA_KIND_NONE);
  expect(S("<svg xmlns='http://www.w3.org/2000/svg'/>"), "image/svg+xml", MEDIA_KIND_NONE);
  expect(S("\x7F" "ELF\2\1\1\0\0\0\0\0\0\0\0\0\2\0\x3E\0"), "application/x-elf", MEDIA_KIND_NONE);
  expect(S("MZ\x90\0"), "application/x-msdownload", MEDIA_KIND_NONE);
  expect(S("%PDF-1.7\n"), "application/pdf", MEDIA_KIND_NONE);
  expect(S("PK\3\4\x14\0"), "application/zip", MEDIA_KIND_NONE);
  expect(S("BM\x3A\0\0\0"), "image/bmp", MEDIA_KIND_NONE);
  expect(S("#!/bin/sh\necho hi\n"), "text/x-shellscript", MEDIA_KIND_NONE);
  expect(S("just some text"), "unknown", MEDIA_KIND_NONE);
}

static void test_empty_and_truncated(void **state) {
  (void)state;
  expect("", 0, "unknown", MEDIA_KIND_NONE);
  expect(NULL, 0, "unknown", MEDIA_KIND_NONE);
  expect(S("\xFF\xD8"), "unknown", MEDIA_KIND_NONE);          /* JPEG cut */
  expect(S("\x89PNG\r\n\x1A"), "unknown", MEDIA_KIND_NONE);   /* PNG cut at 7 */
  expect(S("GIF89"), "unknown", MEDIA_KIND_NONE);
  expect(S("GIF88a"), "unknown", MEDIA_KIND_NONE);
  expect(S("RIFF\0\0\0\0WEB"), "unknown", MEDIA_KIND_NONE);
  expect(S("RIFF\0\0\0\0WEBP"), "unknown", MEDIA_KIND_NONE);  /* no VP8 chunk yet */
  expect(S("RIFF\0\0\0\0AVI"), "unknown", MEDIA_KIND_NONE);
  expect(S("\0\0\0\x18" "ftypis"), "unknown", MEDIA_KIND_NONE);
  expect(S("\0\0\0\x18" "fty"), "unknown", MEDIA_KIND_NONE);
  /* EBML cut at every length before its DocType is complete. */
  for (size_t n = 0; n < 28; n++) {
    const char *m = media_sniff(WEBM, n, NULL);
    if (strcmp(m, "unknown") != 0) fail_msg("EBML cut at %zu sniffed as %s", n, m);
  }
  expect(WEBM, 28, "video/webm", MEDIA_KIND_VIDEO);
  /* An EBML header whose sizes run past the data, or are invalid. */
  expect(S("\x1A\x45\xDF\xA3\x00"), "unknown", MEDIA_KIND_NONE);
  expect(S("\x1A\x45\xDF\xA3\x9F\x42\x82\x9Fwebm"), "unknown", MEDIA_KIND_NONE);
  expect(S("\x1A\x45\xDF\xA3\x9F\x00\x82"), "unknown", MEDIA_KIND_NONE);
  expect(S("\x1A\x45\xDF\xA3\x9F\x42\x82\x00"), "unknown", MEDIA_KIND_NONE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accepted),
      cmocka_unit_test(test_refused_containers),
      cmocka_unit_test(test_named_refusals),
      cmocka_unit_test(test_empty_and_truncated),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
