/* pg_db.c — the PostgreSQL connection pool, statement execution and
 * failure handling. Contract in pg_db.h; migrations in pg_migrate.c. */
#include "store/pg/pg_db.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

struct pg_conn {
  pg_db_t *db;
  PGconn *pc;              /* NULL until the first successful connect */
  const pg_stmt_t **prep;  /* statements prepared on this session */
  size_t nprep, capprep;
  bool broken;             /* lost: reset before the next use */
  pg_conn_t *next;         /* idle list */
  char sqlstate[6];
};

struct pg_db {
  char *url;
  unsigned pool_size;
  pthread_mutex_t mu; /* idle, total, all */
  pthread_cond_t cv;
  pg_conn_t *idle;
  unsigned total;
  pg_conn_t **all;
  atomic_bool ready;
  atomic_int_fast64_t retry_at; /* monotonic ms before which no reconnect is tried */
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* libpq's messages end in a newline; log lines must not. */
static void chomp(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == ' ')) s[--n] = '\0';
}

/* ---- parameters ---- */

static void p_put(pg_params_t *p, const char *v, int len, int fmt) {
  if (p->n >= PG_PARAMS_MAX) abort(); /* a programming error: the SQL has fewer parameters */
  p->v[p->n] = v;
  p->len[p->n] = len;
  p->fmt[p->n] = fmt;
  p->n++;
}

void pg_p_i64(pg_params_t *p, int64_t v) {
  if (p->n >= PG_PARAMS_MAX) abort();
  char *b = p->ibuf[p->n];
  snprintf(b, sizeof p->ibuf[0], "%lld", (long long)v);
  p_put(p, b, 0, 0);
}

void pg_p_bool(pg_params_t *p, bool v) { p_put(p, v ? "t" : "f", 0, 0); }

void pg_p_text(pg_params_t *p, const char *s, size_t n) {
  /* binary format of text is its bytes: no NUL terminator needed */
  p_put(p, n ? s : "", (int)n, 1);
}

void pg_p_cstr(pg_params_t *p, const char *s) {
  if (s) pg_p_text(p, s, strlen(s));
  else pg_p_null(p);
}

void pg_p_bytes(pg_params_t *p, const void *b, size_t n) { p_put(p, n ? b : "", (int)n, 1); }

void pg_p_null(pg_params_t *p) { p_put(p, NULL, 0, 0); }

void pg_p_textfmt(pg_params_t *p, const char *s) { p_put(p, s, 0, 0); }

/* ---- results ---- */

static uint64_t be(const unsigned char *b, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | b[i];
  return v;
}

int pg_get_i64(const PGresult *r, int row, int col, int64_t *out) {
  if (PQgetisnull(r, row, col)) return -1;
  const unsigned char *b = (const unsigned char *)PQgetvalue(r, row, col);
  int n = PQgetlength(r, row, col);
  if (n == 8) *out = (int64_t)be(b, 8);
  else if (n == 4) *out = (int32_t)(uint32_t)be(b, 4);
  else if (n == 2) *out = (int16_t)(uint16_t)be(b, 2);
  else return -1;
  return 0;
}

int pg_get_bool(const PGresult *r, int row, int col, bool *out) {
  if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 1) return -1;
  *out = PQgetvalue(r, row, col)[0] != 0;
  return 0;
}

bool pg_is_null(const PGresult *r, int row, int col) { return PQgetisnull(r, row, col) != 0; }

int64_t pg_affected(const PGresult *r) {
  const char *t = PQcmdTuples((PGresult *)r);
  return t && *t ? strtoll(t, NULL, 10) : 0;
}

/* ---- reachability ---- */

static void mark_down(pg_db_t *db, const char *why) {
  atomic_store(&db->retry_at, mono_ms() + PG_DB_RETRY_MS);
  if (atomic_exchange(&db->ready, false)) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", why && *why ? why : "connection lost");
    chomp(msg);
    log_error("store", "postgres: the database is unreachable: %s", msg);
  }
}

