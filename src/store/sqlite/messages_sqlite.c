/* messages_sqlite.c — the messages store on SQLite: open/close, the shared
 * helpers, channels, DMs and members. Contract in messages_sqlite.h and
 * store/messages_store.h; file map in messages_sqlite_int.h.
 *
 * Every operation follows the users store's pattern under the db lock:
 * bind, step, read, then reset and clear the bindings, so that the next
 * caller finds the statement idle and no pointer to the caller's strings
 * survives the call (text is bound SQLITE_STATIC: only read during the
 * call). Writes take the gate first (why: messages_sqlite.h). */
#include "store/sqlite/messages_sqlite.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"
#include "store/sqlite/messages_sqlite_int.h"

#define CH_COLS "id, kind, name, topic, private, owner_id, dm_lo, dm_hi, created_at, last_seq"
#define CH_COLS_C                                                                                  \
  "c.id, c.kind, c.name, c.topic, c.private, c.owner_id, c.dm_lo, c.dm_hi, c.created_at, "         \
  "c.last_seq"
#define MB_COLS "channel_id, user_id, joined_at, last_read_seq, muted"
#define MSG_COLS                                                                                   \
  "id, channel_id, seq, author_id, body, attachments, nonce, created_at, edited_at, deleted"

static const char *const sql_text[MST_COUNT] = {
    /* IMMEDIATE: take the write lock at BEGIN, so that what a transaction
     * reads (a DM's absence) cannot change before it writes. */
    [MST_BEGIN] = "BEGIN IMMEDIATE",
    [MST_COMMIT] = "COMMIT",
    [MST_ROLLBACK] = "ROLLBACK",
    [MST_CH_INSERT] = "INSERT INTO channels(kind, name, topic, private, owner_id, created_at) "
                      "VALUES ('channel', ?, ?, ?, ?, ?)",
    [MST_CH_GET] = "SELECT " CH_COLS " FROM channels WHERE id = ?",
    [MST_CH_KIND] = "SELECT kind FROM channels WHERE id = ?",
    /* ?1 NULL keeps the name; a DM (no name) matches only when ?1 is NULL. */
    [MST_CH_UPDATE] = "UPDATE channels SET name = coalesce(?1, name), topic = coalesce(?2, topic) "
                      "WHERE id = ?3 AND (?1 IS NULL OR kind = 'channel')",
    [MST_CH_DELETE] = "DELETE FROM channels WHERE id = ?",
    /* The terms match the partial index channels_public. */
    [MST_CH_LIST_PUBLIC] = "SELECT " CH_COLS " FROM channels "
                           "WHERE kind = 'channel' AND private = 0 AND id > ? ORDER BY id LIMIT ?",
    [MST_CH_LIST_USER] = "SELECT " CH_COLS_C ", "
                         "m.channel_id, m.user_id, m.joined_at, m.last_read_seq, m.muted "
                         "FROM members m JOIN channels c ON c.id = m.channel_id "
                         "WHERE m.user_id = ? AND m.channel_id > ? "
                         "ORDER BY m.channel_id LIMIT ?",
    [MST_DM_GET] = "SELECT " CH_COLS " FROM channels WHERE dm_lo = ? AND dm_hi = ?",
    [MST_DM_INSERT] = "INSERT INTO channels(kind, private, dm_lo, dm_hi, created_at) "
                      "VALUES ('dm', 1, ?, ?, ?)",
    /* A new member has read everything so far. No row when the channel is
     * missing; ON CONFLICT keeps an existing membership untouched (the
     * WHERE is required by SQLite's parser before ON CONFLICT). */
    [MST_MB_INSERT] = "INSERT INTO members(channel_id, user_id, joined_at, last_read_seq) "
                      "SELECT id, ?2, ?3, last_seq FROM channels WHERE id = ?1 "
                      "ON CONFLICT DO NOTHING",
    [MST_MB_DELETE] = "DELETE FROM members WHERE channel_id = ? AND user_id = ?",
    [MST_MB_GET] = "SELECT " MB_COLS " FROM members WHERE channel_id = ? AND user_id = ?",
    [MST_MB_MUTE] = "UPDATE members SET muted = ? WHERE channel_id = ? AND user_id = ?",
    [MST_MB_COUNT_USER] = "SELECT COUNT(*) FROM members WHERE user_id = ?",
    [MST_MB_LIST] = "SELECT " MB_COLS " FROM members WHERE channel_id = ? AND user_id > ? "
                    "ORDER BY user_id LIMIT ?",
    /* Monotonic and clamped in one statement: no read-modify-write race. */
    [MST_MB_READ] = "UPDATE members SET last_read_seq = max(last_read_seq, "
                    "min(?3, (SELECT last_seq FROM channels WHERE id = ?1))) "
                    "WHERE channel_id = ?1 AND user_id = ?2 RETURNING last_read_seq",
    [MST_MSG_BEFORE] = "SELECT " MSG_COLS " FROM messages WHERE channel_id = ? AND seq < ? "
                       "ORDER BY seq DESC LIMIT ?",
    [MST_MSG_AFTER] = "SELECT " MSG_COLS " FROM messages WHERE channel_id = ? AND seq > ? "
                      "ORDER BY seq LIMIT ?",
    [MST_MSG_GET] = "SELECT " MSG_COLS " FROM messages WHERE id = ? AND channel_id = ?",
    [MST_MSG_WHO] = "SELECT author_id, deleted FROM messages WHERE id = ? AND channel_id = ?",
    [MST_MSG_EDIT] = "UPDATE messages SET body = ?1, edited_at = ?2 "
                     "WHERE id = ?3 AND channel_id = ?4 AND deleted = 0 "
                     "AND (?5 = 0 OR author_id = ?5) RETURNING " MSG_COLS,
    [MST_MSG_DELETE] = "UPDATE messages SET body = '', attachments = NULL, deleted = 1, "
                       "edited_at = ?1 WHERE id = ?2 AND channel_id = ?3 AND deleted = 0 "
                       "AND (?4 = 0 OR author_id = ?4) RETURNING " MSG_COLS,
    /* The key's rows (primary key prefix), each checked against the
     * caller's membership (members' primary key) and the message's
     * deleted flag (messages' primary key): three index lookups a row. */
    [MST_ATT_VISIBLE] = "SELECT 1 FROM attachments a "
                        "JOIN members b ON b.channel_id = a.channel_id AND b.user_id = ?2 "
                        "JOIN messages m ON m.id = a.message_id "
                        "WHERE a.media_key = ?1 AND m.deleted = 0 LIMIT 1",
};

