/*
 * messages_store_suite.h — the backend-independent test-suite of the
 * messages store (store/messages_store.h), shared by
 * test_messages_store.c (SQLite) and test_messages_store_pg.c
 * (PostgreSQL): the same tests decide whether a backend meets the
 * contract.
 *
 * Include it in one test file (it defines static functions). Call
 * messages_store_suite_use(make, destroy, mkuser) first: every test of
 * MESSAGES_STORE_SUITE_TESTS then runs on a fresh store from make() with a
 * fresh libuv loop (append callbacks need a real one); teardown closes the
 * store, runs the loop until the store's handle is closed and checks that
 * uv_loop_close succeeds (no leaked handle). make(loop, node_id) must give
 * a store whose message ids carry node_id.
 */
#ifndef STORM_TEST_MESSAGES_STORE_SUITE_H
#define STORM_TEST_MESSAGES_STORE_SUITE_H

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
#include <time.h>

#include <cmocka.h>
#include <uv.h>

#include "store/messages_store.h"


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
  if (status == 0 || status == -EPERM) assert_non_null(ack);
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
  for (int i = 0; i < 10; i++) assert_int_equal(app_wait(e, ch, alice, "m", NULL).status, 0);
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
  assert_int_equal(OPS(e->s)->member_add(e->s, ch, bob, 1, NULL), 0);
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

/* The writer checks membership in the message's transaction: a
 * non-member's append is refused (-EPERM) with the channel's facts, nothing
 * is stored, and the batch's other appends are not affected; a member
 * who left is refused; an accepted append reports the channel's kind and
 * a DM's users. */
static void t_append_members_only(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice"), bob = suite_mkuser("bob"), carol = suite_mkuser("carol");
  int64_t pub = mkchan(e, "open", alice, false);
  int64_t priv = mkchan(e, "closed", alice, true);
  ack_t a = {0}, b = {0}, c = {0}, d = {0};
  int target = atomic_load(&g_done) + 4;
  app(e, pub, alice, "one", NULL, &a);
  app(e, pub, bob, "intruder", "n-x", &b);
  app(e, priv, bob, "intruder", NULL, &c);
  app(e, pub, alice, "two", NULL, &d);
  run_until(&e->loop, target);
  assert_int_equal(a.status, 0);
  assert_int_equal(d.status, 0);
  assert_int_equal(d.ack.seq, a.ack.seq + 1); /* the refusal took no seq */
  assert_int_equal(a.ack.kind, CHANNEL_KIND_CHANNEL);
  assert_false(a.ack.is_private);
  assert_int_equal(b.status, -EPERM);
  assert_false(b.ack.is_private);
  assert_int_equal(b.ack.kind, CHANNEL_KIND_CHANNEL);
  assert_int_equal(c.status, -EPERM);
  assert_true(c.ack.is_private);
  msg_page_t pg = {0};
  assert_int_equal(OPS(s)->messages_page(s, pub, MSG_BEFORE, MSG_SEQ_LATEST, 10, &pg), 0);
  assert_int_equal(pg.count, 2);
  msg_page_free(&pg);
  /* the nonce of the refused append was not used */
  assert_int_equal(OPS(s)->member_add(s, pub, bob, 2, NULL), 0);
  ack_t now = app_wait(e, pub, bob, "member now", "n-x");
  assert_int_equal(now.status, 0);
  assert_false(now.ack.duplicate);
  /* a member who left */
  assert_int_equal(OPS(s)->member_add(s, pub, carol, 3, NULL), 0);
  assert_int_equal(app_wait(e, pub, carol, "here", NULL).status, 0);
  assert_int_equal(OPS(s)->member_remove(s, pub, carol), 0);
  assert_int_equal(app_wait(e, pub, carol, "gone", NULL).status, -EPERM);
  /* a DM: kind and users in the ack */
  channel_rec_t dm;
  assert_int_equal(OPS(s)->dm_get_or_create(s, carol, bob, 4, &dm, NULL), 0);
  ack_t m = app_wait(e, dm.id, carol, "hi", NULL);
  assert_int_equal(m.status, 0);
  assert_int_equal(m.ack.kind, CHANNEL_KIND_DM);
  assert_true(m.ack.is_private);
  assert_int_equal(m.ack.dm_user_lo, bob < carol ? bob : carol);
  assert_int_equal(m.ack.dm_user_hi, bob < carol ? carol : bob);
}

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
  assert_int_equal(OPS(s)->member_add(s, ch, bob, 1, NULL), 0);
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

/* ---- attachments ---- */

/* Appends with media keys and waits: the callback's status. */
static ack_t app_keys(env_t *e, int64_t ch, int64_t author, const char *nonce, const str_t *keys,
                      size_t nkeys) {
  ack_t a = {0};
  int target = atomic_load(&g_done) + 1;
  msg_append_t m = mkmsg(ch, author, "look", nonce);
  m.attachments = str_from("[\"k\"]");
  m.keys = keys;
  m.nkeys = nkeys;
  assert_int_equal(OPS(e->s)->append(e->s, &m, on_ack, &a), 0);
  run_until(&e->loop, target);
  assert_int_equal(a.calls, 1);
  return a;
}

#define VIS(key, user) OPS(s)->attachment_visible(s, key, user)

