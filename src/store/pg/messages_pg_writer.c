/* messages_pg_writer.c — append with group commit on PostgreSQL: the
 * queue, the writer thread and its connection, the node-id lease, the id
 * generator, and the callbacks on the loop. Contract and the steps of a
 * batch in messages_pg.h.
 *
 * Life of an append: the caller's thread copies it into one job (one
 * allocation) and queues it; the writer wakes, takes everything queued (up
 * to batch_max), runs the batch transaction, and moves the jobs to the
 * done list; a uv_async_t wakes the loop, which calls back and frees them
 * in order. The batch statements carry their rows as array parameters
 * (text-format array literals), so a batch costs the same handful of round
 * trips whatever its size. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "store/pg/messages_pg_int.h"

struct mpg_job {
  mpg_job_t *next;
  msg_append_cb cb;
  void *arg;
  int64_t channel_id, author_id;
  size_t body_n, att_n, nonce_n;
  size_t nkeys; /* media keys, after the nonce, each with a NUL */
  bool has_att, has_nonce;
  bool resolved; /* writer: answered within the batch (duplicate) */
  bool fresh;    /* writer: inserted by the batch */
  bool member;   /* writer: the author is a member of the channel */
  int status;
  msg_ack_t ack;
  char data[]; /* body, then attachments, then nonce, then the keys */
};

/* "STRM" and the schema, as for migrations, with another second key. */
static const pg_stmt_t st_lease_lock = {
    "msgs_lease_lock",
    "SELECT pg_advisory_xact_lock(1398035021, "
    "hashtext(coalesce(current_schema(), '') || '/node_leases'))"};
/* A fixed id: ours if free, expired, or already ours. */
static const pg_stmt_t st_lease_fixed = {
    "msgs_lease_fixed",
    "INSERT INTO node_leases(node_id, holder, info, expires_at) "
    "VALUES ($1::int4, $2::text, $3::text, clock_timestamp() + $4::int8 * interval '1 millisecond') "
    "ON CONFLICT (node_id) DO UPDATE SET holder = excluded.holder, info = excluded.info, "
    "expires_at = excluded.expires_at "
    "WHERE node_leases.expires_at < clock_timestamp() OR node_leases.holder = excluded.holder "
    "RETURNING node_id"};
/* The lowest id without a live lease (under the advisory lock: no race). */
static const pg_stmt_t st_lease_any = {
    "msgs_lease_any",
    "INSERT INTO node_leases(node_id, holder, info, expires_at) "
    "SELECT g, $1::text, $2::text, clock_timestamp() + $3::int8 * interval '1 millisecond' "
    "FROM generate_series(0, 1023) g WHERE NOT EXISTS (SELECT 1 FROM node_leases l "
    "WHERE l.node_id = g AND l.expires_at >= clock_timestamp()) ORDER BY g LIMIT 1 "
    "ON CONFLICT (node_id) DO UPDATE SET holder = excluded.holder, info = excluded.info, "
    "expires_at = excluded.expires_at RETURNING node_id"};
static const pg_stmt_t st_lease_renew = {
    "msgs_lease_renew",
    "UPDATE node_leases SET expires_at = clock_timestamp() + $3::int8 * interval '1 millisecond' "
    "WHERE node_id = $1::int4 AND holder = $2::text"};
static const pg_stmt_t st_lease_release = {
    "msgs_lease_release", "DELETE FROM node_leases WHERE node_id = $1::int4 AND holder = $2::text"};
static const pg_stmt_t st_max_id = {"msgs_max_id", "SELECT coalesce(max(id), 0) FROM messages"};
/* In id order: two batches (of any processes) sharing channels lock them
 * in the same order and cannot deadlock. NO KEY UPDATE does not conflict
 * with the KEY SHARE locks that members' foreign keys take. */
static const pg_stmt_t st_lock = {
    "msgs_batch_lock",
    "SELECT id, last_seq, last_id, kind = 'dm', private, coalesce(dm_lo, 0), coalesce(dm_hi, 0) "
    "FROM channels WHERE id = ANY($1::int8[]) ORDER BY id FOR NO KEY UPDATE"};