static void mark_up(pg_db_t *db) {
  if (!atomic_exchange(&db->ready, true)) log_info("store", "postgres: the database is reachable again");
}

bool pg_db_ready(pg_db_t *db) { return atomic_load(&db->ready); }

/* Notices (e.g. "already exists, skipping") would go to stderr by
 * default. A killed backend's goodbye (FATAL, sent to a connection with no
 * query running) arrives here too, parsed as a notice: it means the
 * session is gone even if libpq has not met the EOF yet (the backend may
 * still be exiting), so the connection is marked for reset. */
static void on_notice(void *arg, const PGresult *r) {
  pg_conn_t *c = arg;
  const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)) c->broken = true;
  char msg[512];
  snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
  chomp(msg);
  log_debug("store", "postgres notice: %s", msg);
}

static void attach(pg_conn_t *c) { PQsetNoticeReceiver(c->pc, on_notice, c); }

/* Connects and applies the session settings of pg_db.h. NULL on failure,
 * with the reason in err. */
static PGconn *connect_raw(const char *url, char *err, size_t errlen) {
  /* Defaults first, then the URL (expanded in place: its parameters
   * override the defaults), then what we insist on. */
  const char *const keys[] = {"connect_timeout", "application_name", "dbname",
                              "client_encoding", NULL};
  const char *const vals[] = {"5", "storm", url, "UTF8", NULL};
  PGconn *pc = PQconnectdbParams(keys, vals, 1);
  if (!pc) {
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  if (PQstatus(pc) != CONNECTION_OK) {
    set_err(err, errlen, "%s", PQerrorMessage(pc));
    if (err) chomp(err);
    PQfinish(pc);
    return NULL;
  }
  const char *enc = PQparameterStatus(pc, "server_encoding");
  if (!enc || strcmp(enc, "UTF8") != 0) {
    set_err(err, errlen, "the database encoding is %s, not UTF8", enc ? enc : "unknown");
    PQfinish(pc);
    return NULL;
  }
  PGresult *r = PQexec(pc, "SET synchronous_commit = on; SET TimeZone = 'UTC'");
  bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) {
    set_err(err, errlen, "session settings: %s", PQerrorMessage(pc));
    if (err) chomp(err);
  }
  PQclear(r);
  if (!ok) {
    PQfinish(pc);
    return NULL;
  }
  return pc;
}

static pg_conn_t *conn_alloc(pg_db_t *db) {
  pg_conn_t *c = calloc(1, sizeof *c);
  if (c) c->db = db;
  return c;
}

int pg_conn_ensure(pg_conn_t *c) {
  pg_db_t *db = c->db;
  /* Reads what arrived while idle, before we send anything: a killed
   * backend's goodbye (on_notice marks the connection once PQisBusy has
   * parsed it) or the EOF of its socket. The socket is non-blocking inside
   * libpq: neither call waits. */
  if (c->pc && !c->broken && PQtransactionStatus(c->pc) == PQTRANS_IDLE) {
    if (!PQconsumeInput(c->pc) || PQstatus(c->pc) != CONNECTION_OK) c->broken = true;
    else (void)PQisBusy(c->pc);
  }
  if (c->pc && !c->broken && PQstatus(c->pc) == CONNECTION_OK) return 0;
  if (mono_ms() < atomic_load(&db->retry_at)) return -EIO; /* fail fast while down */
  if (c->pc) PQfinish(c->pc);
  c->pc = NULL;
  c->nprep = 0; /* a new session has no prepared statements */
  char err[512];
  c->pc = connect_raw(db->url, err, sizeof err);
  if (!c->pc) {
    mark_down(db, err);
    return -EIO;
  }
  c->broken = false;
  attach(c);
  mark_up(db);
  return 0;
}

PGconn *pg_conn_raw(pg_conn_t *c) { return c->pc; }

const char *pg_conn_sqlstate(const pg_conn_t *c) { return c->sqlstate; }

/* ---- execution ---- */

static bool is_prepared(const pg_conn_t *c, const pg_stmt_t *st) {
  for (size_t i = 0; i < c->nprep; i++)
    if (c->prep[i] == st) return true;
  return false;
}

