/*
 * serve.c — `storm serve`: wire the loop, bus, stores, services and the
 * server together, run, and shut down on SIGTERM/SIGINT.
 *
 * Wiring only: every behaviour lives in a module. The order of shutdown is
 * the reverse of start-up: stop accepting and drain clients, stop services
 * (they finish work already on the thread pool), close the bus, then the
 * stores.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bus/bus.h"
#include "bus/bus_local.h"
#include "bus/bus_nats.h"
#include "cmd/cmd.h"
#include "cmd/stores.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/ops_routes.h"
#include "net/server.h"
#include "services/gateway/gateway.h"
#include "services/gateway/gateway_media.h"
#include "services/media/media_service.h"
#include "services/media/media_storage_local.h"
#include "services/media/media_storage_s3.h"
#include "services/messages/messages_service.h"
#include "services/users/users_service.h"
#include "store/redis/redis_client.h"
#include "services/notifications/notifications_service.h"
#include "store/redis/notifications_redis.h"
#include "store/sqlite/notifications_sqlite.h"
#include "store/sqlite/sqlite_db.h"

typedef struct {
  uv_loop_t *loop;
  storm_config_t cfg;
  jwt_keys_t keys;
  metrics_registry_t *metrics;
  health_t *health;
  bus_t *bus;
  cmd_db_t db;
  users_store_t *users_store;
  users_service_t *users;
  messages_store_t *messages_store;
  messages_service_t *messages;
  net_server_t *server;
  gateway_t *gateway;
  redis_client_t *redis;
  media_storage_t *media_storage;   /* bytes: the gateway writes, the service deletes */
  media_store_t *media_store;
  media_service_t *media;
  gateway_media_t *gateway_media;
  bool media_stopped;
  notif_store_t *notif_store;       /* Redis with --redis, else SQLite in the data dir */
  notifications_service_t *notifications;
  bool notifications_stopped;
  uv_signal_t sigterm, sigint;
  uv_timer_t hard_deadline;
  bool stopping;
} app_t;

static bool bus_ready(void *arg) { return bus_is_connected(arg); }
static bool store_ready(void *arg) {
  users_store_t *s = arg;
  return s->ops->healthy(s);
}

static void on_bus_closed(void *arg) {
  app_t *app = arg;
  uv_close((uv_handle_t *)&app->sigterm, NULL);
  uv_close((uv_handle_t *)&app->sigint, NULL);
  uv_close((uv_handle_t *)&app->hard_deadline, NULL);
}

static void on_services_stopped(void *arg) {
  app_t *app = arg;
  if (app->notifications && !app->notifications_stopped) { /* before Redis closes below */
    app->notifications_stopped = true;
    notifications_service_stop(app->notifications, on_services_stopped, app);
    return;
  }
  if (app->media && !app->media_stopped) { /* last service: its pool jobs finish first */
    app->media_stopped = true;
    media_service_stop(app->media, on_services_stopped, app);
    return;
  }
  if (app->redis) {
    redis_client_close(app->redis, NULL, NULL);
    app->redis = NULL;
  }
  cmd_db_unwatch(&app->db);
  /* The messages store drains its commit queue (every queued message is
   * committed and called back) and releases its loop handle here, so the
   * loop can end. */
  if (app->messages_store) {
    app->messages_store->ops->close(app->messages_store);
    app->messages_store = NULL;
  }
  bus_close(app->bus, on_bus_closed, app);
}

/* Services stop one after the other; each finishes the work it has on the
 * thread pool (a message being committed is committed and acked) first. */
static void on_users_stopped(void *arg) {
  app_t *app = arg;
  if (app->messages)
    messages_service_stop(app->messages, on_services_stopped, app);
  else
    on_services_stopped(app);
}

static void on_drained(void *arg) {
  app_t *app = arg;
  log_info("main", "connections drained");
  gateway_stop(app->gateway);
  if (app->users)
    users_service_stop(app->users, on_users_stopped, app);
  else
    on_users_stopped(app);
}

static void on_hard_deadline(uv_timer_t *t) {
  log_error("main", "shutdown deadline passed; exiting");
  exit(1);
}

