/* html.c — the HTML report (report.h): one page built from the JSON
 * report, so both always agree. Charts are inline SVG polylines; nothing is
 * fetched and nothing runs. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "load/report.h"

#define CHART_W 860
#define CHART_H 240
#define PAD_L 70
#define PAD_R 20
#define PAD_T 30
#define PAD_B 30

static void esc(buf_t *b, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '<': buf_append_str(b, "&lt;"); break;
    case '>': buf_append_str(b, "&gt;"); break;
    case '&': buf_append_str(b, "&amp;"); break;
    case '"': buf_append_str(b, "&quot;"); break;
    default: buf_append_char(b, *s);
    }
  }
}

/* Recursive for objects: reports nest a few levels at most. */
static void value(buf_t *b, json_t *v) {
  if (json_is_integer(v)) buf_printf(b, "%lld", (long long)json_integer_value(v));
  else if (json_is_real(v)) buf_printf(b, "%.3f", json_real_value(v));
  else if (json_is_string(v)) esc(b, json_string_value(v));
  else if (json_is_true(v)) buf_append_str(b, "true");
  else if (json_is_false(v)) buf_append_str(b, "false");
  else if (json_is_null(v)) buf_append_str(b, "&ndash;");
  else if (json_is_object(v)) { /* e.g. a threshold's {limit, value, ok} inside "thresholds" */
    const char *k;
    json_t *e;
    const char *sep = "{";
    json_object_foreach(v, k, e) {
      buf_append_str(b, sep);
      esc(b, k);
      buf_append_str(b, ": ");
      value(b, e);
      sep = ", ";
    }
    buf_append_str(b, *sep == '{' ? "{}" : "}");
  }
}

static bool is_hist(json_t *v) { return json_is_object(v) && json_object_get(v, "p99") && json_object_get(v, "count"); }

static void summary(buf_t *b, json_t *r) {
  buf_append_str(b, "<h2>Summary</h2>\n<table>\n");
  const char *k;
  json_t *v;
  json_object_foreach(r, k, v) {
    if (json_is_array(v)) continue;
    buf_append_str(b, "<tr><th>");
    esc(b, k);
    buf_append_str(b, "</th><td>");
    if (is_hist(v)) {
      static const char *f[] = {"count", "p50", "p90", "p99", "p999", "max", "mean"};
      for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        buf_printf(b, "%s%s ", i ? " &middot; " : "", f[i]);
        value(b, json_object_get(v, f[i]));
      }
    } else if (json_is_object(v)) {
      const char *k2;
      json_t *v2;
      json_object_foreach(v, k2, v2) {
        esc(b, k2);
        buf_append_str(b, ": ");
        value(b, v2);
        buf_append_str(b, "; ");
      }
    } else {
      value(b, v);
    }
    buf_append_str(b, "</td></tr>\n");
  }
  buf_append_str(b, "</table>\n");
}

static void steps(buf_t *b, json_t *a) {
  if (!json_is_array(a) || !json_array_size(a)) return;
  static const char *cols[] = {"step", "rate_per_room", "sent", "deliveries_expected", "deliveries", "lost",
                               "offered_deliveries_per_s", "delivered_deliveries_per_s", "ok"};
  buf_append_str(b, "<h2>Steps</h2>\n<table>\n<tr>");
  for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) buf_printf(b, "<th>%s</th>", cols[i]);
  buf_append_str(b, "<th>delivery p50 ms</th><th>delivery p99 ms</th></tr>\n");
  size_t i;
  json_t *e;
  json_array_foreach(a, i, e) {
    buf_append_str(b, "<tr>");
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
      buf_append_str(b, "<td>");
      value(b, json_object_get(e, cols[c]));
      buf_append_str(b, "</td>");
    }
    json_t *d = json_object_get(e, "delivery_ms");
    buf_append_str(b, "<td>");
    value(b, json_object_get(d, "p50"));
    buf_append_str(b, "</td><td>");
    value(b, json_object_get(d, "p99"));
    buf_append_str(b, "</td></tr>\n");
  }
  buf_append_str(b, "</table>\n");
}

/* storm-day: one row per phase; "a.b" reads field b of object a. */
static void phases(buf_t *b, json_t *a) {
  if (!json_is_array(a) || !json_array_size(a)) return;
  static const char *cols[] = {"name", "duration_s", "target_conns", "conns_reached", "connect_ms.p99", "msgs_per_s",
                               "sent", "skipped", "deliveries", "lost", "deliveries_per_s", "delivery_ms.p50",
                               "delivery_ms.p99", "errors", "close_codes"};
  buf_append_str(b, "<h2>Phases</h2>\n<table>\n<tr>");
  for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) buf_printf(b, "<th>%s</th>", cols[i]);
  buf_append_str(b, "</tr>\n");
  size_t i;
  json_t *e;
  json_array_foreach(a, i, e) {
    buf_append_str(b, "<tr>");
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
      char key[64];
      snprintf(key, sizeof key, "%s", cols[c]);
      char *dot = strchr(key, '.');
      json_t *v;
      if (dot) {
        *dot = 0;
        v = json_object_get(json_object_get(e, key), dot + 1);
      } else {
        v = json_object_get(e, key);
      }
      buf_append_str(b, "<td>");
      if (json_is_object(v)) {
        const char *k2;
        json_t *v2;
        json_object_foreach(v, k2, v2) {
          esc(b, k2);
          buf_append_str(b, ": ");
          value(b, v2);
          buf_append_str(b, "; ");
        }
      } else {
        value(b, v);
      }
      buf_append_str(b, "</td>");
    }
    buf_append_str(b, "</tr>\n");
  }
  buf_append_str(b, "</table>\n");
}

