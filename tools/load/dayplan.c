/* dayplan.c — see dayplan.h. jansson parses; every check below names the
 * phase (1-based, as a person counts) and the field, because a plan file is
 * edited by hand. */
#include "load/dayplan.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "load/run.h"

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && errlen) vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return rc;
}

/* A number field in [lo, hi]; `have` tells whether it was present. */
static int field_num(json_t *ph, unsigned k, const char *key, double lo, double hi, bool required, double *out,
                     bool *have, char *err, size_t errlen) {
  json_t *v = json_object_get(ph, key);
  *have = v != NULL;
  if (!v) return required ? fail(err, errlen, -EINVAL, "phase %u: missing \"%s\"", k, key) : 0;
  if (!json_is_number(v)) return fail(err, errlen, -EINVAL, "phase %u: \"%s\" must be a number", k, key);
  double d = json_number_value(v);
  if (!(d >= lo && d <= hi))
    return fail(err, errlen, -EINVAL, "phase %u: \"%s\" is %g, out of bounds [%g, %g]", k, key, d, lo, hi);
  *out = d;
  return 0;
}

static int parse_phase(json_t *ph, unsigned k, day_phase_t *out, unsigned prev, double total, char *err,
                       size_t errlen) {
  static const char *known[] = {"name", "duration_s", "conns", "msgs_per_s", "ramp_s"};
  if (!json_is_object(ph)) return fail(err, errlen, -EINVAL, "phase %u: not an object", k);
  const char *key;
  json_t *v;
  json_object_foreach(ph, key, v) {
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok = ok || !strcmp(key, known[i]);
    if (!ok) return fail(err, errlen, -EINVAL, "phase %u: unknown field \"%.40s\"", k, key);
  }
  json_t *name = json_object_get(ph, "name");
  if (!name) return fail(err, errlen, -EINVAL, "phase %u: missing \"name\"", k);
  if (!json_is_string(name) || json_string_length(name) < 1 || json_string_length(name) >= DAY_MAX_NAME ||
      strlen(json_string_value(name)) != json_string_length(name))
    return fail(err, errlen, -EINVAL, "phase %u: \"name\" must be a string of 1 to %d bytes", k, DAY_MAX_NAME - 1);
  snprintf(out->name, sizeof out->name, "%s", json_string_value(name));
  bool have;
  int rc = field_num(ph, k, "duration_s", 0, LOAD_MAX_DURATION_S, true, &out->secs, &have, err, errlen);
  if (rc < 0) return rc;
  if (!(out->secs > 0)) return fail(err, errlen, -EINVAL, "phase %u: \"duration_s\" must be above 0", k);
  if (total + out->secs > LOAD_MAX_DURATION_S)
    return fail(err, errlen, -EINVAL, "phase %u: the phases last more than %d s in all", k, LOAD_MAX_DURATION_S);
  json_t *c = json_object_get(ph, "conns");
  if (!c) return fail(err, errlen, -EINVAL, "phase %u: missing \"conns\"", k);
  if (!json_is_integer(c) || json_integer_value(c) < 0 || json_integer_value(c) > LOAD_MAX_TOTAL_CONNS)
    return fail(err, errlen, -EINVAL, "phase %u: \"conns\" must be an integer in [0, %d]", k, LOAD_MAX_TOTAL_CONNS);
  out->conns = (unsigned)json_integer_value(c);
  if ((rc = field_num(ph, k, "msgs_per_s", 0, LOAD_MAX_RATE, true, &out->rate, &have, err, errlen)) < 0) return rc;
  out->ramp_s = out->secs;
  if ((rc = field_num(ph, k, "ramp_s", 0, out->secs, false, &out->ramp_s, &have, err, errlen)) < 0) return rc;
  double delta = fabs((double)out->conns - (double)prev);
  if (delta > 0 && (out->ramp_s <= 0 ? delta : delta / out->ramp_s) > LOAD_MAX_RATE)
    return fail(err, errlen, -EINVAL, "phase %u: ramping %u -> %u connections in %g s is more than %d per second", k,
                prev, out->conns, out->ramp_s, LOAD_MAX_RATE);
  return 0;
}

