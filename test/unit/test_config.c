/* Unit tests for core/config: defaults, precedence (default < env < flag),
 * every type's syntax and error message, flag forms, unknown and stray
 * arguments, --help content and secret redaction. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/log.h"

/* ---- an injectable environment ---- */

static const char *env_kv[64][2];
static int env_n;

static void env_clear(void) { env_n = 0; }
static void env_set(const char *k, const char *v) {
  env_kv[env_n][0] = k;
  env_kv[env_n][1] = v;
  env_n++;
}
static const char *fake_getenv(const char *k) {
  for (int i = env_n - 1; i >= 0; i--)
    if (strcmp(env_kv[i][0], k) == 0) return env_kv[i][1];
  return NULL;
}

static storm_config_t cfg;
static char err[512];

/* Loads with the fake environment and a NULL-terminated argument list. */
static int load(const char *first, ...) {
  char *argv[32];
  int argc = 0;
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
  va_end(ap);
  return config_load(&cfg, argc, argv, fake_getenv, err, sizeof err);
}

static void expect_error(const char *want) {
  if (strcmp(err, want) != 0) fail_msg("error was: %s\nwanted:    %s", err, want);
}

static int setup(void **state) {
  env_clear();
  err[0] = '\0';
  return 0;
}

/* The help text in a malloc'd string (via a temporary file: GCC 12 warns
 * about open_memstream's pointer-to-local as a dangling pointer). */
static char *help_text(void) {
  FILE *f = tmpfile();
  assert_non_null(f);
  config_print_help(f);
  long n = ftell(f);
  assert_true(n > 0);
  char *p = malloc((size_t)n + 1);
  rewind(f);
  assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
  p[n] = '\0';
  fclose(f);
  return p;
}

/* ---- defaults and precedence ---- */

static void test_defaults(void **state) {
  assert_int_equal(load(NULL), 0);
  assert_string_equal(err, "");
  assert_string_equal(cfg.host, "127.0.0.1");
  assert_int_equal(cfg.port, 8080);
  assert_string_equal(cfg.data_dir, "./data");
  assert_false(cfg.reuseport);
  assert_false(cfg.dev);
  assert_string_equal(cfg.services, "all");
  assert_string_equal(cfg.bus_url, "");
  assert_string_equal(cfg.db_url, "");
  assert_string_equal(cfg.redis_addr, "");
  assert_string_equal(cfg.redis_password, "");
  assert_string_equal(cfg.minio_endpoint, "");
  assert_string_equal(cfg.minio_access_key, "");
  assert_string_equal(cfg.minio_secret_key, "");
  assert_string_equal(cfg.minio_bucket, "storm-media");
  assert_string_equal(cfg.minio_region, "us-east-1");
  assert_false(cfg.minio_use_ssl);
  assert_int_equal(cfg.minio_part_size, 8 * 1024 * 1024);
  assert_int_equal(cfg.media_backend, CONFIG_MEDIA_AUTO);
  assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
  assert_int_equal(cfg.header_timeout_ms, 10000);
  assert_int_equal(cfg.idle_timeout_ms, 60000);
  assert_int_equal(cfg.body_timeout_ms, 30000);
  assert_int_equal(cfg.max_body, 1024 * 1024);
  assert_int_equal(cfg.max_head, 16 * 1024);
  assert_int_equal(cfg.ws_max_message, 64 * 1024);
  assert_int_equal(cfg.ws_outbuf_limit, 1024 * 1024);
  assert_int_equal(cfg.ws_heartbeat_ms, 25000);
  assert_int_equal(cfg.ws_idle_timeout_ms, 60000);
  assert_int_equal(cfg.shutdown_timeout_ms, 10000);
  assert_int_equal(cfg.max_connections, 19000);
  assert_string_equal(cfg.jwt_secret, "");
}

static void test_precedence(void **state) {
  env_set("PORT", "9000");
  env_set("STORM_HOST", "0.0.0.0");
  assert_int_equal(load(NULL), 0);
  assert_int_equal(cfg.port, 9000);
  assert_string_equal(cfg.host, "0.0.0.0");

  assert_int_equal(load("--port", "9100", NULL), 0);
  assert_int_equal(cfg.port, 9100);
  assert_string_equal(cfg.host, "0.0.0.0"); /* env still applies to the rest */

  assert_int_equal(load("--port=9200", "--host=::1", NULL), 0);
  assert_int_equal(cfg.port, 9200);
  assert_string_equal(cfg.host, "::1");

  /* The last of repeated flags wins. */
  assert_int_equal(load("--port", "1", "--port", "2", NULL), 0);
  assert_int_equal(cfg.port, 2);
}

