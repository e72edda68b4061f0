/* Unit tests for the messages store on PostgreSQL, against the server at
 * STORM_TEST_PG (a libpq URL; scripts/infra.sh starts one). Unset: the
 * binary fails with a message, it never skips.
 *
 * Part 1 is the backend-independent suite (messages_store_suite.h), the
 * same that test_messages_store.c runs on SQLite, each test in a schema of
 * its own (selected through the URL's search_path, dropped afterwards).
 * Part 2 tests what is specific to PostgreSQL: two stores with two pools
 * (two replicas) appending to one channel at once (gapless unique seqs,
 * nonce dedup across them, ids growing with seq), node-id leases
 * (distinct, fixed, taken over, lost), a batch failing as a whole,
 * forced batching and a full queue (a test connection holding a channel's
 * row lock stalls the writer deterministically), ids kept above a
 * channel's newest and above every stored id, durability seen from a
 * callback, connection loss and recovery (in a database of the test's
 * own). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <uv.h>

#include "core/log.h"
#include "pg_fixture.h"
#include "messages_store_suite.h"
#include "store/messages_store.h"
#include "store/pg/messages_pg.h"
#include "store/pg/pg_db.h"
#include "store/pg/users_pg.h"
#include "store/users_store.h"

/* ==== PostgreSQL fixture helpers ==== */

static pg_db_t *open_db(const char *url, unsigned pool) {
  pg_db_t *db = NULL;
  char err[256];
  if (pg_db_open(url, pool, &db, err, sizeof err) != 0) fail_msg("pg_db_open: %s", err);
  return db;
}

/* ==== part 1: the suite on PostgreSQL ==== */

static struct {
  char schema[64];
  pg_db_t *db;
  users_store_t *users;
} cur;

static messages_store_t *pg_make(uv_loop_t *loop, unsigned node_id) {
  char url[1024];
  new_schema(cur.schema, sizeof cur.schema, url, sizeof url);
  char err[256];
  if (pg_db_open(url, 8, &cur.db, err, sizeof err) != 0) {
    fprintf(stderr, "pg_db_open: %s\n", err);
    return NULL;
  }
  users_pg_opts_t uo = {.migrate_on_open = true};
  if (users_pg_open(cur.db, &uo, &cur.users) != 0) return NULL;
  messages_pg_opts_t o = {.loop = loop, .fixed_node = true, .node_id = node_id};
  messages_store_t *s = NULL;
  if (messages_pg_open(cur.db, &o, &s) != 0) return NULL;
  return s;
}

static void pg_destroy(messages_store_t *s) {
  if (s) s->ops->close(s);
  cur.users->ops->close(cur.users);
  pg_db_close(cur.db);
  drop_schema(cur.schema);
  memset(&cur, 0, sizeof cur);
}

static int64_t pg_mkuser(const char *name) {
  user_rec_t u;
  int r = cur.users->ops->user_create(cur.users, name, name, "hash", 1, &u);
  assert_int_equal(r, 0);
  return u.id;
}

/* ==== part 2: PostgreSQL ==== */

typedef struct {
  char schema[64];
  char url[1024];
  char dbname[64];
  int log_fd;
  pg_db_t *db;
  users_store_t *users;
  env_t env; /* the loop and the messages store, for part 1's helpers */
  PGconn *peek;
  messages_store_t *xs[4]; /* more stores (replicas): closed by teardown */
  pg_db_t *xdb;            /* a second pool */
} fx_t;

static int fx_setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  new_schema(f->schema, sizeof f->schema, f->url, sizeof f->url);
  f->log_fd = memfd_create("log", 0);
  if (f->log_fd < 0) return -1;
  log_set_fd(f->log_fd);
  log_set_level(LOG_LEVEL_INFO);
  if (uv_loop_init(&f->env.loop) != 0) return -1;
  atomic_store(&g_done, 0);
  g_loop_thread = pthread_self();
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  fx_t *f = *state;
  /* First: a failed test may have left a row lock held there, which the
   * writer would wait for forever while close drains. */
  if (f->peek) PQfinish(f->peek);
  for (int i = 0; i < 4; i++)
    if (f->xs[i]) f->xs[i]->ops->close(f->xs[i]);
  if (f->env.s) f->env.s->ops->close(f->env.s);
  if (f->users) f->users->ops->close(f->users);
  pg_db_close(f->xdb);
  pg_db_close(f->db);
  uv_run(&f->env.loop, UV_RUN_DEFAULT);
  int r = uv_loop_close(&f->env.loop);
  log_set_fd(2);
  log_set_level(LOG_LEVEL_WARN);
  close(f->log_fd);
  drop_schema(f->schema);
  if (f->dbname[0]) {
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->dbname);
    admin_exec(g_admin, sql);
  }
  free(f);
  return r == 0 ? 0 : -1;
}

