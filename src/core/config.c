#include "core/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/str.h"

/* The enum row for log-level stores the index of the word, which must be
 * the LOG_LEVEL_* value. */
_Static_assert(LOG_LEVEL_DEBUG == 0 && LOG_LEVEL_INFO == 1 && LOG_LEVEL_WARN == 2 &&
                   LOG_LEVEL_ERROR == 3,
               "log-level choices are indexed by LOG_LEVEL_*");

/* offsetof that refuses to compile if the field's type does not match the
 * row's type, so a table row can never write an int into a bool. */
#define FIELD(f, T)                                                                       \
  (offsetof(storm_config_t, f) +                                                          \
   0 * sizeof(char[_Generic(((storm_config_t *)0)->f, T: 1, default: -1)]))
#define FSIZE(f) sizeof(((storm_config_t *)0)->f)

#define ROW_STR(n, e, f, d, minlen, sec, h) \
  {n, e, CONFIG_STRING, FIELD(f, char *), FSIZE(f), d, minlen, 0, NULL, sec, h}
#define ROW_INT(n, e, f, d, lo, hi, h) \
  {n, e, CONFIG_INT, FIELD(f, int), FSIZE(f), d, lo, hi, NULL, false, h}
#define ROW_BOOL(n, e, f, d, h) \
  {n, e, CONFIG_BOOL, FIELD(f, bool), FSIZE(f), d, 0, 1, NULL, false, h}
#define ROW_DUR(n, e, f, d, lo, hi, h) \
  {n, e, CONFIG_DURATION, FIELD(f, uint64_t), FSIZE(f), d, lo, hi, NULL, false, h}
#define ROW_SIZE(n, e, f, d, lo, hi, h) \
  {n, e, CONFIG_SIZE, FIELD(f, uint64_t), FSIZE(f), d, lo, hi, NULL, false, h}
#define ROW_ENUM(n, e, f, d, ch, h) \
  {n, e, CONFIG_ENUM, FIELD(f, int), FSIZE(f), d, 0, 0, ch, false, h}
#define ROW_LIST(n, e, f, d, ch, h) \
  {n, e, CONFIG_LIST, FIELD(f, char *), FSIZE(f), d, 1, 0, ch, false, h}

#define T_SEC 1000LL
#define T_MIN (60 * T_SEC)
#define T_HOUR (60 * T_MIN)
#define T_DAY (24 * T_HOUR)
#define KIB 1024LL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
/* Indexed by CONFIG_MEDIA_*. */
static const char *const media_backends[] = {"auto", "local", "s3", NULL};
static const char *const service_names[] = {"all",   "gateway", "users", "messages",
                                            "media", "notifications", NULL};

/* Bounds: timeouts have no "0 = off" (an unbounded header wait is a
 * slowloris hole); the maxima only catch typos (a day, a gigabyte). */
