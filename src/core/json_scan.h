/*
 * json_scan.h — reading a few fields out of JSON text without building a
 * tree.
 *
 * Why: on the message hot path the gateway and the services exchange JSON
 * they wrote themselves, and each side needs one or two fields of it (a
 * seq, whether a reply is an error, the elements of a results array).
 * Parsing such a text with jansson allocates a node per value and was a
 * third of the gateway loop's time at 30,000 messages/s; a scan allocates
 * nothing and looks at each byte once.
 *
 * What it checks: the structure (strings closed, escapes well formed,
 * brackets matched in kind and nested at most JSCAN_DEPTH_MAX deep, members
 * written "key": value, elements separated by commas, literals spelled
 * right, numbers in JSON's grammar). It does not check UTF-8 nor reject
 * duplicate keys (the first one wins): text from a client is parsed with
 * jansson (core/json_object.h); this is for text a service produced. A scan
 * never reads outside the given bytes, whatever they hold.
 *
 * Values are spans into the caller's text (no copies, no ownership).
 * Keys are compared byte for byte with their raw text: a key written with
 * escapes does not match (none of ours are).
 */
#ifndef STORM_CORE_JSON_SCAN_H
#define STORM_CORE_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JSCAN_DEPTH_MAX 64

typedef enum {
  JSCAN_OBJECT,
  JSCAN_ARRAY,
  JSCAN_STRING,
  JSCAN_NUMBER,
  JSCAN_TRUE,
  JSCAN_FALSE,
  JSCAN_NULL,
} jscan_type_t;

typedef struct {
  const char *p; /* the value's text, quotes and brackets included */
  size_t n;
  jscan_type_t type;
} jscan_val_t;

/* The one value that data[0..len) holds (whitespace around it allowed,
 * nothing else after it). false when the text is not that. */
bool jscan_parse(const char *data, size_t len, jscan_val_t *out);

/* The member key of object obj (from jscan_parse, jscan_member or
 * jscan_next: already checked). false when obj is not an object or has no
 * such key. */
bool jscan_member(jscan_val_t obj, const char *key, jscan_val_t *out);

/* Iterates an object's members: *pos starts at 0; each call yields the
 * next key (a string value, quotes included) and value. */
bool jscan_next_member(jscan_val_t obj, size_t *pos, jscan_val_t *key, jscan_val_t *val);

/* Iterates an array: *pos starts at 0; each call yields the next element
 * and returns true, or false at the end (or when arr is not an array). */
bool jscan_next(jscan_val_t arr, size_t *pos, jscan_val_t *out);

/* An integer value (no fraction, no exponent) that fits int64_t. */
bool jscan_int64(jscan_val_t v, int64_t *out);

/* A string value without escapes equal to s. */
bool jscan_str_eq(jscan_val_t v, const char *s);

/* The index in names[0..n) of the one key equals (as jscan_str_eq), -1
 * when none does. */
int jscan_key_index(jscan_val_t key, const char *const *names, int n);

/* Decodes string value v into out, which needs v.n bytes at most (no NUL
 * is added); out may be NULL to check only. Returns the decoded length, or
 * -1 when v is not a string, holds bytes that are not UTF-8, \u0000, or a
 * lone UTF-16 surrogate: the three things jansson also refuses in a
 * string (so text a client sent can be taken from a scan). */
ssize_t jscan_string(jscan_val_t v, char *out);

#endif