static void on_signal(uv_signal_t *sig, int signum) {
  app_t *app = sig->data;
  if (app->stopping) {
    log_warn("main", "second signal: exiting now");
    exit(1);
  }
  app->stopping = true;
  log_info("main", "received %s: shutting down (deadline %llu ms)",
           signum == SIGTERM ? "SIGTERM" : "SIGINT",
           (unsigned long long)app->cfg.shutdown_timeout_ms);
  /* A last resort in case something never drains: a little after the
   * server's own deadline, which closes connections hard. */
  uv_timer_start(&app->hard_deadline, on_hard_deadline, app->cfg.shutdown_timeout_ms + 2000, 0);
  if (app->server)
    net_server_shutdown(app->server, app->cfg.shutdown_timeout_ms, on_drained, app);
  else
    on_drained(app);
}

static bool messages_store_ready(void *arg) {
  messages_store_t *s = arg;
  return s->ops->healthy(s);
}

static int start_users(app_t *app);

/* The in-process bus, or NATS when --bus / NATS_URL names servers. NATS
 * being down at start is not fatal: the bus connects in the background
 * and /readyz stays red until it does. Returns an exit code: 0, 1 (out
 * of memory), 2 (bad configuration). */
static int open_bus(app_t *app) {
  if (!app->cfg.bus_url[0]) {
    app->bus = bus_local_new(app->loop, 0);
    if (!app->bus) log_error("main", "out of memory at start-up");
    return app->bus ? 0 : 1;
  }
  char name[300];
  snprintf(name, sizeof name, "storm %s", app->cfg.services);
  bus_nats_opts_t no = {.servers = app->cfg.bus_url, .name = name};
  int rc = bus_nats_open(app->loop, &no, &app->bus);
  if (rc < 0) {
    log_error("main", "invalid --bus / NATS_URL '%s': %s", app->cfg.bus_url, uv_strerror(rc));
    app->bus = NULL;
    return rc == -ENOMEM ? 1 : 2;
  }
  return 0;
}

static int start_users_service(app_t *app) {
  if (cmd_users_store_open(&app->db, &app->users_store)) return 1;
  if (cmd_db_store_checks(&app->db)) health_add(app->health, "store", store_ready, app->users_store);
  return start_users(app);
}

static int start_messages_service(app_t *app) {
  if (cmd_messages_store_open(&app->db, app->loop, &app->messages_store)) return 1;
  if (cmd_db_store_checks(&app->db))
    health_add(app->health, "messages_store", messages_store_ready, app->messages_store);
  messages_service_opts_t mo;
  messages_service_opts_default(&mo);
  mo.loop = app->loop;
  mo.bus = app->bus;
  mo.store = app->messages_store;
  mo.metrics = app->metrics;
  int rc = messages_service_start(&mo, &app->messages);
  if (rc < 0) {
    log_error("main", "messages service failed to start: %s", uv_strerror(rc));
    return 1;
  }
  return 0;
}

static int start_users(app_t *app) {
  users_service_opts_t o;
  users_service_opts_default(&o);
  o.loop = app->loop;
  o.bus = app->bus;
  o.store = app->users_store;
  o.keys = &app->keys;
  o.access_ttl_s = (int64_t)(app->cfg.access_ttl_ms / 1000);
  o.refresh_ttl_s = (int64_t)(app->cfg.refresh_ttl_ms / 1000);
  o.pw_opslimit = (unsigned long long)app->cfg.argon2_ops;
  o.pw_memlimit = (size_t)app->cfg.argon2_mem;
  o.max_concurrent_hashes = app->cfg.hash_concurrency;
  o.metrics = app->metrics;
  int rc = users_service_start(&o, &app->users);
  if (rc < 0) {
    log_error("main", "users service failed to start: %s", uv_strerror(rc));
    return 1;
  }
  return 0;
}

/* Every process listens: the gateway's API and WebSocket when it runs the
 * gateway, and always /healthz, /readyz and /metrics (a services-only
 * replica needs probes and scraping too). */
