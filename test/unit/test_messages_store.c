/* Unit tests for the messages store on SQLite.
 *
 * Part 1 is the backend-independent suite (messages_store_suite.h, shared
 * with test_messages_store_pg.c), run here on SQLite stores made by
 * sqlite_make().
 * Part 2 tests what is specific to SQLite: schema, forced batching (the
 * writer takes the db lock around BEGIN, so a test holding that lock makes
 * appends pile up into one batch, deterministically), fault injection
 * (triggers, a deferred foreign key failing COMMIT, a locked file, a
 * read-only shared connection), durability seen by a fresh connection,
 * two stores on one file (two processes), id resumption, limits. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "core/log.h"
#include "store/messages_store.h"
#include "store/sqlite/messages_sqlite.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/users_sqlite.h"
#include "store/users_store.h"
#include "messages_store_suite.h"

/* ==== part 2: SQLite ==== */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  return remove(path);
}

static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* The current store of the suite: tests run one at a time. */
static struct {
  char dir[64];
  sqlite_db_t *db;
  users_store_t *users;
} cur;

static messages_store_t *sqlite_make(uv_loop_t *loop, unsigned node_id) {
  snprintf(cur.dir, sizeof cur.dir, "/tmp/storm-msgs-XXXXXX");
  if (!mkdtemp(cur.dir)) return NULL;
  char err[256];
  if (sqlite_db_open(cur.dir, &cur.db, err, sizeof err) != 0) {
    fprintf(stderr, "sqlite_db_open: %s\n", err);
    return NULL;
  }
  if (users_sqlite_open(cur.db, &cur.users) != 0) return NULL;
  messages_sqlite_opts_t o = {.loop = loop, .node_id = node_id};
  messages_store_t *s = NULL;
  if (messages_sqlite_open(cur.db, &o, &s) != 0) return NULL;
  return s;
}

static void sqlite_destroy(messages_store_t *s) {
  if (s) s->ops->close(s);
  cur.users->ops->close(cur.users);
  sqlite_db_close(cur.db);
  rm_rf(cur.dir);
  memset(&cur, 0, sizeof cur);
}

static int64_t sqlite_mkuser(const char *name) {
  user_rec_t u;
  int r = cur.users->ops->user_create(cur.users, name, name, "hash", 1, &u);
  assert_int_equal(r, 0);
  return u.id;
}

/* Per-test fixture of part 2: a temp dir, a loop, the log captured in a
 * memfd (failures are logged; we check those lines and keep the output
 * clean), and a database opened by fx_open. */
typedef struct {
  char dir[64];
  int log_fd;
  sqlite_db_t *db;
  users_store_t *users;
  env_t env; /* the loop and the messages store, for part 1's helpers */
  sqlite_db_t *db2;       /* a second process's, when a test opens one */
  messages_store_t *s2;
} fx_t;

static int fx_setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/storm-msgs-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
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
  if (f->env.s) f->env.s->ops->close(f->env.s);
  if (f->s2) f->s2->ops->close(f->s2); /* a failed assertion left it open */
  if (f->users) f->users->ops->close(f->users);
  sqlite_db_close(f->db);
  sqlite_db_close(f->db2);
  uv_run(&f->env.loop, UV_RUN_DEFAULT);
  int r = uv_loop_close(&f->env.loop);
  log_set_fd(2);
  log_set_level(LOG_LEVEL_WARN);
  close(f->log_fd);
  rm_rf(f->dir);
  free(f);
  return r == 0 ? 0 : -1;
}

