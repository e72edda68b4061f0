/* messages_pg.c — the messages store on PostgreSQL: open/close, shared
 * helpers, channels, DMs and members. Contract in messages_pg.h and
 * store/messages_store.h; file map in messages_pg_int.h.
 *
 * Every operation takes one pooled connection for its duration (so a
 * transaction stays on one session) and gives it back with pg_db_release,
 * which rolls back whatever a failure left open. Concurrency with other
 * processes is the database's: unique indexes and foreign keys answer
 * races (-EEXIST, -ENOENT), and single statements do read-modify-write
 * (read_set, member_add) so that no lost update is possible. */
#include "store/pg/messages_pg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"
#include "store/pg/messages_pg_int.h"

#define CH_COLS "id, kind, name, topic, private, owner_id, dm_lo, dm_hi, created_at, last_seq"
#define CH_COLS_C                                                                                  \
  "c.id, c.kind, c.name, c.topic, c.private, c.owner_id, c.dm_lo, c.dm_hi, c.created_at, "         \
  "c.last_seq"
#define MB_COLS "channel_id, user_id, joined_at, last_read_seq, muted"

static const pg_stmt_t st_ch_insert = {
    "msgs_ch_insert",
    "INSERT INTO channels(kind, name, topic, private, owner_id, created_at) "
    "VALUES ('channel', $1::text, $2::text, $3::bool, $4::int8, $5::int8) RETURNING id"};
static const pg_stmt_t st_ch_get = {"msgs_ch_get",
                                    "SELECT " CH_COLS " FROM channels WHERE id = $1::int8"};
static const pg_stmt_t st_ch_kind = {"msgs_ch_kind", "SELECT kind FROM channels WHERE id = $1::int8"};
/* $1 NULL keeps the name; a DM (no name) matches only when $1 is NULL. */
static const pg_stmt_t st_ch_update = {
    "msgs_ch_update",
    "UPDATE channels SET name = coalesce($1::text, name), topic = coalesce($2::text, topic) "
    "WHERE id = $3::int8 AND ($1::text IS NULL OR kind = 'channel')"};
static const pg_stmt_t st_ch_delete = {"msgs_ch_delete", "DELETE FROM channels WHERE id = $1::int8"};
/* The terms match the partial index channels_public. */
static const pg_stmt_t st_ch_list_public = {
    "msgs_ch_list_public", "SELECT " CH_COLS " FROM channels "
                           "WHERE kind = 'channel' AND NOT private AND id > $1::int8 "
                           "ORDER BY id LIMIT $2::int8"};
static const pg_stmt_t st_ch_list_user = {
    "msgs_ch_list_user", "SELECT " CH_COLS_C ", "
                         "m.channel_id, m.user_id, m.joined_at, m.last_read_seq, m.muted "
                         "FROM members m JOIN channels c ON c.id = m.channel_id "
                         "WHERE m.user_id = $1::int8 AND m.channel_id > $2::int8 "
                         "ORDER BY m.channel_id LIMIT $3::int8"};
static const pg_stmt_t st_dm_get = {
    "msgs_dm_get", "SELECT " CH_COLS " FROM channels WHERE dm_lo = $1::int8 AND dm_hi = $2::int8"};
/* A concurrent creator of the same pair (any process) makes ours a no-op:
 * we then read theirs. */
static const pg_stmt_t st_dm_insert = {
    "msgs_dm_insert",
    "INSERT INTO channels(kind, private, dm_lo, dm_hi, created_at) "
    "VALUES ('dm', true, $1::int8, $2::int8, $3::int8) "
    "ON CONFLICT (dm_lo, dm_hi) DO NOTHING RETURNING id"};
/* A new member has read everything so far; no row when the channel is
 * missing; an existing membership is left untouched. */
static const pg_stmt_t st_mb_insert = {
    "msgs_mb_insert",
    "INSERT INTO members(channel_id, user_id, joined_at, last_read_seq) "
    "SELECT id, $2::int8, $3::int8, last_seq FROM channels WHERE id = $1::int8 "
    "ON CONFLICT DO NOTHING"};
