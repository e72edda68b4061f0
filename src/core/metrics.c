#include "core/metrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { M_COUNTER, M_GAUGE, M_HISTOGRAM } mtype_t;

static const char *const type_names[] = {"counter", "gauge", "histogram"};

#define OVERFLOW_VALUE "_overflow"
#define OVERFLOW_FAMILY "metrics_series_overflow_total"

/* One allocation: the struct, then (histograms) nbounds+1 bucket counts,
 * then the label value strings. */
struct metrics_series {
  metrics_series_t *next; /* creation order, for rendering */
  uint64_t hash;
  mtype_t type;
  int nbounds;
  const double *bounds;   /* the family's, shared */
  uint64_t *buckets;      /* per bucket, not cumulative; [nbounds] is +Inf */
  double value;           /* counter/gauge value, histogram sum */
  uint64_t count;         /* histogram observations */
  char *values[METRICS_MAX_LABELS];
};

struct metrics_family {
  metrics_family_t *next;
  metrics_registry_t *reg;
  char *name, *help;
  mtype_t type;
  int nlabels;
  char *labels[METRICS_MAX_LABELS];
  double *bounds;
  int nbounds;
  metrics_series_t *head, *tail;
  int nseries;
  metrics_series_t **slots; /* open addressing, power of two, <= half full */
  size_t nslots;
  metrics_series_t *overflow; /* labeled families only */
  bool overflow_used;
};

struct metrics_registry {
  metrics_family_t *head, *tail;
  int series_limit;
  metrics_family_t *overflow_counts; /* created on the first overflow */
};

const double METRICS_DURATION_BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,    0.25,  0.5,    1,     2.5,   5,     10};
const int METRICS_DURATION_NBUCKETS =
    (int)(sizeof METRICS_DURATION_BUCKETS / sizeof METRICS_DURATION_BUCKETS[0]);

metrics_registry_t *metrics_registry_new(void) {
  metrics_registry_t *r = calloc(1, sizeof *r);
  if (r) r->series_limit = METRICS_DEFAULT_SERIES_LIMIT;
  return r;
}

void metrics_registry_set_series_limit(metrics_registry_t *r, int limit) {
  r->series_limit = limit < 1 ? 1 : limit;
}

static void family_free(metrics_family_t *f) {
  for (metrics_series_t *s = f->head, *n; s; s = n) {
    n = s->next;
    free(s);
  }
  free(f->overflow);
  free(f->slots);
  free(f->name);
  free(f->help);
  for (int i = 0; i < f->nlabels; i++) free(f->labels[i]);
  free(f->bounds);
  free(f);
}

void metrics_registry_free(metrics_registry_t *r) {
  if (!r) return;
  for (metrics_family_t *f = r->head, *n; f; f = n) {
    n = f->next;
    family_free(f);
  }
  free(r);
}

metrics_registry_t *metrics_default(void) {
  static metrics_registry_t *def;
  if (!def) def = metrics_registry_new();
  return def;
}

/* ---- names ---- */

