/* users_sqlite.c — users store on SQLite. Contract in users_sqlite.h and
 * store/users_store.h.
 *
 * Every operation follows one pattern under the db lock: bind, step, read,
 * then reset and clear the bindings, so that the next caller finds the
 * statement idle and no pointer to the caller's strings survives the call
 * (which is why text is bound SQLITE_STATIC: it is only read during the
 * call). */
#include "store/sqlite/users_sqlite.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

enum {
  ST_BEGIN,
  ST_COMMIT,
  ST_ROLLBACK,
  ST_USER_INSERT,
  ST_USER_BY_NAME,
  ST_USER_BY_ID,
  ST_USER_SET_HASH,
  ST_RT_INSERT,
  ST_RT_GET,
  ST_RT_MARK_USED,
  ST_RT_REVOKE,
  ST_RT_REVOKE_FAMILY,
  ST_RT_PURGE,
  ST_COUNT
};

#define USER_COLS "id, username, display_name, password_hash, created_at"
#define RT_COLS "token_hash, family, user_id, created_at, expires_at, used, revoked"

static const char *const sql_text[ST_COUNT] = {
    /* IMMEDIATE takes the write lock at BEGIN: the row read by rotate
     * cannot change (e.g. be rotated by another process) before our
     * UPDATE, and a busy database fails at BEGIN, before any work. */
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_USER_INSERT] = "INSERT INTO users(username, display_name, password_hash, created_at) "
                       "VALUES (?, ?, ?, ?)",
    [ST_USER_BY_NAME] = "SELECT " USER_COLS " FROM users WHERE username = ?",
    [ST_USER_BY_ID] = "SELECT " USER_COLS " FROM users WHERE id = ?",
    [ST_USER_SET_HASH] = "UPDATE users SET password_hash = ? WHERE id = ?",
    [ST_RT_INSERT] = "INSERT INTO refresh_tokens(" RT_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?)",
    [ST_RT_GET] = "SELECT " RT_COLS " FROM refresh_tokens WHERE token_hash = ?",
    [ST_RT_MARK_USED] = "UPDATE refresh_tokens SET used = 1 WHERE token_hash = ?",
    [ST_RT_REVOKE] = "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = ?",
    [ST_RT_REVOKE_FAMILY] = "UPDATE refresh_tokens SET revoked = 1 WHERE family = ?",
    [ST_RT_PURGE] = "DELETE FROM refresh_tokens WHERE expires_at <= ?",
};

typedef struct {
  users_store_t base; /* first: the users_store_t * handed out is this */
  sqlite_db_t *db;
  sqlite3 *conn;
  sqlite3_stmt *st[ST_COUNT];
  atomic_bool healthy;
} users_sqlite_t;

static users_sqlite_t *self(users_store_t *s) { return (users_sqlite_t *)s; }

/* ---- helpers; all run with the db lock held ---- */

/* Logs a backend failure and marks the store unhealthy. Called before any
 * ROLLBACK so that sqlite3_errmsg still describes the failure. */
static int fail(users_sqlite_t *u, const char *op, int rc) {
  log_error("store", "users %s: %s (sqlite %d)", op, sqlite3_errmsg(u->conn), rc);
  atomic_store(&u->healthy, false);
  return -EIO;
}

/* The database answered (even "no such row"): the store works again. */
static int ok(users_sqlite_t *u, int r) {
  atomic_store(&u->healthy, true);
  return r;
}

static void idle(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no row. */
static int exec_st(users_sqlite_t *u, int which) {
  int rc = sqlite3_step(u->st[which]);
  idle(u->st[which]);
  return rc;
}

/* Maps a failed INSERT: the constraints the schema declares are answers,
 * not failures. */
static int insert_error(users_sqlite_t *u, const char *op, int rc) {
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) return ok(u, -EEXIST);
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return ok(u, -ENOENT);
  return fail(u, op, rc);
}

/* Copies a text column of at most max bytes into dst[max + 1]. A longer
 * value can only come from outside this store (writes are checked): report
 * it rather than truncate a password hash. */
static int col_text(sqlite3_stmt *st, int col, char *dst, size_t max) {
  const unsigned char *t = sqlite3_column_text(st, col);
  size_t n = (size_t)sqlite3_column_bytes(st, col);
  if (!t || n > max) return -1;
  memcpy(dst, t, n);
  dst[n] = '\0';
  return 0;
}

static int col_blob(sqlite3_stmt *st, int col, uint8_t *dst, size_t len) {
  const void *b = sqlite3_column_blob(st, col);
  if (!b || (size_t)sqlite3_column_bytes(st, col) != len) return -1;
  memcpy(dst, b, len);
  return 0;
}