/* ---- shared helpers ---- */

void msq_gate_init(msq_gate_t *g) {
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->next = g->serving = 0;
}

void msq_gate_destroy(msq_gate_t *g) {
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
}

void msq_gate_lock(msq_gate_t *g) {
  pthread_mutex_lock(&g->mu);
  uint64_t ticket = g->next++;
  while (ticket != g->serving) pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

void msq_gate_unlock(msq_gate_t *g) {
  pthread_mutex_lock(&g->mu);
  g->serving++;
  /* broadcast: the next ticket's holder is one of possibly several waiters */
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

int msq_fail(msq_t *m, sqlite3 *c, const char *op, int rc) {
  log_error("store", "messages %s: %s (sqlite %d)", op, sqlite3_errmsg(c), rc);
  atomic_store(&m->healthy, false);
  return -EIO;
}

int msq_ok(msq_t *m, int r) {
  atomic_store(&m->healthy, true);
  return r;
}

void msq_idle(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

bool msq_fits(const char *s, size_t max) { return s && strnlen(s, max + 1) <= max; }

bool msq_slice_ok(str_t v, size_t max) {
  if (v.n > max || (!v.p && v.n)) return false;
  return v.n == 0 || !memchr(v.p, 0, v.n);
}

bool msq_keys_ok(const str_t *keys, size_t nkeys) {
  if (nkeys > MSG_ATTACH_KEYS_MAX || (nkeys && !keys)) return false;
  for (size_t i = 0; i < nkeys; i++)
    if (keys[i].n == 0 || !msq_slice_ok(keys[i], MSG_ATTACH_KEY_MAX) ||
        !utf8_valid((const uint8_t *)keys[i].p, keys[i].n))
      return false;
  return true;
}

/* Binds a string known to fit (checked by msq_fits). */
static int bind_str(sqlite3_stmt *st, int i, const char *s) {
  return sqlite3_bind_text(st, i, s, (int)strlen(s), SQLITE_STATIC);
}

/* Steps a bound statement that returns no row, then idles it. A binding
 * error (rc != SQLITE_OK) is passed through without stepping. */
static int run(sqlite3_stmt *st, int rc) {
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  msq_idle(st);
  return rc;
}

/* Maps a failed write: the constraints the schema declares are answers. */
static int write_error(msq_t *m, const char *op, int rc) {
  if (rc == SQLITE_CONSTRAINT_UNIQUE) return msq_ok(m, -EEXIST);
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return msq_ok(m, -ENOENT);
  return msq_fail(m, m->conn, op, rc);
}

/* Ends a failed transaction of the shared connection (some errors end it
 * by themselves, hence the test), keeping r unless ROLLBACK fails too. */
static int rollback(msq_t *m, int r, const char *op) {
  if (!sqlite3_get_autocommit(m->conn)) {
    int rc = run(m->st[MST_ROLLBACK], SQLITE_OK);
    if (rc != SQLITE_DONE) return msq_fail(m, m->conn, op, rc);
  }
  return r;
}

static int begin(msq_t *m, const char *op) {
  int rc = run(m->st[MST_BEGIN], SQLITE_OK);
  return rc == SQLITE_DONE ? 0 : msq_fail(m, m->conn, op, rc);
}

static int commit(msq_t *m, const char *op) {
  int rc = run(m->st[MST_COMMIT], SQLITE_OK);
  return rc == SQLITE_DONE ? 0 : msq_fail(m, m->conn, op, rc);
}

static void lock_write(msq_t *m) {
  msq_gate_lock(&m->gate);
  sqlite_db_lock(m->db);
}

static void unlock_write(msq_t *m) {
  sqlite_db_unlock(m->db);
  msq_gate_unlock(&m->gate);
}

/* Copies a text column of at most max bytes into dst[max + 1]; NULL reads
 * as "" when null_ok. A longer value can only come from outside the store
 * (writes are checked): report it rather than truncate. */
static int col_text(sqlite3_stmt *st, int col, char *dst, size_t max, bool null_ok) {
  const unsigned char *t = sqlite3_column_text(st, col);
  size_t n = (size_t)sqlite3_column_bytes(st, col);
  if (!t) {
    dst[0] = '\0';
    return null_ok && sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : -1;
  }
  if (n > max) return -1;
  memcpy(dst, t, n);
  dst[n] = '\0';
  return 0;
}

/* Reads CH_COLS starting at column 0. */
static int read_channel(msq_t *m, sqlite3_stmt *st, channel_rec_t *out) {
  channel_rec_t r;
  memset(&r, 0, sizeof r);
  r.id = sqlite3_column_int64(st, 0);
  const unsigned char *kind = sqlite3_column_text(st, 1);
  bool dm = kind && strcmp((const char *)kind, "dm") == 0;
  r.kind = dm ? CHANNEL_KIND_DM : CHANNEL_KIND_CHANNEL;
  if (col_text(st, 2, r.name, MSG_CHANNEL_NAME_MAX, dm) < 0 ||
      col_text(st, 3, r.topic, MSG_CHANNEL_TOPIC_MAX, false) < 0) {
    log_error("store", "messages: channel %lld exceeds the field limits", (long long)r.id);
    atomic_store(&m->healthy, false);
    return -EIO;
  }
  r.is_private = sqlite3_column_int(st, 4) != 0;
  r.owner_id = sqlite3_column_int64(st, 5); /* NULL reads as 0 */
  r.dm_user_lo = sqlite3_column_int64(st, 6);
  r.dm_user_hi = sqlite3_column_int64(st, 7);
  r.created_at = sqlite3_column_int64(st, 8);
  r.last_seq = sqlite3_column_int64(st, 9);
  if (out) *out = r;
  return 0;
}

static void read_member(sqlite3_stmt *st, int col, member_rec_t *out) {
  out->channel_id = sqlite3_column_int64(st, col);
  out->user_id = sqlite3_column_int64(st, col + 1);
  out->joined_at = sqlite3_column_int64(st, col + 2);
  out->last_read_seq = sqlite3_column_int64(st, col + 3);
  out->muted = sqlite3_column_int(st, col + 4) != 0;
}

/* Runs a bound single-channel SELECT: 0 and *out, -ENOENT or -EIO. */
static int channel_select(msq_t *m, sqlite3_stmt *st, int rc, const char *op,
                          channel_rec_t *out) {
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int r;
  if (rc == SQLITE_ROW)
    r = read_channel(m, st, out) == 0 ? msq_ok(m, 0) : -EIO;
  else if (rc == SQLITE_DONE)
    r = msq_ok(m, -ENOENT);
  else
    r = msq_fail(m, m->conn, op, rc);
  msq_idle(st);
  return r;
}

static int get_channel(msq_t *m, int64_t id, channel_rec_t *out, const char *op) {
  sqlite3_stmt *st = m->st[MST_CH_GET];
  return channel_select(m, st, sqlite3_bind_int64(st, 1, id), op, out);
}

/* The kind of channel id: 0 channel, 1 DM, -ENOENT, -EIO. Lock held. */
static int channel_kind(msq_t *m, int64_t id, const char *op) {
  sqlite3_stmt *st = m->st[MST_CH_KIND];
  int rc = sqlite3_bind_int64(st, 1, id);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int r;
  if (rc == SQLITE_ROW) {
    const unsigned char *k = sqlite3_column_text(st, 0);
    r = msq_ok(m, k && strcmp((const char *)k, "dm") == 0 ? 1 : 0);
  } else if (rc == SQLITE_DONE) {
    r = msq_ok(m, -ENOENT);
  } else {
    r = msq_fail(m, m->conn, op, rc);
  }
  msq_idle(st);
  return r;
}

int msq_channel_exists(msq_t *m, int64_t channel_id, const char *op) {
  int r = channel_kind(m, channel_id, op);
  return r < 0 ? r : 0;
}

/* Steps a bound UPDATE/DELETE; returns the changed row count or -EIO. */
static int change(msq_t *m, sqlite3_stmt *st, int rc, const char *op) {
  rc = run(st, rc);
  if (rc != SQLITE_DONE) return write_error(m, op, rc);
  return msq_ok(m, sqlite3_changes(m->conn));
}

/* Inserts (channel_id, user_id) if missing: 1 added, 0 already there,
 * -ENOENT (no such channel or user), -EIO. Lock held. */
static int insert_member(msq_t *m, int64_t channel_id, int64_t user_id, int64_t now_ms,
                         const char *op) {
  sqlite3_stmt *st = m->st[MST_MB_INSERT];
  int rc = sqlite3_bind_int64(st, 1, channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, user_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, now_ms);
  int n = change(m, st, rc, op);
  if (n != 0) return n; /* 1 or an error */
  /* Nothing inserted: the membership exists, or the channel does not. */
  st = m->st[MST_MB_GET];
  rc = sqlite3_bind_int64(st, 1, channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, user_id);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  msq_idle(st);
  if (rc == SQLITE_ROW) return msq_ok(m, 0);
  if (rc == SQLITE_DONE) return msq_ok(m, -ENOENT);
  return msq_fail(m, m->conn, op, rc);
}

/* ---- channels ---- */

static int channel_create(messages_store_t *s, const char *name, const char *topic,
                          bool is_private, int64_t owner_id, int64_t now_ms, channel_rec_t *out) {
  msq_t *m = msq_self(s);
  if (!topic) topic = "";
  if (!msq_fits(name, MSG_CHANNEL_NAME_MAX) || !*name || !msq_fits(topic, MSG_CHANNEL_TOPIC_MAX))
    return -EINVAL;
  lock_write(m);
  int r = begin(m, "channel_create begin");
  int64_t id = 0;
  if (r == 0) {
    sqlite3_stmt *st = m->st[MST_CH_INSERT];
    int rc = bind_str(st, 1, name);
    if (rc == SQLITE_OK) rc = bind_str(st, 2, topic);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 3, is_private ? 1 : 0);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, owner_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, now_ms);
    rc = run(st, rc);
    if (rc != SQLITE_DONE) r = write_error(m, "channel_create", rc);
    else id = sqlite3_last_insert_rowid(m->conn); /* exact: we hold the lock */
  }
  if (r == 0) {
    int n = insert_member(m, id, owner_id, now_ms, "channel_create member");
    if (n < 0) r = n;
  }
  if (r == 0) r = commit(m, "channel_create commit");
  if (r != 0) {
    r = rollback(m, r, "channel_create rollback");
  } else if (out) {
    memset(out, 0, sizeof *out);
    out->id = id;
    out->kind = CHANNEL_KIND_CHANNEL;
    out->is_private = is_private;
    strcpy(out->name, name); /* lengths checked above */
    strcpy(out->topic, topic);
    out->owner_id = owner_id;
    out->created_at = now_ms;
  }
  unlock_write(m);
  return r;
}

static int channel_get(messages_store_t *s, int64_t id, channel_rec_t *out) {
  msq_t *m = msq_self(s);
  sqlite_db_lock(m->db);
  int r = get_channel(m, id, out, "channel_get");
  sqlite_db_unlock(m->db);
  return r;
}

static int channel_update(messages_store_t *s, int64_t id, const char *name, const char *topic) {
  msq_t *m = msq_self(s);
  if (name && (!msq_fits(name, MSG_CHANNEL_NAME_MAX) || !*name)) return -EINVAL;
  if (topic && !msq_fits(topic, MSG_CHANNEL_TOPIC_MAX)) return -EINVAL;
  lock_write(m);
  sqlite3_stmt *st = m->st[MST_CH_UPDATE];
  int rc = name ? bind_str(st, 1, name) : sqlite3_bind_null(st, 1);
  if (rc == SQLITE_OK) rc = topic ? bind_str(st, 2, topic) : sqlite3_bind_null(st, 2);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, id);
  int r = change(m, st, rc, "channel_update");
  if (r == 0) {
    /* No row: missing channel, or a name given for a DM. */
    r = channel_kind(m, id, "channel_update");
    if (r >= 0) r = -EINVAL;
  } else if (r > 0) {
    r = 0;
  }
  unlock_write(m);
  return r;
}