static void test_empty_env_is_unset(void **state) {
  env_set("PORT", "");
  env_set("STORM_HOST", "");
  assert_int_equal(load(NULL), 0);
  assert_int_equal(cfg.port, 8080);
  assert_string_equal(cfg.host, "127.0.0.1");
}

static void test_every_env_var_is_read(void **state) {
  env_set("STORM_HOST", "h");
  env_set("PORT", "1");
  env_set("STORM_DATA", "/d");
  env_set("STORM_REUSEPORT", "yes");
  env_set("STORM_DEV", "1");
  env_set("STORM_SERVICES", "users");
  env_set("NATS_URL", "nats://n:4222");
  env_set("DATABASE_URL", "postgres://p");
  env_set("REDIS_ADDR", "r:6379");
  env_set("REDIS_PASSWORD", "rp");
  env_set("MINIO_ENDPOINT", "http://m:9000");
  env_set("MINIO_ACCESS_KEY", "ak");
  env_set("MINIO_SECRET_KEY", "sk");
  env_set("MINIO_BUCKET", "b");
  env_set("MINIO_REGION", "eu-west-3");
  env_set("MINIO_USE_SSL", "yes");
  env_set("MINIO_PART_SIZE", "5m");
  env_set("STORM_MEDIA_BACKEND", "s3");
  env_set("STORM_LOG_LEVEL", "debug");
  env_set("STORM_HEADER_TIMEOUT", "1s");
  env_set("STORM_IDLE_TIMEOUT", "2s");
  env_set("STORM_BODY_TIMEOUT", "3s");
  env_set("STORM_MAX_BODY", "4k");
  env_set("STORM_MAX_HEAD", "5k");
  env_set("STORM_WS_MAX_MESSAGE", "6k");
  env_set("STORM_WS_OUTBUF_LIMIT", "7k");
  env_set("STORM_WS_HEARTBEAT", "8s");
  env_set("STORM_WS_IDLE_TIMEOUT", "9s");
  env_set("STORM_SHUTDOWN_TIMEOUT", "0");
  env_set("STORM_MAX_CONNECTIONS", "11");
  env_set("STORM_JWT_SECRET", "js");
  assert_int_equal(load(NULL), 0);
  assert_string_equal(cfg.host, "h");
  assert_int_equal(cfg.port, 1);
  assert_string_equal(cfg.data_dir, "/d");
  assert_true(cfg.reuseport);
  assert_true(cfg.dev);
  assert_string_equal(cfg.services, "users");
  assert_string_equal(cfg.bus_url, "nats://n:4222");
  assert_string_equal(cfg.db_url, "postgres://p");
  assert_string_equal(cfg.redis_addr, "r:6379");
  assert_string_equal(cfg.redis_password, "rp");
  assert_string_equal(cfg.minio_endpoint, "http://m:9000");
  assert_string_equal(cfg.minio_access_key, "ak");
  assert_string_equal(cfg.minio_secret_key, "sk");
  assert_string_equal(cfg.minio_bucket, "b");
  assert_string_equal(cfg.minio_region, "eu-west-3");
  assert_true(cfg.minio_use_ssl);
  assert_int_equal(cfg.minio_part_size, 5 * 1024 * 1024);
  assert_int_equal(cfg.media_backend, CONFIG_MEDIA_S3);
  assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
  assert_int_equal(cfg.header_timeout_ms, 1000);
  assert_int_equal(cfg.idle_timeout_ms, 2000);
  assert_int_equal(cfg.body_timeout_ms, 3000);
  assert_int_equal(cfg.max_body, 4096);
  assert_int_equal(cfg.max_head, 5120);
  assert_int_equal(cfg.ws_max_message, 6144);
  assert_int_equal(cfg.ws_outbuf_limit, 7168);
  assert_int_equal(cfg.ws_heartbeat_ms, 8000);
  assert_int_equal(cfg.ws_idle_timeout_ms, 9000);
  assert_int_equal(cfg.shutdown_timeout_ms, 0);
  assert_int_equal(cfg.max_connections, 11);
  assert_string_equal(cfg.jwt_secret, "js");
}

