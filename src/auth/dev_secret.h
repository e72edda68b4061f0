/*
 * dev_secret.h — the signing secret of a development instance.
 *
 * In --dev mode only, when no STORM_JWT_SECRET is given, a random secret is
 * generated once and kept in <data_dir>/jwt_secret (mode 0600), so tokens
 * survive restarts of a developer's instance. Outside --dev the program
 * refuses to start without a configured secret: a default that works is a
 * default an attacker knows.
 */
#ifndef STORM_AUTH_DEV_SECRET_H
#define STORM_AUTH_DEV_SECRET_H

#include <stddef.h>

/* Reads or creates the secret (64 hex chars = 256 bits) into out (>= 65 bytes).
 * Creates data_dir (0700) if missing. Returns 0 or a negative errno. */
int dev_secret_load(const char *data_dir, char *out, size_t outlen);

#endif