static const pg_stmt_t st_mb_delete = {
    "msgs_mb_delete", "DELETE FROM members WHERE channel_id = $1::int8 AND user_id = $2::int8"};
static const pg_stmt_t st_mb_get = {
    "msgs_mb_get",
    "SELECT " MB_COLS " FROM members WHERE channel_id = $1::int8 AND user_id = $2::int8"};
static const pg_stmt_t st_mb_mute = {
    "msgs_mb_mute",
    "UPDATE members SET muted = $1::bool WHERE channel_id = $2::int8 AND user_id = $3::int8"};
static const pg_stmt_t st_mb_count_user = {"msgs_mb_count_user",
                                           "SELECT count(*) FROM members WHERE user_id = $1::int8"};
static const pg_stmt_t st_mb_list = {
    "msgs_mb_list", "SELECT " MB_COLS " FROM members WHERE channel_id = $1::int8 "
                    "AND user_id > $2::int8 ORDER BY user_id LIMIT $3::int8"};
/* Monotonic and clamped in one statement: no read-modify-write race. */
static const pg_stmt_t st_mb_read = {
    "msgs_mb_read",
    "UPDATE members m SET last_read_seq = greatest(m.last_read_seq, least($3::int8, c.last_seq)) "
    "FROM channels c WHERE c.id = m.channel_id AND m.channel_id = $1::int8 "
    "AND m.user_id = $2::int8 RETURNING m.last_read_seq"};
static const pg_stmt_t st_ch_exists = {"msgs_ch_exists", "SELECT 1 FROM channels WHERE id = $1::int8"};

/* ---- shared helpers ---- */

int mpg_ok(mpg_t *m, int r) {
  atomic_store(&m->healthy, true);
  return r;
}

int mpg_answer(mpg_t *m, int e) {
  if (e == -EIO || e == -ENOMEM) {
    atomic_store(&m->healthy, false);
    return e;
  }
  return mpg_ok(m, e);
}

pg_conn_t *mpg_take(mpg_t *m) {
  pg_conn_t *c = pg_db_acquire(m->db);
  if (!c) atomic_store(&m->healthy, false);
  return c;
}

bool mpg_slice_ok(str_t v, size_t max) {
  if (v.n > max || (!v.p && v.n)) return false;
  return v.n == 0 || (!memchr(v.p, 0, v.n) && utf8_valid((const uint8_t *)v.p, v.n));
}

bool mpg_keys_ok(const str_t *keys, size_t nkeys) {
  if (nkeys > MSG_ATTACH_KEYS_MAX || (nkeys && !keys)) return false;
  for (size_t i = 0; i < nkeys; i++)
    if (keys[i].n == 0 || !mpg_slice_ok(keys[i], MSG_ATTACH_KEY_MAX)) return false;
  return true;
}

static bool fits(const char *s, size_t max) {
  if (!s) return false;
  size_t n = strnlen(s, max + 1);
  return n <= max && utf8_valid((const uint8_t *)s, n);
}

int mpg_channel_exists(mpg_t *m, pg_conn_t *c, int64_t channel_id, const char *op) {
  pg_params_t p = {0};
  pg_p_i64(&p, channel_id);
  PGresult *r;
  int e = pg_exec(c, &st_ch_exists, &p, &r, op);
  if (e < 0) return mpg_answer(m, -EIO);
  e = PQntuples(r) ? 0 : -ENOENT;
  PQclear(r);
  return mpg_ok(m, e);
}

/* Runs a statement returning rows or a count: *res (may be NULL), mapped
 * errors. */
static int run(mpg_t *m, pg_conn_t *c, const pg_stmt_t *st, const pg_params_t *p, PGresult **res,
               const char *op) {
  return mpg_answer(m, pg_exec(c, st, p, res, op));
}

/* An UPDATE/DELETE: changed rows or -EIO (constraints mapped). */
static int change(mpg_t *m, pg_conn_t *c, const pg_stmt_t *st, const pg_params_t *p,
                  const char *op) {
  PGresult *r;
  int e = run(m, c, st, p, &r, op);
  if (e < 0) return e;
  int n = (int)pg_affected(r);
  PQclear(r);
  return n;
}

