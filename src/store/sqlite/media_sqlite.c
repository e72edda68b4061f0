/* media_sqlite.c — media metadata on SQLite. Contract in media_sqlite.h
 * and store/media_store.h. Same pattern as users_sqlite.c: under the db
 * lock, bind, step, read, then reset and clear the bindings (text bound
 * SQLITE_STATIC: only read during the call). */
#include "store/sqlite/media_sqlite.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

enum { ST_INSERT, ST_GET, ST_DELETE, ST_COUNT };

static const char *const sql_text[ST_COUNT] = {
    [ST_INSERT] = ("INSERT INTO media(key, owner_id, mime, size, sha256, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)"),
    [ST_GET] = "SELECT key, owner_id, mime, size, sha256, created_at FROM media WHERE key = ?",
    /* The owner check is in the statement: no window between check and delete. */
    [ST_DELETE] = "DELETE FROM media WHERE key = ? AND owner_id = ?",
};

typedef struct {
  media_store_t base; /* first */
  sqlite_db_t *db;
  sqlite3 *conn;
  sqlite3_stmt *st[ST_COUNT];
  atomic_bool healthy;
} media_sqlite_t;

static media_sqlite_t *self(media_store_t *s) { return (media_sqlite_t *)s; }

static int fail(media_sqlite_t *m, const char *op, int rc) {
  log_error("store", "media %s: %s (sqlite %d)", op, sqlite3_errmsg(m->conn), rc);
  atomic_store(&m->healthy, false);
  return -EIO;
}

static int ok(media_sqlite_t *m, int r) {
  atomic_store(&m->healthy, true);
  return r;
}

static void idle(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

static bool fits(const char *s, size_t max) { return s && s[0] && strnlen(s, max + 1) <= max; }

static int bind_str(sqlite3_stmt *st, int i, const char *s) {
  return sqlite3_bind_text(st, i, s, (int)strlen(s), SQLITE_STATIC);
}

static int media_insert(media_store_t *s, const media_rec_t *rec) {
  media_sqlite_t *m = self(s);
  if (!rec || !fits(rec->key, MEDIA_REC_KEY_MAX) || !fits(rec->mime, MEDIA_REC_MIME_MAX) ||
      rec->size < 0)
    return -EINVAL;
  sqlite_db_lock(m->db);
  sqlite3_stmt *st = m->st[ST_INSERT];
  int rc = bind_str(st, 1, rec->key);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, rec->owner_id);
  if (rc == SQLITE_OK) rc = bind_str(st, 3, rec->mime);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, rec->size);
  if (rc == SQLITE_OK) rc = sqlite3_bind_blob(st, 5, rec->sha256, 32, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 6, rec->created_at);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  idle(st);
  int r;
  if (rc == SQLITE_DONE)
    r = ok(m, 0);
  else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
    r = ok(m, -EEXIST);
  else
    r = fail(m, "insert", rc);
  sqlite_db_unlock(m->db);
  return r;
}

static int media_get(media_store_t *s, const char *key, media_rec_t *out) {
  media_sqlite_t *m = self(s);
  if (!fits(key, MEDIA_REC_KEY_MAX)) return -EINVAL;
  sqlite_db_lock(m->db);
  sqlite3_stmt *st = m->st[ST_GET];
  int rc = bind_str(st, 1, key);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int r;
  if (rc == SQLITE_DONE) {
    r = ok(m, -ENOENT);
  } else if (rc == SQLITE_ROW) {
    media_rec_t rec;
    memset(&rec, 0, sizeof rec);
    const unsigned char *k = sqlite3_column_text(st, 0);
    const unsigned char *mime = sqlite3_column_text(st, 2);
    const void *sha = sqlite3_column_blob(st, 4);
    size_t kn = (size_t)sqlite3_column_bytes(st, 0), mn = (size_t)sqlite3_column_bytes(st, 2);
    if (!k || !mime || !sha || kn > MEDIA_REC_KEY_MAX || mn > MEDIA_REC_MIME_MAX ||
        sqlite3_column_bytes(st, 4) != 32) {
      log_error("store", "media: row for %s exceeds the field limits", key);
      atomic_store(&m->healthy, false);
      r = -EIO;
    } else {
      memcpy(rec.key, k, kn);
      rec.owner_id = sqlite3_column_int64(st, 1);
      memcpy(rec.mime, mime, mn);
      rec.size = sqlite3_column_int64(st, 3);
      memcpy(rec.sha256, sha, 32);
      rec.created_at = sqlite3_column_int64(st, 5);
      if (out) *out = rec;
      r = ok(m, 0);
    }
  } else {
    r = fail(m, "get", rc);
  }
  idle(st);
  sqlite_db_unlock(m->db);
  return r;
}

static int media_remove(media_store_t *s, const char *key, int64_t owner_id) {
  media_sqlite_t *m = self(s);
  if (!fits(key, MEDIA_REC_KEY_MAX)) return -EINVAL;
  sqlite_db_lock(m->db);
  sqlite3_stmt *st = m->st[ST_DELETE];
  int rc = bind_str(st, 1, key);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, owner_id);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  idle(st);
  int r;
  if (rc == SQLITE_DONE)
    r = ok(m, sqlite3_changes(m->conn) > 0 ? 0 : -ENOENT);
  else
    r = fail(m, "remove", rc);
  sqlite_db_unlock(m->db);
  return r;
}

static bool media_healthy(media_store_t *s) { return atomic_load(&self(s)->healthy); }

static void finalize_all(media_sqlite_t *m) {
  for (int i = 0; i < ST_COUNT; i++) {
    sqlite3_finalize(m->st[i]);
    m->st[i] = NULL;
  }
}

static void media_close(media_store_t *s) {
  if (!s) return;
  media_sqlite_t *m = self(s);
  sqlite_db_lock(m->db);
  finalize_all(m);
  sqlite_db_unlock(m->db);
  free(m);
}

static const media_store_ops_t media_sqlite_ops = {
    .insert = media_insert,
    .get = media_get,
    .remove = media_remove,
    .healthy = media_healthy,
    .close = media_close,
};

int media_sqlite_open(sqlite_db_t *db, media_store_t **out) {
  if (!db || !out) return -EINVAL;
  media_sqlite_t *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->base.ops = &media_sqlite_ops;
  m->db = db;
  m->conn = sqlite_db_handle(db);
  atomic_init(&m->healthy, true);
  int r = 0;
  sqlite_db_lock(db);
  for (int i = 0; i < ST_COUNT; i++) {
    int rc = sqlite3_prepare_v3(m->conn, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &m->st[i], NULL);
    if (rc != SQLITE_OK) {
      log_error("store", "media: preparing \"%s\": %s", sql_text[i], sqlite3_errmsg(m->conn));
      r = rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
      finalize_all(m);
      break;
    }
  }
  sqlite_db_unlock(db);
  if (r < 0) {
    free(m);
    return r;
  }
  *out = &m->base;
  return 0;
}