static int add_prepared(pg_conn_t *c, const pg_stmt_t *st) {
  if (c->nprep == c->capprep) {
    size_t cap = c->capprep ? c->capprep * 2 : 32;
    const pg_stmt_t **p = realloc(c->prep, cap * sizeof *p);
    if (!p) return -ENOMEM;
    c->prep = p;
    c->capprep = cap;
  }
  c->prep[c->nprep++] = st;
  return 0;
}

/* Whether a failure means the session is gone: no result at all, a
 * connection exception (class 08), the server shutting down or killing us
 * (57P01..57P03), or libpq already knowing the socket is dead. */
static bool conn_lost(pg_conn_t *c, const char *state) {
  if (!c->pc || PQstatus(c->pc) != CONNECTION_OK) return true;
  if (!state || !*state) return true;
  return strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0;
}

/* Maps a failed result (r may be NULL). */
static int failed(pg_conn_t *c, PGresult *r, const char *op) {
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  snprintf(c->sqlstate, sizeof c->sqlstate, "%s", state ? state : "");
  if (state && strcmp(state, "23505") == 0) return -EEXIST;
  if (state && strcmp(state, "23503") == 0) return -ENOENT;
  char msg[512];
  snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c->pc));
  if (!*msg && c->pc) snprintf(msg, sizeof msg, "%s", PQerrorMessage(c->pc));
  chomp(msg);
  if (conn_lost(c, state)) {
    c->broken = true;
    log_debug("store", "postgres %s: connection lost: %s", op, msg);
    mark_down(c->db, msg);
    return -EIO;
  }
  log_error("store", "postgres %s: %s (sqlstate %s)", op, msg, state ? state : "?");
  return -EIO;
}

int pg_exec(pg_conn_t *c, const pg_stmt_t *st, const pg_params_t *p, PGresult **res,
            const char *op) {
  if (res) *res = NULL;
  c->sqlstate[0] = '\0';
  if (!c->pc || c->broken) return -EIO;
  for (int attempt = 0;; attempt++) {
    if (!is_prepared(c, st)) {
      PGresult *pr = PQprepare(c->pc, st->name, st->sql, 0, NULL);
      ExecStatusType ps = pr ? PQresultStatus(pr) : PGRES_FATAL_ERROR;
      const char *state = pr ? PQresultErrorField(pr, PG_DIAG_SQLSTATE) : NULL;
      /* 42P05: already prepared (our list was forgotten): fine */
      if (ps != PGRES_COMMAND_OK && !(state && strcmp(state, "42P05") == 0)) {
        int e = failed(c, pr, op);
        PQclear(pr);
        return e == -EEXIST || e == -ENOENT ? -EIO : e;
      }
      PQclear(pr);
      if (add_prepared(c, st) < 0) return -ENOMEM;
    }
    PGresult *r = PQexecPrepared(c->pc, st->name, p ? p->n : 0, p ? p->v : NULL,
                                 p ? p->len : NULL, p ? p->fmt : NULL, 1);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
      if (res) *res = r;
      else PQclear(r);
      /* An answer proves the database reachable, whichever connection
       * brought it. */
      if (!atomic_load(&c->db->ready)) mark_up(c->db);
      return 0;
    }
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (attempt == 0 && state && strcmp(state, "26000") == 0) {
      /* The session lost its prepared statements (DISCARD ALL by a
       * pooler): prepare again, once. */
      PQclear(r);
      c->nprep = 0;
      continue;
    }
    int e = failed(c, r, op);
    PQclear(r);
    return e;
  }
}

int pg_cmd(pg_conn_t *c, const char *sql, const char *op) {
  c->sqlstate[0] = '\0';
  if (!c->pc || c->broken) return -EIO;
  PGresult *r = PQexec(c->pc, sql);
  ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  int e = 0;
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
    e = failed(c, r, op);
    if (e != -EIO) e = -EIO;
  }
  PQclear(r);
  return e;
}

/* ---- the pool ---- */

