/* notifications_sqlite.c — see notifications_sqlite.h. The loop side owns
 * the queue; the pool job owns the batch it took (and the statements,
 * under the db lock) until its after-work callback runs on the loop. */
#include "store/sqlite/notifications_sqlite.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

#define PURGE_EVERY_MS 60000

enum op_kind { OP_ADD, OP_LIST, OP_READ, OP_MUTE_SET, OP_MUTE_GET };

enum {
  ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_MUTED, ST_INSERT, ST_TRIM, ST_PURGE_USER, ST_LIST,
  ST_READ_ONE, ST_READ_ALL, ST_MUTE_ON, ST_MUTE_OFF, ST_PURGE_ALL, ST_COUNT
};

#define STR_(x) #x
#define STR(x) STR_(x)
/* NOTIF_CAP spelled as a literal for the SQL text. */
#define NOTIF_CAP_LIT 100
#define NOTIF_CAP_MINUS_1 99
_Static_assert(NOTIF_CAP == NOTIF_CAP_LIT, "the SQL text spells NOTIF_CAP out");

static const char *const sql_text[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_MUTED] = "SELECT 1 FROM notification_mutes WHERE user_id = ? AND channel_id = ?",
    [ST_INSERT] = "INSERT INTO notifications(user_id, id, type, payload, created_at) "
                  "VALUES (?, ?, ?, ?, ?)",
    /* Everything older than the user's NOTIF_CAP-th newest: one index
     * range under the (user_id, id) key; nothing while fewer exist (the
     * subquery is NULL). */
    [ST_TRIM] = "DELETE FROM notifications WHERE user_id = ?1 AND id < (SELECT id FROM "
                "notifications WHERE user_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET " STR(
                    NOTIF_CAP_MINUS_1) ")",
    [ST_PURGE_USER] = "DELETE FROM notifications WHERE user_id = ? AND created_at <= ?",
    [ST_LIST] = "SELECT id, type, payload, created_at FROM notifications WHERE user_id = ? "
                "AND created_at > ? ORDER BY id DESC LIMIT " STR(NOTIF_CAP_LIT),
    [ST_READ_ONE] = "DELETE FROM notifications WHERE user_id = ? AND id = ?",
    [ST_READ_ALL] = "DELETE FROM notifications WHERE user_id = ?",
    [ST_MUTE_ON] = "INSERT OR IGNORE INTO notification_mutes(user_id, channel_id) VALUES (?, ?)",
    [ST_MUTE_OFF] = "DELETE FROM notification_mutes WHERE user_id = ? AND channel_id = ?",
    [ST_PURGE_ALL] = "DELETE FROM notifications WHERE created_at <= ?",
};

typedef struct op op_t;
struct op {
  op_t *next;
  enum op_kind kind;
  int64_t user_id, channel_id, now;
  bool muted;
  union {
    notif_status_fn status;
    notif_count_fn count;
    notif_list_fn list;
  } fn;
  void *arg;
  /* results, written by the pool job */
  int status;
  int64_t n;
  notif_t *items;
  size_t nitems;
  /* inputs copied at submission: the add's notification (strings in data)
   * or mark_read's ids */
  notif_t notif;
  size_t nids;
  int64_t *ids;
  char data[];
};

typedef struct {
  notif_store_t base; /* first */
  notif_sqlite_opts_t o;
  sqlite3 *conn;
  sqlite3_stmt *st[ST_COUNT];
  op_t *head, *tail;  /* queued, not yet in a batch */
  size_t queued;
  op_t *batch;        /* the batch on the pool (NULL: none) */
  int64_t batch_now;  /* the newest op's clock, for the global purge */
  int64_t last_purge;
  bool healthy;
  uv_work_t work;
} notif_sqlite_t;

static notif_sqlite_t *self(notif_store_t *s) { return (notif_sqlite_t *)s; }

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_of(notif_sqlite_t *m) {
  return m->o.clock ? m->o.clock(m->o.clock_arg) : wall_ms();
}

/* ---- the pool side: one batch, under the db lock ---- */

