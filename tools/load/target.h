/*
 * target.h — the server storm-load talks to, and the setup HTTP calls.
 *
 * Contract:
 * - target_parse accepts "http://A.B.C.D:PORT" or "ws://A.B.C.D:PORT" (an
 *   optional trailing "/") and only a 127.x.x.x IPv4 literal: storm-load
 *   generates load against loopback only. Errors: -EINVAL (malformed),
 *   -EPERM (not loopback); `err` (if not NULL) gets a static message.
 * - target_http is a blocking, one-request-per-connection HTTP/1.1 client
 *   for the setup phase (register, login, channels), never for measured
 *   traffic. It returns 0 with *status and the body in `body` (caller owns
 *   it), or -errno (connect/IO failures, -ETIMEDOUT after 10 s, -EPROTO for
 *   an unparsable response).
 * - target_request is the same with any body: `len` bytes of `body` (may
 *   hold NUL bytes) sent with Content-Type `ctype` (none when NULL). The
 *   media scenario's measured uploads use it: one connection per request
 *   keeps every upload alike (connect time included in what is measured).
 */
#ifndef STORM_LOAD_TARGET_H
#define STORM_LOAD_TARGET_H

#include <netinet/in.h>

#include "core/buf.h"

typedef struct {
  struct sockaddr_in addr;
  char host[32]; /* "127.0.0.1:8080", for the Host header */
} target_t;

int target_parse(const char *url, target_t *t, const char **err);
int target_http(const target_t *t, const char *method, const char *path, const char *token,
                const char *json_body, int *status, buf_t *body);
int target_request(const target_t *t, const char *method, const char *path, const char *token, const char *ctype,
                   const void *body, size_t len, int *status, buf_t *out);

#endif
