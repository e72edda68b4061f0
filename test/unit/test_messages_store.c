/* Unit tests for the messages store.
 *
 * Part 1 is a backend-independent suite written against messages_store_t
 * only: after messages_store_suite_use(make, destroy, mkuser), every test
 * of MESSAGES_STORE_SUITE_TESTS runs on a fresh store from make() with a
 * fresh libuv loop (append callbacks need a real one); teardown closes the
 * store, runs the loop until the store's handle is closed and checks that
 * uv_loop_close succeeds (no leaked handle). The PostgreSQL backend is
 * meant to run the same suite (move part 1 into a shared header then).
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

/* ==== part 1: the backend-independent suite ==== */

#define SUITE_NODE_ID 7u

static messages_store_t *(*suite_make)(uv_loop_t *loop, unsigned node_id);
/* Closes s unless NULL (a test may have closed it) and removes the data. */
static void (*suite_destroy)(messages_store_t *s);
/* Creates a user (in whatever holds users for this backend): its id. */
static int64_t (*suite_mkuser)(const char *name);

typedef struct {
  uv_loop_t loop;
  messages_store_t *s;
} env_t;

static atomic_int g_done; /* callbacks run in the current test */
static pthread_t g_loop_thread;

static int suite_setup(void **state) {
  env_t *e = calloc(1, sizeof *e);
  if (!e || uv_loop_init(&e->loop) != 0) return -1;
  atomic_store(&g_done, 0);
  g_loop_thread = pthread_self();
  e->s = suite_make(&e->loop, SUITE_NODE_ID);
  if (!e->s) return -1;
  *state = e;
  return 0;
}

static int suite_teardown(void **state) {
  env_t *e = *state;
  suite_destroy(e->s);
  uv_run(&e->loop, UV_RUN_DEFAULT); /* the store's handle closes */
  int r = uv_loop_close(&e->loop);
  free(e);
  return r == 0 ? 0 : -1;
}

#define ENV(state) ((env_t *)*(state))
#define OPS(s) ((s)->ops)

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* What one append callback saw. */
typedef struct {
  int calls;
  int status;
  msg_ack_t ack;
  int order; /* position among the test's callbacks */
  bool on_loop_thread;
} ack_t;

static void on_ack(void *arg, int status, const msg_ack_t *ack) {
  ack_t *a = arg;
  a->calls++;
  a->status = status;
  if (ack) a->ack = *ack;
  else memset(&a->ack, 0, sizeof a->ack);
  if (status == 0) assert_non_null(ack);
  else assert_null(ack);
  a->order = atomic_fetch_add(&g_done, 1);
  a->on_loop_thread = pthread_equal(pthread_self(), g_loop_thread);
}

/* Runs the loop until `target` callbacks have run (20 s at most). */
static void run_until(uv_loop_t *loop, int target) {
  int64_t deadline = wall_ms() + 20000;
  while (atomic_load(&g_done) < target) {
    uv_run(loop, UV_RUN_NOWAIT);
    if (atomic_load(&g_done) >= target) break;
    if (wall_ms() > deadline) fail_msg("only %d of %d callbacks", atomic_load(&g_done), target);
    sleep_ms(1);
  }
}

static msg_append_t mkmsg(int64_t ch, int64_t author, const char *body, const char *nonce) {
  msg_append_t m = {.channel_id = ch, .author_id = author, .body = str_from(body)};
  if (nonce) m.nonce = str_from(nonce);
  return m;
}

static void app(env_t *e, int64_t ch, int64_t author, const char *body, const char *nonce,
                ack_t *a) {
  msg_append_t m = mkmsg(ch, author, body, nonce);
  assert_int_equal(OPS(e->s)->append(e->s, &m, on_ack, a), 0);
}

/* Appends and waits for the callback. */
static ack_t app_wait(env_t *e, int64_t ch, int64_t author, const char *body, const char *nonce) {
  ack_t a = {0};
  int target = atomic_load(&g_done) + 1;
  app(e, ch, author, body, nonce, &a);
  run_until(&e->loop, target);
  assert_int_equal(a.calls, 1);
  return a;
}

static void assert_channel_equal(const channel_rec_t *a, const channel_rec_t *b) {
  assert_int_equal(a->id, b->id);
  assert_int_equal(a->kind, b->kind);
  assert_int_equal(a->is_private, b->is_private);
  assert_string_equal(a->name, b->name);
  assert_string_equal(a->topic, b->topic);
  assert_int_equal(a->owner_id, b->owner_id);
  assert_int_equal(a->dm_user_lo, b->dm_user_lo);
  assert_int_equal(a->dm_user_hi, b->dm_user_hi);
  assert_int_equal(a->created_at, b->created_at);
  assert_int_equal(a->last_seq, b->last_seq);
}

static int64_t mkchan(env_t *e, const char *name, int64_t owner, bool priv) {
  channel_rec_t c;
  assert_int_equal(OPS(e->s)->channel_create(e->s, name, NULL, priv, owner, 1000, &c), 0);
  return c.id;
}

static int64_t last_seq(env_t *e, int64_t ch) {
  channel_rec_t c;
  assert_int_equal(OPS(e->s)->channel_get(e->s, ch, &c), 0);
  return c.last_seq;
}

/* ---- channels ---- */

static void t_channel_create_get(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  assert_true(OPS(s)->healthy(s));
  int64_t alice = suite_mkuser("alice");
  channel_rec_t c, got;
  memset(&c, 0xAA, sizeof c);
  assert_int_equal(OPS(s)->channel_create(s, "general", "Talk here", false, alice, 1234, &c), 0);
  assert_true(c.id > 0);
  assert_int_equal(c.kind, CHANNEL_KIND_CHANNEL);
  assert_false(c.is_private);
  assert_string_equal(c.name, "general");
  assert_string_equal(c.topic, "Talk here");
  assert_int_equal(c.owner_id, alice);
  assert_int_equal(c.dm_user_lo, 0);
  assert_int_equal(c.dm_user_hi, 0);
  assert_int_equal(c.created_at, 1234);
  assert_int_equal(c.last_seq, 0);
  memset(&got, 0x55, sizeof got);
  assert_int_equal(OPS(s)->channel_get(s, c.id, &got), 0);
  assert_channel_equal(&got, &c);

  /* private, no topic; the owner is the first member */
  channel_rec_t p;
  assert_int_equal(OPS(s)->channel_create(s, "secret", NULL, true, alice, 5, &p), 0);
  assert_true(p.id != c.id);
  assert_true(p.is_private);
  assert_string_equal(p.topic, "");
  member_rec_t m;
  assert_int_equal(OPS(s)->member_get(s, p.id, alice, &m), 0);
  assert_int_equal(m.channel_id, p.id);
  assert_int_equal(m.user_id, alice);
  assert_int_equal(m.joined_at, 5);
  assert_int_equal(m.last_read_seq, 0);
  assert_false(m.muted);
  assert_int_equal(OPS(s)->channel_get(s, p.id, NULL), 0); /* existence check */
  /* out may be NULL */
  assert_int_equal(OPS(s)->channel_create(s, "third", "", false, alice, 5, NULL), 0);
  assert_true(OPS(s)->healthy(s));
}

static void t_channel_create_errors(void **state) {
  messages_store_t *s = ENV(state)->s;
  int64_t alice = suite_mkuser("alice");
  channel_rec_t c;
  char name[MSG_CHANNEL_NAME_MAX + 2], topic[MSG_CHANNEL_TOPIC_MAX + 2];
  /* 80 four-byte characters: exactly the limit */
  name[0] = '\0';
  for (int i = 0; i < MSG_CHANNEL_NAME_MAX / 4; i++) strcat(name, "\xF0\x9F\x9A\x80");
  memset(topic, 't', MSG_CHANNEL_TOPIC_MAX);
  topic[MSG_CHANNEL_TOPIC_MAX] = '\0';
  assert_int_equal(OPS(s)->channel_create(s, name, topic, false, alice, 1, &c), 0);
  channel_rec_t got;
  assert_int_equal(OPS(s)->channel_get(s, c.id, &got), 0);
  assert_string_equal(got.name, name);
  assert_string_equal(got.topic, topic);
  /* one byte over: refused, never truncated */
  strcat(name, "x");
  assert_int_equal(OPS(s)->channel_create(s, name, NULL, false, alice, 1, &c), -EINVAL);
  topic[MSG_CHANNEL_TOPIC_MAX] = 't';
  topic[MSG_CHANNEL_TOPIC_MAX + 1] = '\0';
  assert_int_equal(OPS(s)->channel_create(s, "ok", topic, false, alice, 1, &c), -EINVAL);
  assert_int_equal(OPS(s)->channel_create(s, "", NULL, false, alice, 1, &c), -EINVAL);
  assert_int_equal(OPS(s)->channel_create(s, NULL, NULL, false, alice, 1, &c), -EINVAL);
  /* duplicate name, also across private/public; byte-wise */
  assert_int_equal(OPS(s)->channel_create(s, "general", NULL, false, alice, 1, &c), 0);
  assert_int_equal(OPS(s)->channel_create(s, "general", NULL, true, alice, 1, &c), -EEXIST);
  assert_int_equal(OPS(s)->channel_create(s, "General", NULL, false, alice, 1, &c), 0);
  /* unknown owner: nothing created */
  assert_int_equal(OPS(s)->channel_create(s, "orphan", NULL, false, alice + 999, 1, &c), -ENOENT);
  assert_int_equal(OPS(s)->channel_create(s, "orphan", NULL, false, alice, 1, &c), 0);
  assert_true(OPS(s)->healthy(s)); /* constraints are answers, not failures */
}

