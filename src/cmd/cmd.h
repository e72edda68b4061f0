/* cmd.h — the subcommands of the storm program (src/cmd only). Each returns the process exit code. */
#ifndef STORM_CMD_CMD_H
#define STORM_CMD_CMD_H

#include "auth/jwt.h"
#include "core/config.h"

#define STORM_VERSION "0.1.0"

int cmd_serve(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_user(int argc, char **argv);
/* storm migrate [--db URL]: PostgreSQL migrations (migrate.c). */
int cmd_migrate(int argc, char **argv);

/* Loads config from argv (after the subcommand) and the environment;
 * prints errors. Returns 0, or the exit code to leave with (0 after --help). */
int cmd_config(storm_config_t *cfg, int argc, char **argv, int *exit_code);
/* Builds the JWT key set from the config (dev secret file under --dev).
 * Prints a message naming the setting and returns 2 on error, else 0. */
int cmd_jwt_keys(const storm_config_t *cfg, jwt_keys_t *keys);

#endif
