/*
 * migrate.c — `storm migrate --db URL`: brings a PostgreSQL database's
 * schema up to date (store/pg/pg_db.h) and prints its version.
 *
 * The URL comes from --db or, failing that, DATABASE_URL. Safe to run from
 * several replicas at once (the runner serializes on an advisory lock) and
 * again and again (nothing pending: nothing done). The embedded SQLite
 * database needs no command: `storm serve` migrates it at open.
 *
 * Exit codes: 0 up to date, 1 the database failed (unreachable, a failing
 * migration, a schema newer than this binary), 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "store/pg/pg_db.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: storm migrate [--db URL]\n\n"
          "Applies pending PostgreSQL migrations and prints the schema version.\n"
          "  --db URL   postgres://user@host:port/dbname (default: $DATABASE_URL)\n");
}

int cmd_migrate(int argc, char **argv) {
  const char *url = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
      url = argv[++i];
    } else if (strncmp(argv[i], "--db=", 5) == 0) {
      url = argv[i] + 5;
    } else {
      fprintf(stderr, "storm migrate: unknown or incomplete option '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (!url || !*url) url = getenv("DATABASE_URL");
  if (!url || !*url) {
    fprintf(stderr, "storm migrate: no database: give --db URL or set DATABASE_URL\n");
    return 2;
  }
  pg_db_t *db = NULL;
  char err[512];
  if (pg_db_open(url, 1, &db, err, sizeof err) < 0) {
    fprintf(stderr, "storm migrate: cannot connect: %s\n", err);
    return 1;
  }
  int applied = pg_db_migrate(db, err, sizeof err);
  int version = applied >= 0 ? pg_db_schema_version(db) : -1;
  pg_db_close(db);
  if (applied < 0) {
    fprintf(stderr, "storm migrate: %s\n", err);
    return 1;
  }
  if (version < 0) {
    fprintf(stderr, "storm migrate: cannot read the schema version\n");
    return 1;
  }
  printf("schema version %d (%d migration%s applied)\n", version, applied, applied == 1 ? "" : "s");
  return 0;
}