static void idle(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no row; resets it. SQLITE_DONE or the error. */
static int exec(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  idle(st);
  return rc;
}

static int bind2(sqlite3_stmt *st, int64_t a, int64_t b) {
  int rc = sqlite3_bind_int64(st, 1, a);
  return rc == SQLITE_OK ? sqlite3_bind_int64(st, 2, b) : rc;
}

static bool logged_error(notif_sqlite_t *m, const char *what, int rc) {
  log_error("store", "notifications %s: %s (sqlite %d)", what, sqlite3_errmsg(m->conn), rc);
  return false;
}

static bool do_add(notif_sqlite_t *m, op_t *op) {
  const notif_t *n = &op->notif;
  if (n->mute_channel > 0) {
    sqlite3_stmt *st = m->st[ST_MUTED];
    int rc = bind2(st, n->user_id, n->mute_channel);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    idle(st);
    if (rc == SQLITE_ROW) {
      op->status = NOTIF_MUTED;
      return true;
    }
    if (rc != SQLITE_DONE) return logged_error(m, "mute check", rc);
  }
  sqlite3_stmt *st = m->st[ST_INSERT];
  int rc = bind2(st, n->user_id, n->id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, n->type, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 4, n->payload, (int)n->payload_len, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, n->created_at);
  if (rc == SQLITE_OK) rc = exec(st);
  else idle(st);
  if ((rc & 0xff) == SQLITE_CONSTRAINT) {
    /* Only this statement is undone; the batch goes on. */
    log_error("store", "notifications: id %lld of user %lld stored twice", (long long)n->id,
              (long long)n->user_id);
    op->status = -EIO;
    return true;
  }
  if (rc != SQLITE_DONE) return logged_error(m, "insert", rc);
  st = m->st[ST_TRIM];
  rc = sqlite3_bind_int64(st, 1, n->user_id);
  if (rc == SQLITE_OK) rc = exec(st);
  else idle(st);
  return rc == SQLITE_DONE || logged_error(m, "trim", rc);
}

static bool do_list(notif_sqlite_t *m, op_t *op) {
  int64_t horizon = op->now - NOTIF_TTL_MS;
  sqlite3_stmt *st = m->st[ST_PURGE_USER];
  int rc = bind2(st, op->user_id, horizon);
  if (rc == SQLITE_OK) rc = exec(st);
  else idle(st);
  if (rc != SQLITE_DONE) return logged_error(m, "purge", rc);
  op->items = calloc(NOTIF_CAP, sizeof *op->items);
  if (!op->items) {
    op->status = -ENOMEM;
    return true;
  }
  st = m->st[ST_LIST];
  rc = bind2(st, op->user_id, horizon);
  while (rc == SQLITE_OK || rc == SQLITE_ROW) {
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW || op->nitems == NOTIF_CAP) break;
    const char *type = (const char *)sqlite3_column_text(st, 1);
    size_t tlen = (size_t)sqlite3_column_bytes(st, 1);
    const char *payload = (const char *)sqlite3_column_text(st, 2);
    size_t plen = (size_t)sqlite3_column_bytes(st, 2);
    char *copy = malloc(tlen + plen + 2);
    if (!type || !payload || !copy) {
      free(copy);
      idle(st);
      op->status = -ENOMEM;
      return true;
    }
    memcpy(copy, type, tlen + 1);
    memcpy(copy + tlen + 1, payload, plen + 1);
    notif_t *it = &op->items[op->nitems++];
    it->id = sqlite3_column_int64(st, 0);
    it->user_id = op->user_id;
    it->created_at = sqlite3_column_int64(st, 3);
    it->type = copy;
    it->payload = copy + tlen + 1;
    it->payload_len = plen;
  }
  idle(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW || logged_error(m, "list", rc);
}

static bool do_read(notif_sqlite_t *m, op_t *op) {
  if (!op->ids) {
    sqlite3_stmt *st = m->st[ST_READ_ALL];
    int rc = sqlite3_bind_int64(st, 1, op->user_id);
    if (rc == SQLITE_OK) rc = exec(st);
    else idle(st);
    if (rc != SQLITE_DONE) return logged_error(m, "read all", rc);
    op->n = sqlite3_changes(m->conn);
    return true;
  }
  for (size_t i = 0; i < op->nids; i++) {
    sqlite3_stmt *st = m->st[ST_READ_ONE];
    int rc = bind2(st, op->user_id, op->ids[i]);
    if (rc == SQLITE_OK) rc = exec(st);
    else idle(st);
    if (rc != SQLITE_DONE) return logged_error(m, "read", rc);
    op->n += sqlite3_changes(m->conn);
  }
  return true;
}

static bool do_mute(notif_sqlite_t *m, op_t *op) {
  bool get = op->kind == OP_MUTE_GET;
  sqlite3_stmt *st = m->st[get ? ST_MUTED : op->muted ? ST_MUTE_ON : ST_MUTE_OFF];
  int rc = bind2(st, op->user_id, op->channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  idle(st);
  if (get && (rc == SQLITE_ROW || rc == SQLITE_DONE)) {
    op->n = rc == SQLITE_ROW;
    return true;
  }
  return rc == SQLITE_DONE || logged_error(m, get ? "mute get" : "mute set", rc);
}

static void free_items(op_t *op) {
  for (size_t i = 0; i < op->nitems; i++) free((char *)op->items[i].type);
  free(op->items);
  op->items = NULL;
  op->nitems = 0;
}

static void on_work(uv_work_t *w) {
  notif_sqlite_t *m = w->data;
  sqlite_db_lock(m->o.db);
  int rc = exec(m->st[ST_BEGIN]);
  bool ok = rc == SQLITE_DONE || logged_error(m, "begin", rc);
  for (op_t *op = m->batch; ok && op; op = op->next) {
    switch (op->kind) {
    case OP_ADD: ok = do_add(m, op); break;
    case OP_LIST: ok = do_list(m, op); break;
    case OP_READ: ok = do_read(m, op); break;
    case OP_MUTE_SET:
    case OP_MUTE_GET: ok = do_mute(m, op); break;
    }
  }
  if (ok && m->batch_now - m->last_purge >= PURGE_EVERY_MS) {
    sqlite3_stmt *st = m->st[ST_PURGE_ALL];
    rc = sqlite3_bind_int64(st, 1, m->batch_now - NOTIF_TTL_MS);
    if (rc == SQLITE_OK) rc = exec(st);
    else idle(st);
    ok = rc == SQLITE_DONE || logged_error(m, "purge", rc);
    if (ok) m->last_purge = m->batch_now;
  }
  if (ok) {
    rc = exec(m->st[ST_COMMIT]);
    ok = rc == SQLITE_DONE || logged_error(m, "commit", rc);
  }
  if (!ok) {
    if (!sqlite3_get_autocommit(m->conn)) exec(m->st[ST_ROLLBACK]);
    for (op_t *op = m->batch; op; op = op->next) {
      free_items(op);
      op->status = -EIO;
      op->n = 0;
    }
  }
  m->healthy = ok;
  sqlite_db_unlock(m->o.db);
}

/* ---- the loop side ---- */

static void start_batch(notif_sqlite_t *m);

static void on_after_work(uv_work_t *w, int status) {
  notif_sqlite_t *m = w->data;
  op_t *op = m->batch;
  m->batch = NULL;
  while (op) {
    op_t *next = op->next;
    if (status < 0) {
      free_items(op);
      op->status = -EIO;
    }
    switch (op->kind) {
    case OP_ADD:
    case OP_MUTE_SET: op->fn.status(op->arg, op->status); break;
    case OP_READ:
    case OP_MUTE_GET: op->fn.count(op->arg, op->status, op->status < 0 ? 0 : op->n); break;
    case OP_LIST:
      op->fn.list(op->arg, op->status, op->status < 0 ? NULL : op->items,
                  op->status < 0 ? 0 : op->nitems);
      break;
    }
    free_items(op);
    free(op);
    op = next;
  }
  start_batch(m);
}

static void start_batch(notif_sqlite_t *m) {
  if (m->batch || !m->head) return;
  op_t *first = m->head, *last = first;
  size_t n = 1;
  while (last->next && n < NOTIF_SQLITE_BATCH) {
    last = last->next;
    n++;
  }
  m->head = last->next;
  if (!m->head) m->tail = NULL;
  last->next = NULL;
  m->queued -= n;
  m->batch = first;
  m->batch_now = last->now;
  m->work.data = m;
  int rc = uv_queue_work(m->o.loop, &m->work, on_work, on_after_work);
  if (rc < 0) {
    /* Only for a NULL work callback: cannot happen. Put the batch back
     * (the next submission retries) rather than call back from inside an
     * op call. */
    log_error("store", "notifications: uv_queue_work failed: %s", uv_strerror(rc));
    m->healthy = false;
    m->batch = NULL;
    last->next = m->head;
    m->head = first;
    if (!m->tail) m->tail = last;
    m->queued += n;
  }
}

static op_t *op_new(notif_sqlite_t *m, enum op_kind kind, int64_t user_id, size_t extra) {
  if (m->queued >= NOTIF_SQLITE_MAX_QUEUED) {
    errno = ENOBUFS;
    return NULL;
  }
  op_t *op = calloc(1, sizeof *op + extra);
  if (!op) {
    errno = ENOMEM;
    return NULL;
  }
  op->kind = kind;
  op->user_id = user_id;
  op->now = now_of(m);
  return op;
}

static int submit(notif_sqlite_t *m, op_t *op) {
  if (m->tail) m->tail->next = op;
  else m->head = op;
  m->tail = op;
  m->queued++;
  start_batch(m);
  return 0;
}

static int s_add(notif_store_t *s, const notif_t *n, notif_status_fn fn, void *arg) {
  notif_sqlite_t *m = self(s);
  if (!fn || !notif_valid(n)) return -EINVAL;
  size_t tlen = strlen(n->type);
  op_t *op = op_new(m, OP_ADD, n->user_id, tlen + 1 + n->payload_len + 1);
  if (!op) return -errno;
  op->notif = *n;
  memcpy(op->data, n->type, tlen + 1);
  memcpy(op->data + tlen + 1, n->payload, n->payload_len);
  op->data[tlen + 1 + n->payload_len] = '\0';
  op->notif.type = op->data;
  op->notif.payload = op->data + tlen + 1;
  op->fn.status = fn;
  op->arg = arg;
  return submit(m, op);
}

static int s_list(notif_store_t *s, int64_t user_id, notif_list_fn fn, void *arg) {
  notif_sqlite_t *m = self(s);
  if (!fn || user_id <= 0) return -EINVAL;
  op_t *op = op_new(m, OP_LIST, user_id, 0);
  if (!op) return -errno;
  op->fn.list = fn;
  op->arg = arg;
  return submit(m, op);
}

static int s_read(notif_store_t *s, int64_t user_id, const int64_t *ids, size_t nids,
                  notif_count_fn fn, void *arg) {
  notif_sqlite_t *m = self(s);
  if (!fn || user_id <= 0 || (ids && (nids == 0 || nids > NOTIF_READ_IDS_MAX)) || (!ids && nids))
    return -EINVAL;
  op_t *op = op_new(m, OP_READ, user_id, nids * sizeof *ids);
  if (!op) return -errno;
  if (ids) {
    op->ids = (int64_t *)(void *)op->data;
    memcpy(op->ids, ids, nids * sizeof *ids);
    op->nids = nids;
  }
  op->fn.count = fn;
  op->arg = arg;
  return submit(m, op);
}

static int s_mute_set(notif_store_t *s, int64_t user_id, int64_t channel_id, bool muted,
                      notif_status_fn fn, void *arg) {
  notif_sqlite_t *m = self(s);
  if (!fn || user_id <= 0 || channel_id <= 0) return -EINVAL;
  op_t *op = op_new(m, OP_MUTE_SET, user_id, 0);
  if (!op) return -errno;
  op->channel_id = channel_id;
  op->muted = muted;
  op->fn.status = fn;
  op->arg = arg;
  return submit(m, op);
}

static int s_mute_get(notif_store_t *s, int64_t user_id, int64_t channel_id, notif_count_fn fn,
                      void *arg) {
  notif_sqlite_t *m = self(s);
  if (!fn || user_id <= 0 || channel_id <= 0) return -EINVAL;
  op_t *op = op_new(m, OP_MUTE_GET, user_id, 0);
  if (!op) return -errno;
  op->channel_id = channel_id;
  op->fn.count = fn;
  op->arg = arg;
  return submit(m, op);
}

static bool s_ready(notif_store_t *s) { return self(s)->healthy; }

static void finalize_all(notif_sqlite_t *m) {
  for (int i = 0; i < ST_COUNT; i++) {
    sqlite3_finalize(m->st[i]);
    m->st[i] = NULL;
  }
}

static void s_close(notif_store_t *s) {
  if (!s) return;
  notif_sqlite_t *m = self(s);
  if (m->batch || m->head) log_error("store", "notifications: closed with operations pending");
  sqlite_db_lock(m->o.db);
  finalize_all(m);
  sqlite_db_unlock(m->o.db);
  free(m);
}

static const notif_store_ops_t ops = {
    .add = s_add,
    .list = s_list,
    .mark_read = s_read,
    .mute_set = s_mute_set,
    .mute_get = s_mute_get,
    .ready = s_ready,
    .close = s_close,
};

int notif_sqlite_open(const notif_sqlite_opts_t *o, notif_store_t **out) {
  if (!o || !o->loop || !o->db || !out) return -EINVAL;
  notif_sqlite_t *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->base.ops = &ops;
  m->o = *o;
  m->conn = sqlite_db_handle(o->db);
  m->healthy = true;
  m->last_purge = INT64_MIN / 2;
  int r = 0;
  sqlite_db_lock(o->db);
  for (int i = 0; i < ST_COUNT; i++) {
    int rc = sqlite3_prepare_v3(m->conn, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &m->st[i], NULL);
    if (rc != SQLITE_OK) {
      log_error("store", "notifications: preparing \"%s\": %s", sql_text[i], sqlite3_errmsg(m->conn));
      r = rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
      finalize_all(m);
      break;
    }
  }
  sqlite_db_unlock(o->db);
  if (r < 0) {
    free(m);
    return r;
  }
  *out = &m->base;
  return 0;
}