static int col_text(const PGresult *r, int row, int col, char *dst, size_t max, bool null_ok) {
  if (PQgetisnull(r, row, col)) {
    dst[0] = '\0';
    return null_ok ? 0 : -1;
  }
  size_t n = (size_t)PQgetlength(r, row, col);
  if (n > max) return -1;
  memcpy(dst, PQgetvalue(r, row, col), n);
  dst[n] = '\0';
  return 0;
}

/* Reads CH_COLS of a row. */
static int read_channel(mpg_t *m, const PGresult *r, int row, channel_rec_t *out) {
  channel_rec_t c;
  memset(&c, 0, sizeof c);
  bool dm = !PQgetisnull(r, row, 1) && strcmp(PQgetvalue(r, row, 1), "dm") == 0;
  c.kind = dm ? CHANNEL_KIND_DM : CHANNEL_KIND_CHANNEL;
  int bad = pg_get_i64(r, row, 0, &c.id) < 0 ||
            col_text(r, row, 2, c.name, MSG_CHANNEL_NAME_MAX, dm) < 0 ||
            col_text(r, row, 3, c.topic, MSG_CHANNEL_TOPIC_MAX, false) < 0 ||
            pg_get_bool(r, row, 4, &c.is_private) < 0 || pg_get_i64(r, row, 8, &c.created_at) < 0 ||
            pg_get_i64(r, row, 9, &c.last_seq) < 0;
  /* NULL reads as 0: no owner (a DM, or the owner's account is gone). */
  if (!bad && !PQgetisnull(r, row, 5)) bad = pg_get_i64(r, row, 5, &c.owner_id) < 0;
  if (!bad && !PQgetisnull(r, row, 6)) bad = pg_get_i64(r, row, 6, &c.dm_user_lo) < 0;
  if (!bad && !PQgetisnull(r, row, 7)) bad = pg_get_i64(r, row, 7, &c.dm_user_hi) < 0;
  if (bad) {
    log_error("store", "messages: channel %lld exceeds the field limits", (long long)c.id);
    atomic_store(&m->healthy, false);
    return -EIO;
  }
  if (out) *out = c;
  return 0;
}

static int read_member(const PGresult *r, int row, int col, member_rec_t *out) {
  member_rec_t mb;
  memset(&mb, 0, sizeof mb);
  if (pg_get_i64(r, row, col, &mb.channel_id) < 0 || pg_get_i64(r, row, col + 1, &mb.user_id) < 0 ||
      pg_get_i64(r, row, col + 2, &mb.joined_at) < 0 ||
      pg_get_i64(r, row, col + 3, &mb.last_read_seq) < 0 ||
      pg_get_bool(r, row, col + 4, &mb.muted) < 0)
    return -1;
  if (out) *out = mb;
  return 0;
}

/* A single-row channel SELECT: 0 and *out, -ENOENT, -EIO. */
static int channel_select(mpg_t *m, pg_conn_t *c, const pg_stmt_t *st, const pg_params_t *p,
                          const char *op, channel_rec_t *out) {
  PGresult *r;
  int e = run(m, c, st, p, &r, op);
  if (e < 0) return e;
  e = PQntuples(r) == 0 ? -ENOENT : read_channel(m, r, 0, out);
  PQclear(r);
  return e;
}

static int get_channel(mpg_t *m, pg_conn_t *c, int64_t id, channel_rec_t *out, const char *op) {
  pg_params_t p = {0};
  pg_p_i64(&p, id);
  return channel_select(m, c, &st_ch_get, &p, op, out);
}

/* Adds (channel_id, user_id) if missing: 1 added, 0 already there,
 * -ENOENT (no such channel or user), -EIO. */