static void test_null_getenv_uses_process_env(void **state) {
  setenv("STORM_MAX_CONNECTIONS", "123", 1);
  char *argv[] = {NULL};
  assert_int_equal(config_load(&cfg, 0, argv, NULL, err, sizeof err), 0);
  assert_int_equal(cfg.max_connections, 123);
  unsetenv("STORM_MAX_CONNECTIONS");
}

/* ---- types ---- */

static void test_int(void **state) {
  assert_int_equal(load("--port", "0", NULL), 0);
  assert_int_equal(cfg.port, 0);
  assert_int_equal(load("--port", "65535", NULL), 0);
  assert_int_equal(cfg.port, 65535);
  const char *bad[] = {"abc", "65536", "-1", "", "12x", " 80", "0x50", "+80", "-",
                       "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(load("--port", bad[i], NULL), -EINVAL);
    char want[200];
    snprintf(want, sizeof want, "invalid --port / PORT: '%s' is not an integer in 0..65535",
             bad[i]);
    expect_error(want);
  }
  env_set("PORT", "abc");
  assert_int_equal(load(NULL), -EINVAL);
  expect_error("invalid --port / PORT: 'abc' is not an integer in 0..65535");
  /* A flag does not rescue a bad environment value: the error names it. */
  assert_int_equal(load("--port", "1", NULL), -EINVAL);
  expect_error("invalid --port / PORT: 'abc' is not an integer in 0..65535");
  env_clear();
  assert_int_equal(load("--max-connections=0", NULL), -EINVAL);
  expect_error("invalid --max-connections / STORM_MAX_CONNECTIONS: '0' is not an integer in "
               "1..1000000");
}

static void test_bool(void **state) {
  assert_int_equal(load("--reuseport", NULL), 0);
  assert_true(cfg.reuseport);
  assert_int_equal(load("--reuseport=false", NULL), 0);
  assert_false(cfg.reuseport);
  /* A bare bool flag never takes the next argument as its value. */
  assert_int_equal(load("--dev", "--port", "1", NULL), 0);
  assert_true(cfg.dev);
  assert_int_equal(cfg.port, 1);
  assert_int_equal(load("--dev", "false", NULL), -EINVAL);
  expect_error("unexpected argument 'false' (settings are --name value or --name=value; see "
               "--help)");

  const char *yes[] = {"1", "true", "yes", "on", "TRUE", "Yes"};
  const char *no[] = {"0", "false", "no", "off", "False", "NO"};
  for (size_t i = 0; i < 6; i++) {
    env_clear();
    env_set("STORM_DEV", yes[i]);
    assert_int_equal(load(NULL), 0);
    assert_true(cfg.dev);
    env_set("STORM_DEV", no[i]);
    assert_int_equal(load(NULL), 0);
    assert_false(cfg.dev);
    /* The flag overrides the environment in both directions. */
    assert_int_equal(load("--dev", NULL), 0);
    assert_true(cfg.dev);
  }
  env_clear();
  env_set("STORM_REUSEPORT", "maybe");
  assert_int_equal(load(NULL), -EINVAL);
  expect_error("invalid --reuseport / STORM_REUSEPORT: 'maybe' is not a boolean (true/false, "
               "1/0, yes/no, on/off)");
  env_clear();
  assert_int_equal(load("--dev=", NULL), -EINVAL);
  expect_error("invalid --dev / STORM_DEV: '' is not a boolean (true/false, 1/0, yes/no, "
               "on/off)");
}

static void test_duration(void **state) {
  struct {
    const char *in;
    uint64_t ms;
  } ok[] = {{"500ms", 500}, {"10s", 10000}, {"2m", 120000}, {"1h", 3600000},
            {"250", 250},   {"1", 1},       {"24h", 86400000}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    assert_int_equal(load("--idle-timeout", ok[i].in, NULL), 0);
    assert_int_equal(cfg.idle_timeout_ms, ok[i].ms);
  }
  const char *bad[] = {"10x", "s", "-1s", "1.5s", "10 s", "0", "25h", "10S", "",
                       "99999999999999999999ms", "9999999999999999h"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(load("--idle-timeout", bad[i], NULL), -EINVAL);
    char want[300];
    snprintf(want, sizeof want,
             "invalid --idle-timeout / STORM_IDLE_TIMEOUT: '%s' is not a duration in 1ms..24h "
             "(e.g. 500ms, 10s, 2m, 1h; a plain number is milliseconds)",
             bad[i]);
    expect_error(want);
  }
  /* shutdown-timeout alone allows 0. */
  assert_int_equal(load("--shutdown-timeout=0", NULL), 0);
  assert_int_equal(cfg.shutdown_timeout_ms, 0);
}

