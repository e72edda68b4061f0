#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "auth/dev_secret.h"
#include "cmd/cmd.h"
#include "core/log.h"

int cmd_config(storm_config_t *cfg, int argc, char **argv, int *exit_code) {
  char err[512];
  int rc = config_load(cfg, argc, argv, NULL, err, sizeof err);
  if (rc == 1) {
    *exit_code = 0;
    return 1;
  }
  if (rc < 0) {
    fprintf(stderr, "storm: %s\n", err);
    *exit_code = 2;
    return 1;
  }
  log_set_level(cfg->log_level);
  if (sodium_init() < 0) {
    fprintf(stderr, "storm: libsodium failed to initialise\n");
    *exit_code = 1;
    return 1;
  }
  return 0;
}

int cmd_jwt_keys(const storm_config_t *cfg, jwt_keys_t *keys) {
  char dev[80];
  const char *secret = cfg->jwt_secret;
  if (!secret[0]) {
    if (!cfg->dev) {
      fprintf(stderr,
              "storm: invalid --jwt-secret / STORM_JWT_SECRET: required (at least %d bytes) "
              "unless --dev is given\n",
              JWT_MIN_SECRET);
      return 2;
    }
    int rc = dev_secret_load(cfg->data_dir, dev, sizeof dev);
    if (rc < 0) {
      fprintf(stderr, "storm: --dev: cannot read or create %s/jwt_secret: %s\n", cfg->data_dir,
              strerror(-rc));
      return 2;
    }
    secret = dev;
  }
  const char *prev = cfg->jwt_secret_previous;
  if (strlen(secret) < JWT_MIN_SECRET) {
    fprintf(stderr, "storm: invalid --jwt-secret / STORM_JWT_SECRET: must be at least %d bytes\n",
            JWT_MIN_SECRET);
    return 2;
  }
  if (prev[0] && strlen(prev) < JWT_MIN_SECRET) {
    fprintf(stderr,
            "storm: invalid --jwt-secret-previous / STORM_JWT_SECRET_PREVIOUS: must be at least "
            "%d bytes\n",
            JWT_MIN_SECRET);
    return 2;
  }
  if (jwt_keys_init(keys, secret, strlen(secret), prev, strlen(prev), cfg->jwt_issuer) < 0) {
    fprintf(stderr, "storm: invalid --jwt-secret / STORM_JWT_SECRET\n");
    return 2;
  }
  sodium_memzero(dev, sizeof dev);
  return 0;
}