static void t_channel_update_delete(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice"), bob = suite_mkuser("bob");
  int64_t ch = mkchan(e, "general", alice, false);
  mkchan(e, "random", alice, false);
  channel_rec_t c, dm;
  assert_int_equal(OPS(s)->channel_update(s, ch, NULL, "new topic"), 0);
  assert_int_equal(OPS(s)->channel_get(s, ch, &c), 0);
  assert_string_equal(c.name, "general");
  assert_string_equal(c.topic, "new topic");
  assert_int_equal(OPS(s)->channel_update(s, ch, "lobby", NULL), 0);
  assert_int_equal(OPS(s)->channel_get(s, ch, &c), 0);
  assert_string_equal(c.name, "lobby");
  assert_string_equal(c.topic, "new topic");
  assert_int_equal(OPS(s)->channel_update(s, ch, "lobby", ""), 0); /* same name: fine */
  assert_int_equal(OPS(s)->channel_get(s, ch, &c), 0);
  assert_string_equal(c.topic, "");
  assert_int_equal(OPS(s)->channel_update(s, ch, "random", NULL), -EEXIST);
  assert_int_equal(OPS(s)->channel_update(s, ch, "", NULL), -EINVAL);
  char big[MSG_CHANNEL_TOPIC_MAX + 2];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(OPS(s)->channel_update(s, ch, NULL, big), -EINVAL);
  assert_int_equal(OPS(s)->channel_update(s, ch, big, NULL), -EINVAL);
  assert_int_equal(OPS(s)->channel_update(s, ch + 999, NULL, "x"), -ENOENT);
  assert_int_equal(OPS(s)->channel_update(s, ch + 999, "x", NULL), -ENOENT);
  assert_int_equal(OPS(s)->dm_get_or_create(s, alice, bob, 1, &dm, NULL), 0);
  assert_int_equal(OPS(s)->channel_update(s, dm.id, "a-name", NULL), -EINVAL); /* DMs have none */
  assert_int_equal(OPS(s)->channel_update(s, dm.id, NULL, "our topic"), 0);
  assert_int_equal(OPS(s)->channel_get(s, dm.id, &c), 0);
  assert_string_equal(c.topic, "our topic");
  assert_string_equal(c.name, "");

  /* delete takes members and messages with it */
  ack_t a = app_wait(e, ch, alice, "hello", "n1");
  assert_int_equal(a.status, 0);
  assert_int_equal(OPS(s)->channel_delete(s, ch), 0);
  assert_int_equal(OPS(s)->channel_get(s, ch, &c), -ENOENT);
  assert_int_equal(OPS(s)->member_get(s, ch, alice, NULL), -ENOENT);
  msg_rec_t *m = (msg_rec_t *)(uintptr_t)1;
  assert_int_equal(OPS(s)->message_get(s, ch, a.ack.id, &m), -ENOENT);
  assert_null(m);
  msg_page_t p;
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_AFTER, 0, 10, &p), -ENOENT);
  assert_null(p.items);
  assert_int_equal(OPS(s)->channel_delete(s, ch), -ENOENT);
  /* the name is free again */
  assert_int_equal(OPS(s)->channel_create(s, "lobby", NULL, false, alice, 1, NULL), 0);
  /* an append for the deleted channel fails alone, with -ENOENT */
  a = app_wait(e, ch, alice, "too late", NULL);
  assert_int_equal(a.status, -ENOENT);
  assert_true(OPS(s)->healthy(s));
}

static void t_channel_list_public(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice"), bob = suite_mkuser("bob");
  int64_t pub[5];
  char name[16];
  for (int i = 0; i < 5; i++) {
    snprintf(name, sizeof name, "pub%d", i);
    pub[i] = mkchan(e, name, alice, false);
    snprintf(name, sizeof name, "priv%d", i);
    if (i < 2) mkchan(e, name, alice, true);
  }
  assert_int_equal(OPS(s)->dm_get_or_create(s, alice, bob, 1, NULL, NULL), 0);
  channel_rec_t out[3];
  bool more = false;
  int n = OPS(s)->channel_list_public(s, 0, out, 2, &more);
  assert_int_equal(n, 2);
  assert_true(more);
  assert_int_equal(out[0].id, pub[0]);
  assert_int_equal(out[1].id, pub[1]);
  assert_string_equal(out[1].name, "pub1");
  n = OPS(s)->channel_list_public(s, out[1].id, out, 2, &more);
  assert_int_equal(n, 2);
  assert_true(more);
  assert_int_equal(out[0].id, pub[2]);
  assert_int_equal(out[1].id, pub[3]);
  n = OPS(s)->channel_list_public(s, out[1].id, out, 2, &more);
  assert_int_equal(n, 1);
  assert_false(more);
  assert_int_equal(out[0].id, pub[4]);
  /* exactly cap left: no more */
  n = OPS(s)->channel_list_public(s, pub[2], out, 2, &more);
  assert_int_equal(n, 2);
  assert_false(more);
  n = OPS(s)->channel_list_public(s, pub[4], out, 3, NULL); /* more may be NULL */
  assert_int_equal(n, 0);
  assert_int_equal(OPS(s)->channel_list_public(s, 0, out, 0, &more), -EINVAL);
  assert_int_equal(OPS(s)->channel_list_public(s, 0, NULL, 2, &more), -EINVAL);
  channel_rec_t *big = calloc(MSG_LIST_MAX + 1, sizeof *big);
  assert_int_equal(OPS(s)->channel_list_public(s, 0, big, MSG_LIST_MAX + 1, &more), -EINVAL);
  assert_int_equal(OPS(s)->channel_list_public(s, 0, big, MSG_LIST_MAX, &more), 5);
  free(big);
}