static int channel_delete(messages_store_t *s, int64_t id) {
  msq_t *m = msq_self(s);
  lock_write(m);
  sqlite3_stmt *st = m->st[MST_CH_DELETE];
  int n = change(m, st, sqlite3_bind_int64(st, 1, id), "channel_delete");
  unlock_write(m);
  return n < 0 ? n : n == 0 ? -ENOENT : 0;
}

/* Steps a bound list query with LIMIT cap + 1 as parameter `limit_param`:
 * reads up to cap rows with read_row, sets *more. Returns the count. */
typedef int (*row_fn)(msq_t *m, sqlite3_stmt *st, void *out, size_t i);

static int list_rows(msq_t *m, sqlite3_stmt *st, int rc, int limit_param, size_t cap,
                     row_fn read_row, void *out, bool *more, const char *op) {
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, limit_param, (int64_t)cap + 1);
  size_t n = 0;
  bool extra = false;
  int r = 0;
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      extra = true;
      rc = SQLITE_DONE;
      break;
    }
    r = read_row(m, st, out, n);
    if (r < 0) break;
    n++;
    rc = SQLITE_OK;
  }
  if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_OK) r = msq_fail(m, m->conn, op, rc);
  msq_idle(st);
  if (r < 0) return r;
  if (more) *more = extra;
  return msq_ok(m, (int)n);
}