static const char *logged(fx_t *f) {
  static char buf[65536];
  ssize_t n = pread(f->log_fd, buf, sizeof buf - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

/* Opens db (pool 4), users and messages stores in f; migrates. */
static env_t *fx_open(fx_t *f, const messages_pg_opts_t *extra) {
  f->db = open_db(f->url, 4);
  users_pg_opts_t uo = {.migrate_on_open = true};
  assert_int_equal(users_pg_open(f->db, &uo, &f->users), 0);
  messages_pg_opts_t o = extra ? *extra : (messages_pg_opts_t){0};
  o.loop = &f->env.loop;
  o.migrate_on_open = true;
  assert_int_equal(messages_pg_open(f->db, &o, &f->env.s), 0);
  f->peek = peek(f->url);
  return &f->env;
}

static int64_t fx_user(fx_t *f, const char *name) {
  user_rec_t u;
  assert_int_equal(f->users->ops->user_create(f->users, name, name, "hash", 1, &u), 0);
  return u.id;
}

/* Holds channel ch's row lock from the test's own connection (the writer
 * then waits in its lock step) until unlock_channel. */
static void lock_channel(fx_t *f, int64_t ch) {
  admin_exec(f->peek, "BEGIN");
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT 1 FROM channels WHERE id = %lld FOR UPDATE", (long long)ch);
  admin_exec(f->peek, sql);
}

static void unlock_channel(fx_t *f) { admin_exec(f->peek, "COMMIT"); }

/* Waits until a backend of this test's schema waits for a lock (the
 * writer stalled behind lock_channel). */
static void wait_writer_blocked(fx_t *f) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
           "AND wait_event_type = 'Lock'",
           f->schema);
  for (int i = 0; i < 1000 && admin_int(g_admin, sql) == 0; i++) sleep_ms(5);
  assert_int_equal(admin_int(g_admin, sql), 1);
}

static int64_t peek_int(fx_t *f, const char *sql) { return admin_int(f->peek, sql); }

/* ---- two replicas ---- */

enum { XN = 300, XPLAIN = 200 };

typedef struct {
  env_t *e;
  messages_store_t *s;
  int64_t ch, author;
  ack_t acks[XN + XPLAIN];
  atomic_int *go;
  int bad;
} xapp_t;

static void *xappend(void *arg) {
  xapp_t *t = arg;
  while (!atomic_load(t->go)) {
  }
  for (int i = 0; i < XN + XPLAIN; i++) {
    char nonce[16], body[32];
    snprintf(nonce, sizeof nonce, "n%d", i);
    snprintf(body, sizeof body, "m%d", i);
    msg_append_t m = mkmsg(t->ch, t->author, body, i < XN ? nonce : NULL);
    if (t->s->ops->append(t->s, &m, on_ack, &t->acks[i]) != 0) t->bad++;
  }
  return NULL;
}

/* Two stores with their own pools (two processes) append to one channel
 * at once, the same XN nonces each plus XPLAIN plain messages each: seqs
 * are 1..n without gap or repeat, each nonce stored once and answered
 * with the same id/seq by both, node ids differ, ids grow with seq. */