static int start_http(app_t *app) {
  net_server_opts_t so;
  net_server_opts_default(&so);
  so.host = app->cfg.host;
  so.port = app->cfg.port;
  so.reuseport = app->cfg.reuseport;
  so.max_head = app->cfg.max_head;
  so.max_body = app->cfg.max_body;
  so.header_timeout_ms = app->cfg.header_timeout_ms;
  so.body_timeout_ms = app->cfg.body_timeout_ms;
  so.idle_timeout_ms = app->cfg.idle_timeout_ms;
  so.ws_max_message = app->cfg.ws_max_message;
  so.ws_outbuf_limit = app->cfg.ws_outbuf_limit;
  so.ws_heartbeat_ms = app->cfg.ws_heartbeat_ms;
  so.ws_idle_timeout_ms = app->cfg.ws_idle_timeout_ms;
  so.max_connections = app->cfg.max_connections;
  so.write_slice_ns = (uint64_t)app->cfg.write_slice_us * 1000;
  so.write_duty = app->cfg.write_duty;
  so.user_size = gateway_conn_user_size();
  so.metrics = app->metrics;
  int rc = net_server_start(app->loop, &so, &app->server);
  if (rc < 0) {
    log_error("main", "cannot listen on %s:%d: %s", app->cfg.host, app->cfg.port, uv_strerror(rc));
    return 1;
  }
  rc = net_ops_routes(app->server, app->health, app->metrics);
  if (rc < 0) {
    log_error("main", "cannot add the operational routes: %s", uv_strerror(rc));
    return 1;
  }
  return 0;
}

static int start_gateway(app_t *app) {
  gateway_opts_t go = {
      .server = app->server,
      .bus = app->bus,
      .health = app->health,
      .metrics = app->metrics,
      .heartbeat_ms = app->cfg.ws_heartbeat_ms,
      .loop = app->loop,
      .keys = &app->keys,
      .auth_rate = app->cfg.auth_rate,
      .auth_burst = app->cfg.auth_burst,
      .trusted_proxies = app->cfg.trusted_proxies,
      .resume_limit = (uint32_t)app->cfg.resume_limit,
      .presence_max_members = app->cfg.presence_max_members,
      .ws_send_rate = app->cfg.ws_send_rate,
      .ws_send_burst = app->cfg.ws_send_burst,
      .redis = app->redis,
  };
  int rc = gateway_start(&go, &app->gateway);
  if (rc < 0) {
    log_error("main", "gateway failed to start: %s", uv_strerror(rc));
    return 1;
  }
  return 0;
}

/* Media (docs/media.md): the storage backend is opened by every process
 * that runs the gateway (it streams uploads and downloads) or the media
 * service (it deletes objects and takes bus uploads); the metadata store
 * only by the service. */
static bool media_store_ready(void *arg) {
  media_store_t *s = arg;
  return s->ops->healthy(s);
}

/* The S3 backend's readiness is re-checked this often off the loop (its
 * probe thread; every 2 s while red), so /readyz follows a fixed key or
 * a store that went away. */
#define MEDIA_S3_PROBE_MS 10000

/* S3 (docs/media.md, "S3 backend"): the key pair has no usable default
 * outside --dev, as STORM_JWT_SECRET; in --dev an unset pair is MinIO's
 * own development default. The bucket check runs on the probe thread:
 * a refused key is logged at once and keeps /readyz red, it does not
 * stop the process (/healthz stays green). */
static int open_media_s3(app_t *app, const char *dir) {
  const storm_config_t *c = &app->cfg;
  const char *access = c->minio_access_key, *secret = c->minio_secret_key;
  if (!c->minio_endpoint[0]) {
    log_error("main", "invalid --minio-endpoint / MINIO_ENDPOINT: required with --media-backend s3");
    return 1;
  }
  if (!access[0] || !secret[0]) {
    if (!c->dev) {
      log_error("main", "invalid %s: required for the S3 media backend unless --dev is given",
                !access[0] ? "--minio-access-key / MINIO_ACCESS_KEY" : "--minio-secret-key / MINIO_SECRET_KEY");
      return 1;
    }
    log_warn("main", "--dev: S3 key pair unset, using MinIO's development default (minioadmin)");
    if (!access[0]) access = "minioadmin";
    if (!secret[0]) secret = "minioadmin";
  }
  media_s3_opts_t o = {
      .s3 = {.endpoint = c->minio_endpoint, .use_ssl = c->minio_use_ssl, .region = c->minio_region,
             .access_key = access, .secret_key = secret, .bucket = c->minio_bucket},
      .dir = dir,
      .part_size = c->minio_part_size,
      .probe_interval_ms = MEDIA_S3_PROBE_MS,
  };
  char err[256];
  int rc = media_storage_s3_open(app->loop, &o, &app->media_storage, err, sizeof err);
  if (rc < 0) {
    log_error("main", "cannot open S3 media storage (--minio-* / MINIO_*): %s",
              err[0] ? err : uv_strerror(rc));
    return 1;
  }
  log_info("main", "media storage: S3 bucket %s at %s (temporary files in %s/tmp)", c->minio_bucket,
           c->minio_endpoint, dir);
  health_add(app->health, "media_storage", media_storage_s3_ready, app->media_storage);
  return 0;
}

