/*
 * metrics.h — counters, gauges and histograms in the Prometheus text
 * exposition format 0.0.4.
 *
 * A registry holds families (a name, help, type and 0..METRICS_MAX_LABELS
 * label names); a family holds series keyed by label values. Hot paths look
 * a series up once (at start-up, or once per request for labels such as the
 * route or status) and then update it through the pointer: an update is a
 * few arithmetic operations, with no lookup and no lock.
 *
 * Threads: none of this is thread-safe. Everything runs on the loop thread;
 * a worker thread that has something to count hands it to the loop first.
 *
 * Lifetimes: registry, family and series pointers stay valid until
 * metrics_registry_free. Names, help text and label values are copied.
 *
 * Bounds: a family holds at most metrics_registry_set_series_limit() series
 * (default METRICS_DEFAULT_SERIES_LIMIT) so that a bug that puts unbounded
 * data (a user id, a raw path) into a label cannot grow memory without
 * limit. Past the bound, and when a new series cannot be allocated,
 * metrics_series returns the family's overflow series: it is rendered with
 * every label value "_overflow" (so totals stay right) and each refused
 * label set is counted in metrics_series_overflow_total{family="..."}.
 *
 * Errors: constructors return NULL for invalid names, more than
 * METRICS_MAX_LABELS labels, bad buckets, a name already registered with a
 * different shape, or no memory. Registering the same name with the same
 * type, labels and buckets returns the existing family, so two instances
 * of a module can share the default registry. The update functions accept
 * NULL (and do nothing), so a metric that failed to register never crashes
 * a request path.
 */
#ifndef STORM_CORE_METRICS_H
#define STORM_CORE_METRICS_H

#include <stdint.h>

#include "core/buf.h"

#define METRICS_MAX_LABELS 4
#define METRICS_MAX_BUCKETS 64
#define METRICS_DEFAULT_SERIES_LIMIT 10000

typedef struct metrics_registry metrics_registry_t;
typedef struct metrics_family metrics_family_t;
typedef struct metrics_series metrics_series_t; /* one labeled time series */

metrics_registry_t *metrics_registry_new(void);
void metrics_registry_free(metrics_registry_t *r);
/* Applies to series created afterwards; at least 1. */
void metrics_registry_set_series_limit(metrics_registry_t *r, int limit);

/* The process registry, created on first use, never freed (tests build
 * their own). This is what /metrics renders. */
metrics_registry_t *metrics_default(void);

metrics_family_t *metrics_counter_new(metrics_registry_t *r, const char *name, const char *help,
                                      int nlabels, const char *const labels[]);
metrics_family_t *metrics_gauge_new(metrics_registry_t *r, const char *name, const char *help,
                                    int nlabels, const char *const labels[]);
/* buckets: upper bounds, finite and strictly increasing; +Inf is implied
 * (a trailing +Inf is accepted and dropped). */
metrics_family_t *metrics_histogram_new(metrics_registry_t *r, const char *name,
                                        const char *help, const double *buckets, int nbuckets,
                                        int nlabels, const char *const labels[]);

/* Request durations in seconds: 0.0005 ... 10. */
extern const double METRICS_DURATION_BUCKETS[];
extern const int METRICS_DURATION_NBUCKETS;

/* Get or create the series with these label values (one per label name; a
 * NULL value is ""). Never NULL for a non-NULL family with labels: see
 * the overflow series above. */
metrics_series_t *metrics_series(metrics_family_t *f, const char *const values[]);
/* The unlabeled series of a family without labels (exists from creation,
 * so it renders 0 before its first update); NULL for a labeled family. */
metrics_series_t *metrics_series0(metrics_family_t *f);

/* Counters: inc/add (a negative or NaN amount is ignored: counters only go
 * up). Gauges: inc/dec/add/set. Counters also accept set, for totals kept
 * elsewhere. Histograms: observe. A call that does not fit the type is
 * ignored. */
void metrics_inc(metrics_series_t *s);
void metrics_dec(metrics_series_t *s);
void metrics_add(metrics_series_t *s, double v);
void metrics_set(metrics_series_t *s, double v);
void metrics_observe(metrics_series_t *s, double v);

/* For tests: counter/gauge value or histogram sum; histogram count. */
double metrics_value(const metrics_series_t *s);
uint64_t metrics_count(const metrics_series_t *s);

/* Appends the exposition text: families in registration order, series in
 * creation order, families without series omitted. Check out->oom. */
void metrics_render(const metrics_registry_t *r, buf_t *out);

/* The Content-Type of metrics_render's output. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
