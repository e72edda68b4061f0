/*
 * main.c — the `storm` program: parse the command line, wire the pieces
 * together, run the loop, shut down on SIGTERM/SIGINT.
 *
 * Wiring only: every behaviour lives in a module. Exit codes: 0 after a
 * clean stop, 1 on a runtime failure (cannot bind, ...), 2 on invalid
 * configuration or usage.
 */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bus/bus.h"
#include "bus/bus_local.h"
#include "core/config.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/server.h"
#include "services/gateway/gateway.h"

#define STORM_VERSION "0.1.0"

typedef struct {
  uv_loop_t *loop;
  storm_config_t cfg;
  metrics_registry_t *metrics;
  health_t *health;
  bus_t *bus;
  net_server_t *server;
  gateway_t *gateway;
  uv_signal_t sigterm, sigint;
  uv_timer_t hard_deadline;
  bool stopping;
  int exit_code;
} app_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: storm <command> [options]\n\n"
          "commands:\n"
          "  serve      run STORM (embedded by default: every service in one process)\n"
          "  version    print the version\n\n"
          "`storm serve --help` lists every option with its environment variable and default.\n");
}

static bool bus_ready(void *arg) { return bus_is_connected(arg); }

static void on_bus_closed(void *arg) {
  app_t *app = arg;
  uv_close((uv_handle_t *)&app->sigterm, NULL);
  uv_close((uv_handle_t *)&app->sigint, NULL);
  uv_close((uv_handle_t *)&app->hard_deadline, NULL);
}

static void on_drained(void *arg) {
  app_t *app = arg;
  log_info("main", "connections drained");
  /* Services flush here (stores, buses) before the process exits. */
  bus_close(app->bus, on_bus_closed, app);
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
  net_server_shutdown(app->server, app->cfg.shutdown_timeout_ms, on_drained, app);
}

static int serve(int argc, char **argv) {
  app_t app = {0};
  char err[512];
  int rc = config_load(&app.cfg, argc, argv, NULL, err, sizeof err);
  if (rc == 1) return 0;
  if (rc < 0) {
    fprintf(stderr, "storm: %s\n", err);
    return 2;
  }
  log_set_level(app.cfg.log_level);
  if (sodium_init() < 0) {
    log_error("main", "libsodium failed to initialise");
    return 1;
  }
  if (app.cfg.bus_url[0]) {
    fprintf(stderr, "storm: invalid --bus / NATS_URL: the NATS bus is not built yet; leave it empty for the in-process bus\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);

  app.loop = uv_default_loop();
  app.metrics = metrics_registry_new();
  app.health = health_new();
  app.bus = bus_local_new(app.loop, 0);
  if (!app.metrics || !app.health || !app.bus) {
    log_error("main", "out of memory at start-up");
    return 1;
  }
  health_add(app.health, "bus", bus_ready, app.bus);

  net_server_opts_t so;
  net_server_opts_default(&so);
  so.host = app.cfg.host;
  so.port = app.cfg.port;
  so.reuseport = app.cfg.reuseport;
  so.max_head = app.cfg.max_head;
  so.max_body = app.cfg.max_body;
  so.header_timeout_ms = app.cfg.header_timeout_ms;
  so.body_timeout_ms = app.cfg.body_timeout_ms;
  so.idle_timeout_ms = app.cfg.idle_timeout_ms;
  so.ws_max_message = app.cfg.ws_max_message;
  so.ws_outbuf_limit = app.cfg.ws_outbuf_limit;
  so.ws_heartbeat_ms = app.cfg.ws_heartbeat_ms;
  so.ws_idle_timeout_ms = app.cfg.ws_idle_timeout_ms;
  so.max_connections = app.cfg.max_connections;
  so.user_size = gateway_conn_user_size();
  so.metrics = app.metrics;
  rc = net_server_start(app.loop, &so, &app.server);
  if (rc < 0) {
    log_error("main", "cannot listen on %s:%d: %s", app.cfg.host, app.cfg.port, uv_strerror(rc));
    return 1;
  }
  gateway_opts_t go = {app.server, app.bus, app.health, app.metrics, app.cfg.ws_heartbeat_ms};
  rc = gateway_start(&go, &app.gateway);
  if (rc < 0) {
    log_error("main", "gateway failed to start: %s", uv_strerror(rc));
    return 1;
  }

  uv_signal_init(app.loop, &app.sigterm);
  uv_signal_init(app.loop, &app.sigint);
  app.sigterm.data = app.sigint.data = &app;
  uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  uv_signal_start(&app.sigint, on_signal, SIGINT);
  uv_timer_init(app.loop, &app.hard_deadline);
  uv_unref((uv_handle_t *)&app.hard_deadline);

  buf_t cfgline = BUF_INIT;
  config_format(&app.cfg, &cfgline);
  log_info("main", "storm %s starting (embedded): %s", STORM_VERSION, cfgline.data ? cfgline.data : "");
  buf_free(&cfgline);
  log_info("http", "listening on %s:%d", app.cfg.host, net_server_port(app.server));

  uv_run(app.loop, UV_RUN_DEFAULT);

  gateway_free(app.gateway);
  net_server_free(app.server);
  health_free(app.health);
  metrics_registry_free(app.metrics);
  rc = uv_loop_close(app.loop);
  if (rc < 0) log_warn("main", "loop closed with open handles: %s", uv_strerror(rc));
  log_info("main", "stopped");
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "serve") == 0) return serve(argc - 2, argv + 2);
  if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
    printf("storm %s\n", STORM_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "storm: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