/* Everything logged so far by the test (static buffer). */
static const char *logged(fx_t *f) {
  static char buf[32768];
  ssize_t n = pread(f->log_fd, buf, sizeof buf - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

static sqlite_db_t *open_db(const char *dir) {
  sqlite_db_t *db = NULL;
  char err[256];
  int r = sqlite_db_open(dir, &db, err, sizeof err);
  if (r != 0) fprintf(stderr, "open: %s\n", err);
  assert_int_equal(r, 0);
  return db;
}

/* Opens db, users and messages stores in f (batch/queue/busy 0: defaults). */
static env_t *fx_open(fx_t *f, size_t batch_max, size_t queue_max, int busy_ms) {
  f->db = open_db(f->dir);
  assert_int_equal(users_sqlite_open(f->db, &f->users), 0);
  messages_sqlite_opts_t o = {.loop = &f->env.loop, .node_id = 3, .batch_max = batch_max,
                              .queue_max = queue_max, .busy_timeout_ms = busy_ms};
  assert_int_equal(messages_sqlite_open(f->db, &o, &f->env.s), 0);
  return &f->env;
}

static int64_t fx_user(fx_t *f, const char *name) {
  user_rec_t u;
  assert_int_equal(f->users->ops->user_create(f->users, name, name, "hash", 1, &u), 0);
  return u.id;
}

static int64_t q_int(sqlite3 *c, const char *sql) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(c));
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void exec_ok(sqlite3 *c, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(c, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* A connection of its own to the file: what another process, or the
 * process after a restart, would see. */
static sqlite3 *fresh_conn(fx_t *f) {
  char path[128];
  snprintf(path, sizeof path, "%s/storm.db", f->dir);
  sqlite3 *c = NULL;
  assert_int_equal(sqlite3_open_v2(path, &c, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  sqlite3_busy_timeout(c, 5000);
  return c;
}

static void t_sq_schema(void **state) {
  fx_t *f = *state;
  fx_open(f, 0, 0, 0);
  sqlite3 *c = sqlite_db_handle(f->db);
  /* Later migrations (3: media) follow; this test is about version 2. */
  assert_true(sqlite_db_schema_version(f->db) >= 2);
  assert_int_equal(q_int(c, "SELECT count(*) FROM schema_migrations WHERE version = 2 "
                            "AND name = 'messages'"),
                   1);
  assert_int_equal(q_int(c, "SELECT count(*) FROM sqlite_master WHERE name IN ('channels', "
                            "'members', 'messages', 'channels_name', 'channels_public', "
                            "'channels_owner', 'members_user')"),
                   7);
  /* migration 6 dropped the nonce index: nonces are checked in memory */
  assert_int_equal(q_int(c, "SELECT count(*) FROM sqlite_master WHERE name = 'messages_nonce'"),
                   0);
  /* the shapes the CHECKs pin: no DM with a name, no channel with a pair */
  assert_int_not_equal(sqlite3_exec(c, "INSERT INTO channels(kind, name, private, dm_lo, dm_hi, "
                                       "created_at) VALUES ('dm', 'x', 1, 1, 2, 0)",
                                    NULL, NULL, NULL),
                       SQLITE_OK);
  assert_int_not_equal(sqlite3_exec(c, "INSERT INTO channels(kind, private, dm_lo, dm_hi, "
                                       "created_at) VALUES ('dm', 1, 2, 1, 0)",
                                    NULL, NULL, NULL),
                       SQLITE_OK);
  assert_int_not_equal(sqlite3_exec(c, "INSERT INTO channels(kind, name, dm_lo, dm_hi, "
                                       "created_at) VALUES ('channel', 'c', 1, 2, 0)",
                                    NULL, NULL, NULL),
                       SQLITE_OK);
  assert_int_not_equal(sqlite3_exec(c, "INSERT INTO channels(kind, name, created_at) "
                                       "VALUES ('group', 'g', 0)",
                                    NULL, NULL, NULL),
                       SQLITE_OK);
  /* the public list uses its partial index */
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(c, "EXPLAIN QUERY PLAN SELECT id FROM channels WHERE "
                                         "kind = 'channel' AND private = 0 AND id > 0 "
                                         "ORDER BY id LIMIT 5",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_non_null(strstr((const char *)sqlite3_column_text(st, 3), "channels_public"));
  sqlite3_finalize(st);
}

/* Holding the db lock stalls the writer before it takes any job, so
 * everything appended meanwhile is one batch. */
static void t_sq_same_batch(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  int64_t other = mkchan(e, "other", alice, false);
  ack_t a[6] = {{0}};
  sqlite_db_lock(f->db);
  app(e, ch, alice, "one", "dup", &a[0]);
  app(e, other, alice, "elsewhere", NULL, &a[1]);
  app(e, ch, alice, "one again", "dup", &a[2]); /* same batch as its original */
  app(e, ch, alice, "two", NULL, &a[3]);
  app(e, ch + 999, alice, "lost", NULL, &a[4]);
  app(e, other, alice, "elsewhere 2", "dup", &a[5]); /* another channel: not a duplicate */
  msg_store_stats_t st;
  e->s->ops->stats(e->s, &st);
  assert_int_equal(st.queued, 6);
  sleep_ms(20);
  assert_int_equal(atomic_load(&g_done), 0);
  sqlite_db_unlock(f->db);
  run_until(&e->loop, 6);
  e->s->ops->stats(e->s, &st);
  assert_int_equal(st.batches, 1);
  assert_int_equal(st.max_batch, 6);
  assert_int_equal(st.appended, 4);
  assert_int_equal(st.duplicates, 1);
  assert_int_equal(st.failed, 1);
  assert_int_equal(st.queued, 0);
  assert_int_equal(a[0].ack.seq, 1);
  assert_true(a[2].ack.duplicate);
  assert_int_equal(a[2].ack.id, a[0].ack.id);
  assert_int_equal(a[2].ack.seq, 1);
  assert_int_equal(a[2].ack.created_at, a[0].ack.created_at);
  assert_int_equal(a[3].ack.seq, 2);
  assert_int_equal(a[4].status, -ENOENT);
  assert_int_equal(a[1].ack.seq, 1);
  assert_int_equal(a[5].ack.seq, 2);
  assert_false(a[5].ack.duplicate);
  for (int i = 0; i < 6; i++) assert_int_equal(a[i].order, i);
  assert_int_equal(q_int(sqlite_db_handle(f->db), "SELECT count(*) FROM messages"), 4);
}

/* batch_max bounds a transaction; the rest waits for the next. */
static void t_sq_batch_max(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 10, 0, 0);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  ack_t a[35] = {{0}};
  sqlite_db_lock(f->db);
  for (int i = 0; i < 35; i++) app(e, ch, alice, "m", NULL, &a[i]);
  sqlite_db_unlock(f->db);
  run_until(&e->loop, 35);
  msg_store_stats_t st;
  e->s->ops->stats(e->s, &st);
  assert_int_equal(st.max_batch, 10);
  assert_true(st.batches >= 4);
  for (int i = 0; i < 35; i++) assert_int_equal(a[i].ack.seq, i + 1);
}

/* A full queue refuses at once (-EAGAIN), without a callback. */
static void t_sq_queue_full(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 5, 0);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  ack_t a[6] = {{0}};
  sqlite_db_lock(f->db);
  for (int i = 0; i < 5; i++) app(e, ch, alice, "m", NULL, &a[i]);
  msg_append_t m = mkmsg(ch, alice, "one too many", NULL);
  assert_int_equal(e->s->ops->append(e->s, &m, on_ack, &a[5]), -EAGAIN);
  sqlite_db_unlock(f->db);
  run_until(&e->loop, 5);
  assert_int_equal(a[5].calls, 0);
  /* room again */
  assert_int_equal(app_wait(e, ch, alice, "now", NULL).ack.seq, 6);
}

/* A channel deleted (by another connection) while its messages wait in
 * the queue: those fail alone with -ENOENT. */
static void t_sq_channel_deleted_while_queued(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "doomed", alice, false);
  int64_t keep = mkchan(e, "kept", alice, false);
  ack_t a[3] = {{0}};
  sqlite3 *c = fresh_conn(f);
  exec_ok(c, "PRAGMA foreign_keys=ON");
  sqlite_db_lock(f->db);
  app(e, ch, alice, "x", NULL, &a[0]);
  app(e, keep, alice, "y", NULL, &a[1]);
  app(e, ch, alice, "z", NULL, &a[2]);
  char sql[64];
  snprintf(sql, sizeof sql, "DELETE FROM channels WHERE id = %lld", (long long)ch);
  exec_ok(c, sql);
  sqlite_db_unlock(f->db);
  run_until(&e->loop, 3);
  assert_int_equal(a[0].status, -ENOENT);
  assert_int_equal(a[1].status, 0);
  assert_int_equal(a[1].ack.seq, 1);
  assert_int_equal(a[2].status, -ENOENT);
  sqlite3_close(c);
}

/* An INSERT failing inside the batch fails alone (-EIO); the others
 * commit, gapless. */
static void t_sq_insert_fails_alone(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  exec_ok(sqlite_db_handle(f->db), "CREATE TRIGGER boom BEFORE INSERT ON messages "
                                   "WHEN NEW.body = 'bad' BEGIN SELECT RAISE(ABORT, "
                                   "'injected fault'); END");
  ack_t a[3] = {{0}};
  sqlite_db_lock(f->db);
  app(e, ch, alice, "good", NULL, &a[0]);
  app(e, ch, alice, "bad", "n", &a[1]);
  app(e, ch, alice, "good too", NULL, &a[2]);
  sqlite_db_unlock(f->db);
  run_until(&e->loop, 3);
  assert_int_equal(a[0].status, 0);
  assert_int_equal(a[1].status, -EIO);
  assert_int_equal(a[2].status, 0);
  assert_int_equal(a[0].ack.seq, 1);
  assert_int_equal(a[2].ack.seq, 2);
  assert_non_null(strstr(logged(f), "injected fault"));
  assert_non_null(strstr(logged(f), "messages append insert"));
  assert_true(e->s->ops->healthy(e->s)); /* the batch committed */
  msg_store_stats_t st;
  e->s->ops->stats(e->s, &st);
  assert_int_equal(st.batches, 1);
  assert_int_equal(st.failed, 1);
  /* the failed nonce was not consumed */
  exec_ok(sqlite_db_handle(f->db), "DROP TRIGGER boom");
  ack_t r = app_wait(e, ch, alice, "fine", "n");
  assert_false(r.ack.duplicate);
  assert_int_equal(r.ack.seq, 3);
}

/* COMMIT fails (a deferred foreign key violated by a trigger): every
 * append of the batch gets -EIO, nothing is stored, and the writer
 * recovers (the open transaction was rolled back). */
static void t_sq_commit_fails(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  assert_int_equal(app_wait(e, ch, alice, "before", NULL).ack.seq, 1);
  sqlite3 *c = sqlite_db_handle(f->db);
  exec_ok(c, "CREATE TABLE boom(x INTEGER REFERENCES channels(id) DEFERRABLE INITIALLY DEFERRED);"
             "CREATE TRIGGER boom_t AFTER INSERT ON messages WHEN NEW.body = 'boom' "
             "BEGIN INSERT INTO boom VALUES (-1); END");
  ack_t a[3] = {{0}};
  int base = atomic_load(&g_done);
  sqlite_db_lock(f->db);
  app(e, ch, alice, "fine", NULL, &a[0]);
  app(e, ch, alice, "boom", NULL, &a[1]);
  app(e, ch, alice, "dup?", "n1", &a[2]);
  sqlite_db_unlock(f->db);
  run_until(&e->loop, base + 3);
  for (int i = 0; i < 3; i++) assert_int_equal(a[i].status, -EIO);
  assert_false(e->s->ops->healthy(e->s));
  assert_non_null(strstr(logged(f), "messages append commit"));
  assert_non_null(strstr(logged(f), "FOREIGN KEY"));
  assert_int_equal(q_int(c, "SELECT count(*) FROM messages"), 1);
  assert_int_equal(q_int(c, "SELECT count(*) FROM boom"), 0);
  assert_int_equal(last_seq(e, ch), 1);
  msg_store_stats_t st;
  e->s->ops->stats(e->s, &st);
  assert_int_equal(st.failed, 3);
  assert_int_equal(st.batches, 1); /* failed batches are not counted */
  exec_ok(c, "DROP TRIGGER boom_t");
  ack_t r = app_wait(e, ch, alice, "after", "n1");
  assert_int_equal(r.status, 0);
  assert_false(r.ack.duplicate); /* the failed batch left no trace */
  assert_int_equal(r.ack.seq, 2);
  assert_true(e->s->ops->healthy(e->s));
}

/* The writer's other statements failing (their table changed under
 * them, a trigger refusing the last_seq UPDATE) fail the whole batch with
 * -EIO; each is logged by name, and the writer carries on once the cause
 * is gone. */
static void t_sq_writer_steps_fail(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  sqlite3 *c = sqlite_db_handle(f->db);
  struct {
    const char *breaks, *repairs, *logged;
    const char *nonce;
  } cases[] = {
      {"ALTER TABLE channels RENAME COLUMN last_seq TO ls",
       "ALTER TABLE channels RENAME COLUMN ls TO last_seq", "messages append channel", NULL},
      {"ALTER TABLE messages RENAME COLUMN nonce TO nc",
       "ALTER TABLE messages RENAME COLUMN nc TO nonce", "messages append nonce", "n"},
      {"CREATE TRIGGER no_seq BEFORE UPDATE OF last_seq ON channels "
       "BEGIN SELECT RAISE(ABORT, 'refused'); END",
       "DROP TRIGGER no_seq", "messages append last_seq", NULL},
  };
  /* a stored "n": the retry below reads it back, which is the read that
   * fails once the column is renamed */
  assert_int_equal(app_wait(e, ch, alice, "first", "n").status, 0);
  int64_t seq = 1;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    exec_ok(c, cases[i].breaks);
    ack_t a = {0}, b = {0};
    int base = atomic_load(&g_done);
    sqlite_db_lock(f->db);
    app(e, ch, alice, "x", cases[i].nonce, &a);
    app(e, ch, alice, "y", NULL, &b);
    sqlite_db_unlock(f->db);
    run_until(&e->loop, base + 2);
    assert_int_equal(a.status, -EIO);
    assert_int_equal(b.status, -EIO);
    assert_non_null(strstr(logged(f), cases[i].logged));
    assert_false(e->s->ops->healthy(e->s));
    exec_ok(c, cases[i].repairs);
    assert_int_equal(app_wait(e, ch, alice, "ok", NULL).ack.seq, ++seq);
    assert_true(e->s->ops->healthy(e->s));
  }
  assert_int_equal(q_int(c, "SELECT count(*) FROM messages"), seq);
}

/* Another connection holds the write lock past busy_timeout: BEGIN fails,
 * the batch gets -EIO; when it lets go, appends work again. */
static void t_sq_begin_fails(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 50);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  sqlite3 *c = fresh_conn(f);
  exec_ok(c, "BEGIN IMMEDIATE");
  ack_t a = app_wait(e, ch, alice, "blocked", NULL);
  assert_int_equal(a.status, -EIO);
  assert_non_null(strstr(logged(f), "messages append begin"));
  assert_non_null(strstr(logged(f), "locked"));
  assert_false(e->s->ops->healthy(e->s));
  exec_ok(c, "ROLLBACK");
  sqlite3_close(c);
  a = app_wait(e, ch, alice, "free", NULL);
  assert_int_equal(a.status, 0);
  assert_int_equal(a.ack.seq, 1);
  assert_true(e->s->ops->healthy(e->s));
}

/* Once the callback ran, the row is in the file: a fresh connection sees
 * it, with the channel's last_seq. */
static void t_sq_durable(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  ack_t a = app_wait(e, ch, alice, "durable", "n");
  assert_int_equal(a.status, 0);
  sqlite3 *c = fresh_conn(f);
  char sql[160];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM messages WHERE id = %lld AND seq = 1 AND body = 'durable' "
           "AND nonce = CAST('n' AS BLOB)",
           (long long)a.ack.id);
  assert_int_equal(q_int(c, sql), 1);
  snprintf(sql, sizeof sql, "SELECT last_seq FROM channels WHERE id = %lld", (long long)ch);
  assert_int_equal(q_int(c, sql), 1);
  sqlite3_close(c);
}

