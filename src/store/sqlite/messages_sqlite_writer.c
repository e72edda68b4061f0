/* messages_sqlite_writer.c — append with group commit: the queue, the
 * writer thread and its connection, the callbacks on the loop, and the
 * message id generator. Contract in messages_sqlite.h (why two
 * connections, the gate, what fails alone and what fails the batch).
 *
 * Life of an append: the caller's thread copies it into one job (one
 * allocation) and queues it; the writer wakes, takes the gate and the
 * write lock (BEGIN IMMEDIATE), then takes everything queued up to
 * batch_max (so appends that arrived while it waited for the lock join
 * this batch), commits, and moves the jobs to the done list; a uv_async_t
 * wakes the loop, which calls back and frees them in order. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "store/sqlite/messages_sqlite_int.h"
#include "store/sqlite/sqlite_walbuf.h"

struct msq_job {
  msq_job_t *next;
  msg_append_cb cb;
  void *arg;
  int64_t channel_id, author_id;
  size_t body_n, att_n, nonce_n;
  size_t nkeys, keys_n; /* media keys: count, and bytes with their NULs */
  bool has_att, has_nonce;
  int status;
  msg_ack_t ack;
  char data[]; /* body, then attachments, then nonce, then each key + NUL */
};

static const char *const wsql_text[WST_COUNT] = {
    [WST_BEGIN] = "BEGIN IMMEDIATE",
    [WST_COMMIT] = "COMMIT",
    [WST_ROLLBACK] = "ROLLBACK",
    [WST_CHANNEL] = "SELECT last_seq, kind = 'dm', private, dm_lo, dm_hi FROM channels "
                    "WHERE id = ?",
    [WST_BY_ID] = "SELECT author_id, channel_id, nonce, seq, created_at FROM messages "
                  "WHERE id = ?",
    /* Ids are time-ordered: the newest messages are a rowid range. */
    [WST_RECENT] = "SELECT id, author_id, channel_id, nonce FROM messages "
                   "WHERE id >= ? AND nonce IS NOT NULL ORDER BY id DESC LIMIT ?",
    [WST_INSERT] = "INSERT INTO messages(id, channel_id, seq, author_id, body, attachments, "
                   "nonce, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [WST_LAST_SEQ] = "UPDATE channels SET last_seq = ? WHERE id = ?",
    [WST_MAX_ID] = "SELECT max(id) FROM messages",
    /* OR IGNORE: a key listed twice is indexed once. */
    [WST_ATTACH] = "INSERT OR IGNORE INTO attachments(media_key, channel_id, message_id) "
                   "VALUES (?, ?, ?)",
    [WST_MEMBER] = "SELECT 1 FROM members WHERE channel_id = ? AND user_id = ?",
};

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- append (any thread) ---- */

int msq_append(messages_store_t *s, const msg_append_t *msg, msg_append_cb cb, void *arg) {
  msq_t *m = msq_self(s);
  if (!msg || !cb || msg->channel_id <= 0 || msg->author_id <= 0) return -EINVAL;
  if (!msq_slice_ok(msg->body, MSG_BODY_MAX)) return -EINVAL;
  bool has_att = msg->attachments.p != NULL, has_nonce = msg->nonce.p != NULL;
  if (has_att && !msq_slice_ok(msg->attachments, MSG_ATTACHMENTS_MAX)) return -EINVAL;
  if (has_nonce && (msg->nonce.n == 0 || msg->nonce.n > MSG_NONCE_MAX)) return -EINVAL;
  if (!msq_keys_ok(msg->keys, msg->nkeys)) return -EINVAL;
  size_t att_n = has_att ? msg->attachments.n : 0, nonce_n = has_nonce ? msg->nonce.n : 0;
  size_t keys_n = 0;
  for (size_t i = 0; i < msg->nkeys; i++) keys_n += msg->keys[i].n + 1;
  msq_job_t *j = malloc(sizeof *j + msg->body.n + att_n + nonce_n + keys_n);
  if (!j) return -ENOMEM;
  memset(j, 0, sizeof *j);
  j->cb = cb;
  j->arg = arg;
  j->channel_id = msg->channel_id;
  j->author_id = msg->author_id;
  j->body_n = msg->body.n;
  j->att_n = att_n;
  j->nonce_n = nonce_n;
  j->has_att = has_att;
  j->has_nonce = has_nonce;
  if (msg->body.n) memcpy(j->data, msg->body.p, msg->body.n);
  if (att_n) memcpy(j->data + j->body_n, msg->attachments.p, att_n);
  if (nonce_n) memcpy(j->data + j->body_n + att_n, msg->nonce.p, nonce_n);
  char *k = j->data + j->body_n + att_n + nonce_n;
  for (size_t i = 0; i < msg->nkeys; i++) {
    memcpy(k, msg->keys[i].p, msg->keys[i].n);
    k[msg->keys[i].n] = '\0';
    k += msg->keys[i].n + 1;
  }
  j->nkeys = msg->nkeys;
  j->keys_n = keys_n;

  int r = 0;
  pthread_mutex_lock(&m->qmu);
  if (m->closing) {
    r = -ESHUTDOWN;
  } else if (m->qlen >= m->queue_max) {
    r = -EAGAIN;
  } else {
    if (m->qtail) m->qtail->next = j;
    else m->qhead = j;
    m->qtail = j;
    m->qlen++;
    pthread_cond_signal(&m->qcv);
  }
  pthread_mutex_unlock(&m->qmu);
  if (r < 0) free(j);
  return r;
}

