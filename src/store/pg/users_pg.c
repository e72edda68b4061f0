/* users_pg.c — users store on PostgreSQL. Contract in users_pg.h and
 * store/users_store.h.
 *
 * Every operation: check the arguments, take a pooled connection, run
 * prepared statements with parameters, read the binary result, give the
 * connection back (pg_db_release rolls back whatever a failure left
 * open). */
#include "store/pg/users_pg.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"

#define USER_COLS "id, username, display_name, password_hash, created_at"
#define RT_COLS "token_hash, family, user_id, created_at, expires_at, used, revoked"

static const pg_stmt_t st_user_insert = {
    "users_insert",
    "INSERT INTO users(username, display_name, password_hash, created_at) "
    "VALUES ($1::text, $2::text, $3::text, $4::int8) RETURNING id"};
static const pg_stmt_t st_user_by_name = {"users_by_name",
                                          "SELECT " USER_COLS " FROM users WHERE username = $1::text"};
static const pg_stmt_t st_user_by_id = {"users_by_id",
                                        "SELECT " USER_COLS " FROM users WHERE id = $1::int8"};
static const pg_stmt_t st_user_set_hash = {
    "users_set_hash", "UPDATE users SET password_hash = $1::text WHERE id = $2::int8"};
static const pg_stmt_t st_rt_insert = {
    "users_rt_insert",
    "INSERT INTO refresh_tokens(" RT_COLS ") "
    "VALUES ($1::bytea, $2::bytea, $3::int8, $4::int8, $5::int8, $6::bool, $7::bool)"};
static const pg_stmt_t st_rt_get = {"users_rt_get",
                                    "SELECT " RT_COLS " FROM refresh_tokens WHERE token_hash = $1::bytea"};
/* rotate: the row lock makes concurrent rotations of one token (from any
 * process) take turns; the loser then reads used = true. */
static const pg_stmt_t st_rt_lock = {
    "users_rt_lock",
    "SELECT " RT_COLS " FROM refresh_tokens WHERE token_hash = $1::bytea FOR UPDATE"};
static const pg_stmt_t st_rt_mark_used = {
    "users_rt_mark_used", "UPDATE refresh_tokens SET used = true WHERE token_hash = $1::bytea"};
static const pg_stmt_t st_rt_revoke = {
    "users_rt_revoke", "UPDATE refresh_tokens SET revoked = true WHERE token_hash = $1::bytea"};
static const pg_stmt_t st_rt_revoke_family = {
    "users_rt_revoke_family", "UPDATE refresh_tokens SET revoked = true WHERE family = $1::bytea"};
static const pg_stmt_t st_rt_purge = {"users_rt_purge",
                                      "DELETE FROM refresh_tokens WHERE expires_at <= $1::int8"};

typedef struct {
  users_store_t base; /* first: the users_store_t * handed out is this */
  pg_db_t *db;
  atomic_bool healthy;
} users_pg_t;

static users_pg_t *self(users_store_t *s) { return (users_pg_t *)s; }

/* The database answered (even "no such row" or a constraint): healthy. */
static int ok(users_pg_t *u, int r) {
  atomic_store(&u->healthy, true);
  return r;
}

/* Maps a pg_exec result: constraints are answers, -EIO marks unhealthy. */
static int answer(users_pg_t *u, int e) {
  if (e == -EIO || e == -ENOMEM) {
    atomic_store(&u->healthy, false);
    return e;
  }
  return ok(u, e);
}

static pg_conn_t *take(users_pg_t *u) {
  pg_conn_t *c = pg_db_acquire(u->db);
  if (!c) atomic_store(&u->healthy, false);
  return c;
}

static bool fits(const char *s, size_t max) {
  if (!s) return false;
  size_t n = strnlen(s, max + 1);
  return n <= max && utf8_valid((const uint8_t *)s, n);
}