/* close drains to the file: after close, everything acknowledged is there
 * for the next process. */
static void t_sq_close_durable(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  enum { N = 300 };
  static ack_t acks[N];
  memset(acks, 0, sizeof acks);
  for (int i = 0; i < N; i++) app(e, ch, alice, "m", NULL, &acks[i]);
  e->s->ops->close(e->s);
  e->s = NULL;
  assert_int_equal(atomic_load(&g_done), N);
  sqlite3 *c = fresh_conn(f);
  assert_int_equal(q_int(c, "SELECT count(*) FROM messages"), N);
  assert_int_equal(q_int(c, "SELECT max(seq) FROM messages"), N);
  assert_int_equal(q_int(c, "SELECT last_seq FROM channels WHERE name = 'general'"), N);
  sqlite3_close(c);
}

/* The id generator resumes after the highest stored id, even one from a
 * clock ahead of ours; ids carry the node id. */
static void t_sq_id_resume(void **state) {
  fx_t *f = *state;
  f->db = open_db(f->dir);
  assert_int_equal(users_sqlite_open(f->db, &f->users), 0);
  int64_t alice = fx_user(f, "alice");
  sqlite3 *c = sqlite_db_handle(f->db);
  exec_ok(c, "INSERT INTO channels(id, kind, name, created_at) VALUES (1, 'channel', 'g', 0)");
  int64_t future_ms = wall_ms() + 3600 * 1000;
  int64_t big = (future_ms - MSG_ID_EPOCH_MS) << 22 | (int64_t)3 << 12 | 4094;
  char sql[256];
  snprintf(sql, sizeof sql,
           "INSERT INTO messages(id, channel_id, seq, author_id, body, created_at) "
           "VALUES (%lld, 1, 1, %lld, 'from the future', %lld)",
           (long long)big, (long long)alice, (long long)future_ms);
  exec_ok(c, sql);
  exec_ok(c, "UPDATE channels SET last_seq = 1 WHERE id = 1");
  snprintf(sql, sizeof sql, "INSERT INTO members(channel_id, user_id, joined_at) VALUES (1, %lld, 0)",
           (long long)alice);
  exec_ok(c, sql);
  messages_sqlite_opts_t o = {.loop = &f->env.loop, .node_id = 3};
  assert_int_equal(messages_sqlite_open(f->db, &o, &f->env.s), 0);
  env_t *e = &f->env;
  ack_t a = app_wait(e, 1, alice, "now", NULL);
  ack_t b = app_wait(e, 1, alice, "next", NULL);
  assert_int_equal(a.ack.id, big + 1);
  assert_int_equal(a.ack.created_at, future_ms);
  /* the counter wraps: the next millisecond is borrowed */
  assert_int_equal(b.ack.id, (future_ms + 1 - MSG_ID_EPOCH_MS) << 22 | (int64_t)3 << 12);
  assert_int_equal(b.ack.created_at, future_ms + 1);
  assert_int_equal(msg_id_node(b.ack.id), 3);
  assert_int_equal(b.ack.seq, 3);
}