static void t_channel_list_for_user(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice"), bob = suite_mkuser("bob");
  int64_t c1 = mkchan(e, "one", alice, false);
  int64_t c2 = mkchan(e, "two", bob, true);
  int64_t c3 = mkchan(e, "three", bob, false);
  channel_rec_t dm;
  assert_int_equal(OPS(s)->dm_get_or_create(s, alice, bob, 77, &dm, NULL), 0);
  assert_int_equal(OPS(s)->member_add(s, c2, alice, 50, NULL), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(app_wait(e, c2, bob, "hi", NULL).status, 0);
  assert_int_equal(OPS(s)->read_set(s, c2, alice, 1, NULL), 0);
  assert_int_equal(OPS(s)->member_set_muted(s, c2, alice, true), 0);

  channel_membership_t out[4];
  bool more = true;
  int n = OPS(s)->channel_list_for_user(s, alice, 0, out, 4, &more);
  assert_int_equal(n, 3); /* one, two, the DM; not three */
  assert_false(more);
  assert_int_equal(out[0].channel.id, c1);
  assert_int_equal(out[0].member.user_id, alice);
  assert_int_equal(out[0].member.channel_id, c1);
  assert_int_equal(out[1].channel.id, c2);
  assert_string_equal(out[1].channel.name, "two");
  assert_true(out[1].channel.is_private);
  assert_int_equal(out[1].channel.last_seq, 3);
  assert_int_equal(out[1].member.last_read_seq, 1); /* unread = 2 */
  assert_true(out[1].member.muted);
  assert_int_equal(out[1].member.joined_at, 50);
  assert_int_equal(out[2].channel.id, dm.id);
  assert_int_equal(out[2].channel.kind, CHANNEL_KIND_DM);
  assert_int_equal(out[2].member.joined_at, 77);
  /* pagination */
  n = OPS(s)->channel_list_for_user(s, alice, 0, out, 2, &more);
  assert_int_equal(n, 2);
  assert_true(more);
  n = OPS(s)->channel_list_for_user(s, alice, out[1].channel.id, out, 2, &more);
  assert_int_equal(n, 1);
  assert_false(more);
  assert_int_equal(out[0].channel.id, dm.id);
  n = OPS(s)->channel_list_for_user(s, bob, 0, out, 4, NULL);
  assert_int_equal(n, 3);
  assert_int_equal(out[0].channel.id, c2);
  assert_int_equal(out[1].channel.id, c3);
  /* unknown user: no channels */
  assert_int_equal(OPS(s)->channel_list_for_user(s, bob + 999, 0, out, 4, &more), 0);
  assert_int_equal(OPS(s)->channel_list_for_user(s, bob, 0, out, 0, &more), -EINVAL);
  assert_int_equal(OPS(s)->channel_list_for_user(s, bob, 0, NULL, 4, &more), -EINVAL);
}

/* ---- DMs ---- */

static void t_dm_get_or_create(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice"), bob = suite_mkuser("bob"), carol = suite_mkuser("carol");
  channel_rec_t d1, d2, d3;
  bool created = false;
  assert_int_equal(OPS(s)->dm_get_or_create(s, bob, alice, 100, &d1, &created), 0);
  assert_true(created);
  assert_int_equal(d1.kind, CHANNEL_KIND_DM);
  assert_true(d1.is_private);
  assert_string_equal(d1.name, "");
  assert_string_equal(d1.topic, "");
  assert_int_equal(d1.owner_id, 0);
  assert_int_equal(d1.dm_user_lo, alice < bob ? alice : bob);
  assert_int_equal(d1.dm_user_hi, alice < bob ? bob : alice);
  assert_int_equal(d1.created_at, 100);
  assert_int_equal(d1.last_seq, 0);
  /* either order, again: the same one */
  assert_int_equal(OPS(s)->dm_get_or_create(s, alice, bob, 200, &d2, &created), 0);
  assert_false(created);
  assert_channel_equal(&d1, &d2);
  assert_int_equal(OPS(s)->dm_get_or_create(s, bob, alice, 300, &d2, NULL), 0);
  assert_int_equal(d2.id, d1.id);
  /* both are members, and only they */
  member_rec_t ms[4];
  bool more;
  assert_int_equal(OPS(s)->members_list(s, d1.id, 0, ms, 4, &more), 2);
  assert_int_equal(ms[0].user_id, d1.dm_user_lo);
  assert_int_equal(ms[1].user_id, d1.dm_user_hi);
  assert_int_equal(ms[0].joined_at, 100);
  /* another pair, another DM */
  assert_int_equal(OPS(s)->dm_get_or_create(s, alice, carol, 1, &d3, &created), 0);
  assert_true(created);
  assert_true(d3.id != d1.id);
  /* with oneself: one member */
  assert_int_equal(OPS(s)->dm_get_or_create(s, carol, carol, 1, &d3, &created), 0);
  assert_true(created);
  assert_int_equal(d3.dm_user_lo, carol);
  assert_int_equal(d3.dm_user_hi, carol);
  assert_int_equal(OPS(s)->members_list(s, d3.id, 0, ms, 4, &more), 1);
  /* unknown user: nothing created */
  assert_int_equal(OPS(s)->dm_get_or_create(s, alice, carol + 999, 1, &d3, &created), -ENOENT);
  channel_membership_t cm[8];
  assert_int_equal(OPS(s)->channel_list_for_user(s, alice, 0, cm, 8, NULL), 2);
  assert_int_equal(OPS(s)->dm_get_or_create(s, 0, alice, 1, &d3, NULL), -EINVAL);
  assert_int_equal(OPS(s)->dm_get_or_create(s, alice, -5, 1, &d3, NULL), -EINVAL);
  /* DMs are not public channels; out may be NULL */
  channel_rec_t pub[4];
  assert_int_equal(OPS(s)->channel_list_public(s, 0, pub, 4, NULL), 0);
  assert_int_equal(OPS(s)->dm_get_or_create(s, alice, bob, 1, NULL, NULL), 0);
  assert_true(OPS(s)->healthy(s));
}

#define NTHREADS 8

typedef struct {
  messages_store_t *s;
  int64_t a, b;
  channel_rec_t out;
  bool created;
  int r;
  atomic_int *go;
} dmthread_t;

static void *dm_thread(void *arg) {
  dmthread_t *t = arg;
  while (!atomic_load(t->go)) {
  }
  t->r = t->s->ops->dm_get_or_create(t->s, t->a, t->b, 1, &t->out, &t->created);
  return NULL;
}

/* 8 threads ask for the same DM at once (half of them in the other
 * order): one creates it, all get it. */
static void t_dm_concurrent(void **state) {
  messages_store_t *s = ENV(state)->s;
  int64_t alice = suite_mkuser("alice"), bob = suite_mkuser("bob");
  pthread_t th[NTHREADS];
  dmthread_t dt[NTHREADS];
  atomic_int go = 0;
  for (int i = 0; i < NTHREADS; i++) {
    dt[i] = (dmthread_t){.s = s, .a = i % 2 ? alice : bob, .b = i % 2 ? bob : alice, .go = &go};
    assert_int_equal(pthread_create(&th[i], NULL, dm_thread, &dt[i]), 0);
  }
  atomic_store(&go, 1);
  int created = 0;
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(dt[i].r, 0);
    assert_int_equal(dt[i].out.id, dt[0].out.id);
    created += dt[i].created;
  }
  assert_int_equal(created, 1);
  channel_membership_t cm[4];
  assert_int_equal(OPS(s)->channel_list_for_user(s, alice, 0, cm, 4, NULL), 1);
}

/* ---- members and read state ---- */

static void t_members(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice"), bob = suite_mkuser("bob");
  int64_t ch = mkchan(e, "general", alice, false);
  bool added = false;
  assert_int_equal(OPS(s)->member_add(s, ch, bob, 500, &added), 0);
  assert_true(added);
  member_rec_t m;
  assert_int_equal(OPS(s)->member_get(s, ch, bob, &m), 0);
  assert_int_equal(m.joined_at, 500);
  assert_int_equal(m.last_read_seq, 0);
  /* idempotent: the existing membership is untouched */
  assert_int_equal(OPS(s)->read_set(s, ch, bob, 0, NULL), 0);
  assert_int_equal(OPS(s)->member_set_muted(s, ch, bob, true), 0);
  assert_int_equal(OPS(s)->member_add(s, ch, bob, 900, &added), 0);
  assert_false(added);
  assert_int_equal(OPS(s)->member_get(s, ch, bob, &m), 0);
  assert_int_equal(m.joined_at, 500);
  assert_true(m.muted);
  assert_int_equal(OPS(s)->member_add(s, ch, bob, 900, NULL), 0); /* added may be NULL */
  assert_int_equal(OPS(s)->member_set_muted(s, ch, bob, false), 0);
  assert_int_equal(OPS(s)->member_get(s, ch, bob, &m), 0);
  assert_false(m.muted);
  /* a late joiner has read what came before */
  for (int i = 0; i < 4; i++) assert_int_equal(app_wait(e, ch, alice, "x", NULL).status, 0);
  int64_t carol = suite_mkuser("carol");
  assert_int_equal(OPS(s)->member_add(s, ch, carol, 1, &added), 0);
  assert_int_equal(OPS(s)->member_get(s, ch, carol, &m), 0);
  assert_int_equal(m.last_read_seq, 4);
  /* the per-user count the service caps memberships with */
  int64_t ch2 = mkchan(e, "second", alice, false);
  assert_int_equal(OPS(s)->member_add(s, ch2, bob, 1, NULL), 0);
  assert_int_equal(OPS(s)->member_count_for_user(s, bob), 2);
  assert_int_equal(OPS(s)->member_count_for_user(s, alice), 2);
  assert_int_equal(OPS(s)->member_count_for_user(s, suite_mkuser("nobody")), 0);
  assert_int_equal(OPS(s)->member_remove(s, ch2, bob), 0);
  /* remove */
  assert_int_equal(OPS(s)->member_remove(s, ch, bob), 0);
  assert_int_equal(OPS(s)->member_get(s, ch, bob, NULL), -ENOENT);
  assert_int_equal(OPS(s)->member_count_for_user(s, bob), 0);
  assert_int_equal(OPS(s)->member_remove(s, ch, bob), -ENOENT);
  assert_int_equal(OPS(s)->member_set_muted(s, ch, bob, true), -ENOENT);
  /* unknown channel or user */
  assert_int_equal(OPS(s)->member_add(s, ch + 999, bob, 1, &added), -ENOENT);
  assert_int_equal(OPS(s)->member_add(s, ch, carol + 999, 1, &added), -ENOENT);
  assert_int_equal(OPS(s)->member_get(s, ch + 999, bob, &m), -ENOENT);
  assert_int_equal(OPS(s)->member_remove(s, ch + 999, bob), -ENOENT);
  assert_true(OPS(s)->healthy(s));
}