/* The positions (1-based, one per job) whose author is a member. */
static const pg_stmt_t st_members = {
    "msgs_batch_members",
    "SELECT k.i FROM unnest($1::int8[], $2::int8[]) WITH ORDINALITY AS k(c, a, i) "
    "WHERE EXISTS (SELECT 1 FROM members m WHERE m.channel_id = k.c AND m.user_id = k.a)"};
static const pg_stmt_t st_nonces = {
    "msgs_batch_nonces",
    "SELECT m.author_id, m.channel_id, m.nonce, m.id, m.seq, m.created_at "
    "FROM unnest($1::int8[], $2::int8[], $3::bytea[]) AS k(a, c, n) "
    "JOIN messages m ON m.author_id = k.a AND m.channel_id = k.c AND m.nonce = k.n "
    "WHERE m.nonce IS NOT NULL"};
static const pg_stmt_t st_insert = {
    "msgs_batch_insert",
    "INSERT INTO messages(id, channel_id, seq, author_id, body, attachments, nonce, created_at) "
    "SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::text[], "
    "$6::text[], $7::bytea[], $8::int8[])"};
/* ON CONFLICT: a key listed twice in one message is indexed once. */
static const pg_stmt_t st_attach = {
    "msgs_batch_attach",
    "INSERT INTO attachments(media_key, channel_id, message_id) "
    "SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[]) ON CONFLICT DO NOTHING"};
static const pg_stmt_t st_update = {
    "msgs_batch_update",
    "UPDATE channels c SET last_seq = v.s, last_id = v.i "
    "FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS v(id, s, i) WHERE c.id = v.id"};

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- append (any thread) ---- */

