/*
 * pg_fixture.h — what the PostgreSQL unit tests share: the server named
 * by STORM_TEST_PG (a libpq URL; scripts/infra.sh starts one), an admin
 * connection to it, and a schema of its own for every test, selected
 * through the URL's search_path and dropped afterwards, so tests never
 * see each other's rows.
 *
 * Include it in one test file (it defines static functions and the
 * globals g_base, g_admin, g_seq). main calls pg_fixture_start first and
 * returns its non-zero result (STORM_TEST_PG unset or unreachable: the
 * binary FAILS with a message, it never skips), then pg_fixture_stop
 * after the tests. Helpers fail the running test (cmocka) on any error.
 */
#ifndef STORM_TEST_PG_FIXTURE_H
#define STORM_TEST_PG_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

static const char *g_base; /* STORM_TEST_PG */
static PGconn *g_admin;    /* on g_base: creates and drops schemas and databases */
static int g_seq;          /* numbers schemas and databases within this process */
static const char *g_schema_prefix;

static void admin_exec(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType s = PQresultStatus(r);
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
    fail_msg("admin: %s: %s", sql, PQerrorMessage(c));
  PQclear(r);
}

/* The first column of the first row of sql, as an integer. */
__attribute__((unused)) static int64_t admin_int(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
    fail_msg("admin: %s: %s", sql, PQerrorMessage(c));
  int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return v;
}

/* base with its database replaced by db (NULL: kept) and search_path and
 * application_name set. */
static void make_url(char *out, size_t len, const char *db, const char *schema, const char *app) {
  char base[512];
  snprintf(base, sizeof base, "%s", g_base);
  char *q = strchr(base, '?');
  char query[256] = "";
  if (q) {
    snprintf(query, sizeof query, "%s&", q + 1);
    *q = '\0';
  }
  if (db) {
    char *scheme = strstr(base, "://");
    char *slash = strchr(scheme ? scheme + 3 : base, '/');
    if (slash) *slash = '\0';
    snprintf(out, len, "%s/%s?%soptions=-csearch_path%%3D%s&application_name=%s", base, db, query,
             schema, app);
  } else {
    snprintf(out, len, "%s?%soptions=-csearch_path%%3D%s&application_name=%s", base, query, schema,
             app);
  }
}

/* A fresh schema on the shared database (<prefix>_<pid>_<n>): its name in
 * name, the URL selecting it (application_name: the schema) in url. */
static void new_schema(char *name, size_t nlen, char *url, size_t ulen) {
  snprintf(name, nlen, "%s_%d_%d", g_schema_prefix, (int)getpid(), ++g_seq);
  char sql[160];
  snprintf(sql, sizeof sql, "CREATE SCHEMA %s", name);
  admin_exec(g_admin, sql);
  make_url(url, ulen, NULL, name, name);
}

static void drop_schema(const char *name) {
  char sql[160];
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", name);
  admin_exec(g_admin, sql);
}

/* A connection of the test itself to the schema in url (to look behind
 * the store's back). */
static PGconn *peek(const char *url) {
  PGconn *c = PQconnectdb(url);
  if (PQstatus(c) != CONNECTION_OK) fail_msg("peek: %s", PQerrorMessage(c));
  return c;
}

/* DROP ... CASCADE notices would clutter the output. */
static void pg_fixture_quiet(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

/* Connects g_admin to STORM_TEST_PG; schemas will be named after
 * schema_prefix. 0, or 1 after a message naming prog on stderr. */
static int pg_fixture_start(const char *prog, const char *schema_prefix) {
  g_schema_prefix = schema_prefix;
  g_base = getenv("STORM_TEST_PG");
  if (!g_base || !*g_base) {
    fprintf(stderr, "%s: STORM_TEST_PG is not set: it must name a PostgreSQL "
                    "database (scripts/infra.sh start DIR writes it to DIR/env)\n", prog);
    return 1;
  }
  g_admin = PQconnectdb(g_base);
  if (PQstatus(g_admin) != CONNECTION_OK) {
    fprintf(stderr, "%s: cannot connect to STORM_TEST_PG: %s", prog, PQerrorMessage(g_admin));
    PQfinish(g_admin);
    return 1;
  }
  PQsetNoticeProcessor(g_admin, pg_fixture_quiet, NULL);
  return 0;
}

static void pg_fixture_stop(void) { PQfinish(g_admin); }

#endif