/* Copies a text column of at most max bytes into dst[max + 1]. */
static int col_text(const PGresult *r, int col, char *dst, size_t max) {
  if (PQgetisnull(r, 0, col)) return -1;
  size_t n = (size_t)PQgetlength(r, 0, col);
  if (n > max) return -1;
  memcpy(dst, PQgetvalue(r, 0, col), n);
  dst[n] = '\0';
  return 0;
}

static int col_blob(const PGresult *r, int col, uint8_t *dst, size_t len) {
  if (PQgetisnull(r, 0, col) || (size_t)PQgetlength(r, 0, col) != len) return -1;
  memcpy(dst, PQgetvalue(r, 0, col), len);
  return 0;
}

static int read_user(users_pg_t *u, const PGresult *r, user_rec_t *out) {
  user_rec_t rec;
  memset(&rec, 0, sizeof rec);
  if (pg_get_i64(r, 0, 0, &rec.id) < 0 || col_text(r, 1, rec.username, USER_NAME_MAX) < 0 ||
      col_text(r, 2, rec.display_name, USER_DISPLAY_MAX) < 0 ||
      col_text(r, 3, rec.password_hash, USER_HASH_MAX - 1) < 0 ||
      pg_get_i64(r, 0, 4, &rec.created_at) < 0) {
    log_error("store", "users: row %lld exceeds the field limits", (long long)rec.id);
    atomic_store(&u->healthy, false);
    return -EIO;
  }
  if (out) *out = rec;
  return 0;
}

static int read_refresh(users_pg_t *u, const PGresult *r, refresh_rec_t *out) {
  refresh_rec_t rec;
  memset(&rec, 0, sizeof rec);
  if (col_blob(r, 0, rec.token_hash, sizeof rec.token_hash) < 0 ||
      col_blob(r, 1, rec.family, sizeof rec.family) < 0 || pg_get_i64(r, 0, 2, &rec.user_id) < 0 ||
      pg_get_i64(r, 0, 3, &rec.created_at) < 0 || pg_get_i64(r, 0, 4, &rec.expires_at) < 0 ||
      pg_get_bool(r, 0, 5, &rec.used) < 0 || pg_get_bool(r, 0, 6, &rec.revoked) < 0) {
    log_error("store", "users: refresh token row with malformed hash or family");
    atomic_store(&u->healthy, false);
    return -EIO;
  }
  if (out) *out = rec;
  return 0;
}

/* Runs a single-row SELECT and reads it: 0, -ENOENT, -EIO. */
typedef int (*reader_fn)(users_pg_t *u, const PGresult *r, void *out);

static int select_one(users_pg_t *u, pg_conn_t *c, const pg_stmt_t *st, const pg_params_t *p,
                      const char *op, reader_fn read, void *out) {
  PGresult *r;
  int e = pg_exec(c, st, p, &r, op);
  if (e < 0) return answer(u, -EIO);
  if (PQntuples(r) == 0) e = ok(u, -ENOENT);
  else e = read(u, r, out) == 0 ? ok(u, 0) : -EIO;
  PQclear(r);
  return e;
}

static int read_user_row(users_pg_t *u, const PGresult *r, void *out) { return read_user(u, r, out); }

static int read_refresh_row(users_pg_t *u, const PGresult *r, void *out) {
  return read_refresh(u, r, out);
}

/* Runs an UPDATE/DELETE: the changed row count or -EIO. */
static int change(users_pg_t *u, pg_conn_t *c, const pg_stmt_t *st, const pg_params_t *p,
                  const char *op) {
  PGresult *r;
  int e = pg_exec(c, st, p, &r, op);
  if (e < 0) return answer(u, -EIO);
  int64_t n = pg_affected(r);
  PQclear(r);
  return ok(u, (int)n);
}

/* ---- users ---- */

