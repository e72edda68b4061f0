/* messages_sqlite_msgs.c — message reads, edit and soft delete on the
 * shared connection. Contract in store/messages_store.h; the appends are
 * in messages_sqlite_writer.c.
 *
 * Results are built in two buffers while stepping (records, whose str_t
 * hold offsets, and their bytes), then moved into the single allocation
 * the interface promises, where the offsets become pointers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/sqlite/messages_sqlite_int.h"

typedef struct {
  buf_t recs; /* msg_rec_t with str_t.p = offset + 1 into text (0: NULL) */
  buf_t text;
  size_t count;
} builder_t;

/* Copies n bytes and a NUL into b->text; returns the encoded offset. */
static const char *keep(builder_t *b, const void *p, size_t n) {
  size_t off = b->text.len;
  buf_append(&b->text, p ? p : "", n);
  buf_append_char(&b->text, '\0');
  return (const char *)(uintptr_t)(off + 1);
}

/* Reads MSG_COLS of the current row into the builder. 0, -EIO (a row
 * beyond the limits, written behind the store's back) or -ENOMEM. */
static int add_row(msq_t *m, builder_t *b, sqlite3_stmt *st) {
  msg_rec_t r;
  memset(&r, 0, sizeof r);
  r.id = sqlite3_column_int64(st, 0);
  r.channel_id = sqlite3_column_int64(st, 1);
  r.seq = sqlite3_column_int64(st, 2);
  r.author_id = sqlite3_column_int64(st, 3);
  const unsigned char *body = sqlite3_column_text(st, 4);
  size_t body_n = (size_t)sqlite3_column_bytes(st, 4);
  bool has_att = sqlite3_column_type(st, 5) != SQLITE_NULL;
  const unsigned char *att = has_att ? sqlite3_column_text(st, 5) : NULL;
  size_t att_n = has_att ? (size_t)sqlite3_column_bytes(st, 5) : 0;
  bool has_nonce = sqlite3_column_type(st, 6) != SQLITE_NULL;
  const void *nonce = has_nonce ? sqlite3_column_blob(st, 6) : NULL;
  size_t nonce_n = has_nonce ? (size_t)sqlite3_column_bytes(st, 6) : 0;
  if (!body || body_n > MSG_BODY_MAX || att_n > MSG_ATTACHMENTS_MAX || nonce_n > MSG_NONCE_MAX ||
      (has_att && !att)) {
    log_error("store", "messages: message %lld exceeds the field limits", (long long)r.id);
    atomic_store(&m->healthy, false);
    return -EIO;
  }
  r.body = (str_t){keep(b, body, body_n), body_n};
  if (has_att) r.attachments = (str_t){keep(b, att, att_n), att_n};
  if (has_nonce) r.nonce = (str_t){keep(b, nonce, nonce_n), nonce_n};
  r.created_at = sqlite3_column_int64(st, 7);
  r.edited_at = sqlite3_column_int64(st, 8);
  r.deleted = sqlite3_column_int(st, 9) != 0;
  buf_append(&b->recs, &r, sizeof r);
  if (b->recs.oom || b->text.oom) return -ENOMEM;
  b->count++;
  return 0;
}

static void builder_free(builder_t *b) {
  buf_free(&b->recs);
  buf_free(&b->text);
}

static void fix(str_t *v, char *text) {
  uintptr_t off = (uintptr_t)v->p;
  v->p = off ? text + (off - 1) : NULL;
}

/* Moves the builder into one allocation (records first, so aligned); in
 * reverse record order when reverse. NULL when out of memory. Frees b. */
static msg_rec_t *finish(builder_t *b, bool reverse) {
  size_t rec_bytes = b->count * sizeof(msg_rec_t);
  msg_rec_t *recs = malloc(rec_bytes + b->text.len + 1);
  if (recs) {
    char *text = (char *)recs + rec_bytes;
    if (b->text.len) memcpy(text, b->text.data, b->text.len);
    const msg_rec_t *src = (const msg_rec_t *)(void *)b->recs.data;
    for (size_t i = 0; i < b->count; i++) {
      msg_rec_t *r = &recs[reverse ? b->count - 1 - i : i];
      *r = src[i];
      fix(&r->body, text);
      fix(&r->attachments, text);
      fix(&r->nonce, text);
    }
  }
  builder_free(b);
  return recs;
}