static int read_user(users_sqlite_t *u, sqlite3_stmt *st, user_rec_t *out) {
  user_rec_t rec;
  memset(&rec, 0, sizeof rec);
  rec.id = sqlite3_column_int64(st, 0);
  if (col_text(st, 1, rec.username, USER_NAME_MAX) < 0 ||
      col_text(st, 2, rec.display_name, USER_DISPLAY_MAX) < 0 ||
      col_text(st, 3, rec.password_hash, USER_HASH_MAX - 1) < 0) {
    log_error("store", "users: row %lld exceeds the field limits", (long long)rec.id);
    atomic_store(&u->healthy, false);
    return -EIO;
  }
  rec.created_at = sqlite3_column_int64(st, 4);
  if (out) *out = rec;
  return 0;
}

static int read_refresh(users_sqlite_t *u, sqlite3_stmt *st, refresh_rec_t *out) {
  refresh_rec_t rec;
  memset(&rec, 0, sizeof rec);
  if (col_blob(st, 0, rec.token_hash, sizeof rec.token_hash) < 0 ||
      col_blob(st, 1, rec.family, sizeof rec.family) < 0) {
    log_error("store", "users: refresh token row with malformed hash or family");
    atomic_store(&u->healthy, false);
    return -EIO;
  }
  rec.user_id = sqlite3_column_int64(st, 2);
  rec.created_at = sqlite3_column_int64(st, 3);
  rec.expires_at = sqlite3_column_int64(st, 4);
  rec.used = sqlite3_column_int(st, 5) != 0;
  rec.revoked = sqlite3_column_int(st, 6) != 0;
  if (out) *out = rec;
  return 0;
}

static bool fits(const char *s, size_t max) { return s && strnlen(s, max + 1) <= max; }

/* Binds a string we know fits (checked by fits): strlen is bounded. */
static int bind_str(sqlite3_stmt *st, int i, const char *s) {
  return sqlite3_bind_text(st, i, s, (int)strlen(s), SQLITE_STATIC);
}

/* ---- users ---- */

static int user_create(users_store_t *s, const char *username, const char *display_name,
                       const char *password_hash, int64_t now_ms, user_rec_t *out) {
  users_sqlite_t *u = self(s);
  if (!fits(username, USER_NAME_MAX) || !fits(display_name, USER_DISPLAY_MAX) ||
      !fits(password_hash, USER_HASH_MAX - 1))
    return -EINVAL;
  sqlite_db_lock(u->db);
  sqlite3_stmt *st = u->st[ST_USER_INSERT];
  int rc = bind_str(st, 1, username);
  if (rc == SQLITE_OK) rc = bind_str(st, 2, display_name);
  if (rc == SQLITE_OK) rc = bind_str(st, 3, password_hash);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, now_ms);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  idle(st);
  int r;
  if (rc != SQLITE_DONE) {
    r = insert_error(u, "user_create", rc);
  } else {
    /* Exact under the lock: no other insert can run on the connection. */
    int64_t id = sqlite3_last_insert_rowid(u->conn);
    r = ok(u, 0);
    if (out) {
      memset(out, 0, sizeof *out);
      out->id = id;
      strcpy(out->username, username); /* lengths checked by fits() */
      strcpy(out->display_name, display_name);
      strcpy(out->password_hash, password_hash);
      out->created_at = now_ms;
    }
  }
  sqlite_db_unlock(u->db);
  return r;
}

/* Steps a bound single-row SELECT and reads its row with read: 0 and *out,
 * -ENOENT or -EIO. Unbinds. Shared by the user and refresh-token lookups. */
typedef int (*row_reader_fn)(users_sqlite_t *u, sqlite3_stmt *st, void *out);

static int select_one(users_sqlite_t *u, sqlite3_stmt *st, int rc, const char *op,
                      row_reader_fn read, void *out) {
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int r;
  if (rc == SQLITE_ROW)
    r = read(u, st, out) == 0 ? ok(u, 0) : -EIO;
  else if (rc == SQLITE_DONE)
    r = ok(u, -ENOENT);
  else
    r = fail(u, op, rc);
  idle(st);
  return r;
}

static int read_user_row(users_sqlite_t *u, sqlite3_stmt *st, void *out) {
  return read_user(u, st, out);
}

static int read_refresh_row(users_sqlite_t *u, sqlite3_stmt *st, void *out) {
  return read_refresh(u, st, out);
}

static int user_select(users_sqlite_t *u, sqlite3_stmt *st, int rc, const char *op,
                       user_rec_t *out) {
  return select_one(u, st, rc, op, read_user_row, out);
}

