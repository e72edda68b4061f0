#include "net/http_router.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * A flat list of routes, each pre-split into segments. With a few dozen
 * routes a linear scan over pre-split segments costs less than the request
 * parse itself, and it keeps precedence and 405 handling obvious. A trie
 * would be the next step if routes ever number in the hundreds.
 */

typedef struct {
  const char *p; /* into the route's own copy of the pattern */
  size_t n;      /* for a parameter: the name without braces */
  bool param;
} seg_t;

typedef struct {
  char *method;  /* one allocation: method NUL pattern NUL */
  char *pattern;
  void *data;
  size_t nsegs;
  size_t nparams;
  bool is_get;
  bool head_shadowed; /* a GET route whose shape also has a HEAD route */
  seg_t segs[HTTP_ROUTER_MAX_SEGMENTS];
} route_t;

struct http_router {
  route_t *routes;
  size_t n, cap;
};

http_router_t *http_router_new(void) { return calloc(1, sizeof(http_router_t)); }

void http_router_free(http_router_t *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n; i++) free(r->routes[i].method);
  free(r->routes);
  free(r);
}

static bool is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_param_char(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* Literal segment bytes: what the request parser lets through in a path,
 * minus the bytes that would make the pattern itself ambiguous. */
static bool is_literal_char(unsigned char c) {
  return c > 0x20 && c < 0x7f && c != '{' && c != '}' && c != '?' && c != '#';
}

/* Splits rt->pattern into rt->segs. */
static int parse_pattern(route_t *rt) {
  const char *s = rt->pattern;
  if (*s != '/') return -EINVAL;
  s++;
  for (;;) {
    const char *e = strchr(s, '/');
    if (!e) e = s + strlen(s);
    size_t n = (size_t)(e - s);
    if (rt->nsegs == HTTP_ROUTER_MAX_SEGMENTS) return -EINVAL;
    if (n == 0 && *e == '/') return -EINVAL; /* "//" inside the pattern */
    seg_t *seg = &rt->segs[rt->nsegs];
    if (n > 0 && s[0] == '{') {
      if (n < 3 || s[n - 1] != '}') return -EINVAL;
      *seg = (seg_t){s + 1, n - 2, true};
      for (size_t i = 0; i < seg->n; i++)
        if (!is_param_char((unsigned char)seg->p[i])) return -EINVAL;
      for (size_t j = 0; j < rt->nsegs; j++)
        if (rt->segs[j].param && rt->segs[j].n == seg->n && !memcmp(rt->segs[j].p, seg->p, seg->n))
          return -EINVAL; /* duplicate parameter name */
      if (rt->nparams == HTTP_MAX_PARAMS) return -EINVAL;
      rt->nparams++;
    } else {
      for (size_t i = 0; i < n; i++)
        if (!is_literal_char((unsigned char)s[i])) return -EINVAL;
      *seg = (seg_t){s, n, false};
    }
    rt->nsegs++;
    if (*e == '\0') return 0;
    s = e + 1;
  }
}

/* Same literals and parameter positions: the two would match the same
 * paths, so they cannot both exist for one method. */
static bool same_shape(const route_t *a, const route_t *b) {
  if (a->nsegs != b->nsegs) return false;
  for (size_t i = 0; i < a->nsegs; i++) {
    if (a->segs[i].param != b->segs[i].param) return false;
    if (!a->segs[i].param && !str_eq((str_t){a->segs[i].p, a->segs[i].n},
                                     (str_t){b->segs[i].p, b->segs[i].n}))
      return false;
  }
  return true;
}

int http_router_add(http_router_t *r, const char *method, const char *pattern, void *data) {
  if (!method || !pattern || !*method) return -EINVAL;
  for (const char *m = method; *m; m++)
    if (!is_tchar((unsigned char)*m)) return -EINVAL;

  size_t ml = strlen(method), pl = strlen(pattern);
  route_t rt = {0};
  rt.method = malloc(ml + pl + 2);
  if (!rt.method) return -ENOMEM;
  memcpy(rt.method, method, ml + 1);
  rt.pattern = rt.method + ml + 1;
  memcpy(rt.pattern, pattern, pl + 1);
  rt.data = data;
  rt.is_get = strcmp(method, "GET") == 0;
  bool is_head = strcmp(method, "HEAD") == 0;

  int err = parse_pattern(&rt);
  for (size_t i = 0; err == 0 && i < r->n; i++)
    if (same_shape(&r->routes[i], &rt) && strcmp(r->routes[i].method, method) == 0) err = -EEXIST;
  if (err == 0 && r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    route_t *grown = realloc(r->routes, cap * sizeof *grown);
    if (!grown) err = -ENOMEM;
    else {
      r->routes = grown;
      r->cap = cap;
    }
  }
  if (err != 0) {
    free(rt.method);
    return err;
  }

  for (size_t i = 0; i < r->n; i++) {
    route_t *o = &r->routes[i];
    if (!same_shape(o, &rt)) continue;
    if (is_head && o->is_get) o->head_shadowed = true;
    if (rt.is_get && strcmp(o->method, "HEAD") == 0) rt.head_shadowed = true;
  }
  r->routes[r->n++] = rt;
  return 0;
}

/* Splits a path into segments the way patterns are split. False when the
 * path cannot match any pattern (no leading '/', too many segments). */
static bool split_path(str_t path, str_t *segs, size_t *nsegs) {
  if (path.n == 0 || path.p[0] != '/') return false;
  size_t i = 1, k = 0;
  for (;;) {
    size_t s = i;
    while (i < path.n && path.p[i] != '/') i++;
    if (k == HTTP_ROUTER_MAX_SEGMENTS) return false;
    segs[k++] = (str_t){path.p + s, i - s};
    if (i == path.n) break;
    i++;
  }
  *nsegs = k;
  return true;
}

static bool route_matches(const route_t *rt, const str_t *segs, size_t nsegs) {
  if (rt->nsegs != nsegs) return false;
  for (size_t i = 0; i < nsegs; i++) {
    const seg_t *s = &rt->segs[i];
    if (s->param) {
      if (segs[i].n == 0) return false;
    } else if (!str_eq(segs[i], (str_t){s->p, s->n})) {
      return false;
    }
  }
  return true;
}

/* Both routes match the same path, so they have the same segment count and
 * differ in kind at some segment unless they have the same shape. */
static bool more_specific(const route_t *a, const route_t *b) {
  for (size_t i = 0; i < a->nsegs; i++)
    if (a->segs[i].param != b->segs[i].param) return !a->segs[i].param;
  return false;
}

int http_router_match(const http_router_t *r, str_t method, str_t path, http_route_match_t *m) {
  str_t segs[HTTP_ROUTER_MAX_SEGMENTS];
  size_t nsegs;
  if (!split_path(path, segs, &nsegs)) return HTTP_ROUTE_NOT_FOUND;

  bool head = str_eq(method, STR_LIT("HEAD"));
  bool path_known = false;
  const route_t *best = NULL;
  for (size_t i = 0; i < r->n; i++) {
    const route_t *rt = &r->routes[i];
    if (!route_matches(rt, segs, nsegs)) continue;
    path_known = true;
    bool fits = str_eq(method, str_from(rt->method)) || (head && rt->is_get && !rt->head_shadowed);
    if (fits && (!best || more_specific(rt, best))) best = rt;
  }
  if (!best) return path_known ? HTTP_ROUTE_METHOD_NOT_ALLOWED : HTTP_ROUTE_NOT_FOUND;

  m->data = best->data;
  m->pattern = best->pattern;
  m->nparams = 0;
  for (size_t i = 0; i < nsegs; i++) {
    if (!best->segs[i].param) continue;
    m->params[m->nparams++] = (http_param_t){{best->segs[i].p, best->segs[i].n}, segs[i]};
  }
  return HTTP_ROUTE_FOUND;
}

/* snprintf-style append: counts everything, writes what fits. */
static void put(char *out, size_t outlen, size_t *len, const char *s) {
  size_t n = strlen(s);
  if (*len < outlen) {
    size_t room = outlen - 1 - *len;
    memcpy(out + *len, s, n < room ? n : room);
  }
  *len += n;
}

static void put_method(char *out, size_t outlen, size_t *len, const char *m) {
  if (*len > 0) put(out, outlen, len, ", ");
  put(out, outlen, len, m);
}

/* Allow lists read best in the conventional order. */
static const char *const known_methods[] = {"GET",    "HEAD",    "POST",    "PUT",  "PATCH",
                                            "DELETE", "OPTIONS", "CONNECT", "TRACE"};
#define NKNOWN (sizeof known_methods / sizeof known_methods[0])

static bool is_known(const char *m) {
  for (size_t k = 0; k < NKNOWN; k++)
    if (strcmp(m, known_methods[k]) == 0) return true;
  return false;
}

size_t http_router_allow(const http_router_t *r, str_t path, char *out, size_t outlen) {
  str_t segs[HTTP_ROUTER_MAX_SEGMENTS];
  size_t nsegs, len = 0;
  if (outlen > 0) out[0] = '\0';
  if (!split_path(path, segs, &nsegs)) return 0;

  for (size_t k = 0; k < NKNOWN; k++) {
    bool head = strcmp(known_methods[k], "HEAD") == 0;
    for (size_t i = 0; i < r->n; i++) {
      const route_t *rt = &r->routes[i];
      if ((strcmp(rt->method, known_methods[k]) == 0 || (head && rt->is_get)) &&
          route_matches(rt, segs, nsegs)) {
        put_method(out, outlen, &len, known_methods[k]);
        break;
      }
    }
  }
  for (size_t i = 0; i < r->n; i++) {
    const route_t *rt = &r->routes[i];
    if (is_known(rt->method) || !route_matches(rt, segs, nsegs)) continue;
    bool seen = false;
    for (size_t j = 0; j < i && !seen; j++)
      seen = strcmp(r->routes[j].method, rt->method) == 0 &&
             route_matches(&r->routes[j], segs, nsegs);
    if (!seen) put_method(out, outlen, &len, rt->method);
  }
  if (outlen > 0) out[len < outlen ? len : outlen - 1] = '\0';
  return len;
}