static int user_create(users_store_t *s, const char *username, const char *display_name,
                       const char *password_hash, int64_t now_ms, user_rec_t *out) {
  users_pg_t *u = self(s);
  if (!fits(username, USER_NAME_MAX) || !fits(display_name, USER_DISPLAY_MAX) ||
      !fits(password_hash, USER_HASH_MAX - 1))
    return -EINVAL;
  pg_conn_t *c = take(u);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_cstr(&p, username);
  pg_p_cstr(&p, display_name);
  pg_p_cstr(&p, password_hash);
  pg_p_i64(&p, now_ms);
  PGresult *r;
  int e = pg_exec(c, &st_user_insert, &p, &r, "users user_create");
  int64_t id = 0;
  if (e == 0 && (PQntuples(r) != 1 || pg_get_i64(r, 0, 0, &id) < 0)) {
    log_error("store", "users user_create: no id returned");
    e = -EIO;
  }
  PQclear(r);
  pg_db_release(u->db, c);
  e = answer(u, e);
  if (e == 0 && out) {
    memset(out, 0, sizeof *out);
    out->id = id;
    strcpy(out->username, username); /* lengths checked by fits() */
    strcpy(out->display_name, display_name);
    strcpy(out->password_hash, password_hash);
    out->created_at = now_ms;
  }
  return e;
}

static int user_by_name(users_store_t *s, const char *username, user_rec_t *out) {
  users_pg_t *u = self(s);
  if (!username) return -EINVAL;
  if (!fits(username, USER_NAME_MAX)) return -ENOENT; /* could not have been stored */
  pg_conn_t *c = take(u);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_cstr(&p, username);
  int e = select_one(u, c, &st_user_by_name, &p, "users user_by_name", read_user_row, out);
  pg_db_release(u->db, c);
  return e;
}

static int user_by_id(users_store_t *s, int64_t id, user_rec_t *out) {
  users_pg_t *u = self(s);
  pg_conn_t *c = take(u);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, id);
  int e = select_one(u, c, &st_user_by_id, &p, "users user_by_id", read_user_row, out);
  pg_db_release(u->db, c);
  return e;
}

static int user_set_password_hash(users_store_t *s, int64_t id, const char *password_hash) {
  users_pg_t *u = self(s);
  if (!fits(password_hash, USER_HASH_MAX - 1)) return -EINVAL;
  pg_conn_t *c = take(u);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_cstr(&p, password_hash);
  pg_p_i64(&p, id);
  int n = change(u, c, &st_user_set_hash, &p, "users user_set_password_hash");
  pg_db_release(u->db, c);
  return n < 0 ? n : n == 0 ? -ENOENT : 0;
}

/* ---- refresh tokens ---- */

static void rt_params(pg_params_t *p, const refresh_rec_t *r) {
  pg_p_bytes(p, r->token_hash, sizeof r->token_hash);
  pg_p_bytes(p, r->family, sizeof r->family);
  pg_p_i64(p, r->user_id);
  pg_p_i64(p, r->created_at);
  pg_p_i64(p, r->expires_at);
  pg_p_bool(p, r->used);
  pg_p_bool(p, r->revoked);
}

static int insert_refresh(users_pg_t *u, pg_conn_t *c, const refresh_rec_t *r, const char *op) {
  pg_params_t p = {0};
  rt_params(&p, r);
  return answer(u, pg_exec(c, &st_rt_insert, &p, NULL, op));
}

static int refresh_insert(users_store_t *s, const refresh_rec_t *r) {
  users_pg_t *u = self(s);
  if (!r) return -EINVAL;
  pg_conn_t *c = take(u);
  if (!c) return -EIO;
  int e = insert_refresh(u, c, r, "users refresh_insert");
  pg_db_release(u->db, c);
  return e;
}

static int refresh_get(users_store_t *s, const uint8_t token_hash[32], refresh_rec_t *out) {
  users_pg_t *u = self(s);
  if (!token_hash) return -EINVAL;
  pg_conn_t *c = take(u);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_bytes(&p, token_hash, 32);
  int e = select_one(u, c, &st_rt_get, &p, "users refresh_get", read_refresh_row, out);
  pg_db_release(u->db, c);
  return e;
}

