/*
 * config.h — the settings of `storm serve`.
 *
 * Every setting is one row of a table (config.c), as nginx directives are:
 * flag, environment variable, type, bounds, default, help, and the offsetof
 * of its field. Parsing, --help and the effective-config dump all walk that
 * table, so a new setting is one field here plus one row there.
 *
 * Precedence: built-in defaults < environment < command-line flags.
 * An environment variable set to the empty string counts as unset (so that
 * `PORT=${PORT}` in a compose file with PORT undefined keeps the default).
 *
 * Value syntax:
 *   int       decimal, within the row's bounds
 *   bool      1/0, true/false, yes/no, on/off (case-insensitive); a bare
 *             `--flag` means true, `--flag=false` turns it off
 *   duration  "500ms", "10s", "2m", "1h"; a plain number is milliseconds
 *   size      "512", "16k", "1m", "1g" (k/m/g are powers of 1024); plain = bytes
 *   enum      one of the listed words
 *   list      comma-separated words from a fixed set
 * Flags are `--name value` or `--name=value`. Unknown flags, stray
 * arguments and strings longer than their field are errors, never silently
 * ignored or truncated. A bad environment value is an error even when a
 * flag overrides it: the operator should learn that the variable is wrong.
 *
 * Embedded vs distributed: there is no mode switch. `storm serve` with an
 * empty --bus and --db runs the in-process bus and SQLite in --data; giving
 * NATS_URL / DATABASE_URL selects the external backends. --dev only relaxes
 * development conveniences and is off by default.
 *
 * Secrets (passwords, keys) are never printed: --help shows "(secret)" or
 * "unset" in place of a default, config_format shows "(secret)", and an
 * error about a secret does not echo its value. Prefer the environment
 * variables for secrets: flags are visible in `ps`.
 *
 * Not thread-safe; called once at start-up. No allocation: the struct holds
 * everything inline and can be copied.
 */
#ifndef STORM_CORE_CONFIG_H
#define STORM_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"

typedef struct storm_config {
  char host[256];               /* --host, STORM_HOST, "127.0.0.1" */
  int port;                     /* --port, PORT, 8080; 0 = pick a free port (tests) */
  char data_dir[1024];          /* --data, STORM_DATA, "./data" */
  bool reuseport;               /* --reuseport, STORM_REUSEPORT, false */
  bool dev;                     /* --dev, STORM_DEV, false */
  char services[256];           /* --services, STORM_SERVICES, "all" */
  char bus_url[1024];           /* --bus, NATS_URL, "" = in-process bus */
  char db_url[1024];            /* --db, DATABASE_URL, "" = SQLite in data_dir */
  char redis_addr[256];         /* --redis, REDIS_ADDR, "" */
  char redis_password[256];     /* --redis-password, REDIS_PASSWORD (secret) */
  char minio_endpoint[256];     /* --minio-endpoint, MINIO_ENDPOINT, "" */
  char minio_access_key[256];   /* --minio-access-key, MINIO_ACCESS_KEY (secret) */
  char minio_secret_key[256];   /* --minio-secret-key, MINIO_SECRET_KEY (secret) */
  char minio_bucket[256];       /* --minio-bucket, MINIO_BUCKET, "storm-media" */
  char minio_region[64];        /* --minio-region, MINIO_REGION, "us-east-1" */
  bool minio_use_ssl;           /* --minio-use-ssl, MINIO_USE_SSL, false */
  uint64_t minio_part_size;     /* --minio-part-size, MINIO_PART_SIZE, 8m */
  int media_backend;            /* --media-backend, STORM_MEDIA_BACKEND: CONFIG_MEDIA_* */
  int log_level;                /* --log-level, STORM_LOG_LEVEL, LOG_LEVEL_INFO */
  uint64_t header_timeout_ms;   /* --header-timeout, 10s: whole request head */
  uint64_t idle_timeout_ms;     /* --idle-timeout, 60s: keep-alive idle */
  uint64_t body_timeout_ms;     /* --body-timeout, 30s: between two body reads */
  uint64_t max_body;            /* --max-body, 1m: default JSON body limit */
  uint64_t max_head;            /* --max-head, 16k: request line + headers */
  uint64_t ws_max_message;      /* --ws-max-message, 64k: larger -> close 1009 */
  uint64_t ws_outbuf_limit;     /* --ws-outbuf-limit, 1m: slow consumer cut-off */
  uint64_t ws_heartbeat_ms;     /* --ws-heartbeat, 25s: server ping interval */
  uint64_t ws_idle_timeout_ms;  /* --ws-idle-timeout, 60s: nothing received */
  uint64_t shutdown_timeout_ms; /* --shutdown-timeout, 10s */
  int max_connections;          /* --max-connections, 19000 */
  int write_slice_us;           /* --write-slice-us, 2000 */
  int write_duty;               /* --write-duty, 90 (%) */
  char jwt_secret[512];         /* --jwt-secret, STORM_JWT_SECRET (secret) */
  char jwt_secret_previous[512];/* --jwt-secret-previous, STORM_JWT_SECRET_PREVIOUS (secret) */
  char jwt_issuer[64];          /* --jwt-issuer, "storm" */
  uint64_t access_ttl_ms;       /* --access-ttl, 15m */
  uint64_t refresh_ttl_ms;      /* --refresh-ttl, 720h (30 days) */
  int argon2_ops;               /* --argon2-ops, 2 */
  uint64_t argon2_mem;          /* --argon2-mem, 19m */
  int hash_concurrency;         /* --hash-concurrency, 1 */
  int auth_rate;                /* --auth-rate, 10 per second per IP */
  int auth_burst;               /* --auth-burst, 20 */
  char trusted_proxies[1024];   /* --trusted-proxies, "" */
  int resume_limit;             /* --resume-limit, 1000 messages per channel */
  int presence_max_members;     /* --presence-max-members, 1000 */
  int ws_send_rate;             /* --ws-send-rate, 10 ops per second per connection */
  int ws_send_burst;            /* --ws-send-burst, 20 */
  uint64_t media_max_image;     /* --media-max-image, 10m */
  uint64_t media_max_video;     /* --media-max-video, 100m */
} storm_config_t;