static bool list_args_ok(const void *out, size_t cap) {
  return out && cap > 0 && cap <= MSG_LIST_MAX;
}

static int row_channel(msq_t *m, sqlite3_stmt *st, void *out, size_t i) {
  return read_channel(m, st, (channel_rec_t *)out + i);
}

static int channel_list_public(messages_store_t *s, int64_t after_id, channel_rec_t *out,
                               size_t cap, bool *more) {
  msq_t *m = msq_self(s);
  if (!list_args_ok(out, cap)) return -EINVAL;
  sqlite_db_lock(m->db);
  sqlite3_stmt *st = m->st[MST_CH_LIST_PUBLIC];
  int r = list_rows(m, st, sqlite3_bind_int64(st, 1, after_id), 2, cap, row_channel, out, more,
                    "channel_list_public");
  sqlite_db_unlock(m->db);
  return r;
}

static int row_membership(msq_t *m, sqlite3_stmt *st, void *out, size_t i) {
  channel_membership_t *e = (channel_membership_t *)out + i;
  memset(e, 0, sizeof *e);
  int r = read_channel(m, st, &e->channel);
  if (r < 0) return r;
  read_member(st, 10, &e->member);
  return 0;
}

static int channel_list_for_user(messages_store_t *s, int64_t user_id, int64_t after_id,
                                 channel_membership_t *out, size_t cap, bool *more) {
  msq_t *m = msq_self(s);
  if (!list_args_ok(out, cap)) return -EINVAL;
  sqlite_db_lock(m->db);
  sqlite3_stmt *st = m->st[MST_CH_LIST_USER];
  int rc = sqlite3_bind_int64(st, 1, user_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, after_id);
  int r = list_rows(m, st, rc, 3, cap, row_membership, out, more, "channel_list_for_user");
  sqlite_db_unlock(m->db);
  return r;
}