static int refresh_rotate(users_store_t *s, const uint8_t old_hash[32], const refresh_rec_t *next) {
  users_pg_t *u = self(s);
  if (!old_hash || !next) return -EINVAL;
  pg_conn_t *c = take(u);
  if (!c) return -EIO;
  int r = answer(u, pg_cmd(c, "BEGIN", "users refresh_rotate begin"));
  refresh_rec_t old;
  if (r == 0) {
    pg_params_t p = {0};
    pg_p_bytes(&p, old_hash, 32);
    r = select_one(u, c, &st_rt_lock, &p, "users refresh_rotate", read_refresh_row, &old);
  }
  if (r == 0) {
    /* Revoked first: as in the SQLite store (a used-and-revoked token's
     * family was already shut down). */
    if (old.revoked)
      r = -EACCES;
    else if (old.used)
      r = -EALREADY;
    else if (memcmp(next->family, old.family, sizeof old.family) != 0 ||
             next->user_id != old.user_id)
      r = -EINVAL;
  }
  if (r == 0) {
    pg_params_t p = {0};
    pg_p_bytes(&p, old_hash, 32);
    int n = change(u, c, &st_rt_mark_used, &p, "users refresh_rotate mark");
    if (n < 0) r = n;
  }
  if (r == 0) r = insert_refresh(u, c, next, "users refresh_rotate insert");
  if (r == 0) r = answer(u, pg_cmd(c, "COMMIT", "users refresh_rotate commit"));
  /* Any error: the release rolls the transaction back, old stays unused. */
  pg_db_release(u->db, c);
  return r;
}

static int revoke_where(users_store_t *s, const pg_stmt_t *st, const void *key, size_t len,
                        const char *op) {
  users_pg_t *u = self(s);
  if (!key) return -EINVAL;
  pg_conn_t *c = take(u);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_bytes(&p, key, len);
  int n = change(u, c, st, &p, op);
  pg_db_release(u->db, c);
  return n < 0 ? n : n == 0 ? -ENOENT : 0;
}

static int refresh_revoke(users_store_t *s, const uint8_t token_hash[32]) {
  return revoke_where(s, &st_rt_revoke, token_hash, 32, "users refresh_revoke");
}

static int refresh_revoke_family(users_store_t *s, const uint8_t family[16]) {
  return revoke_where(s, &st_rt_revoke_family, family, 16, "users refresh_revoke_family");
}

static int refresh_purge_expired(users_store_t *s, int64_t now_ms) {
  users_pg_t *u = self(s);
  pg_conn_t *c = take(u);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, now_ms);
  int n = change(u, c, &st_rt_purge, &p, "users refresh_purge_expired");
  pg_db_release(u->db, c);
  return n;
}

static bool healthy(users_store_t *s) { return atomic_load(&self(s)->healthy); }

static void users_close(users_store_t *s) { free(s); }

static const users_store_ops_t users_pg_ops = {
    .user_create = user_create,
    .user_by_name = user_by_name,
    .user_by_id = user_by_id,
    .user_set_password_hash = user_set_password_hash,
    .refresh_insert = refresh_insert,
    .refresh_get = refresh_get,
    .refresh_rotate = refresh_rotate,
    .refresh_revoke = refresh_revoke,
    .refresh_revoke_family = refresh_revoke_family,
    .refresh_purge_expired = refresh_purge_expired,
    .healthy = healthy,
    .close = users_close,
};

int users_pg_open(pg_db_t *db, const users_pg_opts_t *opts, users_store_t **out) {
  if (!db || !out) return -EINVAL;
  char err[256];
  int r = pg_db_require_schema(db, USERS_PG_SCHEMA_MIN, opts && opts->migrate_on_open, err,
                               sizeof err);
  if (r < 0) {
    log_error("store", "users: %s", err);
    return r;
  }
  users_pg_t *u = calloc(1, sizeof *u);
  if (!u) return -ENOMEM;
  u->base.ops = &users_pg_ops;
  u->db = db;
  atomic_init(&u->healthy, true);
  *out = &u->base;
  return 0;
}