int pg_db_open(const char *url, unsigned pool_size, pg_db_t **out, char *err, size_t errlen) {
  set_err(err, errlen, "%s", "");
  if (!url || !*url || !out || pool_size > PG_DB_POOL_MAX) {
    set_err(err, errlen, "invalid argument (url, pool size 0..%d)", PG_DB_POOL_MAX);
    return -EINVAL;
  }
  pg_db_t *db = calloc(1, sizeof *db);
  if (!db) return -ENOMEM;
  db->pool_size = pool_size ? pool_size : PG_DB_POOL_DEFAULT;
  db->url = strdup(url);
  db->all = calloc(db->pool_size, sizeof *db->all);
  pg_conn_t *c = conn_alloc(db);
  if (!db->url || !db->all || !c) {
    free(c);
    free(db->all);
    free(db->url);
    free(db);
    set_err(err, errlen, "out of memory");
    return -ENOMEM;
  }
  c->pc = connect_raw(url, err, errlen);
  if (c->pc) attach(c);
  if (!c->pc) {
    free(c);
    free(db->all);
    free(db->url);
    free(db);
    return -EIO;
  }
  pthread_mutex_init(&db->mu, NULL);
  pthread_cond_init(&db->cv, NULL);
  atomic_init(&db->ready, true);
  atomic_init(&db->retry_at, 0);
  db->all[db->total++] = c;
  db->idle = c;
  *out = db;
  return 0;
}

static void conn_destroy(pg_conn_t *c) {
  if (!c) return;
  if (c->pc) PQfinish(c->pc);
  free(c->prep);
  free(c);
}

void pg_db_close(pg_db_t *db) {
  if (!db) return;
  for (unsigned i = 0; i < db->total; i++) conn_destroy(db->all[i]);
  pthread_cond_destroy(&db->cv);
  pthread_mutex_destroy(&db->mu);
  free(db->all);
  free(db->url);
  free(db);
}

pg_conn_t *pg_db_acquire(pg_db_t *db) {
  pg_conn_t *c = NULL;
  pthread_mutex_lock(&db->mu);
  for (;;) {
    if (db->idle) {
      c = db->idle;
      db->idle = c->next;
      c->next = NULL;
      break;
    }
    if (db->total < db->pool_size) {
      c = conn_alloc(db);
      if (c) db->all[db->total++] = c;
      break;
    }
    pthread_cond_wait(&db->cv, &db->mu);
  }
  pthread_mutex_unlock(&db->mu);
  if (!c) {
    log_error("store", "postgres: out of memory for a connection");
    return NULL;
  }
  if (pg_conn_ensure(c) < 0) {
    pg_db_release(db, c);
    return NULL;
  }
  return c;
}

void pg_db_release(pg_db_t *db, pg_conn_t *c) {
  if (!c) return;
  if (c->pc && !c->broken && PQtransactionStatus(c->pc) != PQTRANS_IDLE) {
    if (pg_cmd(c, "ROLLBACK", "rollback") < 0) c->broken = true;
  }
  pthread_mutex_lock(&db->mu);
  c->next = db->idle;
  db->idle = c;
  pthread_cond_signal(&db->cv);
  pthread_mutex_unlock(&db->mu);
}

pg_conn_t *pg_db_conn_new(pg_db_t *db) {
  pg_conn_t *c = conn_alloc(db);
  if (!c) return NULL;
  char err[512];
  c->pc = connect_raw(db->url, err, sizeof err);
  if (!c->pc) {
    mark_down(db, err);
    free(c);
    return NULL;
  }
  attach(c);
  mark_up(db);
  return c;
}

void pg_conn_free(pg_conn_t *c) { conn_destroy(c); }

bool pg_db_ping(pg_db_t *db) {
  /* A ping is an explicit request to look now: skip the retry spacing. */
  atomic_store(&db->retry_at, 0);
  pg_conn_t *c = pg_db_acquire(db);
  if (!c) return false;
  int r = pg_cmd(c, "SELECT 1", "ping");
  pg_db_release(db, c);
  if (r == 0) mark_up(db);
  return pg_db_ready(db);
}