static void t_pgm_two_replicas(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, NULL);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  f->xdb = open_db(f->url, 2);
  messages_pg_opts_t o2 = {.loop = &e->loop};
  assert_int_equal(messages_pg_open(f->xdb, &o2, &f->xs[0]), 0);
  messages_store_t *s2 = f->xs[0];
  unsigned n1 = messages_pg_node_id(e->s), n2 = messages_pg_node_id(s2);
  assert_int_equal(n1, 0); /* auto: the lowest free ones */
  assert_int_equal(n2, 1);
  static xapp_t xa[2];
  memset(xa, 0, sizeof xa);
  atomic_int go = 0;
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    xa[i] = (xapp_t){.e = e, .s = i ? s2 : e->s, .ch = ch, .author = alice, .go = &go};
    assert_int_equal(pthread_create(&th[i], NULL, xappend, &xa[i]), 0);
  }
  atomic_store(&go, 1);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  assert_int_equal(xa[0].bad + xa[1].bad, 0);
  run_until(&e->loop, 2 * (XN + XPLAIN));
  const int total = XN + 2 * XPLAIN;
  static bool seen[XN + 2 * XPLAIN + 1];
  memset(seen, 0, sizeof seen);
  int originals = 0, dups = 0;
  for (int k = 0; k < 2; k++) {
    for (int i = 0; i < XN + XPLAIN; i++) {
      ack_t *a = &xa[k].acks[i];
      assert_int_equal(a->calls, 1);
      assert_int_equal(a->status, 0);
      assert_true(a->on_loop_thread);
      assert_true(a->ack.seq >= 1 && a->ack.seq <= total);
      if (a->ack.duplicate) {
        dups++;
        continue;
      }
      originals++;
      assert_false(seen[a->ack.seq]);
      seen[a->ack.seq] = true;
      assert_int_equal(msg_id_node(a->ack.id), k ? n2 : n1);
    }
  }
  assert_int_equal(originals, total);
  assert_int_equal(dups, XN);
  for (int i = 0; i < XN; i++) {
    ack_t *a = &xa[0].acks[i], *b = &xa[1].acks[i];
    assert_true(a->ack.duplicate != b->ack.duplicate); /* exactly one original */
    assert_int_equal(a->ack.id, b->ack.id);
    assert_int_equal(a->ack.seq, b->ack.seq);
    assert_int_equal(a->ack.created_at, b->ack.created_at);
  }
  assert_int_equal(last_seq(e, ch), total);
  /* the stored history: gapless, ids growing with seq, one row a nonce */
  int64_t after = 0, prev_id = 0, n = 0;
  for (;;) {
    msg_page_t p;
    assert_int_equal(e->s->ops->messages_page(e->s, ch, MSG_AFTER, after, MSG_PAGE_MAX, &p), 0);
    for (size_t k = 0; k < p.count; k++) {
      assert_int_equal(p.items[k].seq, ++n);
      assert_true(p.items[k].id > prev_id);
      prev_id = p.items[k].id;
    }
    after = n;
    bool more = p.more;
    msg_page_free(&p);
    if (!more) break;
  }
  assert_int_equal(n, total);
  assert_int_equal(peek_int(f, "SELECT count(DISTINCT nonce) FROM messages"), XN);
  msg_store_stats_t st1, st2;
  e->s->ops->stats(e->s, &st1);
  s2->ops->stats(s2, &st2);
  assert_int_equal(st1.appended + st2.appended, total);
  assert_int_equal(st1.duplicates + st2.duplicates, XN);
}

/* ---- node-id leases ---- */

