/*
 * admin.c — operator commands that act on the embedded store:
 *   storm token --user NAME [--ttl SECONDS]   print an access token
 *   storm user create NAME [--display-name X] create a user (password on stdin)
 *
 * They do not reimplement the users service: they start it in-process on a
 * private loop and in-process bus and send it the same requests the gateway
 * would (users.get, users.register), so validation and hashing are the
 * service's own. Only signing the token happens here, with the configured
 * key, as the service would.
 */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "bus/bus_local.h"
#include "cmd/cmd.h"
#include "core/log.h"
#include "services/users/users_service.h"
#include "cmd/stores.h"

typedef struct {
  uv_loop_t loop;
  bus_t *bus;
  cmd_db_t db;
  users_store_t *store;
  users_service_t *svc;
  metrics_registry_t *metrics;
  json_t *reply;   /* the answer to the one request */
  int status;
} admin_t;

static int admin_open(admin_t *a, const storm_config_t *cfg, const jwt_keys_t *keys) {
  memset(a, 0, sizeof *a);
  uv_loop_init(&a->loop);
  a->bus = bus_local_new(&a->loop, 0);
  if (!a->bus) return 1;
  a->db.cfg = cfg;
  if (cmd_users_store_open(&a->db, &a->store)) return 1;
  users_service_opts_t o;
  users_service_opts_default(&o);
  o.loop = &a->loop;
  o.bus = a->bus;
  o.store = a->store;
  o.keys = keys;
  o.pw_opslimit = (unsigned long long)cfg->argon2_ops;
  o.pw_memlimit = (size_t)cfg->argon2_mem;
  o.metrics = a->metrics = metrics_registry_new();
  if (users_service_start(&o, &a->svc) < 0) return 1;
  return 0;
}

static void on_reply(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  admin_t *a = arg;
  a->status = status;
  if (status == 0) a->reply = json_loadb(msg->data, msg->len, 0, NULL);
}

static void on_stopped(void *arg) { bus_close(((admin_t *)arg)->bus, NULL, NULL); }

/* Sends one request and runs the loop until it is answered. */
static json_t *admin_request(admin_t *a, const char *subject, json_t *payload) {
  char *s = json_dumps(payload, JSON_COMPACT);
  json_decref(payload);
  a->status = -EIO;
  if (s && bus_request(a->bus, subject, s, strlen(s), 30000, on_reply, a, NULL) == 0) {
    while (!a->reply && a->status == -EIO && uv_run(&a->loop, UV_RUN_ONCE)) {
    }
  }
  free(s);
  return a->reply;
}

static void admin_close(admin_t *a) {
  if (a->svc) users_service_stop(a->svc, on_stopped, a);
  else if (a->bus) bus_close(a->bus, NULL, NULL);
  uv_run(&a->loop, UV_RUN_DEFAULT);
  users_service_free(a->svc);
  if (a->store) a->store->ops->close(a->store);
  cmd_db_close(&a->db);
  uv_loop_close(&a->loop);
  metrics_registry_free(a->metrics);
  json_decref(a->reply);
}

/* Removes "--name value" from argv (returns value or NULL). */
static const char *take_flag(int *argc, char **argv, const char *name) {
  for (int i = 0; i < *argc; i++) {
    if (strcmp(argv[i], name) == 0 && i + 1 < *argc) {
      const char *v = argv[i + 1];
      memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof *argv);
      *argc -= 2;
      return v;
    }
  }
  return NULL;
}

static int print_error(json_t *reply, int status) {
  if (!reply) {
    fprintf(stderr, "storm: the users service did not answer (%d)\n", status);
    return 1;
  }
  json_t *e = json_object_get(reply, "error");
  fprintf(stderr, "storm: %s: %s\n", json_string_value(json_object_get(e, "code")),
          json_string_value(json_object_get(e, "message")));
  return 1;
}

int cmd_token(int argc, char **argv) {
  const char *user = take_flag(&argc, argv, "--user");
  const char *ttl_s = take_flag(&argc, argv, "--ttl");
  storm_config_t cfg;
  jwt_keys_t keys;
  int code;
  if (cmd_config(&cfg, argc, argv, &code)) return code;
  if (!user) {
    fprintf(stderr, "storm token: --user NAME is required\n");
    return 2;
  }
  long long ttl = ttl_s ? strtoll(ttl_s, NULL, 10) : (long long)(cfg.access_ttl_ms / 1000);
  if (ttl <= 0 || ttl > 365LL * 86400) {
    fprintf(stderr, "storm token: invalid --ttl: seconds in 1..31536000\n");
    return 2;
  }
  if ((code = cmd_jwt_keys(&cfg, &keys)) != 0) return code;
  admin_t a;
  if (admin_open(&a, &cfg, &keys)) {
    admin_close(&a);
    return 1;
  }
  json_t *r = admin_request(&a, "users.get", json_pack("{s:s}", "username", user));
  json_t *u = json_object_get(r, "user");
  if (!u) {
    code = print_error(r, a.status);
    admin_close(&a);
    return code;
  }
  jwt_claims_t c = {0};
  snprintf(c.sub, sizeof c.sub, "%lld", (long long)json_integer_value(json_object_get(u, "id")));
  snprintf(c.name, sizeof c.name, "%s", json_string_value(json_object_get(u, "username")));
  unsigned char jti[16];
  randombytes_buf(jti, sizeof jti);
  b64url_encode(jti, sizeof jti, c.jti, sizeof c.jti);
  c.iat = (int64_t)time(NULL);
  c.exp = c.iat + ttl;
  char tok[JWT_MAX_TOKEN];
  int n = jwt_sign(&keys, &c, tok, sizeof tok);
  admin_close(&a);
  if (n < 0) {
    fprintf(stderr, "storm token: signing failed\n");
    return 1;
  }
  printf("%s\n", tok);
  return 0;
}

int cmd_user(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[0], "create") != 0) {
    fprintf(stderr, "usage: storm user create NAME [--display-name X] [options] < password\n");
    return 2;
  }
  const char *name = argv[1];
  argc -= 2;
  argv += 2;
  const char *display = take_flag(&argc, argv, "--display-name");
  storm_config_t cfg;
  jwt_keys_t keys;
  int code;
  if (cmd_config(&cfg, argc, argv, &code)) return code;
  if ((code = cmd_jwt_keys(&cfg, &keys)) != 0) return code;
  char pw[300];
  if (!fgets(pw, sizeof pw, stdin)) {
    fprintf(stderr, "storm user create: give the password on standard input\n");
    return 2;
  }
  pw[strcspn(pw, "\r\n")] = '\0';
  admin_t a;
  if (admin_open(&a, &cfg, &keys)) {
    admin_close(&a);
    return 1;
  }
  json_t *req = json_pack("{s:s, s:s}", "username", name, "password", pw);
  sodium_memzero(pw, sizeof pw);
  if (display) json_object_set_new(req, "display_name", json_string(display));
  json_t *r = admin_request(&a, "users.register", req);
  json_t *u = json_object_get(r, "user");
  if (!u) {
    code = print_error(r, a.status);
    admin_close(&a);
    return code;
  }
  char *s = json_dumps(u, JSON_COMPACT);
  printf("%s\n", s);
  free(s);
  admin_close(&a);
  return 0;
}