void msq_stats(messages_store_t *s, msg_store_stats_t *out) {
  msq_t *m = msq_self(s);
  out->batches = atomic_load(&m->n_batches);
  out->appended = atomic_load(&m->n_appended);
  out->duplicates = atomic_load(&m->n_duplicates);
  out->failed = atomic_load(&m->n_failed);
  out->max_batch = atomic_load(&m->n_max_batch);
  pthread_mutex_lock(&m->qmu);
  out->queued = m->qlen;
  pthread_mutex_unlock(&m->qmu);
}

/* ---- the loop side ---- */

static void complete(msq_job_t *j) {
  j->cb(j->arg, j->status, j->status == 0 || j->status == -EPERM ? &j->ack : NULL);
  free(j);
}

static msq_job_t *pop_done(msq_t *m) {
  pthread_mutex_lock(&m->dmu);
  msq_job_t *j = m->dhead;
  if (j) {
    m->dhead = j->next;
    if (!m->dhead) m->dtail = NULL;
  }
  pthread_mutex_unlock(&m->dmu);
  return j;
}

/* One job at a time from the shared list, so that a callback that closes
 * the store leaves the rest to close (which runs them) and we notice
 * through `gone` that m no longer exists. */
static void on_async(uv_async_t *h) {
  msq_t *m = h->data;
  bool gone = false;
  m->gone = &gone;
  msq_job_t *j;
  while ((j = pop_done(m))) {
    complete(j);
    if (gone) return;
  }
  m->gone = NULL;
}

static void free_handle(uv_handle_t *h) { free(h); }

/* ---- the writer thread ---- */

static int wrun(sqlite3_stmt *st, int rc) {
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  msq_idle(st);
  return rc;
}

/* The batch's entry for channel id, loaded on first use: NULL when the
 * lookup failed (the batch fails). */