static void t_members_list(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t owner = suite_mkuser("owner");
  int64_t ch = mkchan(e, "general", owner, false);
  int64_t ids[6];
  ids[0] = owner;
  for (int i = 1; i < 6; i++) {
    char name[16];
    snprintf(name, sizeof name, "user%d", i);
    ids[i] = suite_mkuser(name);
    assert_int_equal(OPS(s)->member_add(s, ch, ids[i], 10 + i, NULL), 0);
  }
  member_rec_t out[4];
  bool more = false;
  int n = OPS(s)->members_list(s, ch, 0, out, 4, &more);
  assert_int_equal(n, 4);
  assert_true(more);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(out[i].user_id, ids[i]); /* ids grow with creation */
    assert_int_equal(out[i].channel_id, ch);
  }
  assert_int_equal(out[1].joined_at, 11);
  n = OPS(s)->members_list(s, ch, out[3].user_id, out, 4, &more);
  assert_int_equal(n, 2);
  assert_false(more);
  assert_int_equal(out[1].user_id, ids[5]);
  /* an existing channel with no member left: empty, not an error */
  for (int i = 0; i < 6; i++) assert_int_equal(OPS(s)->member_remove(s, ch, ids[i]), 0);
  assert_int_equal(OPS(s)->members_list(s, ch, 0, out, 4, &more), 0);
  assert_false(more);
  assert_int_equal(OPS(s)->members_list(s, ch + 999, 0, out, 4, &more), -ENOENT);
  assert_int_equal(OPS(s)->members_list(s, ch, 0, out, 0, &more), -EINVAL);
  assert_int_equal(OPS(s)->members_list(s, ch, 0, NULL, 4, &more), -EINVAL);
}

static void t_read_set(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice"), bob = suite_mkuser("bob");
  int64_t ch = mkchan(e, "general", alice, false);
  int64_t v = -1;
  /* nothing to read yet: clamped to last_seq 0 */
  assert_int_equal(OPS(s)->read_set(s, ch, alice, 5, &v), 0);
  assert_int_equal(v, 0);
  for (int i = 0; i < 10; i++) assert_int_equal(app_wait(e, ch, bob, "m", NULL).status, 0);
  assert_int_equal(OPS(s)->read_set(s, ch, alice, 4, &v), 0);
  assert_int_equal(v, 4);
  assert_int_equal(OPS(s)->read_set(s, ch, alice, 2, &v), 0); /* never backwards */
  assert_int_equal(v, 4);
  assert_int_equal(OPS(s)->read_set(s, ch, alice, 1000, &v), 0); /* clamped */
  assert_int_equal(v, 10);
  assert_int_equal(OPS(s)->read_set(s, ch, alice, 7, NULL), 0);
  member_rec_t m;
  assert_int_equal(OPS(s)->member_get(s, ch, alice, &m), 0);
  assert_int_equal(m.last_read_seq, 10);
  assert_int_equal(OPS(s)->read_set(s, ch, bob, 3, &v), -ENOENT); /* not a member */
  assert_int_equal(OPS(s)->read_set(s, ch + 999, alice, 3, &v), -ENOENT);
}

/* ---- append ---- */

static void t_append_basic(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice");
  int64_t ch = mkchan(e, "general", alice, false);
  int64_t t0 = wall_ms();
  ack_t a = {0};
  msg_append_t m = mkmsg(ch, alice, "hello \xF0\x9F\x91\x8B", "nonce-1");
  m.attachments = str_from("[{\"id\":\"f1\",\"name\":\"cat.png\"}]");
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), 0);
  assert_int_equal(a.calls, 0); /* never from inside append */
  run_until(&e->loop, 1);
  int64_t t1 = wall_ms();
  assert_int_equal(a.calls, 1);
  assert_true(a.on_loop_thread);
  assert_int_equal(a.status, 0);
  assert_true(a.ack.id > 0);
  assert_int_equal(a.ack.seq, 1);
  assert_false(a.ack.duplicate);
  assert_true(a.ack.created_at >= t0 && a.ack.created_at <= t1);
  assert_int_equal(msg_id_ms(a.ack.id), a.ack.created_at);
  assert_int_equal(msg_id_node(a.ack.id), SUITE_NODE_ID);
  assert_int_equal(last_seq(e, ch), 1);

  msg_rec_t *r = NULL;
  assert_int_equal(OPS(s)->message_get(s, ch, a.ack.id, &r), 0);
  assert_int_equal(r->id, a.ack.id);
  assert_int_equal(r->channel_id, ch);
  assert_int_equal(r->seq, 1);
  assert_int_equal(r->author_id, alice);
  assert_true(str_eq(r->body, m.body));
  assert_int_equal(r->body.p[r->body.n], '\0');
  assert_true(str_eq(r->attachments, m.attachments));
  assert_true(str_eq(r->nonce, m.nonce));
  assert_int_equal(r->created_at, a.ack.created_at);
  assert_int_equal(r->edited_at, 0);
  assert_false(r->deleted);
  free(r);

  /* empty body (attachments only), no nonce; a binary nonce with NUL */
  ack_t b = {0}, c = {0};
  msg_append_t m2 = {.channel_id = ch, .author_id = alice, .body = {NULL, 0},
                     .attachments = str_from("[]")};
  assert_int_equal(OPS(s)->append(s, &m2, on_ack, &b), 0);
  static const char bin_nonce[4] = {'\0', '\xFF', 'a', '\0'};
  msg_append_t m3 = {.channel_id = ch, .author_id = alice, .body = str_from("x"),
                     .nonce = {bin_nonce, sizeof bin_nonce}};
  assert_int_equal(OPS(s)->append(s, &m3, on_ack, &c), 0);
  run_until(&e->loop, 3);
  assert_int_equal(b.status, 0);
  assert_int_equal(b.ack.seq, 2);
  assert_int_equal(c.ack.seq, 3);
  assert_true(b.ack.id < c.ack.id);
  assert_int_equal(OPS(s)->message_get(s, ch, b.ack.id, &r), 0);
  assert_int_equal(r->body.n, 0);
  assert_non_null(r->body.p);
  assert_null(r->nonce.p);
  assert_string_equal(r->attachments.p, "[]");
  free(r);
  assert_int_equal(OPS(s)->message_get(s, ch, c.ack.id, &r), 0);
  assert_null(r->attachments.p);
  assert_int_equal(r->nonce.n, 4);
  assert_memory_equal(r->nonce.p, bin_nonce, 4);
  free(r);
  msg_store_stats_t st;
  OPS(s)->stats(s, &st);
  assert_int_equal(st.appended, 3);
  assert_int_equal(st.duplicates, 0);
  assert_int_equal(st.failed, 0);
  assert_int_equal(st.queued, 0);
  assert_true(st.batches >= 1 && st.batches <= 3);
  assert_true(OPS(s)->healthy(s));
}