int msq_messages_page(messages_store_t *s, int64_t channel_id, msg_dir_t dir, int64_t seq,
                      size_t limit, msg_page_t *out) {
  msq_t *m = msq_self(s);
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  if (limit == 0 || limit > MSG_PAGE_MAX || (dir != MSG_BEFORE && dir != MSG_AFTER))
    return -EINVAL;
  builder_t b = {BUF_INIT, BUF_INIT, 0};
  bool more = false;
  int r = 0;
  sqlite_db_lock(m->db);
  sqlite3_stmt *st = m->st[dir == MSG_BEFORE ? MST_MSG_BEFORE : MST_MSG_AFTER];
  int rc = sqlite3_bind_int64(st, 1, channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, seq);
  /* one row more than asked tells whether there are more */
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, (int64_t)limit + 1);
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (b.count == limit) {
      more = true;
      rc = SQLITE_DONE;
      break;
    }
    r = add_row(m, &b, st);
    if (r < 0) break;
    rc = SQLITE_OK;
  }
  if (r == 0 && rc != SQLITE_DONE) r = msq_fail(m, m->conn, "messages_page", rc);
  msq_idle(st);
  if (r == 0 && b.count == 0) r = msq_channel_exists(m, channel_id, "messages_page");
  else if (r == 0) msq_ok(m, 0);
  sqlite_db_unlock(m->db);
  if (r < 0) {
    builder_free(&b);
    return r;
  }
  size_t count = b.count;
  /* BEFORE walks newest first (to stop after `limit`): turn it around. */
  out->items = finish(&b, dir == MSG_BEFORE);
  if (!out->items) return -ENOMEM;
  out->count = count;
  out->more = more;
  return 0;
}

/* Reads the one row of a stepped statement into *out (if out). */
static int one_row(msq_t *m, sqlite3_stmt *st, msg_rec_t **out) {
  if (!out) return 0;
  builder_t b = {BUF_INIT, BUF_INIT, 0};
  int r = add_row(m, &b, st);
  if (r < 0) {
    builder_free(&b);
    return r;
  }
  *out = finish(&b, false);
  return *out ? 0 : -ENOMEM;
}