static msq_chan_t *chan_get(msq_t *m, int64_t id, size_t *ntouched) {
  size_t mask = m->chan_cap - 1;
  size_t i = (size_t)(((uint64_t)id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & mask;
  while (m->chans[i].channel_id && m->chans[i].channel_id != id) i = (i + 1) & mask;
  msq_chan_t *c = &m->chans[i];
  if (c->channel_id) return c;
  sqlite3_stmt *st = m->wst[WST_CHANNEL];
  int rc = sqlite3_bind_int64(st, 1, id);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int64_t last = -1;
  *c = (msq_chan_t){0};
  if (rc == SQLITE_ROW) {
    last = sqlite3_column_int64(st, 0);
    c->kind = sqlite3_column_int(st, 1) ? CHANNEL_KIND_DM : CHANNEL_KIND_CHANNEL;
    c->is_private = sqlite3_column_int(st, 2) != 0;
    c->dm_user_lo = sqlite3_column_int64(st, 3);
    c->dm_user_hi = sqlite3_column_int64(st, 4);
  }
  msq_idle(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    msq_fail(m, m->wconn, "append channel", rc);
    return NULL;
  }
  c->channel_id = id;
  c->last_seq = c->first_seq = last;
  m->touched[(*ntouched)++] = i;
  return c;
}

/* 1: author is a member of c, 0: not, -1: the lookup failed. A batch
 * usually holds runs of one author per channel: the last one found is
 * remembered (the transaction holds the write lock, nothing can change). */
static int is_member(msq_t *m, msq_chan_t *c, int64_t author) {
  if (c->member_id == author) return 1;
  sqlite3_stmt *st = m->wst[WST_MEMBER];
  int rc = sqlite3_bind_int64(st, 1, c->channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, author);
  rc = wrun(st, rc);
  if (rc == SQLITE_ROW) {
    c->member_id = author;
    return 1;
  }
  if (rc == SQLITE_DONE) return 0;
  msq_fail(m, m->wconn, "append member", rc);
  return -1;
}

/* 1: a stored message carries j's nonce (j->ack is now the original's),
 * 0: none does, -1: a read failed (the batch fails). Each candidate the
 * table remembers is read and compared: the hash is not proof, and a
 * candidate whose batch was rolled back is simply not there. Reads in the
 * open transaction, so a copy earlier in the same batch counts. */
static int find_original(msq_t *m, msq_job_t *j, uint64_t h, const char *nonce) {
  sqlite3_stmt *st = m->wst[WST_BY_ID];
  msg_nonces_iter_t it = {0};
  int64_t id;
  while ((id = msg_nonces_next(&m->nonces, h, &it)) != 0) {
    int rc = sqlite3_bind_int64(st, 1, id);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    bool same = false;
    if (rc == SQLITE_ROW && sqlite3_column_int64(st, 0) == j->author_id &&
        sqlite3_column_int64(st, 1) == j->channel_id) {
      const void *stored = sqlite3_column_blob(st, 2);
      same = stored && (size_t)sqlite3_column_bytes(st, 2) == j->nonce_n &&
             memcmp(stored, nonce, j->nonce_n) == 0;
    }
    if (same) {
      j->ack.id = id;
      j->ack.seq = sqlite3_column_int64(st, 3);
      j->ack.created_at = sqlite3_column_int64(st, 4);
      j->ack.duplicate = true;
    }
    msq_idle(st);
    if (same) return 1;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      msq_fail(m, m->wconn, "append nonce", rc);
      return -1;
    }
  }
  return 0;
}

/* Stores one job inside the open transaction, or finds it a duplicate.
 * Returns false when the transaction as a whole failed. */
static bool put(msq_t *m, msq_job_t *j, int64_t now_ms, size_t *ntouched) {
  msq_chan_t *c = chan_get(m, j->channel_id, ntouched);
  if (!c) return false;
  if (c->last_seq < 0) {
    j->status = -ENOENT;
    return true;
  }
  j->ack = (msg_ack_t){.kind = c->kind, .is_private = c->is_private,
                       .dm_user_lo = c->dm_user_lo, .dm_user_hi = c->dm_user_hi};
  int mem = is_member(m, c, j->author_id);
  if (mem < 0) return false;
  if (mem == 0) {
    j->status = -EPERM;
    return true;
  }
  const char *body = j->data, *att = j->data + j->body_n, *nonce = att + j->att_n;
  int rc;
  uint64_t h = 0;
  if (j->has_nonce) {
    h = msg_nonces_hash(&m->nonces, j->author_id, j->channel_id, nonce, j->nonce_n);
    int found = find_original(m, j, h, nonce);
    if (found < 0) return false;
    if (found > 0) return true;
    /* A message whose nonce cannot be remembered is not stored: its retry
     * would be stored a second time. */
    if (msg_nonces_reserve(&m->nonces, now_ms) < 0) {
      j->status = -ENOMEM;
      return true;
    }
  }
  int64_t created_at;
  int64_t id = msg_idgen_next(&m->idgen, m->node_id, now_ms, &created_at);
  int64_t seq = c->last_seq + 1;
  sqlite3_stmt *st = m->wst[WST_INSERT];
  rc = sqlite3_bind_int64(st, 1, id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, j->channel_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, seq);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, j->author_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 5, body, (int)j->body_n, SQLITE_STATIC);
  if (rc == SQLITE_OK)
    rc = j->has_att ? sqlite3_bind_text(st, 6, att, (int)j->att_n, SQLITE_STATIC)
                    : sqlite3_bind_null(st, 6);
  if (rc == SQLITE_OK)
    rc = j->has_nonce ? sqlite3_bind_blob(st, 7, nonce, (int)j->nonce_n, SQLITE_STATIC)
                      : sqlite3_bind_null(st, 7);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 8, created_at);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) {
    msq_fail(m, m->wconn, "append insert", rc);
    msq_idle(st);
    /* SQLite undid the statement; if it also ended the transaction (I/O
     * error, disk full, ...), the whole batch is lost. */
    if (sqlite3_get_autocommit(m->wconn)) return false;
    j->status = -EIO;
    return true;
  }
  msq_idle(st);
  if (j->has_nonce) msg_nonces_add(&m->nonces, h, id);
  /* The index rows join the message's transaction. A failure here fails
   * the whole batch (false): the message row is in already, and a message
   * stored without its index would hide its attachments from members. */
  const char *key = nonce + j->nonce_n;
  for (size_t i = 0; i < j->nkeys; i++) {
    size_t kn = strlen(key);
    st = m->wst[WST_ATTACH];
    rc = sqlite3_bind_text(st, 1, key, (int)kn, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, j->channel_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, id);
    rc = wrun(st, rc);
    if (rc != SQLITE_DONE) {
      msq_fail(m, m->wconn, "append attachments", rc);
      return false;
    }
    key += kn + 1;
  }
  c->last_seq = seq;
  j->ack.id = id;
  j->ack.seq = seq;
  j->ack.created_at = created_at;
  return true;
}