typedef struct {
  users_store_t *users;
  int ok, other;
  atomic_int *stop;
} uthread_t;

static void *users_thread(void *arg) {
  uthread_t *t = arg;
  for (int i = 0; !atomic_load(t->stop) && i < 100000; i++) {
    char name[24];
    snprintf(name, sizeof name, "u%d", i);
    int r = t->users->ops->user_create(t->users, name, "d", "h", 1, NULL);
    if (r == 0) t->ok++;
    else t->other++;
  }
  return NULL;
}

/* Another store's writes on the shared connection keep working while the
 * writer is saturated (it cannot start a batch while they wait). */
static void t_sq_users_write_during_appends(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "busy", alice, false);
  atomic_store(&g_done, 0);
  atomic_int stop = 0;
  uthread_t ut = {.users = f->users, .stop = &stop};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, users_thread, &ut), 0);
  enum { NPROD = 64, PER = 40 };
  producer_t prod[NPROD];
  for (int i = 0; i < NPROD; i++) {
    prod[i] = (producer_t){.e = e, .ch = ch, .author = alice, .left = PER - 1};
    msg_append_t m = mkmsg(ch, alice, "load", NULL);
    assert_int_equal(e->s->ops->append(e->s, &m, on_produced, &prod[i]), 0);
  }
  run_until(&e->loop, NPROD * PER);
  atomic_store(&stop, 1);
  pthread_join(th, NULL);
  for (int i = 0; i < NPROD; i++) assert_int_equal(prod[i].failed, 0);
  assert_int_equal(ut.other, 0);
  assert_true(ut.ok > 0);
  assert_int_equal(last_seq(e, ch), NPROD * PER);
}