static void test_size(void **state) {
  struct {
    const char *in;
    uint64_t b;
  } ok[] = {{"512", 512}, {"16k", 16384}, {"16K", 16384}, {"1m", 1048576}, {"1M", 1048576},
            {"1g", 1073741824}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    assert_int_equal(load("--max-body", ok[i].in, NULL), 0);
    assert_int_equal(cfg.max_body, ok[i].b);
  }
  const char *bad[] = {"1t", "k", "1kb", "2g", "0", "-1", "1.5m", "99999999999999999999g"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(load("--max-body", bad[i], NULL), -EINVAL);
    char want[300];
    snprintf(want, sizeof want,
             "invalid --max-body / STORM_MAX_BODY: '%s' is not a size in 1..1g (bytes, or a "
             "number with k, m or g)",
             bad[i]);
    expect_error(want);
  }
  assert_int_equal(load("--max-head", "255", NULL), -EINVAL);
  expect_error("invalid --max-head / STORM_MAX_HEAD: '255' is not a size in 256..1m (bytes, or "
               "a number with k, m or g)");
}

static void test_enum(void **state) {
  const char *names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(load("--log-level", names[i], NULL), 0);
    assert_int_equal(cfg.log_level, log_level_parse(names[i]));
  }
  assert_int_equal(load("--log-level=WARN", NULL), 0);
  assert_int_equal(cfg.log_level, LOG_LEVEL_WARN);
  assert_int_equal(load("--log-level", "verbose", NULL), -EINVAL);
  expect_error("invalid --log-level / STORM_LOG_LEVEL: 'verbose' is not one of "
               "debug|info|warn|error");
  assert_int_equal(load("--log-level", "inf", NULL), -EINVAL);
}

static void test_list(void **state) {
  assert_int_equal(load("--services", "users, media ,messages", NULL), 0);
  assert_string_equal(cfg.services, "users, media ,messages");
  assert_true(config_service_enabled(&cfg, "users"));
  assert_true(config_service_enabled(&cfg, "media"));
  assert_true(config_service_enabled(&cfg, "messages"));
  assert_false(config_service_enabled(&cfg, "gateway"));
  assert_false(config_service_enabled(&cfg, "notifications"));
  assert_int_equal(load(NULL), 0);
  assert_true(config_service_enabled(&cfg, "gateway")); /* "all" */
  assert_true(config_service_enabled(&cfg, "notifications"));

  assert_int_equal(load("--services=users,chat", NULL), -EINVAL);
  expect_error("invalid --services / STORM_SERVICES: 'users,chat' contains 'chat', which is not "
               "one of all, gateway, users, messages, media, notifications");
  assert_int_equal(load("--services=users,", NULL), -EINVAL);
  expect_error("invalid --services / STORM_SERVICES: 'users,' contains '', which is not one of "
               "all, gateway, users, messages, media, notifications");
  assert_int_equal(load("--services=", NULL), -EINVAL);
  expect_error("invalid --services / STORM_SERVICES: '' must not be empty");
}

static void test_string(void **state) {
  assert_int_equal(load("--host=", NULL), -EINVAL);
  expect_error("invalid --host / STORM_HOST: '' must not be empty");
  /* Empty is fine where it means "not used". */
  env_set("NATS_URL", "nats://x");
  assert_int_equal(load("--bus=", NULL), 0);
  assert_string_equal(cfg.bus_url, "");
  /* Exactly fits / one byte too long. */
  char longv[sizeof cfg.host + 1];
  memset(longv, 'h', sizeof cfg.host - 1);
  longv[sizeof cfg.host - 1] = '\0';
  assert_int_equal(load("--host", longv, NULL), 0);
  assert_int_equal(strlen(cfg.host), sizeof cfg.host - 1);
  longv[sizeof cfg.host - 1] = 'h';
  longv[sizeof cfg.host] = '\0';
  assert_int_equal(load("--host", longv, NULL), -EINVAL);
  assert_non_null(strstr(err, "invalid --host / STORM_HOST: 'hhh"));
  assert_non_null(strstr(err, "' is longer than 255 bytes"));
  /* A value that begins with "--" needs the = form. */
  assert_int_equal(load("--data=--odd", NULL), 0);
  assert_string_equal(cfg.data_dir, "--odd");
  /* = inside a value is kept. */
  assert_int_equal(load("--db=postgres://u@h/d?sslmode=require", NULL), 0);
  assert_string_equal(cfg.db_url, "postgres://u@h/d?sslmode=require");
}