static int insert_member(mpg_t *m, pg_conn_t *c, int64_t channel_id, int64_t user_id,
                         int64_t now_ms, const char *op) {
  pg_params_t p = {0};
  pg_p_i64(&p, channel_id);
  pg_p_i64(&p, user_id);
  pg_p_i64(&p, now_ms);
  int n = change(m, c, &st_mb_insert, &p, op);
  if (n != 0) return n; /* 1 or an error */
  /* Nothing inserted: the membership exists, or the channel does not. */
  pg_params_t q = {0};
  pg_p_i64(&q, channel_id);
  pg_p_i64(&q, user_id);
  PGresult *r;
  int e = run(m, c, &st_mb_get, &q, &r, op);
  if (e < 0) return e;
  e = PQntuples(r) ? 0 : -ENOENT;
  PQclear(r);
  return e;
}

static int begin(mpg_t *m, pg_conn_t *c, const char *op) {
  return mpg_answer(m, pg_cmd(c, "BEGIN", op));
}

static int commit(mpg_t *m, pg_conn_t *c, const char *op) {
  return mpg_answer(m, pg_cmd(c, "COMMIT", op));
}

/* ---- channels ---- */

static int channel_create(messages_store_t *s, const char *name, const char *topic,
                          bool is_private, int64_t owner_id, int64_t now_ms, channel_rec_t *out) {
  mpg_t *m = mpg_self(s);
  if (!topic) topic = "";
  if (!fits(name, MSG_CHANNEL_NAME_MAX) || !*name || !fits(topic, MSG_CHANNEL_TOPIC_MAX))
    return -EINVAL;
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  int r = begin(m, c, "channel_create begin");
  int64_t id = 0;
  if (r == 0) {
    pg_params_t p = {0};
    pg_p_cstr(&p, name);
    pg_p_cstr(&p, topic);
    pg_p_bool(&p, is_private);
    pg_p_i64(&p, owner_id);
    pg_p_i64(&p, now_ms);
    PGresult *res;
    r = run(m, c, &st_ch_insert, &p, &res, "channel_create");
    if (r == 0 && (PQntuples(res) != 1 || pg_get_i64(res, 0, 0, &id) < 0)) r = mpg_answer(m, -EIO);
    PQclear(res);
  }
  if (r == 0) {
    int n = insert_member(m, c, id, owner_id, now_ms, "channel_create member");
    if (n < 0) r = n;
  }
  if (r == 0) r = commit(m, c, "channel_create commit");
  pg_db_release(m->db, c); /* rolls back after an error */
  if (r == 0 && out) {
    memset(out, 0, sizeof *out);
    out->id = id;
    out->kind = CHANNEL_KIND_CHANNEL;
    out->is_private = is_private;
    strcpy(out->name, name); /* lengths checked above */
    strcpy(out->topic, topic);
    out->owner_id = owner_id;
    out->created_at = now_ms;
  }
  return r;
}

static int channel_get(messages_store_t *s, int64_t id, channel_rec_t *out) {
  mpg_t *m = mpg_self(s);
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  int r = get_channel(m, c, id, out, "channel_get");
  pg_db_release(m->db, c);
  return r;
}

static int channel_update(messages_store_t *s, int64_t id, const char *name, const char *topic) {
  mpg_t *m = mpg_self(s);
  if (name && (!fits(name, MSG_CHANNEL_NAME_MAX) || !*name)) return -EINVAL;
  if (topic && !fits(topic, MSG_CHANNEL_TOPIC_MAX)) return -EINVAL;
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_cstr(&p, name);
  pg_p_cstr(&p, topic);
  pg_p_i64(&p, id);
  int r = change(m, c, &st_ch_update, &p, "channel_update");
  if (r == 0) {
    /* No row: missing channel, or a name given for a DM. */
    pg_params_t q = {0};
    pg_p_i64(&q, id);
    PGresult *res;
    r = run(m, c, &st_ch_kind, &q, &res, "channel_update");
    if (r == 0) {
      r = PQntuples(res) ? -EINVAL : -ENOENT;
      PQclear(res);
    }
  } else if (r > 0) {
    r = 0;
  }
  pg_db_release(m->db, c);
  return r;
}