/* Reopens the messages store on f's database, as a restart would, with
 * the duplicate check's generations given (0: defaults). */
static env_t *fx_reopen(fx_t *f, int64_t gen_ms, size_t gen_max) {
  if (f->env.s) f->env.s->ops->close(f->env.s);
  f->env.s = NULL;
  messages_sqlite_opts_t o = {.loop = &f->env.loop, .node_id = 3, .nonce_gen_ms = gen_ms,
                              .nonce_gen_max = gen_max};
  assert_int_equal(messages_sqlite_open(f->db, &o, &f->env.s), 0);
  return &f->env;
}

static ack_t retry_of(env_t *e, int64_t ch, int64_t author, const char *nonce) {
  ack_t a = app_wait(e, ch, author, "retry", nonce);
  assert_int_equal(a.status, 0);
  return a;
}

/* Nonces live in the writer's memory; a restart reloads them from the
 * newest messages, so every retry after it still gets its original. */
static void t_sq_nonce_after_restart(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  int64_t alice = fx_user(f, "alice"), bob = fx_user(f, "bob");
  int64_t ch = mkchan(e, "general", alice, false);
  assert_int_equal(OPS(e->s)->member_add(e->s, ch, bob, 1, NULL), 0);
  enum { N = 50 };
  ack_t a[N];
  char nonce[16];
  for (int i = 0; i < N; i++) {
    snprintf(nonce, sizeof nonce, "n%d", i);
    a[i] = app_wait(e, ch, alice, "m", nonce);
    assert_int_equal(a[i].status, 0);
  }
  assert_int_equal(app_wait(e, ch, alice, "no nonce", NULL).status, 0);
  e = fx_reopen(f, 0, 0);
  assert_non_null(strstr(logged(f), "remembered the nonces of 50 recent messages"));
  for (int i = 0; i < N; i++) {
    snprintf(nonce, sizeof nonce, "n%d", i);
    ack_t r = retry_of(e, ch, alice, nonce);
    assert_true(r.ack.duplicate);
    assert_int_equal(r.ack.id, a[i].ack.id);
    assert_int_equal(r.ack.seq, a[i].ack.seq);
    assert_int_equal(r.ack.created_at, a[i].ack.created_at);
  }
  /* the same nonce from another author, or unused, is a new message */
  ack_t b = retry_of(e, ch, bob, "n0");
  assert_false(b.ack.duplicate);
  assert_int_equal(b.ack.seq, N + 2);
  assert_false(retry_of(e, ch, alice, "fresh").ack.duplicate);
  assert_int_equal(last_seq(e, ch), N + 3);
}