static void t_attachments_visible(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice"), bob = suite_mkuser("bob"), carol = suite_mkuser("carol");
  int64_t ch = mkchan(e, "general", alice, false);
  assert_int_equal(OPS(s)->member_add(s, ch, bob, 1, NULL), 0);
  /* a repeated key is indexed once (no unique-key failure) */
  const str_t k12[] = {str_from("k1"), str_from("k2"), str_from("k1")};
  ack_t a1 = app_keys(e, ch, alice, NULL, k12, 3);
  assert_int_equal(a1.status, 0);
  const str_t k2[] = {str_from("k2")};
  ack_t a2 = app_keys(e, ch, bob, NULL, k2, 1);
  assert_int_equal(a2.status, 0);
  assert_int_equal(VIS("k1", alice), 1);
  assert_int_equal(VIS("k1", bob), 1); /* members see what others attached */
  assert_int_equal(VIS("k2", bob), 1);
  assert_int_equal(VIS("k1", carol), 0); /* not a member */
  assert_int_equal(VIS("k3", alice), 0); /* attached nowhere */
  /* a DM: its two members only */
  channel_rec_t dm;
  assert_int_equal(OPS(s)->dm_get_or_create(s, alice, carol, 1, &dm, NULL), 0);
  const str_t k3[] = {str_from("k3")};
  assert_int_equal(app_keys(e, dm.id, alice, NULL, k3, 1).status, 0);
  assert_int_equal(VIS("k3", carol), 1);
  assert_int_equal(VIS("k3", bob), 0);
  /* a nonce retry stores nothing, so indexes nothing */
  const str_t kx[] = {str_from("kx")}, ky[] = {str_from("ky")};
  ack_t n1 = app_keys(e, ch, alice, "n", kx, 1);
  ack_t n2 = app_keys(e, ch, alice, "n", ky, 1);
  assert_true(n2.ack.duplicate);
  assert_int_equal(n2.ack.id, n1.ack.id);
  assert_int_equal(VIS("kx", bob), 1);
  assert_int_equal(VIS("ky", bob), 0);
  assert_int_equal(VIS("ky", alice), 0);
  /* no channel: nothing stored, nothing indexed */
  const str_t kz[] = {str_from("kz")};
  assert_int_equal(app_keys(e, ch + 999, alice, NULL, kz, 1).status, -ENOENT);
  assert_int_equal(VIS("kz", alice), 0);
  /* leaving withdraws */
  assert_int_equal(OPS(s)->member_remove(s, ch, bob), 0);
  assert_int_equal(VIS("k1", bob), 0);
  assert_int_equal(VIS("k2", bob), 0);
  /* deleting a message withdraws its keys, not another message's */
  assert_int_equal(OPS(s)->message_delete(s, ch, a1.ack.id, MSG_ANY_AUTHOR, 5, NULL), 0);
  assert_int_equal(VIS("k1", alice), 0);
  assert_int_equal(VIS("k2", alice), 1); /* still carried by bob's message */
  /* deleting the channel withdraws everything in it */
  assert_int_equal(OPS(s)->channel_delete(s, dm.id), 0);
  assert_int_equal(VIS("k3", carol), 0);
  assert_int_equal(VIS("k3", alice), 0);
  assert_true(OPS(s)->healthy(s));
}

static void t_attachments_invalid(void **state) {
  env_t *e = ENV(state);
  messages_store_t *s = e->s;
  int64_t alice = suite_mkuser("alice");
  int64_t ch = mkchan(e, "general", alice, false);
  char big[MSG_ATTACH_KEY_MAX + 2];
  memset(big, 'k', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(VIS(big, alice), -EINVAL); /* one byte over */
  assert_int_equal(VIS("", alice), -EINVAL);
  assert_int_equal(VIS(NULL, alice), -EINVAL);
  assert_int_equal(VIS("k", 0), -EINVAL);
  assert_int_equal(VIS("\xff", alice), -EINVAL); /* not UTF-8 */
  ack_t a = {0};
  msg_append_t m = mkmsg(ch, alice, "x", NULL);
  str_t keys[MSG_ATTACH_KEYS_MAX + 1];
  for (size_t i = 0; i <= MSG_ATTACH_KEYS_MAX; i++) keys[i] = str_from("k");
  m.keys = keys;
  m.nkeys = MSG_ATTACH_KEYS_MAX + 1;
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  m.nkeys = 1;
  keys[0] = (str_t){"a\0b", 3};
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  keys[0] = (str_t){"", 0};
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  keys[0] = (str_t){big, MSG_ATTACH_KEY_MAX + 1};
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  keys[0] = (str_t){"\xc3", 1};
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  m.keys = NULL;
  assert_int_equal(OPS(s)->append(s, &m, on_ack, &a), -EINVAL);
  assert_int_equal(a.calls, 0);
  /* exactly the limits pass */
  big[MSG_ATTACH_KEY_MAX] = '\0';
  for (size_t i = 0; i < MSG_ATTACH_KEYS_MAX; i++) keys[i] = str_from(i ? "k" : big);
  assert_int_equal(app_keys(e, ch, alice, NULL, keys, MSG_ATTACH_KEYS_MAX).status, 0);
  assert_int_equal(VIS(big, alice), 1);
}

#undef VIS

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
      SUITE_TEST(t_append_missing_channel), SUITE_TEST(t_append_members_only),                    \
      SUITE_TEST(t_append_threads),                         \
      SUITE_TEST(t_writes_during_appends), SUITE_TEST(t_messages_page),                           \
      SUITE_TEST(t_message_get_edit), SUITE_TEST(t_message_delete),                               \
      SUITE_TEST(t_attachments_visible), SUITE_TEST(t_attachments_invalid),                       \
      SUITE_TEST(t_close_drains),                                                                 \
      SUITE_TEST(t_close_from_callback), SUITE_TEST(t_append_during_close)

static void messages_store_suite_use(messages_store_t *(*make)(uv_loop_t *, unsigned),
                                     void (*destroy)(messages_store_t *),
                                     int64_t (*mkuser)(const char *)) {
  suite_make = make;
  suite_destroy = destroy;
  suite_mkuser = mkuser;
}

#endif
