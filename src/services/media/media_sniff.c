/*
 * media_sniff.c — signature tables (contract in media_sniff.h).
 *
 * Sources: the WHATWG MIME Sniffing standard's image and video patterns,
 * ISO/IEC 14496-12 (ftyp box: size, "ftyp", major brand), the EBML and
 * Matroska/WebM specifications (DocType element 0x4282 inside the EBML
 * header), and the RIFF container (form type at offset 8).
 */
#include "services/media/media_sniff.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

static bool at(const uint8_t *d, size_t len, size_t off, const char *sig, size_t n) {
  return len >= off + n && memcmp(d + off, sig, n) == 0;
}

/* ftyp major brands: what each one is. Brands not listed are "unknown":
 * accepting a container we cannot name would defeat the point. */
static const struct {
  char brand[5];
  const char *mime;
} ftyp_brands[] = {
    {"isom", "video/mp4"}, {"iso2", "video/mp4"}, {"iso3", "video/mp4"}, {"iso4", "video/mp4"},
    {"iso5", "video/mp4"}, {"iso6", "video/mp4"}, {"mp41", "video/mp4"}, {"mp42", "video/mp4"},
    {"avc1", "video/mp4"}, {"M4V ", "video/mp4"}, {"M4VH", "video/mp4"}, {"M4VP", "video/mp4"},
    {"dash", "video/mp4"}, {"msnv", "video/mp4"}, {"mmp4", "video/mp4"}, {"f4v ", "video/mp4"},
    {"qt  ", "video/quicktime"}, {"M4A ", "audio/mp4"},   {"M4B ", "audio/mp4"},
    {"3gp4", "video/3gpp"},      {"3gp5", "video/3gpp"},  {"3gp6", "video/3gpp"},
    {"3g2a", "video/3gpp2"},     {"heic", "image/heic"},  {"heix", "image/heic"},
    {"hevc", "image/heic"},      {"mif1", "image/heif"},  {"msf1", "image/heif"},
    {"avif", "image/avif"},      {"avis", "image/avif"},  {"crx ", "image/x-canon-cr3"},
};

static const char *sniff_ftyp(const uint8_t *d, size_t len) {
  /* size(4) "ftyp" major(4) minor(4): a box of at least 16 bytes. */
  if (!at(d, len, 4, "ftyp", 4) || len < 12) return NULL;
  uint32_t size = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
  if (size < 16 && size != 1) return "unknown"; /* 1: 64-bit size follows */
  for (size_t i = 0; i < sizeof ftyp_brands / sizeof *ftyp_brands; i++)
    if (memcmp(d + 8, ftyp_brands[i].brand, 4) == 0) return ftyp_brands[i].mime;
  return "unknown";
}

/* An EBML variable-length integer (RFC 8794 section 4): returns its width
 * (1..8) and the value with the marker bit removed (keep_marker: element
 * IDs keep it), or 0 if it does not fit in len. */
static size_t vint(const uint8_t *d, size_t len, bool keep_marker, uint64_t *out) {
  if (len == 0 || d[0] == 0) return 0;
  size_t w = 1;
  while (!(d[0] & (0x80 >> (w - 1)))) w++;
  if (w > len) return 0;
  uint64_t v = keep_marker ? d[0] : (d[0] & (0xFFu >> w));
  for (size_t i = 1; i < w; i++) v = v << 8 | d[i];
  *out = v;
  return w;
}

/* The DocType of an EBML header: "webm" is WebM, "matroska" Matroska. */
static const char *sniff_ebml(const uint8_t *d, size_t len) {
  if (!at(d, len, 0, "\x1A\x45\xDF\xA3", 4)) return NULL;
  uint64_t hsize;
  size_t i = 4, w = vint(d + i, len - i, false, &hsize);
  if (!w) return "unknown";
  i += w;
  size_t end = hsize < len - i ? i + (size_t)hsize : len;
  while (i < end) {
    uint64_t id, size;
    size_t wi = vint(d + i, end - i, true, &id);
    if (!wi) break;
    size_t ws = vint(d + i + wi, end - i - wi, false, &size);
    if (!ws) break;
    i += wi + ws;
    if (size > end - i) break;
    if (id == 0x4282) {
      /* DocType is a string, possibly NUL-padded. */
      size_t n = (size_t)size;
      while (n && d[i + n - 1] == 0) n--;
      if (n == 4 && memcmp(d + i, "webm", 4) == 0) return "video/webm";
      if (n == 8 && memcmp(d + i, "matroska", 8) == 0) return "video/x-matroska";
      return "unknown";
    }
    i += (size_t)size;
  }
  return "unknown";
}