/* Hashes are not proof: with 1-bit hashes every nonce collides with half
 * the others, and the stored author, channel and nonce still decide. */
static void t_sq_nonce_collisions(void **state) {
  fx_t *f = *state;
  fx_open(f, 0, 0, 0);
  f->env.s->ops->close(f->env.s);
  f->env.s = NULL;
  messages_sqlite_opts_t o = {.loop = &f->env.loop, .node_id = 3, .nonce_hash_bits = 1};
  assert_int_equal(messages_sqlite_open(f->db, &o, &f->env.s), 0);
  env_t *e = &f->env;
  int64_t alice = fx_user(f, "alice"), bob = fx_user(f, "bob");
  int64_t ch[2] = {mkchan(e, "one", alice, false), mkchan(e, "two", alice, false)};
  for (int c = 0; c < 2; c++) assert_int_equal(OPS(e->s)->member_add(e->s, ch[c], bob, 1, NULL), 0);
  enum { N = 20 };
  int64_t ids[2][2][N];
  char nonce[16];
  for (int c = 0; c < 2; c++)
    for (int u = 0; u < 2; u++)
      for (int i = 0; i < N; i++) {
        snprintf(nonce, sizeof nonce, "n%d", i);
        ack_t a = app_wait(e, ch[c], u ? bob : alice, "m", nonce);
        assert_int_equal(a.status, 0);
        assert_false(a.ack.duplicate); /* same nonce, other author or channel */
        ids[c][u][i] = a.ack.id;
      }
  for (int c = 0; c < 2; c++)
    for (int u = 0; u < 2; u++)
      for (int i = 0; i < N; i++) {
        snprintf(nonce, sizeof nonce, "n%d", i);
        ack_t r = retry_of(e, ch[c], u ? bob : alice, nonce);
        assert_true(r.ack.duplicate);
        assert_int_equal(r.ack.id, ids[c][u][i]);
      }
  assert_false(retry_of(e, ch[0], alice, "n").ack.duplicate); /* a prefix of the others */
  assert_false(retry_of(e, ch[0], alice, "n00").ack.duplicate);
  assert_int_equal(last_seq(e, ch[0]), 2 * N + 2);
}

/* The check is bounded: with generations of 4, the last 4 nonces are
 * always found and memory holds at most 8; an older retry is stored
 * again. A restart reloads the newest 2 × 4. */
static void t_sq_nonce_window_count(void **state) {
  fx_t *f = *state;
  fx_open(f, 0, 0, 0);
  env_t *e = fx_reopen(f, 0, 4);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  char nonce[16];
  for (int i = 1; i <= 20; i++) {
    snprintf(nonce, sizeof nonce, "n%d", i);
    assert_int_equal(app_wait(e, ch, alice, "m", nonce).ack.seq, i);
  }
  for (int i = 17; i <= 20; i++) {
    snprintf(nonce, sizeof nonce, "n%d", i);
    ack_t r = retry_of(e, ch, alice, nonce);
    assert_true(r.ack.duplicate);
    assert_int_equal(r.ack.seq, i);
  }
  ack_t old = retry_of(e, ch, alice, "n1");
  assert_false(old.ack.duplicate);
  assert_int_equal(old.ack.seq, 21);
  e = fx_reopen(f, 0, 4);
  assert_non_null(strstr(logged(f), "remembered the nonces of 8 recent messages"));
  assert_true(retry_of(e, ch, alice, "n1").ack.duplicate); /* seq 21's now */
  assert_int_equal(retry_of(e, ch, alice, "n1").ack.seq, 21);
  for (int i = 18; i <= 20; i++) {
    snprintf(nonce, sizeof nonce, "n%d", i);
    assert_int_equal(retry_of(e, ch, alice, nonce).ack.seq, i);
  }
  assert_int_equal(last_seq(e, ch), 21);
}

/* A restart reloads only the last 2 × gen_ms: ids are time-ordered, so
 * that is where the scan starts. */
