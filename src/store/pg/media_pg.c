/* media_pg.c — media metadata on PostgreSQL. Contract in media_pg.h and
 * store/media_store.h. Same pattern as users_pg.c: check the arguments,
 * take a pooled connection, run one prepared statement with parameters,
 * read the binary result, give the connection back. */
#include "store/pg/media_pg.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"

static const pg_stmt_t st_insert = {
    "media_insert", "INSERT INTO media(key, owner_id, mime, size, sha256, created_at) "
                    "VALUES ($1::text, $2::int8, $3::text, $4::int8, $5::bytea, $6::int8)"};
static const pg_stmt_t st_get = {
    "media_get", "SELECT key, owner_id, mime, size, sha256, created_at FROM media WHERE key = $1::text"};
/* The owner check is in the statement: no window between check and delete. */
static const pg_stmt_t st_delete = {"media_delete",
                                    "DELETE FROM media WHERE key = $1::text AND owner_id = $2::int8"};

typedef struct {
  media_store_t base; /* first */
  pg_db_t *db;
  atomic_bool healthy;
} media_pg_t;

static media_pg_t *self(media_store_t *s) { return (media_pg_t *)s; }

/* Maps a pg_exec result: -EIO marks unhealthy, anything else (including
 * constraint answers) means the database answered. */
static int answer(media_pg_t *m, int e) {
  atomic_store(&m->healthy, e != -EIO && e != -ENOMEM);
  return e;
}

static pg_conn_t *take(media_pg_t *m) {
  pg_conn_t *c = pg_db_acquire(m->db);
  if (!c) atomic_store(&m->healthy, false);
  return c;
}

/* Non-empty, at most max bytes, valid UTF-8. */
static bool fits(const char *s, size_t max) {
  if (!s || !s[0]) return false;
  size_t n = strnlen(s, max + 1);
  return n <= max && utf8_valid((const uint8_t *)s, n);
}

static int media_insert(media_store_t *s, const media_rec_t *rec) {
  media_pg_t *m = self(s);
  if (!rec || !fits(rec->key, MEDIA_REC_KEY_MAX) || !fits(rec->mime, MEDIA_REC_MIME_MAX) ||
      rec->size < 0)
    return -EINVAL;
  pg_conn_t *c = take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_cstr(&p, rec->key);
  pg_p_i64(&p, rec->owner_id);
  pg_p_cstr(&p, rec->mime);
  pg_p_i64(&p, rec->size);
  pg_p_bytes(&p, rec->sha256, 32);
  pg_p_i64(&p, rec->created_at);
  int e = answer(m, pg_exec(c, &st_insert, &p, NULL, "media insert"));
  pg_db_release(m->db, c);
  return e;
}

/* Copies text column col of row 0 (1..max bytes) into dst[max + 1]. */
static int col_text(const PGresult *r, int col, char *dst, size_t max) {
  size_t n = (size_t)PQgetlength(r, 0, col);
  if (PQgetisnull(r, 0, col) || n > max) return -1;
  memcpy(dst, PQgetvalue(r, 0, col), n);
  dst[n] = '\0';
  return 0;
}

static int media_get(media_store_t *s, const char *key, media_rec_t *out) {
  media_pg_t *m = self(s);
  if (!fits(key, MEDIA_REC_KEY_MAX)) return -EINVAL;
  pg_conn_t *c = take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_cstr(&p, key);
  PGresult *r;
  int e = answer(m, pg_exec(c, &st_get, &p, &r, "media get"));
  pg_db_release(m->db, c);
  if (e < 0) return e;
  if (PQntuples(r) == 0) {
    PQclear(r);
    return -ENOENT;
  }
  media_rec_t rec;
  memset(&rec, 0, sizeof rec);
  if (col_text(r, 0, rec.key, MEDIA_REC_KEY_MAX) < 0 || pg_get_i64(r, 0, 1, &rec.owner_id) < 0 ||
      col_text(r, 2, rec.mime, MEDIA_REC_MIME_MAX) < 0 || pg_get_i64(r, 0, 3, &rec.size) < 0 ||
      PQgetisnull(r, 0, 4) || PQgetlength(r, 0, 4) != 32 ||
      pg_get_i64(r, 0, 5, &rec.created_at) < 0) {
    log_error("store", "media: row for %s exceeds the field limits", key);
    e = answer(m, -EIO);
  } else {
    memcpy(rec.sha256, PQgetvalue(r, 0, 4), 32);
    if (out) *out = rec;
  }
  PQclear(r);
  return e;
}

static int media_remove(media_store_t *s, const char *key, int64_t owner_id) {
  media_pg_t *m = self(s);
  if (!fits(key, MEDIA_REC_KEY_MAX)) return -EINVAL;
  pg_conn_t *c = take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_cstr(&p, key);
  pg_p_i64(&p, owner_id);
  PGresult *r;
  int e = answer(m, pg_exec(c, &st_delete, &p, &r, "media remove"));
  pg_db_release(m->db, c);
  if (e < 0) return e;
  int64_t n = pg_affected(r);
  PQclear(r);
  return n > 0 ? 0 : -ENOENT;
}

static bool media_healthy(media_store_t *s) { return atomic_load(&self(s)->healthy); }

static void media_close(media_store_t *s) { free(s); }

static const media_store_ops_t media_pg_ops = {
    .insert = media_insert,
    .get = media_get,
    .remove = media_remove,
    .healthy = media_healthy,
    .close = media_close,
};

int media_pg_open(pg_db_t *db, const media_pg_opts_t *opts, media_store_t **out) {
  if (!db || !out) return -EINVAL;
  char err[256];
  int r = pg_db_require_schema(db, MEDIA_PG_SCHEMA_MIN, opts && opts->migrate_on_open, err,
                               sizeof err);
  if (r < 0) {
    log_error("store", "media: %s", err);
    return r;
  }
  media_pg_t *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->base.ops = &media_pg_ops;
  m->db = db;
  atomic_init(&m->healthy, true);
  *out = &m->base;
  return 0;
}
