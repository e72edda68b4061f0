#include "core/health.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct check {
  health_check_fn fn;
  void *arg;
  char *name;
};

struct health {
  struct check *checks;
  size_t n;
};

health_t *health_new(void) { return calloc(1, sizeof(health_t)); }

void health_free(health_t *h) {
  if (!h) return;
  for (size_t i = 0; i < h->n; i++) free(h->checks[i].name);
  free(h->checks);
  free(h);
}

int health_add(health_t *h, const char *name, health_check_fn fn, void *arg) {
  struct check *c = realloc(h->checks, (h->n + 1) * sizeof *c);
  if (!c) return -ENOMEM;
  h->checks = c;
  char *nm = strdup(name);
  if (!nm) return -ENOMEM;
  c[h->n++] = (struct check){fn, arg, nm};
  return 0;
}

bool health_ready(const health_t *h, buf_t *out) {
  bool ready = true;
  buf_t checks = BUF_INIT;
  for (size_t i = 0; i < h->n; i++) {
    bool ok = h->checks[i].fn(h->checks[i].arg);
    ready = ready && ok;
    buf_printf(&checks, "%s\"", i ? "," : "");
    buf_append_json_escaped(&checks, h->checks[i].name, strlen(h->checks[i].name));
    buf_printf(&checks, "\":\"%s\"", ok ? "ok" : "down");
  }
  buf_printf(out, "{\"status\":\"%s\",\"checks\":{%s}}", ready ? "ready" : "not_ready",
             checks.data ? checks.data : "");
  buf_free(&checks);
  return ready;
}
