/*
 * main.c — the `storm` program: dispatch to a subcommand.
 *
 * Exit codes: 0 success, 1 runtime failure (cannot bind, store error, ...),
 * 2 invalid configuration or usage.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: storm <command> [options]\n\n"
          "commands:\n"
          "  serve                      run STORM (embedded by default: every service in one process)\n"
          "  token --user NAME [--ttl S] print an access token for NAME (operators, load tests)\n"
          "  user create NAME           create a user; the password is read from stdin\n"
          "  version                    print the version\n\n"
          "`storm serve --help` lists every option with its environment variable and default;\n"
          "token and user accept the same options (--data, --jwt-secret, --dev, ...).\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 2, argv + 2);
  if (strcmp(cmd, "token") == 0) return cmd_token(argc - 2, argv + 2);
  if (strcmp(cmd, "user") == 0) return cmd_user(argc - 2, argv + 2);
  if (strcmp(cmd, "migrate") == 0) return cmd_migrate(argc - 2, argv + 2);
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("storm %s\n", STORM_VERSION);
    return 0;
  }
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "storm: unknown command '%s'\n", cmd);
  usage(stderr);
  return 2;
}