static void t_pgm_node_leases(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, NULL);
  assert_int_equal(messages_pg_node_id(e->s), 0);
  messages_store_t *b, *c, *d;
  messages_pg_opts_t o = {.loop = &e->loop};
  assert_int_equal(messages_pg_open(f->db, &o, &f->xs[0]), 0);
  b = f->xs[0];
  assert_int_equal(messages_pg_node_id(b), 1);
  /* a fixed id held by a live store is refused */
  messages_pg_opts_t fx0 = {.loop = &e->loop, .fixed_node = true, .node_id = 0};
  c = (messages_store_t *)(uintptr_t)1;
  assert_int_equal(messages_pg_open(f->db, &fx0, &c), -EADDRINUSE);
  assert_true(c == (messages_store_t *)(uintptr_t)1);
  assert_non_null(strstr(logged(f), "node id 0 is leased by another live process"));
  assert_int_equal(peek_int(f, "SELECT count(*) FROM node_leases"), 2);
  /* closing frees it at once */
  e->s->ops->close(e->s);
  e->s = NULL;
  assert_int_equal(peek_int(f, "SELECT count(*) FROM node_leases WHERE node_id = 0"), 0);
  assert_int_equal(messages_pg_open(f->db, &fx0, &f->xs[1]), 0);
  c = f->xs[1];
  assert_int_equal(messages_pg_node_id(c), 0);
  /* an expired lease of a dead process is taken over */
  admin_exec(f->peek, "INSERT INTO node_leases VALUES (5, 'dead', 'gone:1', now() - interval '1 s')");
  admin_exec(f->peek, "INSERT INTO node_leases VALUES (2, 'alive', 'there:1', now() + interval '1 h')");
  messages_pg_opts_t fx5 = {.loop = &e->loop, .fixed_node = true, .node_id = 5};
  assert_int_equal(messages_pg_open(f->db, &fx5, &f->xs[2]), 0);
  d = f->xs[2];
  assert_int_equal(messages_pg_node_id(d), 5);
  assert_int_equal(peek_int(f, "SELECT count(*) FROM node_leases WHERE holder = 'dead'"), 0);
  /* auto skips the live foreign lease (2) */
  assert_int_equal(messages_pg_open(f->db, &o, &f->xs[3]), 0);
  messages_store_t *g = f->xs[3];
  assert_int_equal(messages_pg_node_id(g), 3);
  assert_int_equal(peek_int(f, "SELECT count(DISTINCT holder) FROM node_leases"), 5);
  b->ops->close(b);
  c->ops->close(c);
  d->ops->close(d);
  g->ops->close(g);
  memset(f->xs, 0, sizeof f->xs);
  assert_int_equal(peek_int(f, "SELECT count(*) FROM node_leases"), 1); /* 'alive' */
  /* bad options */
  messages_store_t *x;
  messages_pg_opts_t bad = {.loop = &e->loop, .fixed_node = true, .node_id = MSG_NODE_ID_MAX + 1};
  assert_int_equal(messages_pg_open(f->db, &bad, &x), -EINVAL);
  bad = (messages_pg_opts_t){.loop = NULL};
  assert_int_equal(messages_pg_open(f->db, &bad, &x), -EINVAL);
  bad = (messages_pg_opts_t){.loop = &e->loop, .batch_max = 100001};
  assert_int_equal(messages_pg_open(f->db, &bad, &x), -EINVAL);
  bad = (messages_pg_opts_t){.loop = &e->loop, .lease_ttl_ms = 299};
  assert_int_equal(messages_pg_open(f->db, &bad, &x), -EINVAL);
  assert_int_equal(messages_pg_open(NULL, &o, &x), -EINVAL);
  assert_int_equal(messages_pg_open(f->db, NULL, &x), -EINVAL);
}

/* Another process took our node id (our lease expired while we were cut
 * off): the batch that finds out fails, the next one leases again. */
static void t_pgm_lease_lost(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, NULL);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  ack_t a = app_wait(e, ch, alice, "one", NULL);
  assert_int_equal(a.status, 0);
  assert_int_equal(msg_id_node(a.ack.id), 0);
  admin_exec(f->peek, "UPDATE node_leases SET holder = 'thief' WHERE node_id = 0");
  ack_t b = app_wait(e, ch, alice, "two", NULL);
  assert_int_equal(b.status, -EIO);
  assert_false(e->s->ops->healthy(e->s));
  assert_non_null(strstr(logged(f), "lost the lease of node id 0"));
  ack_t c = app_wait(e, ch, alice, "three", NULL);
  assert_int_equal(c.status, 0);
  assert_int_equal(c.ack.seq, 2); /* the failed batch stored nothing */
  assert_int_equal(msg_id_node(c.ack.id), 1);
  assert_int_equal(messages_pg_node_id(e->s), 1);
  assert_true(c.ack.id > a.ack.id);
  assert_true(e->s->ops->healthy(e->s));
}