/* Writes channels.last_seq for every channel the batch advanced. */
static bool write_last_seqs(msq_t *m, size_t ntouched) {
  for (size_t k = 0; k < ntouched; k++) {
    msq_chan_t *c = &m->chans[m->touched[k]];
    if (c->last_seq == c->first_seq) continue;
    sqlite3_stmt *st = m->wst[WST_LAST_SEQ];
    int rc = sqlite3_bind_int64(st, 1, c->last_seq);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, c->channel_id);
    rc = wrun(st, rc);
    if (rc != SQLITE_DONE || sqlite3_changes(m->wconn) != 1) {
      msq_fail(m, m->wconn, "append last_seq", rc == SQLITE_DONE ? SQLITE_NOTFOUND : rc);
      return false;
    }
  }
  return true;
}

/* Moves up to batch_max queued jobs into m->batch; returns how many. */
static size_t take(msq_t *m) {
  size_t n = 0;
  pthread_mutex_lock(&m->qmu);
  while (m->qhead && n < m->batch_max) {
    msq_job_t *j = m->qhead;
    m->qhead = j->next;
    j->next = NULL;
    m->batch[n++] = j;
  }
  if (!m->qhead) m->qtail = NULL;
  m->qlen -= n;
  pthread_mutex_unlock(&m->qmu);
  return n;
}

static void deliver(msq_t *m, size_t n) {
  if (n == 0) return;
  for (size_t i = 0; i + 1 < n; i++) m->batch[i]->next = m->batch[i + 1];
  pthread_mutex_lock(&m->dmu);
  if (m->dtail) m->dtail->next = m->batch[0];
  else m->dhead = m->batch[0];
  m->dtail = m->batch[n - 1];
  pthread_mutex_unlock(&m->dmu);
  uv_async_send(m->async);
}