static void t_sq_nonce_window_age(void **state) {
  fx_t *f = *state;
  fx_open(f, 0, 0, 0);
  env_t *e = fx_reopen(f, 100, 0);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "general", alice, false);
  assert_int_equal(app_wait(e, ch, alice, "m", "old").ack.seq, 1);
  usleep(300 * 1000);
  assert_int_equal(app_wait(e, ch, alice, "m", "recent").ack.seq, 2);
  e = fx_reopen(f, 100, 0);
  ack_t r = retry_of(e, ch, alice, "recent");
  assert_true(r.ack.duplicate);
  assert_int_equal(r.ack.seq, 2);
  r = retry_of(e, ch, alice, "old");
  assert_false(r.ack.duplicate);
  assert_int_equal(r.ack.seq, 3);
}

/* One appending process per file (the nonces are in its memory): a second
 * store on another connection is refused until the first closes, and
 * then finds the first one's nonces. */
static void t_sq_one_writer_per_file(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  int64_t alice = fx_user(f, "alice");
  int64_t ch = mkchan(e, "shared", alice, false);
  ack_t first = app_wait(e, ch, alice, "m", "n");
  f->db2 = open_db(f->dir);
  messages_sqlite_opts_t o = {.loop = &f->env.loop, .node_id = 9};
  assert_int_equal(messages_sqlite_open(f->db2, &o, &f->s2), -EBUSY);
  assert_null(f->s2);
  assert_non_null(strstr(logged(f), "another messages store appends"));
  uv_run(&f->env.loop, UV_RUN_NOWAIT); /* the refused store's handle closes */
  assert_int_equal(app_wait(e, ch, alice, "m", "m").ack.seq, 2);
  e->s->ops->close(e->s);
  e->s = NULL;
  assert_int_equal(messages_sqlite_open(f->db2, &o, &f->s2), 0);
  ack_t a = {0};
  msg_append_t m = mkmsg(ch, alice, "retry", "n");
  int base = atomic_load(&g_done);
  assert_int_equal(f->s2->ops->append(f->s2, &m, on_ack, &a), 0);
  run_until(&e->loop, base + 1);
  assert_int_equal(a.status, 0);
  assert_true(a.ack.duplicate);
  assert_int_equal(a.ack.id, first.ack.id);
}

/* A read-only shared connection: every write of the shared connection is
 * -EIO, logged, unhealthy until a read succeeds; no transaction is left
 * open. */
static void t_sq_io_error(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  messages_store_t *s = e->s;
  int64_t alice = fx_user(f, "alice"), bob = fx_user(f, "bob");
  int64_t ch = mkchan(e, "general", alice, false);
  channel_rec_t dm;
  assert_int_equal(s->ops->dm_get_or_create(s, alice, alice, 1, &dm, NULL), 0);
  ack_t a = app_wait(e, ch, alice, "m", NULL);
  sqlite3 *c = sqlite_db_handle(f->db);
  exec_ok(c, "PRAGMA query_only=1");
  assert_int_equal(s->ops->channel_create(s, "new", NULL, false, alice, 1, NULL), -EIO);
  assert_false(s->ops->healthy(s));
  assert_non_null(strstr(logged(f), "messages channel_create"));
  assert_non_null(strstr(logged(f), "readonly"));
  assert_int_equal(s->ops->channel_update(s, ch, NULL, "t"), -EIO);
  assert_int_equal(s->ops->channel_delete(s, ch), -EIO);
  assert_int_equal(s->ops->dm_get_or_create(s, alice, bob, 1, NULL, NULL), -EIO);
  assert_int_equal(s->ops->member_add(s, ch, bob, 1, NULL), -EIO);
  assert_int_equal(s->ops->member_remove(s, ch, alice), -EIO);
  assert_int_equal(s->ops->member_set_muted(s, ch, alice, true), -EIO);
  assert_int_equal(s->ops->read_set(s, ch, alice, 1, NULL), -EIO);
  msg_rec_t *r = (msg_rec_t *)(uintptr_t)1;
  assert_int_equal(s->ops->message_edit(s, ch, a.ack.id, alice, str_from("x"), 1, &r), -EIO);
  assert_null(r);
  assert_int_equal(s->ops->message_delete(s, ch, a.ack.id, alice, 1, &r), -EIO);
  assert_true(sqlite3_get_autocommit(c));
  /* the existing DM needs no write */
  assert_int_equal(s->ops->dm_get_or_create(s, alice, alice, 1, NULL, NULL), 0);
  assert_true(s->ops->healthy(s));
  exec_ok(c, "PRAGMA query_only=0");
  assert_int_equal(s->ops->member_add(s, ch, bob, 1, NULL), 0);
  /* nothing changed meanwhile */
  assert_int_equal(s->ops->message_get(s, ch, a.ack.id, &r), 0);
  assert_string_equal(r->body.p, "m");
  free(r);
}

/* Rows written behind the store's back beyond its limits: -EIO, logged,
 * never truncated. */
