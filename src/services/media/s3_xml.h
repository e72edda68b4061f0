/*
 * s3_xml.h — the few bits of S3's XML answers STORM needs, read by hand:
 * the text of one element (<UploadId>, <Code>, <Message>, <Key>...).
 *
 * S3 answers are small, flat and machine-written, so a full XML parser
 * (a new dependency) buys nothing: we look for the first "<Name>" start
 * tag (exact name, no attributes, so <Key> never matches <KeyCount>) and
 * take the text up to the next '<', which must open "</Name>". The five
 * predefined entities and numeric character references are decoded; CDATA,
 * comments inside the element, and nested elements make the element
 * "not found" rather than being misread.
 *
 * Pure functions on caller memory; thread-safe; no allocation. Input need
 * not be NUL-terminated and may hold any bytes (the parser is fuzzed:
 * test/fuzz/fuzz_s3_xml.c).
 */
#ifndef STORM_SERVICES_MEDIA_S3_XML_H
#define STORM_SERVICES_MEDIA_S3_XML_H

#include <stddef.h>
#include <sys/types.h>

/* Copies the decoded text of the first <name>...</name> found at or after
 * *pos in xml[0..len) into out (always NUL-terminated when cap > 0) and
 * moves *pos past the end tag (pos may be NULL: search from 0). Returns
 * the decoded length, or -ENOENT (no such well-formed element), -ENOSPC
 * (the text does not fit in cap - 1 bytes), -EINVAL (bad arguments, a
 * malformed entity, or a NUL byte in the text). */
ssize_t s3_xml_text(const char *xml, size_t len, const char *name, size_t *pos, char *out,
                    size_t cap);

/* True if the document's root element is <name> (after an optional XML
 * declaration and whitespace): tells an <Error> document from a result,
 * which matters because CompleteMultipartUpload may answer 200 and
 * still fail. */
int s3_xml_root_is(const char *xml, size_t len, const char *name);

#endif