/* ---- DMs ---- */

static int dm_get(msq_t *m, int64_t lo, int64_t hi, channel_rec_t *out, const char *op) {
  sqlite3_stmt *st = m->st[MST_DM_GET];
  int rc = sqlite3_bind_int64(st, 1, lo);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, hi);
  return channel_select(m, st, rc, op, out);
}

static int dm_get_or_create(messages_store_t *s, int64_t a, int64_t b, int64_t now_ms,
                            channel_rec_t *out, bool *created) {
  msq_t *m = msq_self(s);
  if (a <= 0 || b <= 0) return -EINVAL;
  int64_t lo = a < b ? a : b, hi = a < b ? b : a;
  bool made = false;
  lock_write(m);
  /* The common case, an existing DM, needs no transaction. */
  int r = dm_get(m, lo, hi, out, "dm_get_or_create");
  if (r == -ENOENT) {
    /* Look again inside the write transaction: another process may have
     * created it since; UNIQUE(dm_lo, dm_hi) backs this up. */
    r = begin(m, "dm_get_or_create begin");
    if (r == 0) r = dm_get(m, lo, hi, out, "dm_get_or_create");
    if (r == -ENOENT) {
      sqlite3_stmt *st = m->st[MST_DM_INSERT];
      int rc = sqlite3_bind_int64(st, 1, lo);
      if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, hi);
      if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, now_ms);
      rc = run(st, rc);
      r = rc == SQLITE_DONE ? 0 : write_error(m, "dm_get_or_create", rc);
      int64_t id = sqlite3_last_insert_rowid(m->conn);
      if (r == 0) {
        int n = insert_member(m, id, lo, now_ms, "dm_get_or_create member");
        if (n >= 0 && hi != lo) n = insert_member(m, id, hi, now_ms, "dm_get_or_create member");
        if (n < 0) r = n;
      }
      if (r == 0) r = get_channel(m, id, out, "dm_get_or_create");
      if (r == 0) r = commit(m, "dm_get_or_create commit");
      made = r == 0;
    } else if (r == 0) {
      r = commit(m, "dm_get_or_create commit"); /* read only: just ends it */
    }
    if (r != 0) r = rollback(m, r, "dm_get_or_create rollback");
  }
  unlock_write(m);
  if (r == 0 && created) *created = made;
  return r;
}