/* An idle writer keeps its lease alive. */
static void t_pgm_lease_renewed_idle(void **state) {
  fx_t *f = *state;
  messages_pg_opts_t o = {.lease_ttl_ms = 300};
  env_t *e = fx_open(f, &o);
  (void)e;
  int64_t t0 = peek_int(f, "SELECT (extract(epoch FROM expires_at) * 1000)::int8 FROM node_leases");
  sleep_ms(700);
  int64_t t1 = peek_int(f, "SELECT (extract(epoch FROM expires_at) * 1000)::int8 FROM node_leases");
  assert_true(t1 > t0 + 300);
  assert_int_equal(peek_int(f, "SELECT count(*) FROM node_leases WHERE expires_at > now()"), 1);
}

/* ---- batches ---- */

/* One failing row fails its whole batch: nothing of it is stored, every
 * append of it gets -EIO, and seqs stay gapless afterwards. A row lock
 * held on another channel stalls the writer, so the three appends queue
 * into one batch. */
static void t_pgm_batch_fails_whole(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, NULL);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false), ch2 = mkchan(e, "other", alice, false);
  admin_exec(f->peek,
             "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "IF NEW.body = 'boom' THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$");
  admin_exec(f->peek, "CREATE TRIGGER boom BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION boom()");
  ack_t x = {0}, a = {0}, b = {0}, c = {0};
  lock_channel(f, ch2);
  app(e, ch2, alice, "first", NULL, &x);
  wait_writer_blocked(f);
  app(e, ch, alice, "ok1", NULL, &a);
  app(e, ch, alice, "boom", NULL, &b);
  app(e, ch, alice, "ok2", "nonce", &c);
  unlock_channel(f);
  run_until(&e->loop, 4);
  assert_int_equal(x.status, 0);
  assert_int_equal(a.status, -EIO);
  assert_int_equal(b.status, -EIO);
  assert_int_equal(c.status, -EIO);
  assert_non_null(strstr(logged(f), "injected fault"));
  assert_false(e->s->ops->healthy(e->s));
  assert_int_equal(last_seq(e, ch), 0);
  assert_int_equal(peek_int(f, "SELECT count(*) FROM messages"), 1);
  ack_t d = app_wait(e, ch, alice, "ok3", "nonce");
  assert_int_equal(d.status, 0);
  assert_int_equal(d.ack.seq, 1);
  assert_false(d.ack.duplicate); /* the failed copy left nothing behind */
  assert_true(e->s->ops->healthy(e->s));
  msg_store_stats_t st;
  e->s->ops->stats(e->s, &st);
  assert_int_equal(st.failed, 3);
  assert_int_equal(st.appended, 2);
}

/* Appends queued while the writer waits pile into one batch; beyond
 * queue_max they are refused with -EAGAIN (and never called back). */
static void t_pgm_batching_and_queue_full(void **state) {
  fx_t *f = *state;
  messages_pg_opts_t o = {.queue_max = 50, .batch_max = 40};
  env_t *e = fx_open(f, &o);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false), ch2 = mkchan(e, "other", alice, false);
  static ack_t acks[51];
  memset(acks, 0, sizeof acks);
  ack_t x = {0};
  lock_channel(f, ch2);
  app(e, ch2, alice, "first", NULL, &x);
  wait_writer_blocked(f);
  for (int i = 0; i < 50; i++) app(e, ch, alice, "q", NULL, &acks[i]);
  msg_append_t m = mkmsg(ch, alice, "too many", NULL);
  assert_int_equal(e->s->ops->append(e->s, &m, on_ack, &acks[50]), -EAGAIN);
  msg_store_stats_t st;
  e->s->ops->stats(e->s, &st);
  assert_int_equal(st.queued, 50);
  unlock_channel(f);
  run_until(&e->loop, 51);
  for (int i = 0; i < 50; i++) {
    assert_int_equal(acks[i].status, 0);
    assert_int_equal(acks[i].ack.seq, i + 1);
  }
  assert_int_equal(acks[50].calls, 0);
  e->s->ops->stats(e->s, &st);
  assert_int_equal(st.max_batch, 40); /* batch_max caps a transaction */
  assert_int_equal(st.batches, 3);    /* [first], [40], [10] */
  assert_int_equal(st.queued, 0);
}