int mpg_append(messages_store_t *s, const msg_append_t *msg, msg_append_cb cb, void *arg) {
  mpg_t *m = mpg_self(s);
  if (!msg || !cb || msg->channel_id <= 0 || msg->author_id <= 0) return -EINVAL;
  if (!mpg_slice_ok(msg->body, MSG_BODY_MAX)) return -EINVAL;
  bool has_att = msg->attachments.p != NULL, has_nonce = msg->nonce.p != NULL;
  if (has_att && !mpg_slice_ok(msg->attachments, MSG_ATTACHMENTS_MAX)) return -EINVAL;
  if (has_nonce && (msg->nonce.n == 0 || msg->nonce.n > MSG_NONCE_MAX)) return -EINVAL;
  if (!mpg_keys_ok(msg->keys, msg->nkeys)) return -EINVAL;
  size_t att_n = has_att ? msg->attachments.n : 0, nonce_n = has_nonce ? msg->nonce.n : 0;
  size_t keys_n = 0;
  for (size_t i = 0; i < msg->nkeys; i++) keys_n += msg->keys[i].n + 1;
  mpg_job_t *j = malloc(sizeof *j + msg->body.n + att_n + nonce_n + keys_n);
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

void mpg_stats(messages_store_t *s, msg_store_stats_t *out) {
  mpg_t *m = mpg_self(s);
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

static void complete(mpg_job_t *j) {
  j->cb(j->arg, j->status, j->status == 0 || j->status == -EPERM ? &j->ack : NULL);
  free(j);
}

static mpg_job_t *pop_done(mpg_t *m) {
  pthread_mutex_lock(&m->dmu);
  mpg_job_t *j = m->dhead;
  if (j) {
    m->dhead = j->next;
    if (!m->dhead) m->dtail = NULL;
  }
  pthread_mutex_unlock(&m->dmu);
  return j;
}

/* One job at a time, so that a callback that closes the store leaves the
 * rest to close (which runs them) and we notice through `gone`. */
static void on_async(uv_async_t *h) {
  mpg_t *m = h->data;
  bool gone = false;
  m->gone = &gone;
  mpg_job_t *j;
  while ((j = pop_done(m))) {
    complete(j);
    if (gone) return;
  }
  m->gone = NULL;
}

static void free_handle(uv_handle_t *h) { free(h); }

/* ---- the node-id lease (writer connection) ---- */

static void lease_params_tail(mpg_t *m, pg_params_t *p) {
  char host[64] = "?";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  static __thread char info[96];
  snprintf(info, sizeof info, "%s:%ld", host, (long)getpid());
  pg_p_cstr(p, m->holder);
  pg_p_cstr(p, info);
  pg_p_i64(p, m->lease_ttl_ms);
}

/* Takes a node id (messages_pg.h) and resumes the generator above the
 * newest stored id. 0, -EADDRINUSE (the fixed id is held), -EADDRNOTAVAIL
 * (all 1024 are), -EIO. */
static int lease(mpg_t *m) {
  pg_conn_t *c = m->wconn;
  if (pg_conn_ensure(c) < 0) return -EIO;
  PGresult *r = NULL;
  int e = pg_cmd(c, "BEGIN", "lease begin");
  if (e == 0) e = pg_exec(c, &st_lease_lock, NULL, NULL, "lease lock");
  if (e == 0) {
    pg_params_t p = {0};
    if (m->fixed_node) pg_p_i64(&p, atomic_load(&m->node_id));
    lease_params_tail(m, &p);
    e = pg_exec(c, m->fixed_node ? &st_lease_fixed : &st_lease_any, &p, &r, "lease");
  }
  int64_t node = -1, max_id = 0;
  if (e == 0 && (PQntuples(r) != 1 || pg_get_i64(r, 0, 0, &node) < 0 || node < 0 ||
                 node > MSG_NODE_ID_MAX))
    e = m->fixed_node ? -EADDRINUSE : -EADDRNOTAVAIL;
  PQclear(r);
  r = NULL;
  if (e == 0) e = pg_exec(c, &st_max_id, NULL, &r, "lease max id");
  if (e == 0 && pg_get_i64(r, 0, 0, &max_id) < 0) e = -EIO;
  PQclear(r);
  if (e == 0) e = pg_cmd(c, "COMMIT", "lease commit");
  if (e < 0) {
    if (pg_conn_raw(c) && PQtransactionStatus(pg_conn_raw(c)) != PQTRANS_IDLE)
      pg_cmd(c, "ROLLBACK", "lease rollback");
    if (e == -EADDRINUSE)
      log_error("store", "messages: node id %u is leased by another live process",
                atomic_load(&m->node_id));
    else if (e == -EADDRNOTAVAIL)
      log_error("store", "messages: all %d node ids are leased", MSG_NODE_ID_MAX + 1);
    return e == -EEXIST || e == -ENOENT ? -EIO : e;
  }
  atomic_store(&m->node_id, (unsigned)node);
  m->leased = true;
  /* Above every stored id, whatever our clock says (a node id taken over
   * from a dead process, a clock set back across a restart). */
  if (max_id > 0 && (max_id >> 22) >= m->idgen.ms) {
    m->idgen.ms = max_id >> 22;
    m->idgen.ctr = 0xFFF; /* the next id borrows the following millisecond */
  }
  log_info("store", "messages: leased node id %lld for %u ms", (long long)node, m->lease_ttl_ms);
  return 0;
}

/* Extends the lease: 0, -ESTALE (lost: not ours any more), -EIO. Inside
 * a batch transaction, the row lock also fences a takeover out. */
static int renew(mpg_t *m, const char *op) {
  pg_params_t p = {0};
  pg_p_i64(&p, atomic_load(&m->node_id));
  pg_p_cstr(&p, m->holder);
  pg_p_i64(&p, m->lease_ttl_ms);
  PGresult *r;
  int e = pg_exec(m->wconn, &st_lease_renew, &p, &r, op);
  if (e < 0) return -EIO;
  int64_t n = pg_affected(r);
  PQclear(r);
  if (n == 1) return 0;
  log_error("store", "messages: lost the lease of node id %u (expired and taken over)",
            atomic_load(&m->node_id));
  m->leased = false;
  return -ESTALE;
}

static void release_lease(mpg_t *m) {
  if (!m->leased || !m->wconn || pg_conn_ensure(m->wconn) < 0) return;
  pg_params_t p = {0};
  pg_p_i64(&p, atomic_load(&m->node_id));
  pg_p_cstr(&p, m->holder);
  pg_exec(m->wconn, &st_lease_release, &p, NULL, "lease release");
  m->leased = false;
}

/* ---- array literals ---- */

static void arr_begin(buf_t *b) {
  buf_reset(b);
  buf_append_char(b, '{');
}

static void arr_sep(buf_t *b) {
  if (b->len > 1) buf_append_char(b, ',');
}

static void arr_end(buf_t *b) { buf_append_char(b, '}'); }

static void arr_i64(buf_t *b, int64_t v) {
  arr_sep(b);
  buf_printf(b, "%lld", (long long)v);
}

static void arr_null(buf_t *b) {
  arr_sep(b);
  buf_append_str(b, "NULL");
}

/* A quoted element: only '"' and '\' need a backslash inside quotes. */
static void arr_text(buf_t *b, const char *p, size_t n) {
  arr_sep(b);
  buf_append_char(b, '"');
  size_t i = 0;
  while (i < n) {
    size_t k = i;
    while (k < n && p[k] != '"' && p[k] != '\\') k++;
    buf_append(b, p + i, k - i);
    if (k < n) {
      buf_append_char(b, '\\');
      buf_append_char(b, p[k]);
      k++;
    }
    i = k;
  }
  buf_append_char(b, '"');
}

/* bytea in hex (\x...), its backslash escaped for the array parser. */
static void arr_bytes(buf_t *b, const void *v, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = v;
  arr_sep(b);
  buf_append_str(b, "\"\\\\x");
  if (buf_reserve(b, 2 * n + 2) < 0) return;
  for (size_t i = 0; i < n; i++) {
    b->data[b->len++] = hex[p[i] >> 4];
    b->data[b->len++] = hex[p[i] & 15];
  }
  b->data[b->len] = '\0';
  buf_append_char(b, '"');
}

static bool arrs_ok(mpg_t *m, int n) {
  for (int i = 0; i < n; i++)
    if (m->a[i].oom) return false;
  return true;
}

/* ---- the batch ---- */

static const char *job_nonce(const mpg_job_t *j) { return j->data + j->body_n + j->att_n; }

static bool same_key(const mpg_job_t *a, const mpg_job_t *b) {
  return a->author_id == b->author_id && a->channel_id == b->channel_id &&
         a->nonce_n == b->nonce_n && memcmp(job_nonce(a), job_nonce(b), a->nonce_n) == 0;
}

static mpg_chan_t *chan_slot(mpg_t *m, int64_t id, size_t *ntouched) {
  size_t mask = m->chan_cap - 1;
  size_t i = (size_t)(((uint64_t)id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & mask;
  while (m->chans[i].channel_id && m->chans[i].channel_id != id) i = (i + 1) & mask;
  mpg_chan_t *c = &m->chans[i];
  if (!c->channel_id && ntouched) {
    c->channel_id = id;
    c->last_seq = -1; /* until the lock query finds it */
    c->last_id = 0;
    c->changed = false;
    m->touched[(*ntouched)++] = i;
  }
  return c;
}

/* Step 2: lock the channels, learn their last_seq/last_id. */
static int lock_channels(mpg_t *m, size_t ntouched) {
  buf_t *ids = &m->a[0];
  arr_begin(ids);
  for (size_t k = 0; k < ntouched; k++) arr_i64(ids, m->chans[m->touched[k]].channel_id);
  arr_end(ids);
  if (!arrs_ok(m, 1)) return -ENOMEM;
  pg_params_t p = {0};
  pg_p_textfmt(&p, ids->data);
  PGresult *r;
  int e = pg_exec(m->wconn, &st_lock, &p, &r, "append lock");
  if (e < 0) return -EIO;
  for (int i = 0; i < PQntuples(r); i++) {
    int64_t id, seq, last, lo, hi;
    bool dm, priv;
    if (pg_get_i64(r, i, 0, &id) < 0 || pg_get_i64(r, i, 1, &seq) < 0 ||
        pg_get_i64(r, i, 2, &last) < 0 || pg_get_bool(r, i, 3, &dm) < 0 ||
        pg_get_bool(r, i, 4, &priv) < 0 || pg_get_i64(r, i, 5, &lo) < 0 ||
        pg_get_i64(r, i, 6, &hi) < 0) {
      e = -EIO;
      break;
    }
    mpg_chan_t *c = chan_slot(m, id, NULL);
    c->last_seq = seq;
    c->last_id = last;
    c->kind = dm ? CHANNEL_KIND_DM : CHANNEL_KIND_CHANNEL;
    c->is_private = priv;
    c->dm_user_lo = lo;
    c->dm_user_hi = hi;
  }
  PQclear(r);
  return e;
}

/* Step 2b: which authors are members, read after the channels are locked,
 * in the transaction that stores their messages. */
static int check_members(mpg_t *m, size_t n) {
  buf_t *ch = &m->a[0], *au = &m->a[1];
  arr_begin(ch);
  arr_begin(au);
  for (size_t i = 0; i < n; i++) {
    arr_i64(ch, m->batch[i]->channel_id);
    arr_i64(au, m->batch[i]->author_id);
  }
  arr_end(ch);
  arr_end(au);
  if (!arrs_ok(m, 2)) return -ENOMEM;
  pg_params_t p = {0};
  pg_p_textfmt(&p, ch->data);
  pg_p_textfmt(&p, au->data);
  PGresult *r;
  if (pg_exec(m->wconn, &st_members, &p, &r, "append members") < 0) return -EIO;
  int e = 0;
  for (int row = 0; row < PQntuples(r); row++) {
    int64_t pos;
    if (pg_get_i64(r, row, 0, &pos) < 0 || pos < 1 || (uint64_t)pos > n) {
      e = -EIO;
      break;
    }
    m->batch[pos - 1]->member = true;
  }
  PQclear(r);
  return e;
}

/* Step 3: nonces already stored (by any process). */
static int find_duplicates(mpg_t *m, size_t n) {
  buf_t *au = &m->a[0], *ch = &m->a[1], *no = &m->a[2];
  arr_begin(au);
  arr_begin(ch);
  arr_begin(no);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    mpg_job_t *j = m->batch[i];
    if (!j->has_nonce || !j->member) continue;
    arr_i64(au, j->author_id);
    arr_i64(ch, j->channel_id);
    arr_bytes(no, job_nonce(j), j->nonce_n);
    k++;
  }
  if (k == 0) return 0;
  arr_end(au);
  arr_end(ch);
  arr_end(no);
  if (!arrs_ok(m, 3)) return -ENOMEM;
  pg_params_t p = {0};
  pg_p_textfmt(&p, au->data);
  pg_p_textfmt(&p, ch->data);
  pg_p_textfmt(&p, no->data);
  PGresult *r;
  if (pg_exec(m->wconn, &st_nonces, &p, &r, "append nonces") < 0) return -EIO;
  int e = 0;
  for (int row = 0; row < PQntuples(r) && e == 0; row++) {
    int64_t author, channel;
    msg_ack_t ack = {.duplicate = true};
    if (pg_get_i64(r, row, 0, &author) < 0 || pg_get_i64(r, row, 1, &channel) < 0 ||
        pg_get_i64(r, row, 3, &ack.id) < 0 || pg_get_i64(r, row, 4, &ack.seq) < 0 ||
        pg_get_i64(r, row, 5, &ack.created_at) < 0) {
      e = -EIO;
      break;
    }
    const char *nonce = PQgetvalue(r, row, 2);
    size_t nonce_n = (size_t)PQgetlength(r, row, 2);
    for (size_t i = 0; i < n; i++) {
      mpg_job_t *j = m->batch[i];
      if (j->has_nonce && !j->resolved && j->author_id == author && j->channel_id == channel &&
          j->nonce_n == nonce_n && memcmp(job_nonce(j), nonce, nonce_n) == 0) {
        j->resolved = true;
        j->ack = ack;
      }
    }
  }
  PQclear(r);
  return e;
}

/* Step 4b: the attachments index of the messages just inserted, in the
 * same transaction (a message is never committed without its rows). */
static int insert_attachments(mpg_t *m, size_t n) {
  buf_t *keys = &m->a[8], *chs = &m->a[9], *ids = &m->a[10];
  arr_begin(keys);
  arr_begin(chs);
  arr_begin(ids);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    mpg_job_t *j = m->batch[i];
    if (!j->fresh) continue;
    const char *key = job_nonce(j) + j->nonce_n;
    for (size_t q = 0; q < j->nkeys; q++) {
      size_t kn = strlen(key);
      arr_text(keys, key, kn);
      arr_i64(chs, j->channel_id);
      arr_i64(ids, j->ack.id);
      key += kn + 1;
      k++;
    }
  }
  if (k == 0) return 0;
  arr_end(keys);
  arr_end(chs);
  arr_end(ids);
  for (int i = 8; i < 11; i++)
    if (m->a[i].oom) return -ENOMEM;
  pg_params_t p = {0};
  pg_p_textfmt(&p, keys->data);
  pg_p_textfmt(&p, chs->data);
  pg_p_textfmt(&p, ids->data);
  return pg_exec(m->wconn, &st_attach, &p, NULL, "append attachments") < 0 ? -EIO : 0;
}

/* Step 4: number the new messages and insert them. */
static int insert_new(mpg_t *m, size_t n, size_t *nfresh) {
  buf_t *a = m->a;
  for (int i = 0; i < 8; i++) arr_begin(&a[i]);
  int64_t now = wall_ms();
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    mpg_job_t *j = m->batch[i];
    mpg_chan_t *c = chan_slot(m, j->channel_id, NULL);
    if (c->last_seq < 0) {
      j->status = -ENOENT;
      continue;
    }
    j->ack.kind = c->kind;
    j->ack.is_private = c->is_private;
    j->ack.dm_user_lo = c->dm_user_lo;
    j->ack.dm_user_hi = c->dm_user_hi;
    if (!j->member) {
      j->status = -EPERM;
      continue;
    }
    if (j->resolved) continue;
    if (j->has_nonce) {
      /* A copy earlier in this batch answers for this one. */
      mpg_job_t *orig = NULL;
      for (size_t q = 0; q < i && !orig; q++)
        if (m->batch[q]->fresh && m->batch[q]->has_nonce && same_key(m->batch[q], j))
          orig = m->batch[q];
      if (orig) {
        j->resolved = true;
        j->ack = orig->ack;
        j->ack.duplicate = true;
        continue;
      }
    }
    int64_t created_at;
    int64_t id = msg_idgen_above(&m->idgen, atomic_load(&m->node_id), now, c->last_id, &created_at);
    c->last_seq++;
    c->last_id = id;
    c->changed = true;
    j->fresh = true;
    j->ack.id = id;
    j->ack.seq = c->last_seq;
    j->ack.created_at = created_at;
    j->ack.duplicate = false;
    arr_i64(&a[0], id);
    arr_i64(&a[1], j->channel_id);
    arr_i64(&a[2], c->last_seq);
    arr_i64(&a[3], j->author_id);
    arr_text(&a[4], j->data, j->body_n);
    if (j->has_att) arr_text(&a[5], j->data + j->body_n, j->att_n);
    else arr_null(&a[5]);
    if (j->has_nonce) arr_bytes(&a[6], job_nonce(j), j->nonce_n);
    else arr_null(&a[6]);
    arr_i64(&a[7], created_at);
    k++;
  }
  *nfresh = k;
  if (k == 0) return 0;
  for (int i = 0; i < 8; i++) arr_end(&a[i]);
  if (!arrs_ok(m, 8)) return -ENOMEM;
  pg_params_t p = {0};
  for (int i = 0; i < 8; i++) pg_p_textfmt(&p, a[i].data);
  if (pg_exec(m->wconn, &st_insert, &p, NULL, "append insert") < 0) return -EIO;
  return insert_attachments(m, n);
}

/* Step 5: channels.last_seq/last_id of the channels that advanced. */
static int update_channels(mpg_t *m, size_t ntouched) {
  buf_t *ids = &m->a[0], *seqs = &m->a[1], *last = &m->a[2];
  arr_begin(ids);
  arr_begin(seqs);
  arr_begin(last);
  size_t k = 0;
  for (size_t t = 0; t < ntouched; t++) {
    mpg_chan_t *c = &m->chans[m->touched[t]];
    if (!c->changed) continue;
    arr_i64(ids, c->channel_id);
    arr_i64(seqs, c->last_seq);
    arr_i64(last, c->last_id);
    k++;
  }
  if (k == 0) return 0;
  arr_end(ids);
  arr_end(seqs);
  arr_end(last);
  if (!arrs_ok(m, 3)) return -ENOMEM;
  pg_params_t p = {0};
  pg_p_textfmt(&p, ids->data);
  pg_p_textfmt(&p, seqs->data);
  pg_p_textfmt(&p, last->data);
  PGresult *r;
  if (pg_exec(m->wconn, &st_update, &p, &r, "append last_seq") < 0) return -EIO;
  int64_t changed = pg_affected(r);
  PQclear(r);
  if (changed != (int64_t)k) {
    /* The channels are locked: nothing can have removed them. */
    log_error("store", "messages append: %lld of %zu channels updated", (long long)changed, k);
    return -EIO;
  }
  return 0;
}

/* One transaction for batch[0..n). false: it failed as a whole (rolled
 * back or never started); every job then fails with -EIO. */
static bool batch_txn(mpg_t *m, size_t n, size_t *ntouched) {
  pg_conn_t *c = m->wconn;
  if (pg_conn_ensure(c) < 0) return false;
  if (!m->leased && lease(m) < 0) return false;
  if (pg_cmd(c, "BEGIN", "append begin") < 0) return false;
  bool ok = renew(m, "append lease") == 0;
  for (size_t i = 0; ok && i < n; i++) chan_slot(m, m->batch[i]->channel_id, ntouched);
  if (ok) ok = lock_channels(m, *ntouched) == 0;
  if (ok) ok = check_members(m, n) == 0;
  if (ok) ok = find_duplicates(m, n) == 0;
  size_t nfresh = 0;
  if (ok) ok = insert_new(m, n, &nfresh) == 0;
  if (ok) ok = update_channels(m, *ntouched) == 0;
  /* The durable point: with synchronous_commit=on, COMMIT returns after
   * the WAL flush. */
  if (ok) ok = pg_cmd(c, "COMMIT", "append commit") == 0;
  if (!ok && pg_conn_raw(c) && PQstatus(pg_conn_raw(c)) == CONNECTION_OK &&
      PQtransactionStatus(pg_conn_raw(c)) != PQTRANS_IDLE)
    pg_cmd(c, "ROLLBACK", "append rollback");
  return ok;
}

/* Moves up to batch_max queued jobs into m->batch; returns how many. */
static size_t take(mpg_t *m) {
  size_t n = 0;
  pthread_mutex_lock(&m->qmu);
  while (m->qhead && n < m->batch_max) {
    mpg_job_t *j = m->qhead;
    m->qhead = j->next;
    j->next = NULL;
    m->batch[n++] = j;
  }
  if (!m->qhead) m->qtail = NULL;
  m->qlen -= n;
  pthread_mutex_unlock(&m->qmu);
  return n;
}

static void deliver(mpg_t *m, size_t n) {
  if (n == 0) return;
  for (size_t i = 0; i + 1 < n; i++) m->batch[i]->next = m->batch[i + 1];
  pthread_mutex_lock(&m->dmu);
  if (m->dtail) m->dtail->next = m->batch[0];
  else m->dhead = m->batch[0];
  m->dtail = m->batch[n - 1];
  pthread_mutex_unlock(&m->dmu);
  uv_async_send(m->async);
}

static void run_batch(mpg_t *m) {
  size_t n = take(m);
  if (n == 0) return;
  size_t ntouched = 0;
  bool ok = batch_txn(m, n, &ntouched);
  for (size_t k = 0; k < ntouched; k++) m->chans[m->touched[k]].channel_id = 0;

  uint64_t appended = 0, dups = 0, failed = 0;
  for (size_t i = 0; i < n; i++) {
    mpg_job_t *j = m->batch[i];
    if (!ok) j->status = -EIO;
    if (j->status != 0) failed++;
    else if (j->ack.duplicate) dups++;
    else appended++;
  }
  if (ok) {
    atomic_fetch_add(&m->n_batches, 1);
    if (n > atomic_load(&m->n_max_batch)) atomic_store(&m->n_max_batch, n); /* one writer */
    mpg_ok(m, 0);
  } else {
    atomic_store(&m->healthy, false);
  }
  atomic_fetch_add(&m->n_appended, appended);
  atomic_fetch_add(&m->n_duplicates, dups);
  atomic_fetch_add(&m->n_failed, failed);
  deliver(m, n);
}

/* Keeps the lease alive while no batch does. */
static void idle_renew(mpg_t *m) {
  if (pg_conn_ensure(m->wconn) < 0) return;
  if (!m->leased) lease(m);
  else renew(m, "lease renew");
}

static void *writer_main(void *arg) {
  mpg_t *m = arg;
  for (;;) {
    pthread_mutex_lock(&m->qmu);
    bool timed_out = false;
    while (!m->qhead && !m->closing && !timed_out) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      int64_t ns = ts.tv_nsec + (int64_t)(m->lease_ttl_ms / 3) * 1000000;
      ts.tv_sec += ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      timed_out = pthread_cond_timedwait(&m->qcv, &m->qmu, &ts) == ETIMEDOUT;
    }
    bool empty = !m->qhead, closing = m->closing;
    pthread_mutex_unlock(&m->qmu);
    if (empty && closing) break; /* everything queued is done */
    if (empty) idle_renew(m);
    else run_batch(m);
  }
  return NULL;
}