static int user_by_name(users_store_t *s, const char *username, user_rec_t *out) {
  users_sqlite_t *u = self(s);
  if (!username) return -EINVAL;
  if (!fits(username, USER_NAME_MAX)) return -ENOENT; /* could not have been stored */
  sqlite_db_lock(u->db);
  sqlite3_stmt *st = u->st[ST_USER_BY_NAME];
  int r = user_select(u, st, bind_str(st, 1, username), "user_by_name", out);
  sqlite_db_unlock(u->db);
  return r;
}

static int user_by_id(users_store_t *s, int64_t id, user_rec_t *out) {
  users_sqlite_t *u = self(s);
  sqlite_db_lock(u->db);
  sqlite3_stmt *st = u->st[ST_USER_BY_ID];
  int r = user_select(u, st, sqlite3_bind_int64(st, 1, id), "user_by_id", out);
  sqlite_db_unlock(u->db);
  return r;
}

/* Steps a bound UPDATE/DELETE; returns the changed row count or -EIO. */
static int change(users_sqlite_t *u, int which, int rc, const char *op) {
  if (rc == SQLITE_OK) rc = exec_st(u, which);
  else idle(u->st[which]);
  if (rc != SQLITE_DONE) return fail(u, op, rc);
  return ok(u, sqlite3_changes(u->conn));
}

static int user_set_password_hash(users_store_t *s, int64_t id, const char *password_hash) {
  users_sqlite_t *u = self(s);
  if (!fits(password_hash, USER_HASH_MAX - 1)) return -EINVAL;
  sqlite_db_lock(u->db);
  sqlite3_stmt *st = u->st[ST_USER_SET_HASH];
  int rc = bind_str(st, 1, password_hash);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, id);
  int n = change(u, ST_USER_SET_HASH, rc, "user_set_password_hash");
  sqlite_db_unlock(u->db);
  return n < 0 ? n : n == 0 ? -ENOENT : 0;
}

/* ---- refresh tokens ---- */

static int bind_refresh(sqlite3_stmt *st, const refresh_rec_t *r) {
  int rc = sqlite3_bind_blob(st, 1, r->token_hash, sizeof r->token_hash, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_blob(st, 2, r->family, sizeof r->family, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, r->user_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, r->created_at);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, r->expires_at);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 6, r->used ? 1 : 0);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 7, r->revoked ? 1 : 0);
  return rc;
}

/* The INSERT of refresh_insert and of rotate. */
static int insert_refresh(users_sqlite_t *u, const refresh_rec_t *r, const char *op) {
  sqlite3_stmt *st = u->st[ST_RT_INSERT];
  int rc = bind_refresh(st, r);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  idle(st);
  return rc == SQLITE_DONE ? ok(u, 0) : insert_error(u, op, rc);
}

static int refresh_insert(users_store_t *s, const refresh_rec_t *r) {
  users_sqlite_t *u = self(s);
  if (!r) return -EINVAL;
  sqlite_db_lock(u->db);
  int ret = insert_refresh(u, r, "refresh_insert");
  sqlite_db_unlock(u->db);
  return ret;
}

/* Looks up one token: 0 and *out, -ENOENT or -EIO. */
static int get_refresh(users_sqlite_t *u, const uint8_t hash[32], refresh_rec_t *out,
                       const char *op) {
  sqlite3_stmt *st = u->st[ST_RT_GET];
  return select_one(u, st, sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC), op,
                    read_refresh_row, out);
}

static int refresh_get(users_store_t *s, const uint8_t token_hash[32], refresh_rec_t *out) {
  users_sqlite_t *u = self(s);
  if (!token_hash) return -EINVAL;
  sqlite_db_lock(u->db);
  int r = get_refresh(u, token_hash, out, "refresh_get");
  sqlite_db_unlock(u->db);
  return r;
}