static bool valid_name(const char *s, bool colon) {
  if (!s || !*s) return false;
  for (const char *p = s; *p; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (colon && c == ':') || (p > s && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

static bool valid_labels(mtype_t type, int n, const char *const labels[]) {
  if (n < 0 || n > METRICS_MAX_LABELS || (n > 0 && !labels)) return false;
  for (int i = 0; i < n; i++) {
    if (!valid_name(labels[i], false) || strncmp(labels[i], "__", 2) == 0) return false;
    if (type == M_HISTOGRAM && strcmp(labels[i], "le") == 0) return false;
    for (int j = 0; j < i; j++)
      if (strcmp(labels[i], labels[j]) == 0) return false;
  }
  return true;
}

/* ---- series ---- */

static uint64_t hash_values(int n, const char *const values[]) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (int i = 0; i < n; i++) {
    for (const unsigned char *p = (const unsigned char *)(values[i] ? values[i] : ""); *p; p++)
      h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL; /* separator: ("ab","") != ("a","b") */
  }
  return h;
}

static metrics_series_t *series_alloc(const metrics_family_t *f, const char *const values[],
                                      uint64_t hash) {
  size_t nb = f->type == M_HISTOGRAM ? (size_t)f->nbounds + 1 : 0;
  size_t len[METRICS_MAX_LABELS], total = sizeof(metrics_series_t) + nb * sizeof(uint64_t);
  for (int i = 0; i < f->nlabels; i++) {
    len[i] = strlen(values[i] ? values[i] : "");
    total += len[i] + 1;
  }
  metrics_series_t *s = calloc(1, total);
  if (!s) return NULL;
  s->hash = hash;
  s->type = f->type;
  s->nbounds = f->nbounds;
  s->bounds = f->bounds;
  s->buckets = nb ? (uint64_t *)(s + 1) : NULL;
  char *p = (char *)(s + 1) + nb * sizeof(uint64_t);
  for (int i = 0; i < f->nlabels; i++) {
    memcpy(p, values[i] ? values[i] : "", len[i] + 1);
    s->values[i] = p;
    p += len[i] + 1;
  }
  return s;
}

static bool same_values(const metrics_series_t *s, int n, const char *const values[]) {
  for (int i = 0; i < n; i++)
    if (strcmp(s->values[i], values[i] ? values[i] : "") != 0) return false;
  return true;
}

static int slots_grow(metrics_family_t *f) {
  size_t n = f->nslots ? f->nslots * 2 : 16;
  metrics_series_t **slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  for (metrics_series_t *s = f->head; s; s = s->next) {
    size_t i = (size_t)s->hash & (n - 1);
    while (slots[i]) i = (i + 1) & (n - 1);
    slots[i] = s;
  }
  free(f->slots);
  f->slots = slots;
  f->nslots = n;
  return 0;
}

static void link_series(metrics_family_t *f, metrics_series_t *s) {
  if (f->tail) f->tail->next = s;
  else f->head = s;
  f->tail = s;
  f->nseries++;
}

static metrics_series_t *overflow(metrics_family_t *f) {
  f->overflow_used = true;
  metrics_registry_t *r = f->reg;
  if (f == r->overflow_counts) return f->overflow; /* no counting the counter */
  if (!r->overflow_counts) {
    static const char *const lbl[] = {"family"};
    r->overflow_counts = metrics_counter_new(
        r, OVERFLOW_FAMILY,
        "Label sets refused because their family reached its series limit (their updates "
        "go to the series labelled _overflow).",
        1, lbl);
  }
  const char *v[] = {f->name};
  metrics_inc(r->overflow_counts ? metrics_series(r->overflow_counts, v) : NULL);
  return f->overflow;
}

metrics_series_t *metrics_series(metrics_family_t *f, const char *const values[]) {
  if (!f) return NULL;
  if (f->nlabels == 0) return f->head;
  static const char *const empty[METRICS_MAX_LABELS] = {"", "", "", ""};
  if (!values) values = empty;
  uint64_t h = hash_values(f->nlabels, values);
  if (f->nslots) {
    for (size_t i = (size_t)h & (f->nslots - 1); f->slots[i]; i = (i + 1) & (f->nslots - 1)) {
      metrics_series_t *s = f->slots[i];
      if (s->hash == h && same_values(s, f->nlabels, values)) return s;
    }
  }
  if (f->nseries >= f->reg->series_limit) return overflow(f);
  if ((size_t)(f->nseries + 1) * 2 > f->nslots && slots_grow(f) < 0) return overflow(f);
  metrics_series_t *s = series_alloc(f, values, h);
  if (!s) return overflow(f);
  size_t i = (size_t)h & (f->nslots - 1);
  while (f->slots[i]) i = (i + 1) & (f->nslots - 1);
  f->slots[i] = s;
  link_series(f, s);
  return s;
}

metrics_series_t *metrics_series0(metrics_family_t *f) {
  return f && f->nlabels == 0 ? f->head : NULL;
}

/* ---- families ---- */

static metrics_family_t *find_family(const metrics_registry_t *r, const char *name) {
  for (metrics_family_t *f = r->head; f; f = f->next)
    if (strcmp(f->name, name) == 0) return f;
  return NULL;
}

static bool same_shape(const metrics_family_t *f, mtype_t type, const double *bounds, int nb,
                       int nlabels, const char *const labels[]) {
  if (f->type != type || f->nlabels != nlabels || f->nbounds != nb) return false;
  for (int i = 0; i < nlabels; i++)
    if (strcmp(f->labels[i], labels[i]) != 0) return false;
  for (int i = 0; i < nb; i++)
    if (f->bounds[i] != bounds[i]) return false;
  return true;
}

static char *dup(const char *s) { return strdup(s ? s : ""); }

static metrics_family_t *family_new(metrics_registry_t *r, mtype_t type, const char *name,
                                    const char *help, const double *bounds, int nb,
                                    int nlabels, const char *const labels[]) {
  if (!r || !valid_name(name, true) || !valid_labels(type, nlabels, labels)) return NULL;
  metrics_family_t *old = find_family(r, name);
  if (old) return same_shape(old, type, bounds, nb, nlabels, labels) ? old : NULL;

  metrics_family_t *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->reg = r;
  f->type = type;
  f->name = dup(name);
  f->help = dup(help);
  bool ok = f->name && f->help;
  for (int i = 0; i < nlabels; i++) {
    f->labels[i] = dup(labels[i]);
    f->nlabels = i + 1; /* so family_free frees what was copied */
    ok = ok && f->labels[i];
  }
  if (nb > 0) {
    f->bounds = malloc((size_t)nb * sizeof *f->bounds);
    ok = ok && f->bounds;
    if (f->bounds) memcpy(f->bounds, bounds, (size_t)nb * sizeof *f->bounds);
    f->nbounds = nb;
  }
  if (ok && nlabels == 0) {
    metrics_series_t *s = series_alloc(f, NULL, 0);
    if (s) link_series(f, s);
    ok = s != NULL;
  } else if (ok) {
    const char *v[METRICS_MAX_LABELS] = {OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE,
                                         OVERFLOW_VALUE};
    f->overflow = series_alloc(f, v, 0);
    ok = f->overflow != NULL;
  }
  if (!ok) {
    family_free(f);
    return NULL;
  }
  if (r->tail) r->tail->next = f;
  else r->head = f;
  r->tail = f;
  return f;
}

metrics_family_t *metrics_counter_new(metrics_registry_t *r, const char *name, const char *help,
                                      int nlabels, const char *const labels[]) {
  return family_new(r, M_COUNTER, name, help, NULL, 0, nlabels, labels);
}

metrics_family_t *metrics_gauge_new(metrics_registry_t *r, const char *name, const char *help,
                                    int nlabels, const char *const labels[]) {
  return family_new(r, M_GAUGE, name, help, NULL, 0, nlabels, labels);
}

metrics_family_t *metrics_histogram_new(metrics_registry_t *r, const char *name,
                                        const char *help, const double *buckets, int nbuckets,
                                        int nlabels, const char *const labels[]) {
  if (nbuckets < 0 || (nbuckets > 0 && !buckets)) return NULL;
  if (nbuckets > 0 && isinf(buckets[nbuckets - 1]) && buckets[nbuckets - 1] > 0) nbuckets--;
  if (nbuckets > METRICS_MAX_BUCKETS) return NULL;
  for (int i = 0; i < nbuckets; i++)
    if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1]))) return NULL;
  return family_new(r, M_HISTOGRAM, name, help, buckets, nbuckets, nlabels, labels);
}