static int channel_delete(messages_store_t *s, int64_t id) {
  mpg_t *m = mpg_self(s);
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, id);
  int n = change(m, c, &st_ch_delete, &p, "channel_delete");
  pg_db_release(m->db, c);
  return n < 0 ? n : n == 0 ? -ENOENT : 0;
}

typedef int (*row_fn)(mpg_t *m, const PGresult *r, int row, void *out, size_t i);

/* Runs a list query whose last parameter is LIMIT cap + 1 (added here):
 * reads up to cap rows, sets *more. Returns the count. */
static int list_rows(mpg_t *m, pg_conn_t *c, const pg_stmt_t *st, pg_params_t *p, size_t cap,
                     row_fn read_row, void *out, bool *more, const char *op) {
  pg_p_i64(p, (int64_t)cap + 1);
  PGresult *r;
  int e = run(m, c, st, p, &r, op);
  if (e < 0) return e;
  size_t rows = (size_t)PQntuples(r), n = rows > cap ? cap : rows;
  for (size_t i = 0; i < n && e == 0; i++) e = read_row(m, r, (int)i, out, i);
  PQclear(r);
  if (e < 0) return e;
  if (more) *more = rows > cap;
  return (int)n;
}

static bool list_args_ok(const void *out, size_t cap) {
  return out && cap > 0 && cap <= MSG_LIST_MAX;
}

static int row_channel(mpg_t *m, const PGresult *r, int row, void *out, size_t i) {
  return read_channel(m, r, row, (channel_rec_t *)out + i);
}

static int channel_list_public(messages_store_t *s, int64_t after_id, channel_rec_t *out,
                               size_t cap, bool *more) {
  mpg_t *m = mpg_self(s);
  if (!list_args_ok(out, cap)) return -EINVAL;
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, after_id);
  int r = list_rows(m, c, &st_ch_list_public, &p, cap, row_channel, out, more,
                    "channel_list_public");
  pg_db_release(m->db, c);
  return r;
}

static int row_membership(mpg_t *m, const PGresult *r, int row, void *out, size_t i) {
  channel_membership_t *e = (channel_membership_t *)out + i;
  memset(e, 0, sizeof *e);
  int x = read_channel(m, r, row, &e->channel);
  if (x < 0) return x;
  if (read_member(r, row, 10, &e->member) < 0) return mpg_answer(m, -EIO);
  return 0;
}

static int channel_list_for_user(messages_store_t *s, int64_t user_id, int64_t after_id,
                                 channel_membership_t *out, size_t cap, bool *more) {
  mpg_t *m = mpg_self(s);
  if (!list_args_ok(out, cap)) return -EINVAL;
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, user_id);
  pg_p_i64(&p, after_id);
  int r = list_rows(m, c, &st_ch_list_user, &p, cap, row_membership, out, more,
                    "channel_list_for_user");
  pg_db_release(m->db, c);
  return r;
}

/* ---- DMs ---- */

static int dm_get(mpg_t *m, pg_conn_t *c, int64_t lo, int64_t hi, channel_rec_t *out,
                  const char *op) {
  pg_params_t p = {0};
  pg_p_i64(&p, lo);
  pg_p_i64(&p, hi);
  return channel_select(m, c, &st_dm_get, &p, op, out);
}

/* One attempt to create the DM: 1 created (*out filled), 0 another
 * transaction has it (ours rolled back), or an error. */
static int dm_create(mpg_t *m, pg_conn_t *c, int64_t lo, int64_t hi, int64_t now_ms,
                     channel_rec_t *out) {
  int r = begin(m, c, "dm_get_or_create begin");
  if (r < 0) return r;
  pg_params_t p = {0};
  pg_p_i64(&p, lo);
  pg_p_i64(&p, hi);
  pg_p_i64(&p, now_ms);
  PGresult *res;
  r = run(m, c, &st_dm_insert, &p, &res, "dm_get_or_create");
  if (r < 0) return r;
  int64_t id = 0;
  bool made = PQntuples(res) == 1 && pg_get_i64(res, 0, 0, &id) == 0;
  PQclear(res);
  if (!made) {
    r = mpg_answer(m, pg_cmd(c, "ROLLBACK", "dm_get_or_create rollback"));
    return r < 0 ? r : 0;
  }
  r = insert_member(m, c, id, lo, now_ms, "dm_get_or_create member");
  if (r >= 0 && hi != lo) r = insert_member(m, c, id, hi, now_ms, "dm_get_or_create member");
  if (r >= 0) r = get_channel(m, c, id, out, "dm_get_or_create");
  if (r >= 0) r = commit(m, c, "dm_get_or_create commit");
  return r < 0 ? r : 1;
}