static int refresh_rotate(users_store_t *s, const uint8_t old_hash[32], const refresh_rec_t *next) {
  users_sqlite_t *u = self(s);
  if (!old_hash || !next) return -EINVAL;
  sqlite_db_lock(u->db);
  int rc = exec_st(u, ST_BEGIN);
  if (rc != SQLITE_DONE) {
    int r = fail(u, "refresh_rotate begin", rc);
    sqlite_db_unlock(u->db);
    return r;
  }
  refresh_rec_t old;
  int r = get_refresh(u, old_hash, &old, "refresh_rotate");
  if (r == 0) {
    /* Revoked first: a token that is both used and revoked belongs to a
     * family already shut down after a theft; there is nothing more for
     * the caller to revoke. */
    if (old.revoked)
      r = -EACCES;
    else if (old.used)
      r = -EALREADY;
    else if (memcmp(next->family, old.family, sizeof old.family) != 0 ||
             next->user_id != old.user_id)
      r = -EINVAL; /* a successor outside the family would escape its revocation */
  }
  if (r == 0) {
    sqlite3_stmt *st = u->st[ST_RT_MARK_USED];
    rc = sqlite3_bind_blob(st, 1, old_hash, 32, SQLITE_STATIC);
    if (change(u, ST_RT_MARK_USED, rc, "refresh_rotate mark") < 0) r = -EIO;
  }
  if (r == 0) r = insert_refresh(u, next, "refresh_rotate insert");
  if (r == 0) {
    rc = exec_st(u, ST_COMMIT);
    if (rc != SQLITE_DONE) r = fail(u, "refresh_rotate commit", rc);
  }
  /* Every error leaves the database as it was: the old token unused. Some
   * errors end the transaction by themselves, hence the autocommit test. */
  if (r != 0 && !sqlite3_get_autocommit(u->conn)) {
    rc = exec_st(u, ST_ROLLBACK);
    if (rc != SQLITE_DONE) r = fail(u, "refresh_rotate rollback", rc);
  }
  sqlite_db_unlock(u->db);
  return r;
}

static int refresh_revoke(users_store_t *s, const uint8_t token_hash[32]) {
  users_sqlite_t *u = self(s);
  if (!token_hash) return -EINVAL;
  sqlite_db_lock(u->db);
  sqlite3_stmt *st = u->st[ST_RT_REVOKE];
  int rc = sqlite3_bind_blob(st, 1, token_hash, 32, SQLITE_STATIC);
  int n = change(u, ST_RT_REVOKE, rc, "refresh_revoke");
  sqlite_db_unlock(u->db);
  return n < 0 ? n : n == 0 ? -ENOENT : 0;
}

static int refresh_revoke_family(users_store_t *s, const uint8_t family[16]) {
  users_sqlite_t *u = self(s);
  if (!family) return -EINVAL;
  sqlite_db_lock(u->db);
  sqlite3_stmt *st = u->st[ST_RT_REVOKE_FAMILY];
  int rc = sqlite3_bind_blob(st, 1, family, 16, SQLITE_STATIC);
  int n = change(u, ST_RT_REVOKE_FAMILY, rc, "refresh_revoke_family");
  sqlite_db_unlock(u->db);
  return n < 0 ? n : n == 0 ? -ENOENT : 0;
}

static int refresh_purge_expired(users_store_t *s, int64_t now_ms) {
  users_sqlite_t *u = self(s);
  sqlite_db_lock(u->db);
  sqlite3_stmt *st = u->st[ST_RT_PURGE];
  int rc = sqlite3_bind_int64(st, 1, now_ms);
  int n = change(u, ST_RT_PURGE, rc, "refresh_purge_expired");
  sqlite_db_unlock(u->db);
  return n;
}

static bool healthy(users_store_t *s) { return atomic_load(&self(s)->healthy); }

static void finalize_all(users_sqlite_t *u) {
  for (int i = 0; i < ST_COUNT; i++) {
    sqlite3_finalize(u->st[i]); /* NULL is a no-op */
    u->st[i] = NULL;
  }
}

static void users_close(users_store_t *s) {
  if (!s) return;
  users_sqlite_t *u = self(s);
  sqlite_db_lock(u->db);
  finalize_all(u);
  sqlite_db_unlock(u->db);
  free(u);
}

static const users_store_ops_t users_sqlite_ops = {
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

int users_sqlite_open(sqlite_db_t *db, users_store_t **out) {
  if (!db || !out) return -EINVAL;
  users_sqlite_t *u = calloc(1, sizeof *u);
  if (!u) return -ENOMEM;
  u->base.ops = &users_sqlite_ops;
  u->db = db;
  u->conn = sqlite_db_handle(db);
  atomic_init(&u->healthy, true);
  int r = 0;
  sqlite_db_lock(db);
  for (int i = 0; i < ST_COUNT; i++) {
    /* PERSISTENT: these live as long as the store; SQLite then keeps them
     * out of its short-lived lookaside memory. */
    int rc = sqlite3_prepare_v3(u->conn, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &u->st[i],
                                NULL);
    if (rc != SQLITE_OK) {
      log_error("store", "users: preparing \"%s\": %s", sql_text[i], sqlite3_errmsg(u->conn));
      r = rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
      finalize_all(u);
      break;
    }
  }
  sqlite_db_unlock(db);
  if (r < 0) {
    free(u);
    return r;
  }
  *out = &u->base;
  return 0;
}