/* Lock held. 0 and *out, -ENOENT, -EIO, -ENOMEM. */
static int get_message(msq_t *m, int64_t channel_id, int64_t id, msg_rec_t **out,
                       const char *op) {
  sqlite3_stmt *st = m->st[MST_MSG_GET];
  int rc = sqlite3_bind_int64(st, 1, id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int r;
  if (rc == SQLITE_ROW) {
    r = one_row(m, st, out);
    if (r == 0) msq_ok(m, 0);
  } else if (rc == SQLITE_DONE) {
    r = msq_ok(m, -ENOENT);
  } else {
    r = msq_fail(m, m->conn, op, rc);
  }
  msq_idle(st);
  return r;
}

int msq_message_get(messages_store_t *s, int64_t channel_id, int64_t id, msg_rec_t **out) {
  msq_t *m = msq_self(s);
  if (!out) return -EINVAL;
  *out = NULL;
  sqlite_db_lock(m->db);
  int r = get_message(m, channel_id, id, out, "message_get");
  sqlite_db_unlock(m->db);
  return r;
}

/* Why an edit/delete matched no row: -ENOENT (no such message), -EPERM
 * (another author), 1 (the message is deleted), -EIO. Lock held. */
static int why_not(msq_t *m, int64_t channel_id, int64_t id, int64_t expected_author,
                   const char *op) {
  sqlite3_stmt *st = m->st[MST_MSG_WHO];
  int rc = sqlite3_bind_int64(st, 1, id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int r;
  if (rc == SQLITE_ROW) {
    int64_t author = sqlite3_column_int64(st, 0);
    bool deleted = sqlite3_column_int(st, 1) != 0;
    if (expected_author != MSG_ANY_AUTHOR && author != expected_author) {
      r = msq_ok(m, -EPERM);
    } else if (deleted) {
      r = msq_ok(m, 1);
    } else {
      /* The UPDATE matched nothing, yet the row qualifies: someone changed
       * it in between, which nothing in this process can do. */
      log_error("store", "messages %s: message %lld changed under the update", op,
                (long long)id);
      atomic_store(&m->healthy, false);
      r = -EIO;
    }
  } else if (rc == SQLITE_DONE) {
    r = msq_ok(m, -ENOENT);
  } else {
    r = msq_fail(m, m->conn, op, rc);
  }
  msq_idle(st);
  return r;
}

/* Runs a bound UPDATE ... RETURNING on one message: 0 (updated; *out if
 * asked), 1 (no row matched), -EIO, -ENOMEM. Lock held. */
static int update_returning(msq_t *m, sqlite3_stmt *st, int rc, msg_rec_t **out,
                            const char *op) {
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int r = 0;
  if (rc == SQLITE_ROW) {
    r = one_row(m, st, out);
    /* The change is made at the first step; stepping to the end completes
     * the statement (and its implicit transaction) before we report. */
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
      if (out) {
        free(*out);
        *out = NULL;
      }
      r = msq_fail(m, m->conn, op, rc);
    }
  } else if (rc == SQLITE_DONE) {
    r = 1;
  } else {
    r = msq_fail(m, m->conn, op, rc);
  }
  msq_idle(st);
  if (r == 0) msq_ok(m, 0);
  return r;
}

int msq_message_edit(messages_store_t *s, int64_t channel_id, int64_t id,
                     int64_t expected_author, str_t body, int64_t now_ms, msg_rec_t **out) {
  msq_t *m = msq_self(s);
  if (out) *out = NULL;
  if (!msq_slice_ok(body, MSG_BODY_MAX)) return -EINVAL;
  msq_gate_lock(&m->gate);
  sqlite_db_lock(m->db);
  sqlite3_stmt *st = m->st[MST_MSG_EDIT];
  int rc = sqlite3_bind_text(st, 1, body.n ? body.p : "", (int)body.n, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, now_ms);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, expected_author);
  int r = update_returning(m, st, rc, out, "message_edit");
  if (r == 1) {
    r = why_not(m, channel_id, id, expected_author, "message_edit");
    if (r == 1) r = -ENOENT; /* deleted: nothing left to edit */
  }
  sqlite_db_unlock(m->db);
  msq_gate_unlock(&m->gate);
  return r;
}

int msq_message_delete(messages_store_t *s, int64_t channel_id, int64_t id,
                       int64_t expected_author, int64_t now_ms, msg_rec_t **out) {
  msq_t *m = msq_self(s);
  if (out) *out = NULL;
  msq_gate_lock(&m->gate);
  sqlite_db_lock(m->db);
  sqlite3_stmt *st = m->st[MST_MSG_DELETE];
  int rc = sqlite3_bind_int64(st, 1, now_ms);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, expected_author);
  int r = update_returning(m, st, rc, out, "message_delete");
  if (r == 1) {
    r = why_not(m, channel_id, id, expected_author, "message_delete");
    /* Already deleted: idempotent, answer with the message as it is. */
    if (r == 1) r = out ? get_message(m, channel_id, id, out, "message_delete") : 0;
  }
  sqlite_db_unlock(m->db);
  msq_gate_unlock(&m->gate);
  return r;
}

int msq_attachment_visible(messages_store_t *s, const char *key, int64_t user_id) {
  msq_t *m = msq_self(s);
  if (!key || user_id <= 0) return -EINVAL;
  str_t k = {key, strnlen(key, MSG_ATTACH_KEY_MAX + 1)};
  if (!msq_keys_ok(&k, 1)) return -EINVAL;
  sqlite_db_lock(m->db);
  sqlite3_stmt *st = m->st[MST_ATT_VISIBLE];
  int rc = sqlite3_bind_text(st, 1, k.p, (int)k.n, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, user_id);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int r;
  if (rc == SQLITE_ROW)
    r = msq_ok(m, 1);
  else if (rc == SQLITE_DONE)
    r = msq_ok(m, 0);
  else
    r = msq_fail(m, m->conn, "attachment_visible", rc);
  msq_idle(st);
  sqlite_db_unlock(m->db);
  return r;
}