static int open_media_storage(app_t *app) {
  if (app->media_storage) return 0;
  char dir[sizeof app->cfg.data_dir + 8];
  snprintf(dir, sizeof dir, "%s/media", app->cfg.data_dir);
  /* The data directory itself may not exist yet (no SQLite service here). */
  uv_fs_t req;
  uv_fs_mkdir(NULL, &req, app->cfg.data_dir, 0700, NULL);
  uv_fs_req_cleanup(&req);
  int backend = app->cfg.media_backend;
  if (backend == CONFIG_MEDIA_AUTO)
    backend = app->cfg.minio_endpoint[0] ? CONFIG_MEDIA_S3 : CONFIG_MEDIA_LOCAL;
  if (backend == CONFIG_MEDIA_S3) return open_media_s3(app, dir);
  int rc = media_storage_local_open(app->loop, dir, &app->media_storage);
  if (rc < 0) log_error("main", "cannot open media storage in %s: %s", dir, uv_strerror(rc));
  return rc < 0;
}

static int start_media_service(app_t *app) {
  if (cmd_media_store_open(&app->db, &app->media_store) || open_media_storage(app)) return 1;
  health_add(app->health, "media_store", media_store_ready, app->media_store);
  media_service_opts_t mo;
  media_service_opts_default(&mo);
  mo.loop = app->loop;
  mo.bus = app->bus;
  mo.store = app->media_store;
  mo.storage = app->media_storage;
  mo.max_image = app->cfg.media_max_image;
  mo.max_video = app->cfg.media_max_video;
  mo.metrics = app->metrics;
  int rc = media_service_start(&mo, &app->media);
  if (rc < 0) {
    log_error("main", "media service failed to start: %s", uv_strerror(rc));
    return 1;
  }
  return 0;
}

static int start_gateway_media(app_t *app) {
  if (open_media_storage(app)) return 1;
  gateway_media_opts_t o = {.storage = app->media_storage,
                            .max_image = app->cfg.media_max_image,
                            .max_video = app->cfg.media_max_video};
  int rc = gateway_media_start(app->gateway, &o, &app->gateway_media);
  if (rc < 0) {
    log_error("main", "media routes failed to start: %s", uv_strerror(rc));
    return 1;
  }
  return 0;
}

/* Notifications (docs/notifications.md): Redis when --redis / REDIS_ADDR is
 * set (replicas share it; readyz follows the connection), else SQLite in
 * the data directory (one process only: a warning says so when the rest
 * is distributed). */
static bool notif_store_ready(void *arg) {
  notif_store_t *s = arg;
  return s->ops->ready(s);
}

static int start_notifications_service(app_t *app) {
  int rc;
  if (app->redis) {
    notif_redis_opts_t ro = {.redis = app->redis};
    rc = notif_redis_open(&ro, &app->notif_store);
  } else {
    if (app->cfg.bus_url[0] || app->cfg.db_url[0])
      log_warn("main", "notifications in SQLite under %s: give --redis so that replicas share them",
               app->cfg.data_dir);
    char err[512];
    if (!app->db.sqlite && sqlite_db_open(app->cfg.data_dir, &app->db.sqlite, err, sizeof err) < 0) {
      log_error("main", "cannot open the database in %s: %s", app->cfg.data_dir, err);
      return 1;
    }
    notif_sqlite_opts_t so = {.loop = app->loop, .db = app->db.sqlite};
    rc = notif_sqlite_open(&so, &app->notif_store);
  }
  if (rc < 0) {
    log_error("main", "cannot open the notifications store: %s", uv_strerror(rc));
    return 1;
  }
  health_add(app->health, "notifications_store", notif_store_ready, app->notif_store);
  notifications_service_opts_t no = {
      .loop = app->loop, .bus = app->bus, .store = app->notif_store, .metrics = app->metrics};
  rc = notifications_service_start(&no, &app->notifications);
  if (rc < 0) {
    log_error("main", "notifications service failed to start: %s", uv_strerror(rc));
    return 1;
  }
  return 0;
}