static void t_append_invalid(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice");
  int64_t ch = mkchan(e, "general", alice, false);
  ack_t a = {0};
  char *big = malloc(MSG_ATTACHMENTS_MAX + 2);
  memset(big, 'b', MSG_ATTACHMENTS_MAX + 1);
  msg_append_t m = mkmsg(ch, alice, "x", NULL);
  m.body = (str_t){big, MSG_BODY_MAX + 1};
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  m = mkmsg(ch, alice, "x", NULL);
  m.body = (str_t){"a\0b", 3}; /* NUL: no text column takes it */
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  m.body = (str_t){NULL, 3};
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  m = mkmsg(ch, alice, "x", NULL);
  m.attachments = (str_t){big, MSG_ATTACHMENTS_MAX + 1};
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  m.attachments = (str_t){"[\0]", 3};
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  m = mkmsg(ch, alice, "x", NULL);
  m.nonce = (str_t){big, MSG_NONCE_MAX + 1};
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  m.nonce = (str_t){"", 0};
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  m = mkmsg(0, alice, "x", NULL);
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  m = mkmsg(ch, 0, "x", NULL);
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  m = mkmsg(ch, alice, "x", NULL);
  assert_int_equal(OPS(s)->append(s, &m, NULL, &a), -EINVAL);
  assert_int_equal(OPS(s)->append(s, NULL, on_ack, &a), -EINVAL);
  /* exactly at the limits: accepted */
  ack_t ok = {0};
  m = mkmsg(ch, alice, "x", NULL);
  m.body = (str_t){big, MSG_BODY_MAX};
  m.attachments = (str_t){big, MSG_ATTACHMENTS_MAX};
  m.nonce = (str_t){big, MSG_NONCE_MAX};
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &ok), 0);
  run_until(&e->loop, 1);
  assert_int_equal(ok.status, 0);
  msg_rec_t *r;
  assert_int_equal(OPS(s)->message_get(s, ch, ok.ack.id, &r), 0);
  assert_int_equal(r->body.n, MSG_BODY_MAX);
  assert_int_equal(r->attachments.n, MSG_ATTACHMENTS_MAX);
  assert_int_equal(r->nonce.n, MSG_NONCE_MAX);
  assert_memory_equal(r->body.p, big, MSG_BODY_MAX);
  free(r);
  /* the refused appends never call back */
  uv_run(&e->loop, UV_RUN_NOWAIT);
  sleep_ms(20);
  uv_run(&e->loop, UV_RUN_NOWAIT);
  assert_int_equal(a.calls, 0);
  assert_int_equal(atomic_load(&g_done), 1);
  free(big);
}

#define NCH 3
#define NAPP 300

/* Many appends queued at once across 3 channels: per channel, seqs are
 * exactly 1..n in append order; callbacks come in append order; ids grow
 * with append order; and group commit is observed (fewer batches than
 * messages). */
static void t_append_order_and_batching(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice");
  int64_t ch[NCH];
  for (int c = 0; c < NCH; c++) {
    char name[16];
    snprintf(name, sizeof name, "c%d", c);
    ch[c] = mkchan(e, name, alice, false);
  }
  static ack_t acks[NAPP];
  memset(acks, 0, sizeof acks);
  int which[NAPP];
  unsigned rnd = 12345;
  for (int i = 0; i < NAPP; i++) {
    rnd = rnd * 1103515245u + 12345u;
    which[i] = (int)((rnd >> 16) % NCH);
    char body[32];
    snprintf(body, sizeof body, "msg %d", i);
    app(e, ch[which[i]], alice, body, NULL, &acks[i]);
  }
  run_until(&e->loop, NAPP);
  int64_t next_seq[NCH] = {1, 1, 1};
  for (int i = 0; i < NAPP; i++) {
    assert_int_equal(acks[i].calls, 1);
    assert_int_equal(acks[i].status, 0);
    assert_int_equal(acks[i].order, i);
    assert_int_equal(acks[i].ack.seq, next_seq[which[i]]++);
    if (i) assert_true(acks[i].ack.id > acks[i - 1].ack.id);
    if (i) assert_true(acks[i].ack.created_at >= acks[i - 1].ack.created_at);
  }
  for (int c = 0; c < NCH; c++) assert_int_equal(last_seq(e, ch[c]), next_seq[c] - 1);
  /* the stored history agrees */
  for (int c = 0; c < NCH; c++) {
    msg_page_t p;
    int64_t after = 0, seen = 0;
    int i = 0;
    do {
      assert_int_equal(OPS(s)->messages_page(s, ch[c], MSG_AFTER, after, MSG_PAGE_MAX, &p), 0);
      for (size_t k = 0; k < p.count; k++) {
        while (which[i] != c) i++;
        char body[32];
        snprintf(body, sizeof body, "msg %d", i);
        assert_int_equal(p.items[k].seq, ++seen);
        assert_string_equal(p.items[k].body.p, body);
        assert_int_equal(p.items[k].id, acks[i].ack.id);
        i++;
      }
      after = p.count ? p.items[p.count - 1].seq : after;
      bool more = p.more;
      msg_page_free(&p);
      if (!more) break;
    } while (1);
    assert_int_equal(seen, next_seq[c] - 1);
  }
  msg_store_stats_t st;
  OPS(s)->stats(s, &st);
  assert_int_equal(st.appended, NAPP);
  assert_true(st.batches < NAPP);
  assert_true(st.max_batch > 1);
  assert_true(st.max_batch <= NAPP);
}

static void t_append_idempotent(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice"), bob = suite_mkuser("bob");
  int64_t ch = mkchan(e, "general", alice, false);
  int64_t ch2 = mkchan(e, "other", alice, false);
  ack_t first = app_wait(e, ch, alice, "hello", "n-1");
  assert_int_equal(first.status, 0);
  assert_false(first.ack.duplicate);
  /* a retry in a later batch: the original, nothing new (even another body) */
  ack_t again = app_wait(e, ch, alice, "hello (retry)", "n-1");
  assert_int_equal(again.status, 0);
  assert_true(again.ack.duplicate);
  assert_int_equal(again.ack.id, first.ack.id);
  assert_int_equal(again.ack.seq, first.ack.seq);
  assert_int_equal(again.ack.created_at, first.ack.created_at);
  assert_int_equal(last_seq(e, ch), 1);
  /* the nonce is per author and channel; no nonce never collides */
  assert_false(app_wait(e, ch, bob, "hello", "n-1").ack.duplicate);
  assert_false(app_wait(e, ch2, alice, "hello", "n-1").ack.duplicate);
  assert_int_equal(app_wait(e, ch, alice, "plain", NULL).ack.seq, 3);
  assert_int_equal(app_wait(e, ch, alice, "plain", NULL).ack.seq, 4);
  /* both copies queued together (same batch or not: the same answer) */
  ack_t x = {0}, y = {0}, z = {0};
  int base = atomic_load(&g_done);
  app(e, ch, alice, "twin", "n-2", &x);
  app(e, ch, alice, "twin", "n-2", &y);
  app(e, ch, alice, "after", NULL, &z);
  run_until(&e->loop, base + 3);
  assert_int_equal(x.status, 0);
  assert_false(x.ack.duplicate);
  assert_true(y.ack.duplicate);
  assert_int_equal(y.ack.id, x.ack.id);
  assert_int_equal(y.ack.seq, x.ack.seq);
  assert_int_equal(z.ack.seq, x.ack.seq + 1); /* the duplicate took no seq */
  assert_int_equal(last_seq(e, ch), 6);
  msg_store_stats_t st;
  OPS(s)->stats(s, &st);
  assert_int_equal(st.duplicates, 2);
  assert_int_equal(st.appended, 7);
  /* the original still answers after an edit and a delete */
  assert_int_equal(OPS(s)->message_edit(s, ch, first.ack.id, alice, str_from("e"), 4, NULL), 0);
  assert_true(app_wait(e, ch, alice, "hello", "n-1").ack.duplicate);
  assert_int_equal(OPS(s)->message_delete(s, ch, first.ack.id, alice, 5, NULL), 0);
  ack_t late = app_wait(e, ch, alice, "hello", "n-1");
  assert_true(late.ack.duplicate);
  assert_int_equal(late.ack.id, first.ack.id);
  msg_page_t p;
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_AFTER, 0, MSG_PAGE_MAX, &p), 0);
  assert_int_equal(p.count, 6);
  msg_page_free(&p);
}

static void t_append_missing_channel(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice");
  int64_t ch = mkchan(e, "general", alice, false);
  ack_t a = {0}, b = {0}, c = {0};
  app(e, ch, alice, "one", NULL, &a);
  app(e, ch + 999, alice, "lost", "n", &b);
  app(e, ch, alice, "two", NULL, &c);
  run_until(&e->loop, 3);
  assert_int_equal(a.status, 0);
  assert_int_equal(b.status, -ENOENT);
  assert_int_equal(c.status, 0);
  assert_int_equal(a.ack.seq, 1);
  assert_int_equal(c.ack.seq, 2); /* gapless around the failure */
  assert_int_equal(last_seq(e, ch), 2);
  msg_store_stats_t st;
  OPS(s)->stats(s, &st);
  assert_int_equal(st.failed, 1);
  assert_int_equal(st.appended, 2);
  assert_true(OPS(s)->healthy(s)); /* a missing channel is an answer */
}

typedef struct {
  env_t *e;
  int64_t ch[2], author;
  int idx;
  ack_t acks[200];
  atomic_int *go;
} athread_t;

