/* messages_pg_msgs.c — message pages, get, edit and soft delete on a
 * pooled connection. Contract in store/messages_store.h; appends are in
 * messages_pg_writer.c.
 *
 * A result is copied into the single allocation the interface promises:
 * the records first (aligned), then every byte their str_t point to, each
 * value NUL-terminated. Sizes are known from the PGresult before copying,
 * so one malloc suffices. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/pg/messages_pg_int.h"

#define MSG_COLS                                                                                   \
  "id, channel_id, seq, author_id, body, attachments, nonce, created_at, edited_at, deleted"

static const pg_stmt_t st_before = {
    "msgs_msg_before", "SELECT " MSG_COLS " FROM messages WHERE channel_id = $1::int8 "
                       "AND seq < $2::int8 ORDER BY seq DESC LIMIT $3::int8"};
static const pg_stmt_t st_after = {
    "msgs_msg_after", "SELECT " MSG_COLS " FROM messages WHERE channel_id = $1::int8 "
                      "AND seq > $2::int8 ORDER BY seq LIMIT $3::int8"};
static const pg_stmt_t st_get = {
    "msgs_msg_get", "SELECT " MSG_COLS " FROM messages WHERE id = $1::int8 AND channel_id = $2::int8"};
static const pg_stmt_t st_who = {
    "msgs_msg_who",
    "SELECT author_id, deleted FROM messages WHERE id = $1::int8 AND channel_id = $2::int8"};
static const pg_stmt_t st_edit = {
    "msgs_msg_edit", "UPDATE messages SET body = $1::text, edited_at = $2::int8 "
                     "WHERE id = $3::int8 AND channel_id = $4::int8 AND NOT deleted "
                     "AND ($5::int8 = 0 OR author_id = $5::int8) RETURNING " MSG_COLS};
static const pg_stmt_t st_delete = {
    "msgs_msg_delete", "UPDATE messages SET body = '', attachments = NULL, deleted = true, "
                       "edited_at = $1::int8 WHERE id = $2::int8 AND channel_id = $3::int8 "
                       "AND NOT deleted AND ($4::int8 = 0 OR author_id = $4::int8) "
                       "RETURNING " MSG_COLS};

/* Checks one row against the limits; adds its text bytes to *text. */
static bool row_ok(const PGresult *r, int row, size_t *text) {
  int64_t v;
  bool b;
  for (int col = 0; col < 4; col++)
    if (pg_get_i64(r, row, col, &v) < 0) return false;
  if (pg_get_i64(r, row, 7, &v) < 0 || pg_get_i64(r, row, 8, &v) < 0 ||
      pg_get_bool(r, row, 9, &b) < 0 || PQgetisnull(r, row, 4))
    return false;
  size_t body = (size_t)PQgetlength(r, row, 4), att = (size_t)PQgetlength(r, row, 5),
         nonce = (size_t)PQgetlength(r, row, 6);
  if (body > MSG_BODY_MAX || att > MSG_ATTACHMENTS_MAX || nonce > MSG_NONCE_MAX) return false;
  *text += body + att + nonce + 3;
  return true;
}

static char *put(char **text, const PGresult *r, int row, int col, str_t *out) {
  if (PQgetisnull(r, row, col)) {
    *out = (str_t){NULL, 0};
    return *text;
  }
  size_t n = (size_t)PQgetlength(r, row, col);
  memcpy(*text, PQgetvalue(r, row, col), n);
  (*text)[n] = '\0';
  *out = (str_t){*text, n};
  *text += n + 1;
  return *text;
}

/* Copies rows [0, n) of r into one allocation, in reverse order when
 * reverse. 0 and *out, -EIO (a row beyond the limits: written behind the
 * store's back), -ENOMEM. */