/* ---- members ---- */

static int member_add(messages_store_t *s, int64_t channel_id, int64_t user_id, int64_t now_ms,
                      bool *added) {
  msq_t *m = msq_self(s);
  lock_write(m);
  int r = insert_member(m, channel_id, user_id, now_ms, "member_add");
  unlock_write(m);
  if (r < 0) return r;
  if (added) *added = r == 1;
  return 0;
}

static int member_remove(messages_store_t *s, int64_t channel_id, int64_t user_id) {
  msq_t *m = msq_self(s);
  lock_write(m);
  sqlite3_stmt *st = m->st[MST_MB_DELETE];
  int rc = sqlite3_bind_int64(st, 1, channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, user_id);
  int n = change(m, st, rc, "member_remove");
  unlock_write(m);
  return n < 0 ? n : n == 0 ? -ENOENT : 0;
}

static int member_get(messages_store_t *s, int64_t channel_id, int64_t user_id,
                      member_rec_t *out) {
  msq_t *m = msq_self(s);
  sqlite_db_lock(m->db);
  sqlite3_stmt *st = m->st[MST_MB_GET];
  int rc = sqlite3_bind_int64(st, 1, channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, user_id);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int r;
  if (rc == SQLITE_ROW) {
    if (out) read_member(st, 0, out);
    r = msq_ok(m, 0);
  } else if (rc == SQLITE_DONE) {
    r = msq_ok(m, -ENOENT);
  } else {
    r = msq_fail(m, m->conn, "member_get", rc);
  }
  msq_idle(st);
  sqlite_db_unlock(m->db);
  return r;
}

