/*
 * http_router.h — maps (method, path) to a registered handler value.
 *
 * Contract:
 * - Routes are registered at start-up (http_router_add copies the method
 *   and pattern; `data` is stored as is and never touched). Matching never
 *   allocates and does not modify the router, so a built router may be
 *   shared read-only by several threads.
 * - Patterns: "/" or "/seg/seg/...", each segment either literal bytes or a
 *   whole-segment parameter "{name}" (name: [A-Za-z0-9_]+, unique within
 *   the pattern, at most HTTP_MAX_PARAMS per pattern, at most
 *   HTTP_ROUTER_MAX_SEGMENTS segments). Empty segments are refused except a
 *   trailing one: "/a/" and "/a" are different routes (trailing slash is
 *   significant), and "/" is the root.
 * - Matching is on the raw path bytes (no percent-decoding, no dot-segment
 *   removal): a parameter value is a non-empty slice of the path that the
 *   handler decodes if it needs to. Literal segments are compared exactly
 *   (case-sensitive), and so are methods.
 * - Precedence: among the routes whose method fits, the most specific one
 *   wins — segment by segment from the left, a literal beats a parameter —
 *   so "/users/me" beats "/users/{name}". Only if no route of the method
 *   matches does the path decide between 405 (some other method matches)
 *   and 404.
 * - HEAD is served by the GET route of a pattern unless that pattern has
 *   its own HEAD route.
 * - Errors: negative errno values from add; the HTTP_ROUTE_* codes from
 *   match.
 */
#ifndef STORM_NET_HTTP_ROUTER_H
#define STORM_NET_HTTP_ROUTER_H

#include <stddef.h>

#include "core/str.h"

#define HTTP_MAX_PARAMS 8
#define HTTP_ROUTER_MAX_SEGMENTS 32

typedef struct http_router http_router_t;

typedef struct {
  str_t name;  /* points into the router: valid while the router lives */
  str_t value; /* points into the matched path: valid while the path is */
} http_param_t;

typedef struct {
  void *data;          /* what was registered */
  const char *pattern; /* the route pattern, owned by the router; a bounded
                          label for metrics (never the raw path) */
  http_param_t params[HTTP_MAX_PARAMS];
  size_t nparams;      /* in pattern order */
} http_route_match_t;

/* NULL on allocation failure. */
http_router_t *http_router_new(void);
void http_router_free(http_router_t *r);

/* Returns 0; -EINVAL for a bad method (not a token) or pattern; -EEXIST if
 * the method already has a route of the same shape (same literals and
 * parameter positions, whatever the parameter names: "/u/{id}" and
 * "/u/{name}" would be ambiguous); -ENOMEM. */
int http_router_add(http_router_t *r, const char *method, const char *pattern, void *data);

enum { HTTP_ROUTE_FOUND = 0, HTTP_ROUTE_NOT_FOUND = -1, HTTP_ROUTE_METHOD_NOT_ALLOWED = -2 };

/* path: the raw path without the query ("*" and other paths that do not
 * start with '/' are never found). On HTTP_ROUTE_FOUND fills *m; otherwise
 * *m is untouched. */
int http_router_match(const http_router_t *r, str_t method, str_t path, http_route_match_t *m);

/* Writes the value of an Allow header for path ("GET, HEAD, POST"): every
 * method with a route whose pattern matches path, HEAD included wherever
 * GET is, well-known methods in a fixed order and others in registration
 * order. Like snprintf: returns the full length, writes at most outlen - 1
 * bytes plus a NUL (if outlen > 0). Returns 0 if nothing matches. */
size_t http_router_allow(const http_router_t *r, str_t path, char *out, size_t outlen);

#endif
