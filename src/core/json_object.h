/*
 * json_object.h — parsing a bounded request payload as one JSON object.
 *
 * Every service receives its requests as JSON objects over the bus and
 * must refuse oversized or malformed ones the same way before looking at
 * fields; this is that one step. Duplicate keys are refused (a payload that
 * says two things must not be read as either).
 */
#ifndef STORM_CORE_JSON_OBJECT_H
#define STORM_CORE_JSON_OBJECT_H

#include <jansson.h>
#include <stddef.h>

/* Returns a new reference to the object in data[0..len), or NULL with
 * *detail set ("request too large", "request must be a JSON object").
 * data may be NULL when len is 0. */
json_t *json_object_load_bounded(const void *data, size_t len, size_t max, const char **detail);

#endif