static double num(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  return json_is_number(v) ? json_number_value(v) : 0.0;
}

/* A chart of series[*][keys[i]] against series[*].t, one polyline per key. */
static void chart(buf_t *b, json_t *series, const char *title, const char *unit, const char *const *keys,
                  size_t nkeys) {
  static const char *colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"};
  size_t n = json_array_size(series);
  double maxv = 0, maxt = 1;
  for (size_t i = 0; i < n; i++) {
    json_t *p = json_array_get(series, i);
    if (num(p, "t") > maxt) maxt = num(p, "t");
    for (size_t k = 0; k < nkeys; k++)
      if (num(p, keys[k]) > maxv) maxv = num(p, keys[k]);
  }
  if (maxv <= 0) maxv = 1;
  double pw = CHART_W - PAD_L - PAD_R, ph = CHART_H - PAD_T - PAD_B;
  buf_printf(b, "<h2>");
  esc(b, title);
  buf_printf(b, "</h2>\n<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n", CHART_W, CHART_H,
             CHART_W, CHART_H);
  buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"#fafafa\" stroke=\"#999\"/>\n", PAD_L,
             PAD_T, pw, ph);
  for (int g = 0; g <= 4; g++) {
    double y = PAD_T + ph - ph * g / 4.0;
    buf_printf(b, "<line x1=\"%d\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", PAD_L, PAD_L + pw, y, y);
    buf_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%.4g</text>\n", PAD_L - 4, y + 4,
               maxv * g / 4.0);
  }
  buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\">0 s</text>", PAD_L, CHART_H - 10);
  buf_printf(b, "<text x=\"%.0f\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%.0f s</text>\n", PAD_L + pw,
             CHART_H - 10, maxt);
  buf_printf(b, "<text x=\"4\" y=\"%d\" font-size=\"11\">%s</text>\n", PAD_T - 10, unit);
  for (size_t k = 0; k < nkeys; k++) {
    buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", colors[k % 4]);
    for (size_t i = 0; i < n; i++) {
      json_t *p = json_array_get(series, i);
      double x = PAD_L + pw * num(p, "t") / maxt, y = PAD_T + ph - ph * num(p, keys[k]) / maxv;
      buf_printf(b, "%.1f,%.1f ", x, y);
    }
    buf_append_str(b, "\"/>\n");
    buf_printf(b, "<text x=\"%.0f\" y=\"%d\" font-size=\"12\" fill=\"%s\">%s</text>\n", PAD_L + 10 + 180.0 * k,
               PAD_T - 10, colors[k % 4], keys[k]);
  }
  buf_append_str(b, "</svg>\n");
}

int report_html(buf_t *b, json_t *r) {
  json_t *series = json_object_get(r, "series");
  const char *scen = json_string_value(json_object_get(r, "scenario"));
  buf_append_str(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>storm-load ");
  esc(b, scen ? scen : "");
  buf_append_str(b, "</title>\n<style>body{font-family:sans-serif;margin:2em;color:#222}"
                    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
                    "text-align:left;font-size:13px}th{background:#f0f0f0}</style></head><body>\n");
  buf_append_str(b, "<h1>storm-load: ");
  esc(b, scen ? scen : "");
  buf_append_str(b, "</h1>\n");
  summary(b, r);
  steps(b, json_object_get(r, "steps"));
  phases(b, json_object_get(r, "phases"));
  if (json_array_size(series)) {
    static const char *lat[] = {"delivery_p50_ms", "delivery_p99_ms"};
    static const char *thr[] = {"sends", "acks", "deliveries", "errors"};
    static const char *con[] = {"conns"};
    chart(b, series, "Delivery latency per second", "ms", lat, 2);
    chart(b, series, "Throughput", "per s", thr, 4);
    chart(b, series, "Connections open", "conns", con, 1);
  }
  buf_append_str(b, "</body></html>\n");
  return b->oom ? -ENOMEM : 0;
}

int report_write_html(const char *path, json_t *r) {
  buf_t b = BUF_INIT;
  int rc = report_html(&b, r);
  char tmp[4096];
  if (rc == 0 && snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) rc = -ENAMETOOLONG;
  if (rc == 0) {
    FILE *f = fopen(tmp, "w");
    if (!f) rc = -errno;
    else {
      if (fwrite(b.data, 1, b.len, f) != b.len) rc = -EIO;
      if (fclose(f) != 0 && rc == 0) rc = -EIO;
      if (rc == 0 && rename(tmp, path) < 0) rc = -errno;
    }
  }
  buf_free(&b);
  return rc;
}