static void *append_thread(void *arg) {
  athread_t *t = arg;
  while (!atomic_load(t->go)) {
  }
  for (int i = 0; i < 200; i++) {
    char body[32];
    snprintf(body, sizeof body, "t%d m%d", t->idx, i);
    msg_append_t m = mkmsg(t->ch[i % 2], t->author, body, NULL);
    int r = t->e->s->ops->append(t->e->s, &m, on_ack, &t->acks[i]);
    if (r != 0) t->acks[i].status = 1000 + r; /* reported on the main thread */
  }
  return NULL;
}

/* append is thread-safe: 8 threads x 200 appends over 2 channels; seqs
 * are exactly 1..n per channel, each thread's appends keep their order,
 * every callback runs on the loop thread. */
static void t_append_threads(void **state) {
  env_t *e = ENV(state);
  int64_t alice = suite_mkuser("alice");
  int64_t ch[2] = {mkchan(e, "a", alice, false), mkchan(e, "b", alice, false)};
  pthread_t th[NTHREADS];
  athread_t *at = calloc(NTHREADS, sizeof *at);
  atomic_int go = 0;
  for (int i = 0; i < NTHREADS; i++) {
    at[i] = (athread_t){.e = e, .ch = {ch[0], ch[1]}, .author = alice, .idx = i, .go = &go};
    assert_int_equal(pthread_create(&th[i], NULL, append_thread, &at[i]), 0);
  }
  atomic_store(&go, 1);
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  run_until(&e->loop, NTHREADS * 200);
  static bool seen[2][NTHREADS * 100 + 1];
  memset(seen, 0, sizeof seen);
  for (int i = 0; i < NTHREADS; i++) {
    int64_t prev[2] = {0, 0};
    for (int k = 0; k < 200; k++) {
      ack_t *a = &at[i].acks[k];
      assert_int_equal(a->status, 0);
      assert_int_equal(a->calls, 1);
      assert_true(a->on_loop_thread);
      int c = k % 2;
      assert_true(a->ack.seq >= 1 && a->ack.seq <= NTHREADS * 100);
      assert_false(seen[c][a->ack.seq]);
      seen[c][a->ack.seq] = true;
      assert_true(a->ack.seq > prev[c]);
      prev[c] = a->ack.seq;
    }
  }
  assert_int_equal(last_seq(e, ch[0]), NTHREADS * 100);
  assert_int_equal(last_seq(e, ch[1]), NTHREADS * 100);
  free(at);
}

/* ---- other writes while appends flow ---- */

typedef struct {
  messages_store_t *s;
  int64_t ch, user, msg_id;
  atomic_int *stop;
  int ops, errors;
  int64_t max_ms;
} wthread_t;

static void *writes_thread(void *arg) {
  wthread_t *t = arg;
  while (!atomic_load(t->stop)) {
    int64_t t0 = wall_ms();
    int r = t->s->ops->read_set(t->s, t->ch, t->user, INT64_MAX, NULL);
    if (r == 0) r = t->s->ops->member_set_muted(t->s, t->ch, t->user, t->ops % 2);
    if (r == 0)
      r = t->s->ops->message_edit(t->s, t->ch, t->msg_id, t->user, str_from("edited"), t0, NULL);
    int64_t dt = wall_ms() - t0;
    if (dt > t->max_ms) t->max_ms = dt;
    if (r != 0) t->errors++;
    t->ops++;
  }
  return NULL;
}

typedef struct {
  env_t *e;
  int64_t ch, author;
  int left; /* appends still to start */
  int failed;
} producer_t;

static void on_produced(void *arg, int status, const msg_ack_t *ack) {
  producer_t *p = arg;
  atomic_fetch_add(&g_done, 1);
  if (status != 0) p->failed++;
  if (p->left > 0) {
    p->left--;
    msg_append_t m = mkmsg(p->ch, p->author, "load", NULL);
    if (p->e->s->ops->append(p->e->s, &m, on_produced, p) != 0) p->failed++;
  }
}

/* Edits, read state and mutes from another thread while 64 producers keep
 * the writer busy: they all succeed and none waits long (the writer does
 * not starve them). */
static void t_writes_during_appends(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice");
  int64_t ch = mkchan(e, "busy", alice, false);
  ack_t first = app_wait(e, ch, alice, "to edit", NULL);
  atomic_store(&g_done, 0);
  atomic_int stop = 0;
  wthread_t wt = {.s = s, .ch = ch, .user = alice, .msg_id = first.ack.id, .stop = &stop};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, writes_thread, &wt), 0);
  enum { NPROD = 64, PER = 40 };
  producer_t prod[NPROD];
  for (int i = 0; i < NPROD; i++) {
    prod[i] = (producer_t){.e = e, .ch = ch, .author = alice, .left = PER - 1};
    msg_append_t m = mkmsg(ch, alice, "load", NULL);
    assert_int_equal(OPS(s)->append(s, &m, on_produced, &prod[i]), 0);
  }
  run_until(&e->loop, NPROD * PER);
  atomic_store(&stop, 1);
  pthread_join(th, NULL);
  for (int i = 0; i < NPROD; i++) assert_int_equal(prod[i].failed, 0);
  assert_int_equal(wt.errors, 0);
  assert_true(wt.ops > 0);
  assert_true(wt.max_ms < 2000);
  assert_int_equal(last_seq(e, ch), 1 + NPROD * PER);
  member_rec_t m;
  assert_int_equal(OPS(s)->member_get(s, ch, alice, &m), 0);
  assert_true(m.last_read_seq >= 1);
}

/* ---- pages, get, edit, delete ---- */

static void t_messages_page(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice");
  int64_t ch = mkchan(e, "general", alice, false);
  int64_t empty = mkchan(e, "empty", alice, false);
  enum { N = 250 };
  static ack_t acks[N];
  memset(acks, 0, sizeof acks);
  for (int i = 0; i < N; i++) {
    char body[16];
    snprintf(body, sizeof body, "m%d", i + 1);
    app(e, ch, alice, body, NULL, &acks[i]);
  }
  run_until(&e->loop, N);
  msg_page_t p;
  /* latest */
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_BEFORE, MSG_SEQ_LATEST, 100, &p), 0);
  assert_int_equal(p.count, 100);
  assert_true(p.more);
  for (size_t k = 0; k < p.count; k++) {
    char body[16];
    snprintf(body, sizeof body, "m%zu", 151 + k);
    assert_int_equal(p.items[k].seq, 151 + (int64_t)k);
    assert_string_equal(p.items[k].body.p, body);
    assert_int_equal(p.items[k].id, acks[150 + k].ack.id);
    assert_int_equal(p.items[k].channel_id, ch);
  }
  msg_page_free(&p);
  assert_null(p.items);
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_BEFORE, 151, 100, &p), 0);
  assert_int_equal(p.count, 100);
  assert_true(p.more);
  assert_int_equal(p.items[0].seq, 51);
  assert_int_equal(p.items[99].seq, 150);
  msg_page_free(&p);
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_BEFORE, 51, 100, &p), 0);
  assert_int_equal(p.count, 50);
  assert_false(p.more);
  assert_int_equal(p.items[0].seq, 1);
  msg_page_free(&p);
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_BEFORE, 1, 100, &p), 0);
  assert_int_equal(p.count, 0);
  assert_false(p.more);
  msg_page_free(&p);
  /* forward */
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_AFTER, 0, 100, &p), 0);
  assert_int_equal(p.count, 100);
  assert_true(p.more);
  assert_int_equal(p.items[0].seq, 1);
  assert_int_equal(p.items[99].seq, 100);
  msg_page_free(&p);
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_AFTER, 200, 100, &p), 0);
  assert_int_equal(p.count, 50);
  assert_false(p.more);
  assert_int_equal(p.items[49].seq, 250);
  msg_page_free(&p);
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_AFTER, 150, 100, &p), 0);
  assert_int_equal(p.count, 100);
  assert_false(p.more); /* exactly the rest */
  msg_page_free(&p);
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_AFTER, 249, 1, &p), 0);
  assert_int_equal(p.count, 1);
  assert_string_equal(p.items[0].body.p, "m250");
  msg_page_free(&p);
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_AFTER, 250, 5, &p), 0);
  assert_int_equal(p.count, 0);
  msg_page_free(&p);
  assert_int_equal(OPS(s)->messages_page(s, empty, MSG_BEFORE, MSG_SEQ_LATEST, 5, &p), 0);
  assert_int_equal(p.count, 0);
  assert_false(p.more);
  msg_page_free(&p);
  /* errors */
  assert_int_equal(OPS(s)->messages_page(s, ch + 999, MSG_AFTER, 0, 5, &p), -ENOENT);
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_AFTER, 0, 0, &p), -EINVAL);
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_AFTER, 0, MSG_PAGE_MAX + 1, &p), -EINVAL);
  assert_int_equal(OPS(s)->messages_page(s, ch, (msg_dir_t)7, 0, 5, &p), -EINVAL);
  assert_null(p.items);
  msg_page_free(&p); /* harmless after an error */
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_AFTER, 0, 5, NULL), -EINVAL);
}