/* --media-backend: auto = s3 when --minio-endpoint is set, else local. */
enum { CONFIG_MEDIA_AUTO = 0, CONFIG_MEDIA_LOCAL = 1, CONFIG_MEDIA_S3 = 2 };

typedef enum {
  CONFIG_STRING,
  CONFIG_INT,      /* int field */
  CONFIG_BOOL,     /* bool field */
  CONFIG_DURATION, /* uint64_t field, milliseconds */
  CONFIG_SIZE,     /* uint64_t field, bytes */
  CONFIG_ENUM,     /* int field: index into choices */
  CONFIG_LIST,     /* string field: comma list of choices */
} config_type_t;

/* One row of the settings table. */
typedef struct {
  const char *name;             /* the flag without "--": "port" */
  const char *env;              /* "PORT" */
  config_type_t type;
  size_t offset;                /* offsetof(storm_config_t, field) */
  size_t size;                  /* sizeof the field (string capacity) */
  const char *def;              /* default, in the syntax a user would type */
  int64_t min, max;             /* int/duration/size bounds; string: min length */
  const char *const *choices;   /* enum/list words, NULL-terminated */
  bool secret;
  const char *help;
} config_setting_t;

/* The table, for tests and documentation generators. */
const config_setting_t *config_settings(size_t *n);

/* Fills c from defaults, then getenv_fn (NULL = getenv), then argv (the
 * arguments after the subcommand). Returns 0; 1 if --help or -h was seen
 * (the help went to stdout; the caller exits 0); or -EINVAL with errbuf
 * naming the setting, e.g. "invalid --port / PORT: 'abc' is not an integer
 * in 0..65535" (the caller prints it and exits 2). On error *c holds
 * whatever was parsed so far and must not be used. */
int config_load(storm_config_t *c, int argc, char **argv,
                const char *(*getenv_fn)(const char *), char *errbuf, size_t errlen);

/* The usage text: every setting with its flag, variable and default. */
void config_print_help(FILE *out);

/* "host=127.0.0.1 port=8080 ... jwt-secret=(secret)" — one line for the
 * start-up log; secrets that are set show as "(secret)". */
void config_format(const storm_config_t *c, buf_t *out);

/* True if service (e.g. "users") is enabled by c->services ("all" or a
 * comma list). */
bool config_service_enabled(const storm_config_t *c, const char *service);

#endif