static void test_secret_error_does_not_echo(void **state) {
  char longv[600];
  memset(longv, 'S', sizeof longv - 1);
  longv[sizeof longv - 1] = '\0';
  env_set("STORM_JWT_SECRET", longv);
  assert_int_equal(load(NULL), -EINVAL);
  expect_error("invalid --jwt-secret / STORM_JWT_SECRET: the value is longer than 511 bytes");
  assert_null(strstr(err, "SS"));
}

/* ---- argument forms ---- */

static void test_unknown_and_stray_arguments(void **state) {
  assert_int_equal(load("--nope", NULL), -EINVAL);
  expect_error("unknown option '--nope' (see --help)");
  assert_int_equal(load("--nope=1", NULL), -EINVAL);
  expect_error("unknown option '--nope' (see --help)");
  assert_int_equal(load("--por", "1", NULL), -EINVAL); /* no prefix matching */
  expect_error("unknown option '--por' (see --help)");
  assert_int_equal(load("--PORT", "1", NULL), -EINVAL);
  assert_int_equal(load("serve", NULL), -EINVAL);
  expect_error("unexpected argument 'serve' (settings are --name value or --name=value; see "
               "--help)");
  assert_int_equal(load("-p", "1", NULL), -EINVAL);
  expect_error("unexpected argument '-p' (settings are --name value or --name=value; see "
               "--help)");
  assert_int_equal(load("--", NULL), -EINVAL);
  assert_int_equal(load("--port", "1", "extra", NULL), -EINVAL);
  expect_error("unexpected argument 'extra' (settings are --name value or --name=value; see "
               "--help)");
}

static void test_missing_value(void **state) {
  assert_int_equal(load("--port", NULL), -EINVAL);
  expect_error("missing value for --port / PORT");
  assert_int_equal(load("--host", "--dev", NULL), -EINVAL);
  expect_error("missing value for --host / STORM_HOST");
}

static void test_null_errbuf(void **state) {
  char *argv[] = {"--port", "x"};
  assert_int_equal(config_load(&cfg, 2, argv, fake_getenv, NULL, 0), -EINVAL);
  char *argv2[] = {"--nope"};
  assert_int_equal(config_load(&cfg, 1, argv2, fake_getenv, NULL, 0), -EINVAL);
}

static void test_help_flag(void **state) {
  /* --help wins over later errors, prints to stdout and returns 1. */
  fflush(stdout);
  int saved = dup(1);
  char path[] = "/tmp/test_config_help_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  dup2(fd, 1);
  int rc1 = load("--port", "1", "--help", "--nope", NULL);
  int rc2 = load("-h", NULL);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  char out[16384];
  ssize_t n = pread(fd, out, sizeof out - 1, 0);
  close(fd);
  unlink(path);
  assert_int_equal(rc1, 1);
  assert_int_equal(rc2, 1);
  assert_true(n > 0);
  out[n] = '\0';
  assert_non_null(strstr(out, "usage: storm serve"));
  assert_non_null(strstr(out, "--max-connections"));
  /* An error before --help is still an error. */
  assert_int_equal(load("--port", "x", "--help", NULL), -EINVAL);
}