static void t_message_get_edit(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice"), bob = suite_mkuser("bob");
  int64_t ch = mkchan(e, "general", alice, false);
  int64_t ch2 = mkchan(e, "other", alice, false);
  ack_t a = {0};
  msg_append_t m = mkmsg(ch, alice, "original", "n1");
  m.attachments = str_from("[1]");
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), 0);
  run_until(&e->loop, 1);
  msg_rec_t *r = (msg_rec_t *)(uintptr_t)1;
  assert_int_equal(OPS(s)->message_get(s, ch2, a.ack.id, &r), -ENOENT); /* another channel */
  assert_null(r);
  assert_int_equal(OPS(s)->message_get(s, ch, a.ack.id + 1, &r), -ENOENT);
  assert_int_equal(OPS(s)->message_get(s, ch, a.ack.id, NULL), -EINVAL);

  /* the author edits */
  assert_int_equal(OPS(s)->message_edit(s, ch, a.ack.id, alice, str_from("fixed"), 5000, &r), 0);
  assert_string_equal(r->body.p, "fixed");
  assert_int_equal(r->edited_at, 5000);
  assert_int_equal(r->seq, 1);
  assert_string_equal(r->attachments.p, "[1]"); /* kept */
  assert_string_equal(r->nonce.p, "n1");
  free(r);
  /* someone else: refused, unchanged */
  r = (msg_rec_t *)(uintptr_t)1;
  assert_int_equal(OPS(s)->message_edit(s, ch, a.ack.id, bob, str_from("hacked"), 6000, &r),
                   -EPERM);
  assert_null(r);
  assert_int_equal(OPS(s)->message_get(s, ch, a.ack.id, &r), 0);
  assert_string_equal(r->body.p, "fixed");
  assert_int_equal(r->edited_at, 5000);
  free(r);
  /* MSG_ANY_AUTHOR skips the check; out may be NULL; empty body */
  assert_int_equal(
      OPS(s)->message_edit(s, ch, a.ack.id, MSG_ANY_AUTHOR, (str_t){NULL, 0}, 7000, NULL), 0);
  assert_int_equal(OPS(s)->message_get(s, ch, a.ack.id, &r), 0);
  assert_int_equal(r->body.n, 0);
  assert_int_equal(r->edited_at, 7000);
  free(r);
  /* errors */
  assert_int_equal(OPS(s)->message_edit(s, ch2, a.ack.id, alice, str_from("x"), 1, NULL), -ENOENT);
  assert_int_equal(OPS(s)->message_edit(s, ch, a.ack.id + 1, alice, str_from("x"), 1, NULL),
                   -ENOENT);
  char *big = malloc(MSG_BODY_MAX + 1);
  memset(big, 'x', MSG_BODY_MAX + 1);
  assert_int_equal(
      OPS(s)->message_edit(s, ch, a.ack.id, alice, (str_t){big, MSG_BODY_MAX + 1}, 1, NULL),
      -EINVAL);
  str_t max_body = {big, MSG_BODY_MAX};
  assert_int_equal(OPS(s)->message_edit(s, ch, a.ack.id, alice, max_body, 1, NULL), 0);
  free(big);
  assert_int_equal(OPS(s)->message_edit(s, ch, a.ack.id, alice, (str_t){"a\0b", 3}, 1, NULL),
                   -EINVAL);
  /* deleted: nothing to edit */
  assert_int_equal(OPS(s)->message_delete(s, ch, a.ack.id, alice, 8000, NULL), 0);
  assert_int_equal(OPS(s)->message_edit(s, ch, a.ack.id, alice, str_from("x"), 1, NULL), -ENOENT);
  assert_int_equal(OPS(s)->message_edit(s, ch, a.ack.id, bob, str_from("x"), 1, NULL), -EPERM);
  assert_true(OPS(s)->healthy(s));
}

static void t_message_delete(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice"), bob = suite_mkuser("bob");
  int64_t ch = mkchan(e, "general", alice, false);
  ack_t a = {0}, b = {0};
  msg_append_t m = mkmsg(ch, alice, "secret", "n1");
  m.attachments = str_from("[\"file\"]");
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), 0);
  app(e, ch, bob, "reply", NULL, &b);
  run_until(&e->loop, 2);
  msg_rec_t *r = (msg_rec_t *)(uintptr_t)1;
  assert_int_equal(OPS(s)->message_delete(s, ch, a.ack.id, bob, 9000, &r), -EPERM);
  assert_null(r);
  assert_int_equal(OPS(s)->message_delete(s, ch, a.ack.id, alice, 9000, &r), 0);
  assert_true(r->deleted);
  assert_int_equal(r->body.n, 0);
  assert_string_equal(r->body.p, "");
  assert_null(r->attachments.p);
  assert_string_equal(r->nonce.p, "n1"); /* kept: retries still find the original */
  assert_int_equal(r->edited_at, 9000);
  assert_int_equal(r->seq, 1);
  free(r);
  /* idempotent: the message as it is, edited_at unchanged */
  assert_int_equal(OPS(s)->message_delete(s, ch, a.ack.id, alice, 9999, &r), 0);
  assert_true(r->deleted);
  assert_int_equal(r->edited_at, 9000);
  free(r);
  assert_int_equal(OPS(s)->message_delete(s, ch, a.ack.id, MSG_ANY_AUTHOR, 1, NULL), 0);
  assert_int_equal(OPS(s)->message_delete(s, ch, a.ack.id, bob, 1, NULL), -EPERM);
  /* moderation: any author; out may be NULL */
  assert_int_equal(OPS(s)->message_delete(s, ch, b.ack.id, MSG_ANY_AUTHOR, 10, NULL), 0);
  /* tombstones stay in history: seqs remain gapless */
  msg_page_t p;
  assert_int_equal(OPS(s)->messages_page(s, ch, MSG_BEFORE, MSG_SEQ_LATEST, 10, &p), 0);
  assert_int_equal(p.count, 2);
  assert_true(p.items[0].deleted);
  assert_true(p.items[1].deleted);
  assert_int_equal(p.items[1].seq, 2);
  msg_page_free(&p);
  assert_int_equal(last_seq(e, ch), 2);
  assert_int_equal(OPS(s)->message_delete(s, ch, a.ack.id + 999, alice, 1, &r), -ENOENT);
  assert_int_equal(OPS(s)->message_delete(s, ch + 999, a.ack.id, alice, 1, &r), -ENOENT);
}

/* ---- close ---- */

typedef struct {
  env_t *e;
  int calls;
  int close_at; /* the callback number that closes the store */
  int append_r; /* what an append from inside the draining close returned */
} closer_t;

static void on_ack_close(void *arg, int status, const msg_ack_t *ack) {
  closer_t *c = arg;
  c->calls++;
  atomic_fetch_add(&g_done, 1);
  assert_int_equal(status, 0);
  if (c->calls == c->close_at) {
    messages_store_t *s = c->e->s;
    c->e->s = NULL;
    s->ops->close(s);
  }
}

static void on_ack_append(void *arg, int status, const msg_ack_t *ack) {
  closer_t *c = arg;
  c->calls++;
  atomic_fetch_add(&g_done, 1);
  if (c->calls == 1) {
    msg_append_t m = mkmsg(1, 1, "late", NULL);
    c->append_r = c->e->s->ops->append(c->e->s, &m, on_ack_append, c);
  }
}

/* close commits and calls back everything queued before it returns. */
static void t_close_drains(void **state) {
  env_t *e = ENV(state);
  int64_t alice = suite_mkuser("alice");
  int64_t ch = mkchan(e, "general", alice, false);
  enum { N = 500 };
  static ack_t acks[N];
  memset(acks, 0, sizeof acks);
  for (int i = 0; i < N; i++) app(e, ch, alice, "bye", NULL, &acks[i]);
  messages_store_t *s = e->s;
  e->s = NULL;
  s->ops->close(s);
  assert_int_equal(atomic_load(&g_done), N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(acks[i].status, 0);
    assert_int_equal(acks[i].ack.seq, i + 1);
    assert_true(acks[i].on_loop_thread);
  }
  /* nothing runs afterwards */
  uv_run(&e->loop, UV_RUN_NOWAIT);
  assert_int_equal(atomic_load(&g_done), N);
}