/* ---- open / close ---- */

static bool w_inited(const mpg_t *m) { return m->batch != NULL; }

int mpg_writer_open(mpg_t *m, const messages_pg_opts_t *o) {
  m->loop = o->loop;
  m->fixed_node = o->fixed_node;
  atomic_init(&m->node_id, o->fixed_node ? o->node_id : 0);
  m->batch_max = o->batch_max ? o->batch_max : MESSAGES_PG_BATCH_MAX;
  m->queue_max = o->queue_max ? o->queue_max : MESSAGES_PG_QUEUE_MAX;
  m->lease_ttl_ms = o->lease_ttl_ms ? o->lease_ttl_ms : MESSAGES_PG_LEASE_TTL_MS;
  m->idgen.ms = -1;
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
  for (int i = 0; i < MPG_ARRAYS; i++) m->a[i] = (buf_t)BUF_INIT;
  pthread_mutex_init(&m->qmu, NULL);
  pthread_cond_init(&m->qcv, NULL);
  pthread_mutex_init(&m->dmu, NULL);

  uint8_t rnd[16];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) return -EIO;
  for (int i = 0; i < 16; i++) snprintf(m->holder + 2 * i, 3, "%02x", rnd[i]);

  m->wconn = pg_db_conn_new(m->db);
  if (!m->wconn) return -EIO;
  int r = lease(m);
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

void mpg_writer_close(mpg_t *m) {
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
  mpg_job_t *j;
  while ((j = pop_done(m))) complete(j);
  if (outer) *outer = true;
  if (m->async) uv_close((uv_handle_t *)m->async, free_handle);
  m->async = NULL;
  release_lease(m); /* a restarted replica may take the id at once */
  pg_conn_free(m->wconn);
  m->wconn = NULL;
  for (int i = 0; i < MPG_ARRAYS; i++) buf_free(&m->a[i]);
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