static void test_help_lists_everything(void **state) {
  static const char *const expected[][2] = {
      {"--host STR", "STORM_HOST"},
      {"--port N", "PORT"},
      {"--data STR", "STORM_DATA"},
      {"--reuseport[=BOOL]", "STORM_REUSEPORT"},
      {"--dev[=BOOL]", "STORM_DEV"},
      {"--services LIST", "STORM_SERVICES"},
      {"--bus STR", "NATS_URL"},
      {"--db STR", "DATABASE_URL"},
      {"--redis STR", "REDIS_ADDR"},
      {"--redis-password STR", "REDIS_PASSWORD"},
      {"--minio-endpoint STR", "MINIO_ENDPOINT"},
      {"--minio-access-key STR", "MINIO_ACCESS_KEY"},
      {"--minio-secret-key STR", "MINIO_SECRET_KEY"},
      {"--minio-bucket STR", "MINIO_BUCKET"},
      {"--minio-region STR", "MINIO_REGION"},
      {"--minio-use-ssl[=BOOL]", "MINIO_USE_SSL"},
      {"--minio-part-size SIZE", "MINIO_PART_SIZE"},
      {"--media-backend auto|local|s3", "STORM_MEDIA_BACKEND"},
      {"--log-level debug|info|warn|error", "STORM_LOG_LEVEL"},
      {"--header-timeout DURATION", "STORM_HEADER_TIMEOUT"},
      {"--idle-timeout DURATION", "STORM_IDLE_TIMEOUT"},
      {"--body-timeout DURATION", "STORM_BODY_TIMEOUT"},
      {"--max-body SIZE", "STORM_MAX_BODY"},
      {"--max-head SIZE", "STORM_MAX_HEAD"},
      {"--ws-max-message SIZE", "STORM_WS_MAX_MESSAGE"},
      {"--ws-outbuf-limit SIZE", "STORM_WS_OUTBUF_LIMIT"},
      {"--ws-heartbeat DURATION", "STORM_WS_HEARTBEAT"},
      {"--ws-idle-timeout DURATION", "STORM_WS_IDLE_TIMEOUT"},
      {"--shutdown-timeout DURATION", "STORM_SHUTDOWN_TIMEOUT"},
      {"--max-connections N", "STORM_MAX_CONNECTIONS"},
      {"--write-slice-us N", "STORM_WRITE_SLICE_US"},
      {"--write-duty N", "STORM_WRITE_DUTY"},
      {"--jwt-secret STR", "STORM_JWT_SECRET"},
      {"--jwt-secret-previous STR", "STORM_JWT_SECRET_PREVIOUS"},
      {"--jwt-issuer STR", "STORM_JWT_ISSUER"},
      {"--access-ttl DURATION", "STORM_ACCESS_TTL"},
      {"--refresh-ttl DURATION", "STORM_REFRESH_TTL"},
      {"--argon2-ops N", "STORM_ARGON2_OPS"},
      {"--argon2-mem SIZE", "STORM_ARGON2_MEM"},
      {"--hash-concurrency N", "STORM_HASH_CONCURRENCY"},
      {"--auth-rate N", "STORM_AUTH_RATE"},
      {"--auth-burst N", "STORM_AUTH_BURST"},
      {"--trusted-proxies STR", "STORM_TRUSTED_PROXIES"},
      {"--resume-limit N", "STORM_RESUME_LIMIT"},
      {"--presence-max-members N", "STORM_PRESENCE_MAX_MEMBERS"},
      {"--ws-send-rate N", "STORM_WS_SEND_RATE"},
      {"--ws-send-burst N", "STORM_WS_SEND_BURST"},
      {"--media-max-image SIZE", "STORM_MEDIA_MAX_IMAGE"},
      {"--media-max-video SIZE", "STORM_MEDIA_MAX_VIDEO"},
  };
  size_t n;
  const config_setting_t *rows = config_settings(&n);
  assert_int_equal(n, sizeof expected / sizeof expected[0]);
  char *h = help_text();
  for (size_t i = 0; i < n; i++) {
    /* The line of a setting holds its flag, then its variable. */
    char *at = strstr(h, expected[i][0]);
    if (!at) fail_msg("help lacks %s", expected[i][0]);
    char *eol = strchr(at, '\n');
    *eol = '\0';
    char env[64];
    snprintf(env, sizeof env, " %s ", expected[i][1]);
    if (!strstr(at, env)) fail_msg("help line of %s lacks %s", expected[i][0], env);
    *eol = '\n';
    assert_non_null(rows[i].help);
  }
  assert_non_null(strstr(h, "default 8080\n"));
  assert_non_null(strstr(h, "default 127.0.0.1\n"));
  assert_non_null(strstr(h, "default 10s\n"));
  assert_non_null(strstr(h, "default 16k\n"));
  assert_non_null(strstr(h, "default info\n"));
  assert_non_null(strstr(h, "default all\n"));
  assert_non_null(strstr(h, "default \"\"\n")); /* --bus */
  assert_non_null(strstr(h, "(0..65535)"));
  assert_non_null(strstr(h, "(1ms..24h)"));
  assert_non_null(strstr(h, "(256..1m)"));
  free(h);
}