/* Batches travel as array literals: every byte that means something to
 * the array parser (quotes, backslashes, braces, commas, spaces, the word
 * NULL) and every nonce byte value must come back exactly, in one batch. */
static void t_pgm_escaping(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, NULL);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false), ch2 = mkchan(e, "other", alice, false);
  static const char *const bodies[] = {
      "say \"hi\"", "back\\slash\\", "{a,b}", "NULL", "null", " lead and trail ", "",
      "\\\"", "\"", "\\", "tab\there\nnewline", "{\"json\": [1, 2]}", "\xF0\x9F\x9A\x80,\xC3\xA9",
  };
  enum { NB = sizeof bodies / sizeof bodies[0] };
  static char nonces[NB][MSG_NONCE_MAX];
  ack_t acks[NB], x = {0};
  memset(acks, 0, sizeof acks);
  lock_channel(f, ch2);
  app(e, ch2, alice, "first", NULL, &x);
  wait_writer_blocked(f);
  for (int i = 0; i < NB; i++) {
    /* distinct first bytes (0 included); bytes spread over 0..255 */
    for (int k = 0; k < MSG_NONCE_MAX; k++) nonces[i][k] = (char)(k ? i * 64 + k * 37 : i);
    msg_append_t m = mkmsg(ch, alice, bodies[i], NULL);
    m.nonce = (str_t){nonces[i], (size_t)(i % 2 ? MSG_NONCE_MAX : 1 + i)};
    m.attachments = str_from(bodies[NB - 1 - i]);
    assert_int_equal(e->s->ops->append(e->s, &m, on_ack, &acks[i]), 0);
  }
  unlock_channel(f);
  run_until(&e->loop, NB + 1);
  msg_store_stats_t st;
  e->s->ops->stats(e->s, &st);
  assert_int_equal(st.max_batch, NB); /* all in one batch */
  for (int i = 0; i < NB; i++) {
    assert_int_equal(acks[i].status, 0);
    msg_rec_t *r;
    assert_int_equal(e->s->ops->message_get(e->s, ch, acks[i].ack.id, &r), 0);
    assert_true(str_eq(r->body, str_from(bodies[i])));
    assert_true(str_eq(r->attachments, str_from(bodies[NB - 1 - i])));
    assert_int_equal(r->nonce.n, i % 2 ? MSG_NONCE_MAX : 1 + i);
    assert_memory_equal(r->nonce.p, nonces[i], r->nonce.n);
    free(r);
  }
  /* the nonces are found again byte for byte: all duplicates now */
  for (int i = 0; i < NB; i++) {
    msg_append_t m = mkmsg(ch, alice, "again", NULL);
    m.nonce = (str_t){nonces[i], (size_t)(i % 2 ? MSG_NONCE_MAX : 1 + i)};
    memset(&acks[i], 0, sizeof acks[i]);
    assert_int_equal(e->s->ops->append(e->s, &m, on_ack, &acks[i]), 0);
  }
  run_until(&e->loop, 2 * NB + 1);
  for (int i = 0; i < NB; i++) {
    assert_true(acks[i].ack.duplicate);
    assert_int_equal(acks[i].ack.seq, i + 1);
  }
  /* invalid UTF-8 is refused before it reaches the database */
  msg_append_t m = mkmsg(ch, alice, "bad \xC3", NULL);
  assert_int_equal(e->s->ops->append(e->s, &m, on_ack, &x), -EINVAL);
  assert_int_equal(e->s->ops->message_edit(e->s, ch, acks[0].ack.id, alice, str_from("\xFF"), 1, NULL),
                   -EINVAL);
  assert_int_equal(e->s->ops->channel_create(e->s, "\xFFname", NULL, false, alice, 1, NULL), -EINVAL);
}

/* ---- ids ---- */

/* Ids stay above the channel's newest (another process with its clock
 * ahead) and above every stored id after an open (a clock set back). */