/* A callback may close the store: the rest still gets called back, once,
 * before close returns; nothing runs after. */
static void t_close_from_callback(void **state) {
  env_t *e = ENV(state);
  int64_t alice = suite_mkuser("alice");
  int64_t ch = mkchan(e, "general", alice, false);
  closer_t c = {.e = e, .close_at = 3};
  enum { N = 200 };
  for (int i = 0; i < N; i++) {
    msg_append_t m = mkmsg(ch, alice, "x", NULL);
    assert_int_equal(OPS(e->s)->append(e->s, &m, on_ack_close, &c), 0);
  }
  int64_t deadline = wall_ms() + 20000;
  while (e->s && wall_ms() < deadline) {
    uv_run(&e->loop, UV_RUN_NOWAIT);
    sleep_ms(1);
  }
  assert_null(e->s);
  assert_int_equal(c.calls, N);
  uv_run(&e->loop, UV_RUN_NOWAIT);
  assert_int_equal(c.calls, N);
}

/* An append made by a callback while close drains is refused. */
static void t_append_during_close(void **state) {
  env_t *e = ENV(state);
  int64_t alice = suite_mkuser("alice");
  int64_t ch = mkchan(e, "general", alice, false);
  closer_t c = {.e = e, .append_r = 1};
  msg_append_t m = mkmsg(ch, alice, "x", NULL);
  assert_int_equal(OPS(e->s)->append(e->s, &m, on_ack_append, &c), 0);
  messages_store_t *s = e->s;
  s->ops->close(s); /* e->s stays set during close, for the callback */
  e->s = NULL;
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.append_r, -ESHUTDOWN);
}

#define SUITE_TEST(f) cmocka_unit_test_setup_teardown(f, suite_setup, suite_teardown)

/* The suite's tests, to put in a cmocka test array. Call
 * messages_store_suite_use first. */
#define MESSAGES_STORE_SUITE_TESTS                                                                 \
  SUITE_TEST(t_channel_create_get), SUITE_TEST(t_channel_create_errors),                          \
      SUITE_TEST(t_channel_update_delete), SUITE_TEST(t_channel_list_public),                     \
      SUITE_TEST(t_channel_list_for_user), SUITE_TEST(t_dm_get_or_create),                        \
      SUITE_TEST(t_dm_concurrent), SUITE_TEST(t_members), SUITE_TEST(t_members_list),             \
      SUITE_TEST(t_read_set), SUITE_TEST(t_append_basic), SUITE_TEST(t_append_invalid),           \
      SUITE_TEST(t_append_order_and_batching), SUITE_TEST(t_append_idempotent),                   \
      SUITE_TEST(t_append_missing_channel), SUITE_TEST(t_append_threads),                         \
      SUITE_TEST(t_writes_during_appends), SUITE_TEST(t_messages_page),                           \
      SUITE_TEST(t_message_get_edit), SUITE_TEST(t_message_delete), SUITE_TEST(t_close_drains),   \
      SUITE_TEST(t_close_from_callback), SUITE_TEST(t_append_during_close)

static void messages_store_suite_use(messages_store_t *(*make)(uv_loop_t *, unsigned),
                                     void (*destroy)(messages_store_t *),
                                     int64_t (*mkuser)(const char *)) {
  suite_make = make;
  suite_destroy = destroy;
  suite_mkuser = mkuser;
}

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
  if (f->users) f->users->ops->close(f->users);
  sqlite_db_close(f->db);
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
  assert_true(sqlite_db_schema_version(f->db) >= 2);
  assert_int_equal(q_int(c, "SELECT count(*) FROM schema_migrations WHERE version = 2 "
                            "AND name = 'messages'"),
                   1);
  assert_int_equal(q_int(c, "SELECT count(*) FROM sqlite_master WHERE name IN ('channels', "
                            "'members', 'messages', 'channels_name', 'channels_public', "
                            "'channels_owner', 'members_user', 'messages_nonce')"),
                   8);
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
  /* the public list and the nonce lookup use their partial indexes */
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(c, "EXPLAIN QUERY PLAN SELECT id FROM channels WHERE "
                                         "kind = 'channel' AND private = 0 AND id > 0 "
                                         "ORDER BY id LIMIT 5",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_non_null(strstr((const char *)sqlite3_column_text(st, 3), "channels_public"));
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_prepare_v2(c, "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE "
                                         "author_id = 1 AND channel_id = 1 AND nonce = x'01'",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_non_null(strstr((const char *)sqlite3_column_text(st, 3), "messages_nonce"));
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
  int64_t seq = 0;
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

typedef struct {
  messages_store_t *s;
  int64_t a, b;
  int64_t id;
  int r;
  atomic_int *go;
} xthread_t;

static void *x_dm_thread(void *arg) {
  xthread_t *t = arg;
  while (!atomic_load(t->go)) {
  }
  channel_rec_t c;
  t->r = t->s->ops->dm_get_or_create(t->s, t->a, t->b, 1, &c, NULL);
  t->id = c.id;
  return NULL;
}

/* Two stores on two connections to one file, as two processes would be:
 * appends to one channel from both stay gapless (the seq is read inside
 * each writer's BEGIN IMMEDIATE transaction), and a DM asked for through
 * both at once is created once. */
static void t_sq_two_processes(void **state) {
  fx_t *f = *state;
  env_t *e = fx_open(f, 0, 0, 0);
  int64_t alice = fx_user(f, "alice"), bob = fx_user(f, "bob");
  int64_t ch = mkchan(e, "shared", alice, false);
  sqlite_db_t *db2 = open_db(f->dir);
  messages_store_t *s2;
  messages_sqlite_opts_t o = {.loop = &f->env.loop, .node_id = 9};
  assert_int_equal(messages_sqlite_open(db2, &o, &s2), 0);
  enum { N = 200 };
  static ack_t a1[N], a2[N];
  memset(a1, 0, sizeof a1);
  memset(a2, 0, sizeof a2);
  for (int i = 0; i < N; i++) {
    app(e, ch, alice, "from 1", NULL, &a1[i]);
    msg_append_t m = mkmsg(ch, bob, "from 2", NULL);
    assert_int_equal(s2->ops->append(s2, &m, on_ack, &a2[i]), 0);
  }
  run_until(&e->loop, 2 * N);
  static bool seen[2 * N + 1];
  memset(seen, 0, sizeof seen);
  for (int i = 0; i < N; i++) {
    assert_int_equal(a1[i].status, 0);
    assert_int_equal(a2[i].status, 0);
    assert_false(seen[a1[i].ack.seq]);
    seen[a1[i].ack.seq] = true;
    assert_false(seen[a2[i].ack.seq]);
    seen[a2[i].ack.seq] = true;
    assert_int_equal(msg_id_node(a1[i].ack.id), 3);
    assert_int_equal(msg_id_node(a2[i].ack.id), 9);
    if (i) assert_true(a1[i].ack.seq > a1[i - 1].ack.seq);
  }
  assert_int_equal(last_seq(e, ch), 2 * N);
  xthread_t xt[2];
  pthread_t th[2];
  atomic_int go = 0;
  for (int i = 0; i < 2; i++) {
    xt[i] = (xthread_t){.s = i ? s2 : e->s, .a = i ? alice : bob, .b = i ? bob : alice, .go = &go};
    assert_int_equal(pthread_create(&th[i], NULL, x_dm_thread, &xt[i]), 0);
  }
  atomic_store(&go, 1);
  for (int i = 0; i < 2; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(xt[i].r, 0);
  }
  assert_int_equal(xt[0].id, xt[1].id);
  assert_int_equal(
      q_int(sqlite_db_handle(f->db), "SELECT count(*) FROM channels WHERE kind = 'dm'"), 1);
  s2->ops->close(s2);
  sqlite_db_close(db2);
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
      FX_TEST(t_sq_two_processes),
      FX_TEST(t_sq_io_error),
      FX_TEST(t_sq_row_beyond_limits),
      FX_TEST(t_sq_open_errors),
      FX_TEST(t_sq_open_writer_fails),
  };
  return cmocka_run_group_tests_name("messages_store", tests, NULL, NULL);
}