static int build(mpg_t *m, const PGresult *r, int n, bool reverse, msg_rec_t **out) {
  size_t text = 0;
  for (int i = 0; i < n; i++) {
    if (!row_ok(r, i, &text)) {
      log_error("store", "messages: a message row exceeds the field limits");
      atomic_store(&m->healthy, false);
      return -EIO;
    }
  }
  msg_rec_t *recs = malloc((size_t)n * sizeof *recs + text + 1);
  if (!recs) return -ENOMEM;
  char *t = (char *)(recs + n);
  for (int i = 0; i < n; i++) {
    msg_rec_t *x = &recs[reverse ? n - 1 - i : i];
    memset(x, 0, sizeof *x);
    pg_get_i64(r, i, 0, &x->id);
    pg_get_i64(r, i, 1, &x->channel_id);
    pg_get_i64(r, i, 2, &x->seq);
    pg_get_i64(r, i, 3, &x->author_id);
    put(&t, r, i, 4, &x->body);
    put(&t, r, i, 5, &x->attachments);
    put(&t, r, i, 6, &x->nonce);
    pg_get_i64(r, i, 7, &x->created_at);
    pg_get_i64(r, i, 8, &x->edited_at);
    pg_get_bool(r, i, 9, &x->deleted);
  }
  *out = recs;
  return 0;
}

int mpg_messages_page(messages_store_t *s, int64_t channel_id, msg_dir_t dir, int64_t seq,
                      size_t limit, msg_page_t *out) {
  mpg_t *m = mpg_self(s);
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  if (limit == 0 || limit > MSG_PAGE_MAX || (dir != MSG_BEFORE && dir != MSG_AFTER))
    return -EINVAL;
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, channel_id);
  pg_p_i64(&p, seq);
  pg_p_i64(&p, (int64_t)limit + 1); /* one row more than asked tells whether there are more */
  PGresult *r;
  int e = mpg_answer(m, pg_exec(c, dir == MSG_BEFORE ? &st_before : &st_after, &p, &r,
                                "messages_page"));
  int rows = e == 0 ? PQntuples(r) : 0;
  if (e == 0 && rows == 0) e = mpg_channel_exists(m, c, channel_id, "messages_page");
  pg_db_release(m->db, c);
  if (e < 0) {
    PQclear(r);
    return e;
  }
  int n = rows > (int)limit ? (int)limit : rows;
  /* BEFORE reads newest first (to stop after `limit`): turn it around. */
  e = build(m, r, n, dir == MSG_BEFORE, &out->items);
  PQclear(r);
  if (e < 0) {
    out->items = NULL;
    return e;
  }
  out->count = (size_t)n;
  out->more = rows > (int)limit;
  return 0;
}

int mpg_message_get(messages_store_t *s, int64_t channel_id, int64_t id, msg_rec_t **out) {
  mpg_t *m = mpg_self(s);
  if (!out) return -EINVAL;
  *out = NULL;
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, id);
  pg_p_i64(&p, channel_id);
  PGresult *r;
  int e = mpg_answer(m, pg_exec(c, &st_get, &p, &r, "message_get"));
  pg_db_release(m->db, c);
  if (e < 0) return e;
  e = PQntuples(r) == 0 ? -ENOENT : build(m, r, 1, false, out);
  PQclear(r);
  return e;
}

/* Why an edit/delete matched no row: -ENOENT (no such message), -EPERM
 * (another author), 1 (the message is deleted), -EIO. */
static int why_not(mpg_t *m, pg_conn_t *c, int64_t channel_id, int64_t id,
                   int64_t expected_author, const char *op) {
  pg_params_t p = {0};
  pg_p_i64(&p, id);
  pg_p_i64(&p, channel_id);
  PGresult *r;
  int e = mpg_answer(m, pg_exec(c, &st_who, &p, &r, op));
  if (e < 0) return e;
  int64_t author = 0;
  bool deleted = false;
  if (PQntuples(r) == 0) {
    e = -ENOENT;
  } else if (pg_get_i64(r, 0, 0, &author) < 0 || pg_get_bool(r, 0, 1, &deleted) < 0) {
    e = mpg_answer(m, -EIO);
  } else if (expected_author != MSG_ANY_AUTHOR && author != expected_author) {
    e = -EPERM;
  } else if (deleted) {
    e = 1;
  } else {
    /* The UPDATE matched nothing, yet the row qualifies now. Soft delete
     * is final and author_id never changes, so no concurrent writer of any
     * process can cause this: report it rather than guess. */
    log_error("store", "messages %s: message %lld changed under the update", op, (long long)id);
    e = mpg_answer(m, -EIO);
  }
  PQclear(r);
  return e;
}