static int member_count_for_user(messages_store_t *s, int64_t user_id) {
  msq_t *m = msq_self(s);
  sqlite_db_lock(m->db);
  sqlite3_stmt *st = m->st[MST_MB_COUNT_USER];
  int rc = sqlite3_bind_int64(st, 1, user_id);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int r = rc == SQLITE_ROW ? msq_ok(m, (int)sqlite3_column_int64(st, 0))
                           : msq_fail(m, m->conn, "member_count_for_user", rc);
  msq_idle(st);
  sqlite_db_unlock(m->db);
  return r;
}

static int member_set_muted(messages_store_t *s, int64_t channel_id, int64_t user_id,
                            bool muted) {
  msq_t *m = msq_self(s);
  lock_write(m);
  sqlite3_stmt *st = m->st[MST_MB_MUTE];
  int rc = sqlite3_bind_int(st, 1, muted ? 1 : 0);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, user_id);
  int n = change(m, st, rc, "member_set_muted");
  unlock_write(m);
  return n < 0 ? n : n == 0 ? -ENOENT : 0;
}

static int row_member(msq_t *m, sqlite3_stmt *st, void *out, size_t i) {
  read_member(st, 0, (member_rec_t *)out + i);
  return 0;
}

static int members_list(messages_store_t *s, int64_t channel_id, int64_t after_user_id,
                        member_rec_t *out, size_t cap, bool *more) {
  msq_t *m = msq_self(s);
  if (!list_args_ok(out, cap)) return -EINVAL;
  sqlite_db_lock(m->db);
  sqlite3_stmt *st = m->st[MST_MB_LIST];
  int rc = sqlite3_bind_int64(st, 1, channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, after_user_id);
  int r = list_rows(m, st, rc, 3, cap, row_member, out, more, "members_list");
  /* An empty page of a channel that does not exist is an error. */
  if (r == 0) r = msq_channel_exists(m, channel_id, "members_list");
  sqlite_db_unlock(m->db);
  return r;
}

