/*
 * media_key.h — media keys: how an object is named to clients, and the
 * only place a client's file name is turned into anything we store.
 *
 * A key is <id>-<name>: id is MEDIA_OBJECT_ID_LEN lowercase hex characters
 * from 128 random bits (libsodium's randombytes_buf: unguessable, so a key
 * is never found by enumeration), name is the sanitized file name, for
 * humans only. Storage paths and S3 keys are derived from the id alone
 * (media_storage.h); the name never reaches a file system.
 *
 * Sanitizing: the last path component (after '/' or '\'), each byte
 * outside [A-Za-z0-9._-] replaced by '_' (NUL, control bytes, spaces,
 * UTF-8), leading dots dropped (no hidden files, no "." or ".."), at most
 * MEDIA_NAME_MAX bytes (the extension is kept when the stem is cut), and
 * "file" when nothing is left. The result is URL-safe as is.
 *
 * Pure functions, any thread.
 */
#ifndef STORM_SERVICES_MEDIA_KEY_H
#define STORM_SERVICES_MEDIA_KEY_H

#include <stdbool.h>
#include <stddef.h>

#include "services/media/media_storage.h"

#define MEDIA_NAME_MAX 64
#define MEDIA_KEY_MAX (MEDIA_OBJECT_ID_LEN + 1 + MEDIA_NAME_MAX)

void media_name_sanitize(const char *name, size_t len, char out[MEDIA_NAME_MAX + 1]);

/* A fresh key for a file called name[0..len) (name may be NULL). */
void media_key_new(const char *name, size_t len, char key[MEDIA_KEY_MAX + 1]);

/* True when key[0..len) has the shape of a key (id, '-', 1..MEDIA_NAME_MAX
 * sanitized bytes not starting with '.'); copies the id into id. */
bool media_key_parse(const char *key, size_t len, char id[MEDIA_OBJECT_ID_LEN + 1]);

#endif