static void test_help_never_prints_secrets(void **state) {
  size_t n;
  const config_setting_t *rows = config_settings(&n);
  char *h = help_text();
  int secrets = 0;
  for (size_t i = 0; i < n; i++) {
    if (!rows[i].secret) continue;
    secrets++;
    char flag[64];
    snprintf(flag, sizeof flag, "--%s ", rows[i].name);
    char *line = strstr(h, flag);
    assert_non_null(line);
    char *eol = strchr(line, '\n');
    *eol = '\0';
    const char *want = rows[i].def[0] ? "default (secret)" : "default unset";
    if (!strstr(line, want)) fail_msg("secret line: %s", line);
    *eol = '\n';
  }
  assert_int_equal(secrets, 5); /* redis password, two minio keys, two jwt keys */
  free(h);
}

static void test_format_redacts_secrets(void **state) {
  env_set("REDIS_PASSWORD", "hunter2");
  env_set("MINIO_SECRET_KEY", "minio-sk-value");
  env_set("STORM_JWT_SECRET", "jwt-value");
  assert_int_equal(load("--log-level=debug", "--max-head=32k", "--dev", NULL), 0);
  buf_t b = BUF_INIT;
  config_format(&cfg, &b);
  assert_false(b.oom);
  assert_null(strstr(b.data, "hunter2"));
  assert_null(strstr(b.data, "minio-sk-value"));
  assert_null(strstr(b.data, "jwt-value"));
  assert_non_null(strstr(b.data, " redis-password=(secret) "));
  assert_non_null(strstr(b.data, " minio-access-key=\"\" "));
  assert_non_null(strstr(b.data, " jwt-secret=(secret)"));
  assert_int_equal(strncmp(b.data, "host=127.0.0.1 port=8080 data=./data reuseport=false "
                                   "dev=true services=all bus=\"\" ",
                           strlen("host=127.0.0.1 port=8080 data=./data reuseport=false "
                                  "dev=true services=all bus=\"\" ")),
                   0);
  assert_non_null(strstr(b.data, " log-level=debug "));
  assert_non_null(strstr(b.data, " header-timeout=10s "));
  assert_non_null(strstr(b.data, " idle-timeout=1m "));
  assert_non_null(strstr(b.data, " max-head=32k "));
  assert_non_null(strstr(b.data, " max-body=1m "));
  assert_non_null(strstr(b.data, " shutdown-timeout=10s "));
  assert_non_null(strstr(b.data, " max-connections=19000 "));
  buf_free(&b);
  /* Odd values print in the largest exact unit. */
  assert_int_equal(load("--idle-timeout=1500", "--max-body=1025", "--shutdown-timeout=0",
                        "--ws-heartbeat=2h", NULL),
                   0);
  config_format(&cfg, &b);
  assert_non_null(strstr(b.data, " idle-timeout=1500ms "));
  assert_non_null(strstr(b.data, " max-body=1025 "));
  assert_non_null(strstr(b.data, " shutdown-timeout=0ms "));
  assert_non_null(strstr(b.data, " ws-heartbeat=2h "));
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_defaults, setup),
      cmocka_unit_test_setup(test_precedence, setup),
      cmocka_unit_test_setup(test_empty_env_is_unset, setup),
      cmocka_unit_test_setup(test_every_env_var_is_read, setup),
      cmocka_unit_test_setup(test_null_getenv_uses_process_env, setup),
      cmocka_unit_test_setup(test_int, setup),
      cmocka_unit_test_setup(test_bool, setup),
      cmocka_unit_test_setup(test_duration, setup),
      cmocka_unit_test_setup(test_size, setup),
      cmocka_unit_test_setup(test_enum, setup),
      cmocka_unit_test_setup(test_list, setup),
      cmocka_unit_test_setup(test_string, setup),
      cmocka_unit_test_setup(test_secret_error_does_not_echo, setup),
      cmocka_unit_test_setup(test_unknown_and_stray_arguments, setup),
      cmocka_unit_test_setup(test_missing_value, setup),
      cmocka_unit_test_setup(test_null_errbuf, setup),
      cmocka_unit_test_setup(test_help_flag, setup),
      cmocka_unit_test_setup(test_help_lists_everything, setup),
      cmocka_unit_test_setup(test_help_never_prints_secrets, setup),
      cmocka_unit_test_setup(test_format_redacts_secrets, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