/* ---- updates: the hot path ---- */

void metrics_inc(metrics_series_t *s) { metrics_add(s, 1); }

void metrics_dec(metrics_series_t *s) {
  if (s && s->type == M_GAUGE) s->value -= 1;
}

void metrics_add(metrics_series_t *s, double v) {
  if (!s) return;
  if (s->type == M_GAUGE) s->value += v;
  else if (s->type == M_COUNTER && v >= 0) s->value += v; /* false for NaN too */
}

void metrics_set(metrics_series_t *s, double v) {
  if (s && s->type != M_HISTOGRAM) s->value = v;
}

void metrics_observe(metrics_series_t *s, double v) {
  if (!s || s->type != M_HISTOGRAM) return;
  int i = 0;
  while (i < s->nbounds && !(v <= s->bounds[i])) i++; /* NaN lands in +Inf */
  s->buckets[i]++;
  s->count++;
  s->value += v;
}

double metrics_value(const metrics_series_t *s) { return s ? s->value : 0; }

uint64_t metrics_count(const metrics_series_t *s) { return s ? s->count : 0; }

/* ---- rendering ---- */

/* Integers print without exponent or fraction; anything else as the
 * shortest %g that reads back to the same double. */
static void put_number(buf_t *b, double v) {
  if (isnan(v)) {
    buf_append_str(b, "NaN");
  } else if (isinf(v)) {
    buf_append_str(b, v > 0 ? "+Inf" : "-Inf");
  } else if (v == trunc(v)) {
    buf_printf(b, "%.0f", v == 0 ? 0.0 : v); /* no "-0" */
  } else {
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(tmp, sizeof tmp, "%.*g", prec, v);
      if (strtod(tmp, NULL) == v) break;
    }
    buf_append_str(b, tmp);
  }
}