int dayplan_parse(const char *text, size_t len, day_plan_t *p, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  if (len > DAY_MAX_FILE) return fail(err, errlen, -E2BIG, "the plan is %zu bytes, more than %d", len, DAY_MAX_FILE);
  json_error_t je;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) return fail(err, errlen, -EINVAL, "not JSON: line %d: %s", je.line, je.text);
  int rc = 0;
  json_t *phases = json_object_get(root, "phases");
  const char *key;
  json_t *v;
  if (!json_is_object(root)) {
    rc = fail(err, errlen, -EINVAL, "the plan must be a JSON object with \"phases\"");
    goto out;
  }
  json_object_foreach(root, key, v) {
    if (strcmp(key, "phases") && strcmp(key, "description")) {
      rc = fail(err, errlen, -EINVAL, "unknown top-level field \"%.40s\"", key);
      goto out;
    }
  }
  if (!json_is_array(phases) || json_array_size(phases) == 0) {
    rc = fail(err, errlen, -EINVAL, "\"phases\" must be a non-empty array");
    goto out;
  }
  if (json_array_size(phases) > DAY_MAX_PHASES) {
    rc = fail(err, errlen, -E2BIG, "%zu phases, at most %d", json_array_size(phases), DAY_MAX_PHASES);
    goto out;
  }
  unsigned prev = 0;
  for (size_t i = 0; i < json_array_size(phases); i++) {
    day_phase_t *ph = &p->ph[i];
    if ((rc = parse_phase(json_array_get(phases, i), (unsigned)i + 1, ph, prev, p->total, err, errlen)) < 0) goto out;
    ph->start = p->total;
    p->total += ph->secs;
    prev = ph->conns;
    if (ph->conns > p->max_conns) p->max_conns = ph->conns;
    p->n++;
  }
  if (p->max_conns == 0) rc = fail(err, errlen, -EINVAL, "no phase opens any connection (every \"conns\" is 0)");
out:
  json_decref(root);
  return rc;
}

int dayplan_load(const char *path, day_plan_t *p, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return fail(err, errlen, -EINVAL, "%s: not a regular file", path);
  }
  if (st.st_size > DAY_MAX_FILE) {
    close(fd);
    return fail(err, errlen, -E2BIG, "%s: %lld bytes, more than %d", path, (long long)st.st_size, DAY_MAX_FILE);
  }
  char *buf = malloc(DAY_MAX_FILE + 1);
  if (!buf) {
    close(fd);
    return fail(err, errlen, -ENOMEM, "out of memory");
  }
  size_t len = 0;
  for (;;) { /* read up to one byte more than allowed: the file may have grown */
    ssize_t n = read(fd, buf + len, DAY_MAX_FILE + 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      free(buf);
      close(fd);
      return fail(err, errlen, -e, "%s: %s", path, strerror(e));
    }
    if (n == 0 || (len += (size_t)n) > DAY_MAX_FILE) break;
  }
  close(fd);
  int rc = dayplan_parse(buf, len, p, err, errlen);
  free(buf);
  return rc;
}

double dayplan_target(const day_plan_t *p, double since) {
  double prev = 0;
  for (unsigned k = 0; k < p->n; k++) {
    const day_phase_t *ph = &p->ph[k];
    if (since < ph->start + ph->secs || k + 1 == p->n) {
      double in = since - ph->start;
      if (in < 0) in = 0;
      if (ph->ramp_s <= 0 || in >= ph->ramp_s) return ph->conns;
      return prev + ((double)ph->conns - prev) * in / ph->ramp_s;
    }
    prev = ph->conns;
  }
  return 0;
}

unsigned dayplan_phase_at(const day_plan_t *p, double since) {
  for (unsigned k = 0; k < p->n; k++)
    if (since < p->ph[k].start + p->ph[k].secs) return k;
  return p->n ? p->n - 1 : 0;
}

void dayplan_to_plan(const day_plan_t *p, plan_t *out) {
  memset(out, 0, sizeof *out);
  for (unsigned k = 0; k < p->n && k < PLAN_MAX_STEPS; k++) {
    plan_step_t *s = &out->s[out->n++];
    s->rate = p->ph[k].rate;
    s->secs = p->ph[k].secs;
    s->start = p->ph[k].start;
    s->msgs = (uint64_t)llround(p->ph[k].rate * p->ph[k].secs);
  }
  out->total = p->total;
}