static void t_sq_row_beyond_limits(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  messages_store_t *s = e->s;
  int64_t alice = fx_user(f, "alice");
  sqlite3 *c = sqlite_db_handle(f->db);
  exec_ok(c, "INSERT INTO channels(id, kind, name, created_at) "
             "VALUES (50, 'channel', printf('%.*c', 321, 'n'), 0)");
  exec_ok(c, "INSERT INTO channels(id, kind, name, created_at) VALUES (51, 'channel', 'ok', 0)");
  exec_ok(c, "INSERT INTO messages(id, channel_id, seq, author_id, body, created_at) "
             "VALUES (1, 51, 1, 1, printf('%.*c', 16001, 'b'), 0)");
  channel_rec_t ch;
  assert_int_equal(s->ops->channel_get(s, 50, &ch), -EIO);
  assert_false(s->ops->healthy(s));
  assert_non_null(strstr(logged(f), "channel 50 exceeds the field limits"));
  channel_rec_t list[4];
  assert_int_equal(s->ops->channel_list_public(s, 0, list, 4, NULL), -EIO);
  assert_int_equal(s->ops->channel_get(s, 51, &ch), 0);
  assert_true(s->ops->healthy(s));
  msg_page_t p;
  assert_int_equal(s->ops->messages_page(s, 51, MSG_AFTER, 0, 10, &p), -EIO);
  assert_null(p.items);
  assert_non_null(strstr(logged(f), "message 1 exceeds the field limits"));
  msg_rec_t *r = (msg_rec_t *)(uintptr_t)1;
  assert_int_equal(s->ops->message_get(s, 51, 1, &r), -EIO);
  assert_null(r);
  (void)alice;
}

static void t_sq_open_errors(void **state) {
  fx_t *f = *state;
  f->db = open_db(f->dir);
  messages_store_t *s = (messages_store_t *)(uintptr_t)1; /* untouched on failure */
  messages_sqlite_opts_t o = {.loop = &f->env.loop};
  assert_int_equal(messages_sqlite_open(NULL, &o, &s), -EINVAL);
  assert_int_equal(messages_sqlite_open(f->db, NULL, &s), -EINVAL);
  assert_int_equal(messages_sqlite_open(f->db, &o, NULL), -EINVAL);
  messages_sqlite_opts_t bad = o;
  bad.loop = NULL;
  assert_int_equal(messages_sqlite_open(f->db, &bad, &s), -EINVAL);
  bad = o;
  bad.node_id = MSG_NODE_ID_MAX + 1;
  assert_int_equal(messages_sqlite_open(f->db, &bad, &s), -EINVAL);
  bad = o;
  bad.busy_timeout_ms = -1;
  assert_int_equal(messages_sqlite_open(f->db, &bad, &s), -EINVAL);
  o.node_id = MSG_NODE_ID_MAX; /* the largest is fine */
  assert_int_equal(messages_sqlite_open(f->db, &o, &s), 0);
  s->ops->close(s);
  s = (messages_store_t *)(uintptr_t)1;
  /* schema missing: the shared statements fail to prepare */
  exec_ok(sqlite_db_handle(f->db), "DROP TABLE members");
  assert_int_equal(messages_sqlite_open(f->db, &o, &s), -EIO);
  assert_true(s == (messages_store_t *)(uintptr_t)1);
  assert_non_null(strstr(logged(f), "no such table: members"));
}

/* The writer's connection refuses a database that is not in WAL mode
 * (its durability and the readers' independence rely on it): open fails
 * cleanly, with no thread or handle left behind. */
static void t_sq_open_writer_fails(void **state) {
  fx_t *f = *state;
  f->db = open_db(f->dir);
  sqlite3 *c = sqlite_db_handle(f->db);
  exec_ok(c, "PRAGMA journal_mode=DELETE"); /* possible: ours is the only connection */
  messages_store_t *s = (messages_store_t *)(uintptr_t)1;
  messages_sqlite_opts_t o = {.loop = &f->env.loop};
  assert_int_equal(messages_sqlite_open(f->db, &o, &s), -EIO);
  assert_true(s == (messages_store_t *)(uintptr_t)1);
  assert_non_null(strstr(logged(f), "not in WAL mode"));
}

#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void) {
  log_set_level(LOG_LEVEL_WARN); /* the suite's "applied migration" lines are noise */
  messages_store_suite_use(sqlite_make, sqlite_destroy, sqlite_mkuser);
  const struct CMUnitTest tests[] = {
      MESSAGES_STORE_SUITE_TESTS,
      FX_TEST(t_sq_schema),
      FX_TEST(t_sq_same_batch),
      FX_TEST(t_sq_batch_max),
      FX_TEST(t_sq_queue_full),
      FX_TEST(t_sq_channel_deleted_while_queued),
      FX_TEST(t_sq_insert_fails_alone),
      FX_TEST(t_sq_commit_fails),
      FX_TEST(t_sq_begin_fails),
      FX_TEST(t_sq_writer_steps_fail),
      FX_TEST(t_sq_durable),
      FX_TEST(t_sq_close_durable),
      FX_TEST(t_sq_id_resume),
      FX_TEST(t_sq_users_write_during_appends),
      FX_TEST(t_sq_nonce_after_restart),
      FX_TEST(t_sq_nonce_collisions),
      FX_TEST(t_sq_nonce_window_count),
      FX_TEST(t_sq_nonce_window_age),
      FX_TEST(t_sq_one_writer_per_file),
      FX_TEST(t_sq_io_error),
      FX_TEST(t_sq_row_beyond_limits),
      FX_TEST(t_sq_open_errors),
      FX_TEST(t_sq_open_writer_fails),
  };
  return cmocka_run_group_tests_name("messages_store", tests, NULL, NULL);
}