static int dm_get_or_create(messages_store_t *s, int64_t a, int64_t b, int64_t now_ms,
                            channel_rec_t *out, bool *created) {
  mpg_t *m = mpg_self(s);
  if (a <= 0 || b <= 0) return -EINVAL;
  int64_t lo = a < b ? a : b, hi = a < b ? b : a;
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  channel_rec_t ch;
  bool made = false;
  /* The common case, an existing DM, is one read. A lost race (another
   * creator committed first) reads the winner's; twice covers a DM
   * deleted in between. */
  int r = dm_get(m, c, lo, hi, &ch, "dm_get_or_create");
  for (int attempt = 0; r == -ENOENT && attempt < 3; attempt++) {
    r = dm_create(m, c, lo, hi, now_ms, &ch);
    if (r == 1) {
      made = true;
      r = 0;
      break;
    }
    if (r < 0) break; /* e.g. -ENOENT: a user does not exist (release rolls back) */
    r = dm_get(m, c, lo, hi, &ch, "dm_get_or_create");
  }
  pg_db_release(m->db, c);
  if (r == 0) {
    if (out) *out = ch;
    if (created) *created = made;
  }
  return r;
}

/* ---- members ---- */

static int member_add(messages_store_t *s, int64_t channel_id, int64_t user_id, int64_t now_ms,
                      bool *added) {
  mpg_t *m = mpg_self(s);
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  int r = insert_member(m, c, channel_id, user_id, now_ms, "member_add");
  pg_db_release(m->db, c);
  if (r < 0) return r;
  if (added) *added = r == 1;
  return 0;
}

static int member_remove(messages_store_t *s, int64_t channel_id, int64_t user_id) {
  mpg_t *m = mpg_self(s);
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, channel_id);
  pg_p_i64(&p, user_id);
  int n = change(m, c, &st_mb_delete, &p, "member_remove");
  pg_db_release(m->db, c);
  return n < 0 ? n : n == 0 ? -ENOENT : 0;
}

static int member_get(messages_store_t *s, int64_t channel_id, int64_t user_id,
                      member_rec_t *out) {
  mpg_t *m = mpg_self(s);
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, channel_id);
  pg_p_i64(&p, user_id);
  PGresult *r;
  int e = run(m, c, &st_mb_get, &p, &r, "member_get");
  pg_db_release(m->db, c);
  if (e < 0) return e;
  if (PQntuples(r) == 0) e = -ENOENT;
  else if (read_member(r, 0, 0, out) < 0) e = mpg_answer(m, -EIO);
  PQclear(r);
  return e;
}

static int member_count_for_user(messages_store_t *s, int64_t user_id) {
  mpg_t *m = mpg_self(s);
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, user_id);
  PGresult *r;
  int e = run(m, c, &st_mb_count_user, &p, &r, "member_count_for_user");
  pg_db_release(m->db, c);
  if (e < 0) return e;
  int64_t n = 0;
  if (PQntuples(r) != 1 || pg_get_i64(r, 0, 0, &n) < 0 || n > INT32_MAX) e = mpg_answer(m, -EIO);
  else e = (int)n;
  PQclear(r);
  return e;
}

static int member_set_muted(messages_store_t *s, int64_t channel_id, int64_t user_id,
                            bool muted) {
  mpg_t *m = mpg_self(s);
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_bool(&p, muted);
  pg_p_i64(&p, channel_id);
  pg_p_i64(&p, user_id);
  int n = change(m, c, &st_mb_mute, &p, "member_set_muted");
  pg_db_release(m->db, c);
  return n < 0 ? n : n == 0 ? -ENOENT : 0;
}