static const config_setting_t settings[] = {
    ROW_STR("host", "STORM_HOST", host, "127.0.0.1", 1, false,
            "address to listen on (IP literal or host name)"),
    ROW_INT("port", "PORT", port, "8080", 0, 65535,
            "TCP port to listen on; 0 picks a free port, for tests"),
    ROW_STR("data", "STORM_DATA", data_dir, "./data", 1, false,
            "directory for local state: SQLite database and media in embedded mode"),
    ROW_BOOL("reuseport", "STORM_REUSEPORT", reuseport, "false",
             "set SO_REUSEPORT so several gateway processes can share the port"),
    ROW_BOOL("dev", "STORM_DEV", dev, "false",
             "development conveniences (embedded mode follows from empty --bus and --db)"),
    ROW_LIST("services", "STORM_SERVICES", services, "all", service_names,
             "services this process runs: all, or a comma list of gateway, users, "
             "messages, media, notifications"),
    ROW_STR("bus", "NATS_URL", bus_url, "", 0, false,
            "NATS URL (nats://host:4222); empty = in-process bus"),
    ROW_STR("db", "DATABASE_URL", db_url, "", 0, false,
            "PostgreSQL URL; empty = SQLite in the data directory"),
    ROW_STR("redis", "REDIS_ADDR", redis_addr, "", 0, false,
            "Redis address host:port; empty = not used"),
    ROW_STR("redis-password", "REDIS_PASSWORD", redis_password, "", 0, true,
            "Redis password"),
    ROW_STR("minio-endpoint", "MINIO_ENDPOINT", minio_endpoint, "", 0, false,
            "S3/MinIO endpoint (http://host:9000); empty = media kept in the data "
            "directory"),
    ROW_STR("minio-access-key", "MINIO_ACCESS_KEY", minio_access_key, "", 0, true,
            "S3/MinIO access key"),
    ROW_STR("minio-secret-key", "MINIO_SECRET_KEY", minio_secret_key, "", 0, true,
            "S3/MinIO secret key"),
    ROW_STR("minio-bucket", "MINIO_BUCKET", minio_bucket, "storm-media", 1, false,
            "S3/MinIO bucket for media"),
    ROW_STR("minio-region", "MINIO_REGION", minio_region, "us-east-1", 1, false,
            "S3 region the requests are signed for (MinIO accepts us-east-1)"),
    ROW_BOOL("minio-use-ssl", "MINIO_USE_SSL", minio_use_ssl, "false",
             "talk to S3/MinIO over TLS (certificates are always verified); an https:// "
             "endpoint implies it"),
    ROW_SIZE("minio-part-size", "MINIO_PART_SIZE", minio_part_size, "8m", 64 * KIB, 5 * GIB,
             "multipart upload part size; AWS S3 needs at least 5m (smaller only for test "
             "servers)"),
    ROW_ENUM("media-backend", "STORM_MEDIA_BACKEND", media_backend, "auto", media_backends,
             "where media bytes live: local (the data directory), s3, or auto (s3 when "
             "--minio-endpoint is set)"),
    ROW_ENUM("log-level", "STORM_LOG_LEVEL", log_level, "info", log_levels,
             "least severe level written to the log"),
    ROW_DUR("header-timeout", "STORM_HEADER_TIMEOUT", header_timeout_ms, "10s", 1, T_DAY,
            "time allowed to receive a complete request head"),
    ROW_DUR("idle-timeout", "STORM_IDLE_TIMEOUT", idle_timeout_ms, "60s", 1, T_DAY,
            "keep-alive connection idle time before it is closed"),
    ROW_DUR("body-timeout", "STORM_BODY_TIMEOUT", body_timeout_ms, "30s", 1, T_DAY,
            "time allowed between two reads of a request body"),
    ROW_SIZE("max-body", "STORM_MAX_BODY", max_body, "1m", 1, GIB,
             "default request body limit of a JSON route (larger -> 413)"),
    ROW_SIZE("max-head", "STORM_MAX_HEAD", max_head, "16k", 256, MIB,
             "request line plus headers limit (larger -> 431)"),
    ROW_SIZE("ws-max-message", "STORM_WS_MAX_MESSAGE", ws_max_message, "64k", 1, GIB,
             "largest WebSocket message accepted (larger -> close 1009)"),
    ROW_SIZE("ws-outbuf-limit", "STORM_WS_OUTBUF_LIMIT", ws_outbuf_limit, "1m", 1, GIB,
             "pending output after which a slow WebSocket consumer is closed"),
    ROW_DUR("ws-heartbeat", "STORM_WS_HEARTBEAT", ws_heartbeat_ms, "25s", 1, T_DAY,
            "interval between server pings on a WebSocket"),
    ROW_DUR("ws-idle-timeout", "STORM_WS_IDLE_TIMEOUT", ws_idle_timeout_ms, "60s", 1, T_DAY,
            "close a WebSocket that has received nothing for this long"),
    ROW_DUR("shutdown-timeout", "STORM_SHUTDOWN_TIMEOUT", shutdown_timeout_ms, "10s", 0, T_DAY,
            "on SIGTERM, time allowed for connections to drain"),
    ROW_INT("max-connections", "STORM_MAX_CONNECTIONS", max_connections, "19000", 1, 1000000,
            "client connections beyond which new ones are refused; keep below the file limit"),
    ROW_INT("write-slice-us", "STORM_WRITE_SLICE_US", write_slice_us, "2000", 1, 1000000,
            "microseconds the loop spends writing queued output before it reads input again "
            "(a large fan-out is written in slices)"),
    ROW_INT("write-duty", "STORM_WRITE_DUTY", write_duty, "90", 50, 100,
            "percent of the time the loop keeps writing while output is behind; below 100 it "
            "pauses 1 ms at a time so that more messages share each send"),
    ROW_STR("jwt-secret", "STORM_JWT_SECRET", jwt_secret, "", 0, true,
            "key that signs access tokens (>= 32 bytes); the same on every process of a deployment. "
            "Required unless --dev"),
    ROW_STR("jwt-secret-previous", "STORM_JWT_SECRET_PREVIOUS", jwt_secret_previous, "", 0, true,
            "the previous signing key, still accepted for verification while tokens it signed live"),
    ROW_STR("jwt-issuer", "STORM_JWT_ISSUER", jwt_issuer, "storm", 1, false,
            "\"iss\" written into and required of access tokens"),
    ROW_DUR("access-ttl", "STORM_ACCESS_TTL", access_ttl_ms, "15m", T_SEC, T_DAY,
            "lifetime of an access token"),
    ROW_DUR("refresh-ttl", "STORM_REFRESH_TTL", refresh_ttl_ms, "720h", T_MIN, 365 * T_DAY,
            "lifetime of a refresh token (default 30 days)"),
    ROW_INT("argon2-ops", "STORM_ARGON2_OPS", argon2_ops, "2", 1, 64,
            "argon2id passes (t); OWASP: m=19 MiB, t=2, p=1"),
    ROW_SIZE("argon2-mem", "STORM_ARGON2_MEM", argon2_mem, "19m", 8 * KIB, 4 * GIB,
            "argon2id memory per hash (m)"),
    ROW_INT("hash-concurrency", "STORM_HASH_CONCURRENCY", hash_concurrency, "1", 1, 64,
            "password hashes computed at once (each takes a core for tens of ms)"),
    ROW_INT("auth-rate", "STORM_AUTH_RATE", auth_rate, "10", 1, 1000000,
            "requests per second per client IP on /auth/* (token bucket refill)"),
    ROW_INT("auth-burst", "STORM_AUTH_BURST", auth_burst, "20", 1, 1000000,
            "token bucket size per client IP on /auth/*"),
    ROW_STR("trusted-proxies", "STORM_TRUSTED_PROXIES", trusted_proxies, "", 0, false,
            "comma list of proxy IPs whose X-Forwarded-For is believed for the client IP"),
    ROW_INT("resume-limit", "STORM_RESUME_LIMIT", resume_limit, "1000", 1, 100000,
            "messages a WebSocket resume replays per channel; beyond -> resume_truncated"),
    ROW_INT("presence-max-members", "STORM_PRESENCE_MAX_MEMBERS", presence_max_members, "1000", 0,
            1000000,
            "presence events are delivered in a channel only while at most this many of its members "
            "are connected to the gateway (0: never)"),
    ROW_INT("ws-send-rate", "STORM_WS_SEND_RATE", ws_send_rate, "10", 1, 1000000,
            "WebSocket requests per second per connection (token bucket refill)"),
    ROW_INT("ws-send-burst", "STORM_WS_SEND_BURST", ws_send_burst, "20", 1, 1000000,
            "token bucket size per WebSocket connection"),
    ROW_SIZE("media-max-image", "STORM_MEDIA_MAX_IMAGE", media_max_image, "10m", 1, GIB,
             "largest image upload (jpeg, png, gif, webp); larger -> 413"),
    ROW_SIZE("media-max-video", "STORM_MEDIA_MAX_VIDEO", media_max_video, "100m", 1, 16 * GIB,
             "largest video upload (mp4, webm, avi); larger -> 413"),
};