static void run_batch(msq_t *m) {
  msq_gate_lock(&m->gate);
  /* The db lock around BEGIN only: a write of another store waiting in
   * the busy handler holds it, so we cannot take the file before it. */
  sqlite_db_lock(m->db);
  int rc = wrun(m->wst[WST_BEGIN], SQLITE_OK);
  sqlite_db_unlock(m->db);
  size_t n = take(m);
  bool ok = rc == SQLITE_DONE;
  if (!ok) msq_fail(m, m->wconn, "append begin", rc);
  size_t ntouched = 0;
  if (ok) {
    int64_t now = wall_ms();
    for (size_t i = 0; i < n && ok; i++) ok = put(m, m->batch[i], now, &ntouched);
    if (ok) ok = write_last_seqs(m, ntouched);
    if (ok) {
      rc = wrun(m->wst[WST_COMMIT], SQLITE_OK);
      ok = rc == SQLITE_DONE;
      if (!ok) msq_fail(m, m->wconn, "append commit", rc);
    }
    /* A failed COMMIT (a deferred constraint, SQLITE_BUSY) may leave the
     * transaction open: end it, or the next BEGIN would fail. */
    if (!ok && !sqlite3_get_autocommit(m->wconn)) {
      rc = wrun(m->wst[WST_ROLLBACK], SQLITE_OK);
      if (rc != SQLITE_DONE) msq_fail(m, m->wconn, "append rollback", rc);
    }
  }
  msq_gate_unlock(&m->gate);
  for (size_t k = 0; k < ntouched; k++) m->chans[m->touched[k]].channel_id = 0;

  uint64_t appended = 0, dups = 0, failed = 0;
  for (size_t i = 0; i < n; i++) {
    msq_job_t *j = m->batch[i];
    if (!ok) j->status = -EIO;
    if (j->status != 0) failed++;
    else if (j->ack.duplicate) dups++;
    else appended++;
  }
  if (ok) {
    atomic_fetch_add(&m->n_batches, 1);
    if (n > atomic_load(&m->n_max_batch)) atomic_store(&m->n_max_batch, n); /* one writer */
    if (appended || dups) msq_ok(m, 0);
  }
  atomic_fetch_add(&m->n_appended, appended);
  atomic_fetch_add(&m->n_duplicates, dups);
  atomic_fetch_add(&m->n_failed, failed);
  deliver(m, n);
}

static void *writer_main(void *arg) {
  msq_t *m = arg;
  for (;;) {
    pthread_mutex_lock(&m->qmu);
    while (!m->qhead && !m->closing) pthread_cond_wait(&m->qcv, &m->qmu);
    bool empty = !m->qhead;
    pthread_mutex_unlock(&m->qmu);
    if (empty) break; /* closing, and everything queued is done */
    run_batch(m);
  }
  return NULL;
}

/* ---- open / close ---- */

static int wexec(msq_t *m, const char *sql) {
  int rc = sqlite3_exec(m->wconn, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    log_error("store", "messages writer: %s: %s", sql, sqlite3_errmsg(m->wconn));
    return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
  }
  return 0;
}

/* One appending process per database file: the duplicate check lives in
 * this process's memory (msg_nonces.h), so a second writer's messages
 * would be invisible to it. flock on a file of its own: SQLite's POSIX
 * locks on the database are released whenever any descriptor of the file
 * closes, a flock only with ours. */
static int lock_appends(msq_t *m, const char *db_path) {
  char path[4096 + 16];
  snprintf(path, sizeof path, "%s-append.lock", db_path);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    log_error("store", "messages writer: cannot open %s: %s", path, strerror(e));
    return e == ENOMEM ? -ENOMEM : -EIO;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK) {
      log_error("store",
                "messages writer: another messages store appends to %s (%s is locked); "
                "one process per SQLite database, or use PostgreSQL for replicas",
                db_path, path);
      return -EBUSY;
    }
    log_error("store", "messages writer: cannot lock %s: %s", path, strerror(e));
    return -EIO;
  }
  m->lock_fd = fd;
  return 0;
}

/* Remembers the nonces of the newest messages as the writer had them
 * before a restart (or a kill -9), so that a retry still finds its
 * original: the messages of the last 2 × gen_ms, at most 2 × gen_max of
 * them, read newest first and added oldest first so that the generations
 * turn as they did. */