int cmd_serve(int argc, char **argv) {
  static app_t app; /* static: signal handlers and exit paths may outlive a frame */
  int code;
  if (cmd_config(&app.cfg, argc, argv, &code)) return code;
  if ((code = cmd_jwt_keys(&app.cfg, &app.keys)) != 0) return code;
  app.db.cfg = &app.cfg;
  signal(SIGPIPE, SIG_IGN);
  /* glibc raises its mmap threshold to the size of the largest block
   * freed so far (and the trim threshold to twice that): after one
   * 708 KB channel-list result, every thread arena may keep ~1.4 MB it
   * never returns. A fixed threshold turns that dynamic behaviour off, so
   * big short-lived buffers go back to the system on free (measured in
   * docs/benchmarks.md, S3: ~1,000 → ~600 B per idle connection). */
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  app.loop = uv_default_loop();
  app.metrics = metrics_registry_new();
  app.health = health_new();
  if (!app.metrics || !app.health) {
    log_error("main", "out of memory at start-up");
    return 1;
  }
  if ((code = open_bus(&app)) != 0) return code;
  health_add(app.health, "bus", bus_ready, app.bus);

  buf_t line = BUF_INIT;
  config_format(&app.cfg, &line);
  log_info("main", "storm %s starting (%s%s): %s", STORM_VERSION,
           app.cfg.bus_url[0] || app.cfg.db_url[0] ? "distributed" : "embedded", app.cfg.dev ? ", dev" : "",
           line.data ? line.data : "");
  buf_free(&line);

  /* Signals first: a SIGTERM that follows the "listening" line must find
   * its handler, not kill the process. */
  uv_signal_init(app.loop, &app.sigterm);
  uv_signal_init(app.loop, &app.sigint);
  app.sigterm.data = app.sigint.data = &app;
  uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  uv_signal_start(&app.sigint, on_signal, SIGINT);
  uv_timer_init(app.loop, &app.hard_deadline);
  uv_unref((uv_handle_t *)&app.hard_deadline);

  if (app.cfg.redis_addr[0]) {
    redis_client_opts_t ro = {.addr = app.cfg.redis_addr, .password = app.cfg.redis_password};
    int rc = redis_client_open(app.loop, &ro, &app.redis);
    if (rc < 0) {
      log_error("main", "invalid --redis / REDIS_ADDR '%s': %s", app.cfg.redis_addr, uv_strerror(rc));
      return 2;
    }
  }
  if (config_service_enabled(&app.cfg, "users") && start_users_service(&app)) return 1;
  if (config_service_enabled(&app.cfg, "messages") && start_messages_service(&app)) return 1;
  if (config_service_enabled(&app.cfg, "media") && start_media_service(&app)) return 1;
  if (config_service_enabled(&app.cfg, "notifications") && start_notifications_service(&app))
    return 1;
  cmd_db_watch(&app.db, app.loop, app.health);
  if (start_http(&app)) return 1;
  if (config_service_enabled(&app.cfg, "gateway") && start_gateway(&app)) return 1;
  if (app.gateway && start_gateway_media(&app)) return 1;
  log_info("http", "listening on %s:%d", app.cfg.host, net_server_port(app.server));

  uv_run(app.loop, UV_RUN_DEFAULT);

  gateway_media_free(app.gateway_media);
  gateway_free(app.gateway);
  media_service_free(app.media);
  notifications_service_free(app.notifications);
  if (app.notif_store) app.notif_store->ops->close(app.notif_store);
  if (app.media_store) app.media_store->ops->close(app.media_store);
  if (app.media_storage) app.media_storage->ops->close(app.media_storage);
  net_server_free(app.server);
  users_service_free(app.users);
  messages_service_free(app.messages);
  if (app.users_store) app.users_store->ops->close(app.users_store);
  if (app.messages_store) app.messages_store->ops->close(app.messages_store);
  cmd_db_close(&app.db);
  health_free(app.health);
  metrics_registry_free(app.metrics);
  int rc = uv_loop_close(app.loop);
  if (rc < 0) log_warn("main", "loop closed with open handles: %s", uv_strerror(rc));
  log_info("main", "stopped");
  return 0;
}