#define NSETTINGS (sizeof settings / sizeof settings[0])

const config_setting_t *config_settings(size_t *n) {
  *n = NSETTINGS;
  return settings;
}

/* ---- value formatting (help ranges, config_format) ---- */

static void fmt_duration(char *out, size_t n, uint64_t ms) {
  if (ms && ms % T_HOUR == 0) snprintf(out, n, "%lluh", (unsigned long long)(ms / T_HOUR));
  else if (ms && ms % T_MIN == 0) snprintf(out, n, "%llum", (unsigned long long)(ms / T_MIN));
  else if (ms && ms % T_SEC == 0) snprintf(out, n, "%llus", (unsigned long long)(ms / T_SEC));
  else snprintf(out, n, "%llums", (unsigned long long)ms);
}

static void fmt_size(char *out, size_t n, uint64_t b) {
  if (b && b % GIB == 0) snprintf(out, n, "%llug", (unsigned long long)(b / GIB));
  else if (b && b % MIB == 0) snprintf(out, n, "%llum", (unsigned long long)(b / MIB));
  else if (b && b % KIB == 0) snprintf(out, n, "%lluk", (unsigned long long)(b / KIB));
  else snprintf(out, n, "%llu", (unsigned long long)b);
}

static void fmt_choices(char *out, size_t n, const char *const *ch, const char *sep) {
  size_t used = 0;
  out[0] = '\0';
  for (int i = 0; ch[i] && used < n; i++) {
    int w = snprintf(out + used, n - used, "%s%s", i ? sep : "", ch[i]);
    if (w < 0) break;
    used += (size_t)w;
  }
}