static int load_recent_nonces(msq_t *m) {
  int64_t t0 = wall_ms();
  int64_t floor_ms = t0 - 2 * m->nonces.gen_ms;
  int64_t floor_id = floor_ms > MSG_ID_EPOCH_MS ? (floor_ms - MSG_ID_EPOCH_MS) << 22 : 0;
  size_t max = 2 * m->nonces.gen_max;
  msg_nonce_slot_t *v = NULL;
  size_t n = 0, cap = 0;
  sqlite3_stmt *st = m->wst[WST_RECENT];
  int rc = sqlite3_bind_int64(st, 1, floor_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
  int r = 0;
  while (rc == SQLITE_OK || rc == SQLITE_ROW) {
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) break;
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 1024;
      msg_nonce_slot_t *nv = realloc(v, ncap * sizeof *v);
      if (!nv) {
        r = -ENOMEM;
        break;
      }
      v = nv;
      cap = ncap;
    }
    const void *nonce = sqlite3_column_blob(st, 3);
    size_t nonce_n = (size_t)sqlite3_column_bytes(st, 3);
    v[n].id = sqlite3_column_int64(st, 0);
    v[n].h = msg_nonces_hash(&m->nonces, sqlite3_column_int64(st, 1),
                             sqlite3_column_int64(st, 2), nonce, nonce_n);
    n++;
  }
  msq_idle(st);
  if (r == 0 && rc != SQLITE_DONE) {
    log_error("store", "messages writer: reading recent nonces: %s", sqlite3_errmsg(m->wconn));
    r = -EIO;
  }
  for (size_t k = n; r == 0 && k-- > 0;) {
    r = msg_nonces_reserve(&m->nonces, msg_id_ms(v[k].id));
    if (r == 0) msg_nonces_add(&m->nonces, v[k].h, v[k].id);
  }
  free(v);
  if (r == 0 && n > 0)
    log_info("store", "messages writer: remembered the nonces of %zu recent messages in %lld ms",
             n, (long long)(wall_ms() - t0));
  return r;
}

/* The writer's connection: same file, same settings as sqlite_db.c except
 * synchronous=FULL (the point of it). WAL is a property of the file, set
 * by sqlite_db_open; we only check it, since without WAL our readers
 * would block behind the writer and FULL would not mean "fsync the WAL".
 * It goes through the WAL-gathering VFS (sqlite_walbuf.h), which is safe
 * only because of FULL: a commit's ~400 frame writes become one write
 * before its fsync. */