static void t_pgm_ids_above(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, NULL);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false), ch2 = mkchan(e, "other", alice, false);
  int64_t ahead_ms = wall_ms() + 3600 * 1000; /* an hour ahead */
  int64_t floor = (ahead_ms - MSG_ID_EPOCH_MS) << 22 | (int64_t)900 << 12 | 7;
  char sql[256];
  snprintf(sql, sizeof sql, "UPDATE channels SET last_id = %lld WHERE id = %lld", (long long)floor,
           (long long)ch);
  admin_exec(f->peek, sql);
  ack_t a = app_wait(e, ch, alice, "after the future", NULL);
  assert_int_equal(a.status, 0);
  assert_true(a.ack.id > floor);
  assert_int_equal(msg_id_ms(a.ack.id), ahead_ms + 1);
  assert_int_equal(a.ack.created_at, msg_id_ms(a.ack.id));
  ack_t b = app_wait(e, ch2, alice, "elsewhere", NULL);
  assert_true(b.ack.id > a.ack.id); /* the generator never goes back */
  snprintf(sql, sizeof sql, "SELECT last_id FROM channels WHERE id = %lld", (long long)ch);
  assert_int_equal(peek_int(f, sql), a.ack.id);

  /* a stored id two hours ahead: a new store starts above it */
  int64_t far_ms = wall_ms() + 7200 * 1000;
  int64_t far = (far_ms - MSG_ID_EPOCH_MS) << 22 | (int64_t)1000 << 12;
  snprintf(sql, sizeof sql,
           "INSERT INTO messages(id, channel_id, seq, author_id, body, created_at) "
           "VALUES (%lld, %lld, 100, %lld, 'x', 1)",
           (long long)far, (long long)ch2, (long long)alice);
  admin_exec(f->peek, sql);
  e->s->ops->close(e->s);
  e->s = NULL;
  messages_pg_opts_t o = {.loop = &e->loop};
  assert_int_equal(messages_pg_open(f->db, &o, &e->s), 0);
  int64_t ch3 = mkchan(e, "third", alice, false);
  ack_t c = app_wait(e, ch3, alice, "new", NULL);
  assert_int_equal(c.status, 0);
  assert_true(c.ack.id > far);
}

/* ---- durability and schema ---- */

typedef struct {
  PGconn *peek;
  int64_t seen;
  int status;
} durable_t;

static void on_durable(void *arg, int status, const msg_ack_t *ack) {
  durable_t *d = arg;
  d->status = status;
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM messages WHERE id = %lld",
           (long long)(ack ? ack->id : 0));
  d->seen = admin_int(d->peek, sql); /* another session: only committed rows */
  atomic_fetch_add(&g_done, 1);
}

static void t_pgm_durable_at_callback(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, NULL);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  enum { N = 20 };
  durable_t d[N];
  for (int i = 0; i < N; i++) {
    d[i] = (durable_t){.peek = f->peek, .seen = -1};
    msg_append_t m = mkmsg(ch, alice, "d", NULL);
    assert_int_equal(e->s->ops->append(e->s, &m, on_durable, &d[i]), 0);
  }
  run_until(&e->loop, N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(d[i].status, 0);
    assert_int_equal(d[i].seen, 1);
  }
}

static void t_pgm_schema_checks(void **state) {
  fx_t *f = *state;
  f->db = open_db(f->url, 2);
  messages_pg_opts_t o = {.loop = &f->env.loop};
  messages_store_t *s = (messages_store_t *)(uintptr_t)1;
  assert_int_equal(messages_pg_open(f->db, &o, &s), -EPROTO);
  assert_true(s == (messages_store_t *)(uintptr_t)1);
  /* users alone (migration 1) is not enough either */
  pg_migration_t only1[1] = {pg_migrations[0]};
  char err[256];
  assert_int_equal(pg_db_apply_migrations(f->db, only1, 1, err, sizeof err), 1);
  assert_int_equal(messages_pg_open(f->db, &o, &s), -EPROTO);
  o.migrate_on_open = true;
  assert_int_equal(messages_pg_open(f->db, &o, &f->env.s), 0);
  assert_int_equal(pg_db_schema_version(f->db), MESSAGES_PG_SCHEMA_MIN);
}

/* ---- connection loss ---- */