/* ---- value parsing ---- */

/* Digits followed by a unit from units[] (matched exactly, or ignoring
 * case if icase); "" in units is the unit of a bare number. */
typedef struct {
  const char *suffix;
  uint64_t mul;
} unit_t;

static int parse_with_unit(const char *s, const unit_t *units, bool icase, uint64_t *out) {
  size_t d = 0;
  while (s[d] >= '0' && s[d] <= '9') d++;
  unsigned long long v;
  int rc = str_to_u64((str_t){s, d}, UINT64_MAX, &v);
  if (rc < 0) return rc;
  const char *suf = s + d;
  for (const unit_t *u = units; u->suffix; u++) {
    if (icase ? strcasecmp(suf, u->suffix) != 0 : strcmp(suf, u->suffix) != 0) continue;
    if (v > UINT64_MAX / u->mul) return -ERANGE;
    *out = v * u->mul;
    return 0;
  }
  return -EINVAL;
}

static const unit_t duration_units[] = {
    {"", 1}, {"ms", 1}, {"s", T_SEC}, {"m", T_MIN}, {"h", T_HOUR}, {NULL, 0}};
static const unit_t size_units[] = {
    {"", 1}, {"k", KIB}, {"m", MIB}, {"g", GIB}, {NULL, 0}};

static int parse_bool(const char *s, bool *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) return *out = true, 0;
    if (strcasecmp(s, no[i]) == 0) return *out = false, 0;
  }
  return -EINVAL;
}

static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  bool neg = s[0] == '-';
  unsigned long long v;
  if (str_to_u64(str_from(s + neg), (unsigned long long)INT64_MAX, &v) < 0) return -EINVAL;
  int64_t x = neg ? -(int64_t)v : (int64_t)v;
  if (x < lo || x > hi) return -ERANGE;
  *out = x;
  return 0;
}

static int choice_index(const char *const *ch, const char *s, size_t n) {
  for (int i = 0; ch[i]; i++)
    if (strlen(ch[i]) == n && strncasecmp(ch[i], s, n) == 0) return i;
  return -1;
}

/* Each comma-separated word (spaces around it allowed) must be a choice.
 * Returns 0, or -EINVAL with *bad, *badlen the offending word. */