static const char *sniff_riff(const uint8_t *d, size_t len) {
  if (!at(d, len, 0, "RIFF", 4)) return NULL;
  if (at(d, len, 8, "WEBPVP", 6)) return "image/webp"; /* VP8, VP8L, VP8X chunk */
  if (at(d, len, 8, "AVI ", 4)) return "video/avi";
  if (at(d, len, 8, "WAVE", 4)) return "audio/wav";
  return "unknown";
}

/* Text-ish signatures, only to name what was refused. */
static const char *sniff_other(const uint8_t *d, size_t len) {
  static const struct {
    const char *sig;
    size_t n;
    const char *mime;
  } sigs[] = {
      {"\x7F" "ELF", 4, "application/x-elf"},
      {"MZ", 2, "application/x-msdownload"},
      {"%PDF-", 5, "application/pdf"},
      {"PK\x03\x04", 4, "application/zip"},
      {"\x1F\x8B", 2, "application/gzip"},
      {"#!", 2, "text/x-shellscript"},
      {"BM", 2, "image/bmp"},
      {"II*\0", 4, "image/tiff"},
      {"MM\0*", 4, "image/tiff"},
      {"\0\0\1\0", 4, "image/x-icon"},
      {"OggS", 4, "application/ogg"},
      {"ID3", 3, "audio/mpeg"},
      {"<?xml", 5, "text/xml"},
  };
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
    if (at(d, len, 0, sigs[i].sig, sigs[i].n)) return sigs[i].mime;
  /* HTML after optional BOM and whitespace (WHATWG: case-insensitive tags). */
  size_t i = 0;
  if (at(d, len, 0, "\xEF\xBB\xBF", 3)) i = 3;
  while (i < len && (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n')) i++;
  static const char *const tags[] = {"<!doctype html", "<html", "<head", "<body", "<script",
                                     "<iframe", "<svg", "<!--"};
  for (size_t t = 0; t < sizeof tags / sizeof *tags; t++) {
    size_t n = strlen(tags[t]);
    if (len >= i + n && strncasecmp((const char *)d + i, tags[t], n) == 0)
      return strcmp(tags[t], "<svg") == 0 ? "image/svg+xml" : "text/html";
  }
  return NULL;
}

const char *media_sniff(const void *data, size_t len, media_kind_t *kind) {
  const uint8_t *d = data;
  media_kind_t k = MEDIA_KIND_NONE;
  const char *m = NULL;
  if (at(d, len, 0, "\xFF\xD8\xFF", 3)) {
    m = "image/jpeg";
    k = MEDIA_KIND_IMAGE;
  } else if (at(d, len, 0, "\x89PNG\r\n\x1A\n", 8)) {
    m = "image/png";
    k = MEDIA_KIND_IMAGE;
  } else if (at(d, len, 0, "GIF87a", 6) || at(d, len, 0, "GIF89a", 6)) {
    m = "image/gif";
    k = MEDIA_KIND_IMAGE;
  } else if ((m = sniff_riff(d, len)) != NULL) {
    if (strcmp(m, "image/webp") == 0) k = MEDIA_KIND_IMAGE;
    if (strcmp(m, "video/avi") == 0) k = MEDIA_KIND_VIDEO;
  } else if ((m = sniff_ftyp(d, len)) != NULL) {
    if (strcmp(m, "video/mp4") == 0) k = MEDIA_KIND_VIDEO;
  } else if ((m = sniff_ebml(d, len)) != NULL) {
    if (strcmp(m, "video/webm") == 0) k = MEDIA_KIND_VIDEO;
  } else {
    m = sniff_other(d, len);
  }
  if (kind) *kind = k;
  return m ? m : "unknown";
}