/* Label values escape \, " and newline; help escapes \ and newline. */
static void put_escaped(buf_t *b, const char *s, bool quote) {
  const char *run = s;
  for (; *s; s++) {
    const char *e = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : (quote && *s == '"') ? "\\\"" : NULL;
    if (!e) continue;
    buf_append(b, run, (size_t)(s - run));
    buf_append(b, e, 2);
    run = s + 1;
  }
  buf_append(b, run, (size_t)(s - run));
}

/* name{l1="v1",...,le="x"} — braces omitted when there is no label. */
static void put_series_name(buf_t *b, const metrics_family_t *f, const metrics_series_t *s,
                            const char *suffix, const double *le) {
  buf_append_str(b, f->name);
  buf_append_str(b, suffix);
  if (f->nlabels == 0 && !le) return;
  buf_append_char(b, '{');
  for (int i = 0; i < f->nlabels; i++) {
    buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
    put_escaped(b, s->values[i], true);
    buf_append_char(b, '"');
  }
  if (le) {
    buf_append_str(b, f->nlabels ? ",le=\"" : "le=\"");
    put_number(b, *le);
    buf_append_char(b, '"');
  }
  buf_append_char(b, '}');
}

static void render_series(buf_t *b, const metrics_family_t *f, const metrics_series_t *s) {
  if (f->type != M_HISTOGRAM) {
    put_series_name(b, f, s, "", NULL);
    buf_append_char(b, ' ');
    put_number(b, s->value);
    buf_append_char(b, '\n');
    return;
  }
  uint64_t cum = 0;
  for (int i = 0; i <= f->nbounds; i++) {
    double le = i < f->nbounds ? f->bounds[i] : INFINITY;
    cum += s->buckets[i];
    put_series_name(b, f, s, "_bucket", &le);
    buf_printf(b, " %llu\n", (unsigned long long)cum);
  }
  put_series_name(b, f, s, "_sum", NULL);
  buf_append_char(b, ' ');
  put_number(b, s->value);
  buf_append_char(b, '\n');
  put_series_name(b, f, s, "_count", NULL);
  buf_printf(b, " %llu\n", (unsigned long long)s->count);
}

void metrics_render(const metrics_registry_t *r, buf_t *out) {
  if (!r) return;
  for (const metrics_family_t *f = r->head; f; f = f->next) {
    if (f->nseries == 0 && !f->overflow_used) continue;
    if (f->help[0]) {
      buf_printf(out, "# HELP %s ", f->name);
      put_escaped(out, f->help, false);
      buf_append_char(out, '\n');
    }
    buf_printf(out, "# TYPE %s %s\n", f->name, type_names[f->type]);
    for (const metrics_series_t *s = f->head; s; s = s->next) render_series(out, f, s);
    if (f->overflow_used) render_series(out, f, f->overflow);
  }
}