static int check_list(const char *s, const char *const *ch, const char **bad, size_t *badlen) {
  const char *p = s;
  for (;;) {
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    const char *a = p, *b = end;
    while (a < b && (*a == ' ' || *a == '\t')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    if (choice_index(ch, a, (size_t)(b - a)) < 0) {
      *bad = a;
      *badlen = (size_t)(b - a);
      return -EINVAL;
    }
    if (!*end) return 0;
    p = end + 1;
  }
}

/* ---- setting one value ---- */

static int fail(char *err, size_t errlen, const config_setting_t *r, const char *v,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "invalid --port / PORT: 'abc' is not an integer in 0..65535": names both
 * spellings because the user may have used either; a secret's value is
 * never echoed. */
static int fail(char *err, size_t errlen, const config_setting_t *r, const char *v,
                const char *fmt, ...) {
  if (!err || errlen == 0) return -EINVAL;
  int n;
  if (r->secret)
    n = snprintf(err, errlen, "invalid --%s / %s: the value ", r->name, r->env);
  else
    n = snprintf(err, errlen, "invalid --%s / %s: '%.200s' ", r->name, r->env, v);
  if (n >= 0 && (size_t)n < errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

static int set_value(storm_config_t *c, const config_setting_t *r, const char *v, char *err,
                     size_t errlen) {
  char *field = (char *)c + r->offset;
  char lo[32], hi[32], words[160];
  switch (r->type) {
  case CONFIG_STRING:
  case CONFIG_LIST: {
    size_t n = strlen(v);
    if (n >= r->size) return fail(err, errlen, r, v, "is longer than %zu bytes", r->size - 1);
    if (n < (size_t)r->min) return fail(err, errlen, r, v, "must not be empty");
    if (r->type == CONFIG_LIST) {
      const char *bad;
      size_t badlen;
      if (check_list(v, r->choices, &bad, &badlen) < 0) {
        fmt_choices(words, sizeof words, r->choices, ", ");
        return fail(err, errlen, r, v, "contains '%.*s', which is not one of %s",
                    (int)(badlen > 64 ? 64 : badlen), bad, words);
      }
    }
    memcpy(field, v, n + 1);
    return 0;
  }
  case CONFIG_INT: {
    int64_t x;
    if (parse_int(v, r->min, r->max, &x) < 0)
      return fail(err, errlen, r, v, "is not an integer in %lld..%lld", (long long)r->min,
                  (long long)r->max);
    *(int *)field = (int)x;
    return 0;
  }
  case CONFIG_BOOL:
    if (parse_bool(v, (bool *)field) < 0)
      return fail(err, errlen, r, v, "is not a boolean (true/false, 1/0, yes/no, on/off)");
    return 0;
  case CONFIG_DURATION:
  case CONFIG_SIZE: {
    bool dur = r->type == CONFIG_DURATION;
    uint64_t x;
    int rc = parse_with_unit(v, dur ? duration_units : size_units, !dur, &x);
    if (rc < 0 || x < (uint64_t)r->min || x > (uint64_t)r->max) {
      if (dur) {
        fmt_duration(lo, sizeof lo, (uint64_t)r->min);
        fmt_duration(hi, sizeof hi, (uint64_t)r->max);
        return fail(err, errlen, r, v,
                    "is not a duration in %s..%s (e.g. 500ms, 10s, 2m, 1h; a plain number "
                    "is milliseconds)",
                    lo, hi);
      }
      fmt_size(lo, sizeof lo, (uint64_t)r->min);
      fmt_size(hi, sizeof hi, (uint64_t)r->max);
      return fail(err, errlen, r, v, "is not a size in %s..%s (bytes, or a number with k, m or g)",
                  lo, hi);
    }
    *(uint64_t *)field = x;
    return 0;
  }
  case CONFIG_ENUM: {
    int i = choice_index(r->choices, v, strlen(v));
    if (i < 0) {
      fmt_choices(words, sizeof words, r->choices, "|");
      return fail(err, errlen, r, v, "is not one of %s", words);
    }
    *(int *)field = i;
    return 0;
  }
  }
  return fail(err, errlen, r, v, "has an unknown type");
}

static const config_setting_t *find_flag(const char *name, size_t n) {
  for (size_t i = 0; i < NSETTINGS; i++)
    if (strlen(settings[i].name) == n && memcmp(settings[i].name, name, n) == 0)
      return &settings[i];
  return NULL;
}

static const char *default_getenv(const char *name) { return getenv(name); }

int config_load(storm_config_t *c, int argc, char **argv,
                const char *(*getenv_fn)(const char *), char *errbuf, size_t errlen) {
  char scratch[1];
  if (!errbuf || errlen == 0) {
    errbuf = scratch;
    errlen = sizeof scratch;
  }
  errbuf[0] = '\0';
  if (!getenv_fn) getenv_fn = default_getenv;
  memset(c, 0, sizeof *c);

  for (size_t i = 0; i < NSETTINGS; i++)
    if (set_value(c, &settings[i], settings[i].def, errbuf, errlen) < 0) return -EINVAL;

  for (size_t i = 0; i < NSETTINGS; i++) {
    const char *v = getenv_fn(settings[i].env);
    if (v && *v && set_value(c, &settings[i], v, errbuf, errlen) < 0) return -EINVAL;
  }

  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      config_print_help(stdout);
      return 1;
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
      snprintf(errbuf, errlen, "unexpected argument '%.200s' (settings are --name value or "
               "--name=value; see --help)", a);
      return -EINVAL;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const config_setting_t *r = find_flag(name, nlen);
    if (!r) {
      snprintf(errbuf, errlen, "unknown option '--%.*s' (see --help)", (int)(nlen > 200 ? 200 : nlen),
               name);
      return -EINVAL;
    }
    const char *v;
    if (eq) {
      v = eq + 1;
    } else if (r->type == CONFIG_BOOL) {
      v = "true";
    } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
      /* A next argument that looks like a flag means the value was
       * forgotten; --name=--odd-value still works. */
      v = argv[++i];
    } else {
      snprintf(errbuf, errlen, "missing value for --%s / %s", r->name, r->env);
      return -EINVAL;
    }
    if (set_value(c, r, v, errbuf, errlen) < 0) return -EINVAL;
  }
  return 0;
}

static const char *metavar(const config_setting_t *r, char *buf, size_t n) {
  switch (r->type) {
  case CONFIG_STRING: return "STR";
  case CONFIG_INT: return "N";
  case CONFIG_BOOL: return "[=BOOL]";
  case CONFIG_DURATION: return "DURATION";
  case CONFIG_SIZE: return "SIZE";
  case CONFIG_LIST: return "LIST";
  case CONFIG_ENUM: fmt_choices(buf, n, r->choices, "|"); return buf;
  }
  return "?";
}

void config_print_help(FILE *out) {
  fputs("usage: storm serve [--name value | --name=value]...\n\n"
        "Settings, each with its flag, environment variable and default.\n"
        "Flags override the environment, which overrides the defaults.\n\n",
        out);
  for (size_t i = 0; i < NSETTINGS; i++) {
    const config_setting_t *r = &settings[i];
    char mv[160], flag[200], lo[32], hi[32], range[96] = "";
    snprintf(flag, sizeof flag, "--%s%s%s", r->name, r->type == CONFIG_BOOL ? "" : " ",
             metavar(r, mv, sizeof mv));
    const char *def = r->def;
    if (r->secret) def = r->def[0] ? "(secret)" : "unset";
    else if (!def[0]) def = "\"\"";
    switch (r->type) {
    case CONFIG_INT:
      snprintf(range, sizeof range, " (%lld..%lld)", (long long)r->min, (long long)r->max);
      break;
    case CONFIG_DURATION:
      fmt_duration(lo, sizeof lo, (uint64_t)r->min);
      fmt_duration(hi, sizeof hi, (uint64_t)r->max);
      snprintf(range, sizeof range, " (%s..%s)", lo, hi);
      break;
    case CONFIG_SIZE:
      fmt_size(lo, sizeof lo, (uint64_t)r->min);
      fmt_size(hi, sizeof hi, (uint64_t)r->max);
      snprintf(range, sizeof range, " (%s..%s)", lo, hi);
      break;
    default: break;
    }
    fprintf(out, "  %-34s %-24s default %s\n      %s%s\n", flag, r->env, def, r->help, range);
  }
  fputs("\nDurations: 500ms, 10s, 2m, 1h (a plain number is milliseconds).\n"
        "Sizes: bytes, or a number with k, m or g (powers of 1024): 16k, 1m.\n"
        "Booleans: --flag or --flag=false; in the environment 1/0, true/false, yes/no, on/off.\n"
        "An environment variable set to the empty string counts as unset.\n"
        "Secrets are never printed; prefer their environment variables (flags show in ps).\n",
        out);
}

void config_format(const storm_config_t *c, buf_t *out) {
  for (size_t i = 0; i < NSETTINGS; i++) {
    const config_setting_t *r = &settings[i];
    const char *field = (const char *)c + r->offset;
    char v[32];
    buf_printf(out, "%s%s=", i ? " " : "", r->name);
    switch (r->type) {
    case CONFIG_STRING:
    case CONFIG_LIST:
      if (!field[0]) buf_append_str(out, "\"\"");
      else if (r->secret) buf_append_str(out, "(secret)");
      else buf_append(out, field, strnlen(field, r->size));
      break;
    case CONFIG_INT: buf_printf(out, "%d", *(const int *)field); break;
    case CONFIG_BOOL: buf_append_str(out, *(const bool *)field ? "true" : "false"); break;
    case CONFIG_DURATION:
      fmt_duration(v, sizeof v, *(const uint64_t *)field);
      buf_append_str(out, v);
      break;
    case CONFIG_SIZE:
      fmt_size(v, sizeof v, *(const uint64_t *)field);
      buf_append_str(out, v);
      break;
    case CONFIG_ENUM: {
      int k = *(const int *)field, n = 0;
      while (r->choices[n]) n++;
      buf_append_str(out, k >= 0 && k < n ? r->choices[k] : "?");
      break;
    }
    }
  }
}

bool config_service_enabled(const storm_config_t *c, const char *service) {
  str_t list = str_from(c->services);
  return str_list_has_token(list, "all") || str_list_has_token(list, service);
}