/* Runs an UPDATE ... RETURNING on one message: 0 (updated; *out if
 * asked), 1 (no row matched), or an error. */
static int update_returning(mpg_t *m, pg_conn_t *c, const pg_stmt_t *st, const pg_params_t *p,
                            msg_rec_t **out, const char *op) {
  PGresult *r;
  int e = mpg_answer(m, pg_exec(c, st, p, &r, op));
  if (e < 0) return e;
  if (PQntuples(r) == 0) e = 1;
  else if (out) e = build(m, r, 1, false, out);
  PQclear(r);
  return e;
}

int mpg_message_edit(messages_store_t *s, int64_t channel_id, int64_t id, int64_t expected_author,
                     str_t body, int64_t now_ms, msg_rec_t **out) {
  mpg_t *m = mpg_self(s);
  if (out) *out = NULL;
  if (!mpg_slice_ok(body, MSG_BODY_MAX)) return -EINVAL;
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_text(&p, body.p, body.n);
  pg_p_i64(&p, now_ms);
  pg_p_i64(&p, id);
  pg_p_i64(&p, channel_id);
  pg_p_i64(&p, expected_author);
  int r = update_returning(m, c, &st_edit, &p, out, "message_edit");
  if (r == 1) {
    r = why_not(m, c, channel_id, id, expected_author, "message_edit");
    if (r == 1) r = -ENOENT; /* deleted: nothing left to edit */
  }
  pg_db_release(m->db, c);
  return r;
}

int mpg_message_delete(messages_store_t *s, int64_t channel_id, int64_t id,
                       int64_t expected_author, int64_t now_ms, msg_rec_t **out) {
  mpg_t *m = mpg_self(s);
  if (out) *out = NULL;
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_i64(&p, now_ms);
  pg_p_i64(&p, id);
  pg_p_i64(&p, channel_id);
  pg_p_i64(&p, expected_author);
  int r = update_returning(m, c, &st_delete, &p, out, "message_delete");
  if (r == 1) {
    r = why_not(m, c, channel_id, id, expected_author, "message_delete");
    /* Already deleted: idempotent, answer with the message as it is. */
    if (r == 1) {
      r = 0;
      if (out) {
        pg_params_t q = {0};
        pg_p_i64(&q, id);
        pg_p_i64(&q, channel_id);
        PGresult *res;
        r = mpg_answer(m, pg_exec(c, &st_get, &q, &res, "message_delete"));
        if (r == 0) {
          r = PQntuples(res) == 0 ? -ENOENT : build(m, res, 1, false, out);
          PQclear(res);
        }
      }
    }
  }
  pg_db_release(m->db, c);
  return r;
}

/* The key's rows (primary key prefix), each checked against the caller's
 * membership and the message's deleted flag (both primary keys). */
static const pg_stmt_t st_att_visible = {
    "msgs_att_visible",
    "SELECT EXISTS (SELECT 1 FROM attachments a "
    "JOIN members b ON b.channel_id = a.channel_id AND b.user_id = $2::int8 "
    "JOIN messages m ON m.id = a.message_id "
    "WHERE a.media_key = $1::text AND NOT m.deleted)"};

int mpg_attachment_visible(messages_store_t *s, const char *key, int64_t user_id) {
  mpg_t *m = mpg_self(s);
  if (!key || user_id <= 0) return -EINVAL;
  str_t k = {key, strnlen(key, MSG_ATTACH_KEY_MAX + 1)};
  if (!mpg_keys_ok(&k, 1)) return -EINVAL;
  pg_conn_t *c = mpg_take(m);
  if (!c) return -EIO;
  pg_params_t p = {0};
  pg_p_text(&p, k.p, k.n);
  pg_p_i64(&p, user_id);
  PGresult *r;
  int e = mpg_answer(m, pg_exec(c, &st_att_visible, &p, &r, "attachment_visible"));
  pg_db_release(m->db, c);
  if (e < 0) return e;
  bool v = false;
  if (PQntuples(r) != 1 || pg_get_bool(r, 0, 0, &v) < 0) e = mpg_answer(m, -EIO);
  PQclear(r);
  return e < 0 ? e : v ? 1 : 0;
}