static int row_member(mpg_t *m, const PGresult *r, int row, void *out, size_t i) {
  return read_member(r, row, 0, (member_rec_t *)out + i) < 0 ? mpg_answer(m, -EIO) : 0;
}

static int members_list(messages_store_t *s, int64_t channel_id, int64_t after_user_id,
                        member_rec_t *out, size_t cap, bool *more) {
  mpg_t *m = mpg_self(s);
  if (!list_args_ok(out, cap)) return -EINVAL;
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, channel_id);
  pg_p_i64(&p, after_user_id);
  int r = list_rows(m, c, &st_mb_list, &p, cap, row_member, out, more, "members_list");
  /* An empty page of a channel that does not exist is an error. */
  if (r == 0) r = mpg_channel_exists(m, c, channel_id, "members_list");
  pg_db_release(m->db, c);
  return r;
}

static int read_set(messages_store_t *s, int64_t channel_id, int64_t user_id, int64_t seq,
                    int64_t *now_read) {
  mpg_t *m = mpg_self(s);
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, channel_id);
  pg_p_i64(&p, user_id);
  pg_p_i64(&p, seq);
  PGresult *r;
  int e = run(m, c, &st_mb_read, &p, &r, "read_set");
  pg_db_release(m->db, c);
  if (e < 0) return e;
  int64_t v = 0;
  if (PQntuples(r) == 0) e = -ENOENT;
  else if (pg_get_i64(r, 0, 0, &v) < 0) e = mpg_answer(m, -EIO);
  PQclear(r);
  if (e == 0 && now_read) *now_read = v;
  return e;
}

/* ---- lifecycle ---- */

static bool healthy(messages_store_t *s) { return atomic_load(&mpg_self(s)->healthy); }

static void messages_close(messages_store_t *s) {
  if (!s) return;
  mpg_t *m = mpg_self(s);
  mpg_writer_close(m); /* drains: callbacks may still use the other ops */
  free(m);
}

static const messages_store_ops_t messages_pg_ops = {
    .channel_create = channel_create,
    .channel_get = channel_get,
    .channel_update = channel_update,
    .channel_delete = channel_delete,
    .channel_list_public = channel_list_public,
    .channel_list_for_user = channel_list_for_user,
    .dm_get_or_create = dm_get_or_create,
    .member_add = member_add,
    .member_remove = member_remove,
    .member_get = member_get,
    .member_count_for_user = member_count_for_user,
    .member_set_muted = member_set_muted,
    .members_list = members_list,
    .read_set = read_set,
    .append = mpg_append,
    .messages_page = mpg_messages_page,
    .message_get = mpg_message_get,
    .message_edit = mpg_message_edit,
    .message_delete = mpg_message_delete,
    .attachment_visible = mpg_attachment_visible,
    .stats = mpg_stats,
    .healthy = healthy,
    .close = messages_close,
};

unsigned messages_pg_node_id(messages_store_t *s) { return atomic_load(&mpg_self(s)->node_id); }

int messages_pg_open(pg_db_t *db, const messages_pg_opts_t *opts, messages_store_t **out) {
  if (!db || !opts || !out || !opts->loop || (opts->fixed_node && opts->node_id > MSG_NODE_ID_MAX) ||
      opts->batch_max > 100000 || (opts->lease_ttl_ms && opts->lease_ttl_ms < 300))
    return -EINVAL;
  char err[256];
  int r = pg_db_require_schema(db, MESSAGES_PG_SCHEMA_MIN, opts->migrate_on_open, err, sizeof err);
  if (r < 0) {
    log_error("store", "messages: %s", err);
    return r;
  }
  mpg_t *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->base.ops = &messages_pg_ops;
  m->db = db;
  atomic_init(&m->healthy, true);
  r = mpg_writer_open(m, opts);
  if (r < 0) {
    mpg_writer_close(m);
    free(m);
    return r;
  }
  *out = &m->base;
  return 0;
}