static int open_conn(msq_t *m) {
  char path[4096];
  sqlite_db_lock(m->db);
  const char *p = sqlite3_db_filename(m->conn, "main");
  int n = snprintf(path, sizeof path, "%s", p ? p : "");
  sqlite_db_unlock(m->db);
  if (n <= 0 || (size_t)n >= sizeof path) {
    log_error("store", "messages writer: the database has no usable file name");
    return -EIO;
  }
  int r = lock_appends(m, path);
  if (r < 0) return r;
  /* NOMUTEX: only the writer thread uses it (open and close happen before
   * the thread starts and after it is joined). */
  const char *vfs = sqlite_walbuf_vfs();
  if (!vfs) log_warn("store", "messages writer: no WAL-gathering VFS, writing frame by frame");
  int rc = sqlite3_open_v2(path, &m->wconn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs);
  if (rc != SQLITE_OK) {
    log_error("store", "messages writer: cannot open %s: %s", path,
              m->wconn ? sqlite3_errmsg(m->wconn) : sqlite3_errstr(rc));
    return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
  }
  sqlite3_extended_result_codes(m->wconn, 1);
  sqlite3_db_config(m->wconn, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
  r = wexec(m, "PRAGMA synchronous=FULL");
  if (r == 0) r = wexec(m, "PRAGMA foreign_keys=ON");
  if (r == 0) r = wexec(m, "PRAGMA wal_autocheckpoint=" SQLITE_DB_WAL_CHECKPOINT_PAGES);
  /* 32 MiB instead of 2: a batch dirties a page per channel and index
   * touched, and with 2 MiB SQLite spilled mid-transaction at 50,000
   * appends/s; a page then written twice makes COMMIT re-read every later
   * frame and rewrite its header (walRewriteChecksums): ~7,000 pread and
   * pwrite pairs a second, gone with the larger cache. */
  if (r == 0) r = wexec(m, "PRAGMA cache_size=-32768");
  if (r < 0) return r;
  sqlite3_busy_timeout(m->wconn, m->busy_timeout_ms);

  sqlite3_stmt *st = NULL;
  rc = sqlite3_prepare_v2(m->wconn, "PRAGMA journal_mode", -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
  bool wal = mode && strcasecmp((const char *)mode, "wal") == 0;
  sqlite3_finalize(st);
  if (!wal) {
    log_error("store", "messages writer: the database is not in WAL mode");
    return -EIO;
  }
  for (int i = 0; i < WST_COUNT; i++) {
    rc = sqlite3_prepare_v3(m->wconn, wsql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &m->wst[i],
                            NULL);
    if (rc != SQLITE_OK) {
      log_error("store", "messages writer: preparing \"%s\": %s", wsql_text[i],
                sqlite3_errmsg(m->wconn));
      return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
    }
  }
  /* Resume the generator after the newest stored id: a restart with the
   * clock set back must not reuse ids. */
  rc = sqlite3_step(m->wst[WST_MAX_ID]);
  int64_t max_id = rc == SQLITE_ROW ? sqlite3_column_int64(m->wst[WST_MAX_ID], 0) : 0;
  msq_idle(m->wst[WST_MAX_ID]);
  if (rc != SQLITE_ROW) {
    log_error("store", "messages writer: reading the newest id: %s", sqlite3_errmsg(m->wconn));
    return -EIO;
  }
  m->idgen.ms = max_id > 0 ? max_id >> 22 : -1;
  m->idgen.ctr = max_id > 0 ? max_id & 0xFFF : 0;
  return load_recent_nonces(m);
}

static bool w_inited(const msq_t *m) { return m->batch != NULL; }

int msq_writer_open(msq_t *m, const messages_sqlite_opts_t *o) {
  m->loop = o->loop;
  m->node_id = o->node_id;
  m->batch_max = o->batch_max ? o->batch_max : MESSAGES_SQLITE_BATCH_MAX;
  m->queue_max = o->queue_max ? o->queue_max : MESSAGES_SQLITE_QUEUE_MAX;
  m->busy_timeout_ms = o->busy_timeout_ms ? o->busy_timeout_ms : SQLITE_DB_BUSY_TIMEOUT_MS;
  m->lock_fd = -1;
  if (msg_nonces_init(&m->nonces, o->nonce_gen_ms, o->nonce_gen_max) < 0) return -EIO;
  msg_nonces_weaken(&m->nonces, o->nonce_hash_bits);
  m->chan_cap = 16;
  while (m->chan_cap < 2 * m->batch_max) m->chan_cap *= 2;
  m->batch = calloc(m->batch_max, sizeof *m->batch);
  m->chans = calloc(m->chan_cap, sizeof *m->chans);
  m->touched = calloc(m->batch_max, sizeof *m->touched);
  if (!m->batch || !m->chans || !m->touched) {
    free(m->batch);
    free(m->chans);
    free(m->touched);
    m->batch = NULL;
    m->chans = NULL;
    m->touched = NULL;
    return -ENOMEM;
  }
  pthread_mutex_init(&m->qmu, NULL);
  pthread_cond_init(&m->qcv, NULL);
  pthread_mutex_init(&m->dmu, NULL);

  int r = open_conn(m);
  if (r < 0) return r;
  m->async = malloc(sizeof *m->async);
  if (!m->async) return -ENOMEM;
  if (uv_async_init(m->loop, m->async, on_async) != 0) {
    free(m->async);
    m->async = NULL;
    return -EIO;
  }
  m->async->data = m;
  if (pthread_create(&m->thread, NULL, writer_main, m) != 0) return -ENOMEM;
  m->thread_started = true;
  return 0;
}

void msq_writer_close(msq_t *m) {
  if (!w_inited(m)) return;
  pthread_mutex_lock(&m->qmu);
  m->closing = true;
  pthread_cond_signal(&m->qcv);
  pthread_mutex_unlock(&m->qmu);
  if (m->thread_started) pthread_join(m->thread, NULL);
  /* Every queued job is on the done list now. Called from inside a
   * callback, on_async must stop touching m after this. */
  bool *outer = m->gone;
  m->gone = NULL;
  msq_job_t *j;
  while ((j = pop_done(m))) complete(j);
  if (outer) *outer = true;
  if (m->async) uv_close((uv_handle_t *)m->async, free_handle);
  m->async = NULL;
  for (int i = 0; i < WST_COUNT; i++) {
    sqlite3_finalize(m->wst[i]);
    m->wst[i] = NULL;
  }
  sqlite3_close(m->wconn); /* NULL is a no-op */
  m->wconn = NULL;
  if (m->lock_fd >= 0) close(m->lock_fd); /* after the connection: no append is left */
  m->lock_fd = -1;
  msg_nonces_free(&m->nonces);
  free(m->batch);
  free(m->chans);
  free(m->touched);
  m->batch = NULL;
  m->chans = NULL;
  m->touched = NULL;
  pthread_mutex_destroy(&m->dmu);
  pthread_cond_destroy(&m->qcv);
  pthread_mutex_destroy(&m->qmu);
}