static int read_set(messages_store_t *s, int64_t channel_id, int64_t user_id, int64_t seq,
                    int64_t *now_read) {
  msq_t *m = msq_self(s);
  lock_write(m);
  sqlite3_stmt *st = m->st[MST_MB_READ];
  int rc = sqlite3_bind_int64(st, 1, channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, user_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, seq);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int64_t v = 0;
  bool found = rc == SQLITE_ROW;
  if (found) {
    v = sqlite3_column_int64(st, 0);
    rc = sqlite3_step(st); /* runs the statement to its end: the write is done */
  }
  msq_idle(st);
  int r;
  if (rc != SQLITE_DONE) r = msq_fail(m, m->conn, "read_set", rc);
  else r = msq_ok(m, found ? 0 : -ENOENT);
  unlock_write(m);
  if (r == 0 && now_read) *now_read = v;
  return r;
}

/* ---- lifecycle ---- */

static bool healthy(messages_store_t *s) { return atomic_load(&msq_self(s)->healthy); }

static void finalize_shared(msq_t *m) {
  sqlite_db_lock(m->db);
  for (int i = 0; i < MST_COUNT; i++) {
    sqlite3_finalize(m->st[i]); /* NULL is a no-op */
    m->st[i] = NULL;
  }
  sqlite_db_unlock(m->db);
}

static void destroy(msq_t *m) {
  finalize_shared(m);
  msq_gate_destroy(&m->gate);
  free(m);
}

static void messages_close(messages_store_t *s) {
  if (!s) return;
  msq_t *m = msq_self(s);
  msq_writer_close(m); /* drains: callbacks may still use the other ops */
  destroy(m);
}

static const messages_store_ops_t messages_sqlite_ops = {
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
    .append = msq_append,
    .messages_page = msq_messages_page,
    .message_get = msq_message_get,
    .message_edit = msq_message_edit,
    .message_delete = msq_message_delete,
    .attachment_visible = msq_attachment_visible,
    .stats = msq_stats,
    .healthy = healthy,
    .close = messages_close,
};

int messages_sqlite_open(sqlite_db_t *db, const messages_sqlite_opts_t *opts,
                         messages_store_t **out) {
  if (!db || !opts || !out || !opts->loop || opts->node_id > MSG_NODE_ID_MAX ||
      opts->batch_max > 100000 || opts->busy_timeout_ms < 0 || opts->nonce_gen_ms < 0)
    return -EINVAL;
  msq_t *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->base.ops = &messages_sqlite_ops;
  m->db = db;
  m->conn = sqlite_db_handle(db);
  atomic_init(&m->healthy, true);
  msq_gate_init(&m->gate);
  int r = 0;
  sqlite_db_lock(db);
  for (int i = 0; i < MST_COUNT; i++) {
    /* PERSISTENT: these live as long as the store. */
    int rc = sqlite3_prepare_v3(m->conn, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &m->st[i],
                                NULL);
    if (rc != SQLITE_OK) {
      log_error("store", "messages: preparing \"%s\": %s", sql_text[i], sqlite3_errmsg(m->conn));
      r = rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
      break;
    }
  }
  sqlite_db_unlock(db);
  if (r == 0) r = msq_writer_open(m, opts);
  if (r < 0) {
    msq_writer_close(m);
    destroy(m);
    return r;
  }
  *out = &m->base;
  return 0;
}