static void own_database(fx_t *f) {
  snprintf(f->dbname, sizeof f->dbname, "storm_mdb_%d_%d", (int)getpid(), ++g_seq);
  char sql[160];
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", f->dbname);
  admin_exec(g_admin, sql);
  make_url(f->url, sizeof f->url, f->dbname, "public", f->dbname);
}

static void cut(fx_t *f, bool refuse) {
  char sql[256];
  snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS %s", f->dbname,
           refuse ? "false" : "true");
  admin_exec(g_admin, sql);
  if (!refuse) return;
  snprintf(sql, sizeof sql,
           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'",
           f->dbname);
  admin_exec(g_admin, sql);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'",
           f->dbname);
  for (int i = 0; i < 500 && admin_int(g_admin, sql) > 0; i++) sleep_ms(10);
  assert_int_equal(admin_int(g_admin, sql), 0);
}

/* The database goes away and comes back: appends and reads fail with
 * -EIO meanwhile (callbacks still run, on the loop), readiness is false,
 * and everything works again afterwards without reopening. */
static void t_pgm_unreachable_then_back(void **state) {
  fx_t *f = *state;
  own_database(f);
  env_t *e = fx_open(f, NULL);
  PQfinish(f->peek); /* the fixture's own session would be killed too */
  f->peek = NULL;
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  assert_int_equal(app_wait(e, ch, alice, "before", "n1").status, 0);
  cut(f, true);
  ack_t a = app_wait(e, ch, alice, "during", NULL);
  assert_int_equal(a.status, -EIO);
  assert_false(e->s->ops->healthy(e->s));
  assert_false(pg_db_ready(f->db));
  channel_rec_t c;
  assert_int_equal(e->s->ops->channel_get(e->s, ch, &c), -EIO);
  assert_false(pg_db_ping(f->db));
  cut(f, false);
  assert_true(pg_db_ping(f->db));
  ack_t b = app_wait(e, ch, alice, "after", NULL);
  assert_int_equal(b.status, 0);
  assert_int_equal(b.ack.seq, 2);
  ack_t r = app_wait(e, ch, alice, "retry", "n1"); /* dedup survives the outage */
  assert_true(r.ack.duplicate);
  assert_int_equal(r.ack.seq, 1);
  assert_int_equal(e->s->ops->channel_get(e->s, ch, &c), 0);
  assert_int_equal(c.last_seq, 2);
  assert_true(e->s->ops->healthy(e->s));
  assert_non_null(strstr(logged(f), "reachable again"));
  /* backends killed while idle (no refusal): nobody notices but the logs */
  for (int round = 0; round < 3; round++) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'",
             f->dbname);
    assert_true(admin_int(g_admin, sql) >= 2); /* the writer's and a pooled one */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'",
             f->dbname);
    for (int i = 0; i < 500 && admin_int(g_admin, sql) > 0; i++) sleep_ms(10);
    ack_t k = app_wait(e, ch, alice, "after a kill", NULL);
    assert_int_equal(k.status, 0);
    assert_int_equal(k.ack.seq, 3 + round);
    assert_int_equal(e->s->ops->channel_get(e->s, ch, &c), 0);
  }
}

#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void) {
  if (pg_fixture_start("test_messages_store_pg", "storm_m") != 0) return 1;
  log_set_level(LOG_LEVEL_WARN);
  messages_store_suite_use(pg_make, pg_destroy, pg_mkuser);
  const struct CMUnitTest tests[] = {
      MESSAGES_STORE_SUITE_TESTS,
      FX_TEST(t_pgm_two_replicas),
      FX_TEST(t_pgm_node_leases),
      FX_TEST(t_pgm_lease_lost),
      FX_TEST(t_pgm_lease_renewed_idle),
      FX_TEST(t_pgm_batch_fails_whole),
      FX_TEST(t_pgm_batching_and_queue_full),
      FX_TEST(t_pgm_escaping),
      FX_TEST(t_pgm_ids_above),
      FX_TEST(t_pgm_durable_at_callback),
      FX_TEST(t_pgm_schema_checks),
      FX_TEST(t_pgm_unreachable_then_back),
  };
  int r = cmocka_run_group_tests_name("messages_store_pg", tests, NULL, NULL);
  pg_fixture_stop();
  return r;
}
