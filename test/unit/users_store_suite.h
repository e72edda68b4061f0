/*
 * users_store_suite.h — the backend-independent test-suite of the users
 * store (store/users_store.h), shared by test_users_store.c (SQLite) and
 * test_users_store_pg.c (PostgreSQL): the same tests decide whether a
 * backend meets the contract.
 *
 * Include it in one test file (it defines static functions). Call
 * users_store_suite_use(make, destroy) first: make() returns a fresh, empty
 * store (NULL on failure), destroy() closes it and removes its data. Then
 * put USERS_STORE_SUITE_TESTS in the cmocka test array.
 */
#ifndef STORM_TEST_USERS_STORE_SUITE_H
#define STORM_TEST_USERS_STORE_SUITE_H

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

#include <cmocka.h>

#include "store/users_store.h"


static users_store_t *(*suite_make)(void);
static void (*suite_destroy)(users_store_t *);

static int suite_setup(void **state) {
  *state = suite_make();
  return *state ? 0 : -1;
}

static int suite_teardown(void **state) {
  suite_destroy(*state);
  return 0;
}

#define ST(state) ((users_store_t *)*(state))
#define OPS(s) ((s)->ops)

static const char HASH1[] = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
static const char HASH2[] = "$argon2id$v=19$m=65536,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g";

static int64_t mkuser(users_store_t *s, const char *name) {
  user_rec_t u;
  assert_int_equal(OPS(s)->user_create(s, name, "Display", HASH1, 1000, &u), 0);
  return u.id;
}

/* A refresh record whose hash and family are filled with tag bytes. */
static refresh_rec_t mkrt(uint8_t tag, uint8_t fam, int64_t user_id, int64_t expires) {
  refresh_rec_t r;
  memset(&r, 0, sizeof r);
  memset(r.token_hash, tag, sizeof r.token_hash);
  r.token_hash[31] = (uint8_t)~tag; /* not all equal bytes: catches a copy of the wrong length */
  memset(r.family, fam, sizeof r.family);
  r.family[0] = 0xF0;
  r.user_id = user_id;
  r.created_at = 5000 + tag;
  r.expires_at = expires;
  return r;
}

static void assert_rt_equal(const refresh_rec_t *a, const refresh_rec_t *b) {
  assert_memory_equal(a->token_hash, b->token_hash, 32);
  assert_memory_equal(a->family, b->family, 16);
  assert_int_equal(a->user_id, b->user_id);
  assert_int_equal(a->created_at, b->created_at);
  assert_int_equal(a->expires_at, b->expires_at);
  assert_int_equal(a->used, b->used);
  assert_int_equal(a->revoked, b->revoked);
}

static void assert_user_equal(const user_rec_t *a, const user_rec_t *b) {
  assert_int_equal(a->id, b->id);
  assert_string_equal(a->username, b->username);
  assert_string_equal(a->display_name, b->display_name);
  assert_string_equal(a->password_hash, b->password_hash);
  assert_int_equal(a->created_at, b->created_at);
}

static void t_user_create_get(void **state) {
  users_store_t *s = ST(state);
  assert_true(OPS(s)->healthy(s));
  user_rec_t a, b, got;
  assert_int_equal(OPS(s)->user_create(s, "alice", "Alice A.", HASH1, 1700000000123, &a), 0);
  assert_true(a.id > 0);
  assert_string_equal(a.username, "alice");
  assert_string_equal(a.display_name, "Alice A.");
  assert_string_equal(a.password_hash, HASH1);
  assert_int_equal(a.created_at, 1700000000123);
  assert_int_equal(OPS(s)->user_create(s, "bob", "Bob", HASH2, 7, &b), 0);
  assert_true(b.id != a.id);

  memset(&got, 0xAA, sizeof got);
  assert_int_equal(OPS(s)->user_by_name(s, "alice", &got), 0);
  assert_user_equal(&got, &a);
  memset(&got, 0xAA, sizeof got);
  assert_int_equal(OPS(s)->user_by_id(s, b.id, &got), 0);
  assert_user_equal(&got, &b);
  /* out may be NULL: an existence check */
  assert_int_equal(OPS(s)->user_create(s, "carol", "C", HASH1, 1, NULL), 0);
  assert_int_equal(OPS(s)->user_by_name(s, "carol", NULL), 0);
  assert_true(OPS(s)->healthy(s));
}

static void t_user_duplicate(void **state) {
  users_store_t *s = ST(state);
  user_rec_t a, got;
  assert_int_equal(OPS(s)->user_create(s, "alice", "First", HASH1, 1, &a), 0);
  assert_int_equal(OPS(s)->user_create(s, "alice", "Second", HASH2, 2, &got), -EEXIST);
  assert_int_equal(OPS(s)->user_by_name(s, "alice", &got), 0);
  assert_user_equal(&got, &a); /* the first one is untouched */
  /* byte-wise uniqueness: case folding is the service's job */
  assert_int_equal(OPS(s)->user_create(s, "Alice", "Third", HASH1, 3, NULL), 0);
  assert_true(OPS(s)->healthy(s)); /* a constraint is an answer, not a failure */
}

static void t_user_unknown(void **state) {
  users_store_t *s = ST(state);
  user_rec_t got;
  int64_t id = mkuser(s, "alice");
  assert_int_equal(OPS(s)->user_by_name(s, "nobody", &got), -ENOENT);
  assert_int_equal(OPS(s)->user_by_name(s, "", &got), -ENOENT);
  assert_int_equal(OPS(s)->user_by_id(s, id + 1000, &got), -ENOENT);
  assert_int_equal(OPS(s)->user_by_id(s, -1, &got), -ENOENT);
  assert_int_equal(OPS(s)->user_set_password_hash(s, id + 1000, HASH2), -ENOENT);
}

static void t_user_set_password_hash(void **state) {
  users_store_t *s = ST(state);
  int64_t id = mkuser(s, "alice");
  int64_t other = mkuser(s, "bob");
  user_rec_t got;
  assert_int_equal(OPS(s)->user_set_password_hash(s, id, HASH2), 0);
  assert_int_equal(OPS(s)->user_by_id(s, id, &got), 0);
  assert_string_equal(got.password_hash, HASH2);
  assert_int_equal(OPS(s)->user_by_id(s, other, &got), 0);
  assert_string_equal(got.password_hash, HASH1); /* only that user */
}

static void t_user_unicode(void **state) {
  users_store_t *s = ST(state);
  /* Latin with combining mark, CJK, emoji (4 bytes), RTL, a zero-width joiner. */
  const char *dn = "Zoe\xCC\x88 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x9A\x80 \xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D "
                   "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB";
  user_rec_t a, got;
  assert_int_equal(OPS(s)->user_create(s, "zoe", dn, HASH1, 1, &a), 0);
  assert_int_equal(OPS(s)->user_by_name(s, "zoe", &got), 0);
  assert_string_equal(got.display_name, dn);
  assert_int_equal(strlen(got.display_name), strlen(dn));
  /* a non-ASCII username is stored byte for byte as well */
  assert_int_equal(OPS(s)->user_create(s, "j\xC3\xBCrgen", "J", HASH1, 1, NULL), 0);
  assert_int_equal(OPS(s)->user_by_name(s, "j\xC3\xBCrgen", &got), 0);
  assert_int_equal(OPS(s)->user_by_name(s, "jurgen", &got), -ENOENT);
}

static void t_user_limits(void **state) {
  users_store_t *s = ST(state);
  char name[USER_NAME_MAX + 2], disp[USER_DISPLAY_MAX + 8], hash[USER_HASH_MAX + 1];
  user_rec_t got;

  memset(name, 'n', USER_NAME_MAX);
  name[USER_NAME_MAX] = '\0';
  disp[0] = '\0';
  for (int i = 0; i < USER_DISPLAY_MAX / 4; i++) strcat(disp, "\xF0\x9F\x9A\x80"); /* 64 emoji */
  assert_int_equal(strlen(disp), USER_DISPLAY_MAX);
  memset(hash, 'h', USER_HASH_MAX - 1);
  hash[USER_HASH_MAX - 1] = '\0';

  assert_int_equal(OPS(s)->user_create(s, name, disp, hash, 1, NULL), 0);
  assert_int_equal(OPS(s)->user_by_name(s, name, &got), 0);
  assert_string_equal(got.username, name);
  assert_string_equal(got.display_name, disp);
  assert_string_equal(got.password_hash, hash);

  /* one byte over each limit: refused, never truncated */
  char name2[USER_NAME_MAX + 2];
  memset(name2, 'm', USER_NAME_MAX + 1);
  name2[USER_NAME_MAX + 1] = '\0';
  assert_int_equal(OPS(s)->user_create(s, name2, "d", HASH1, 1, NULL), -EINVAL);
  assert_int_equal(OPS(s)->user_by_name(s, name2, NULL), -ENOENT);
  strcat(disp, "x");
  assert_int_equal(OPS(s)->user_create(s, "u2", disp, HASH1, 1, NULL), -EINVAL);
  hash[USER_HASH_MAX - 1] = 'h';
  hash[USER_HASH_MAX] = '\0';
  assert_int_equal(OPS(s)->user_create(s, "u3", "d", hash, 1, NULL), -EINVAL);
  assert_int_equal(OPS(s)->user_set_password_hash(s, got.id, hash), -EINVAL);
  assert_int_equal(OPS(s)->user_by_name(s, "u2", NULL), -ENOENT);
  assert_int_equal(OPS(s)->user_by_name(s, "u3", NULL), -ENOENT);
  /* NULL strings */
  assert_int_equal(OPS(s)->user_create(s, NULL, "d", HASH1, 1, NULL), -EINVAL);
  assert_int_equal(OPS(s)->user_create(s, "u4", NULL, HASH1, 1, NULL), -EINVAL);
  assert_int_equal(OPS(s)->user_create(s, "u4", "d", NULL, 1, NULL), -EINVAL);
  assert_int_equal(OPS(s)->user_set_password_hash(s, got.id, NULL), -EINVAL);
  assert_int_equal(OPS(s)->user_by_name(s, NULL, NULL), -EINVAL);
  /* extreme timestamps round-trip */
  user_rec_t t;
  assert_int_equal(OPS(s)->user_create(s, "t", "d", HASH1, INT64_MAX, &t), 0);
  assert_int_equal(OPS(s)->user_by_id(s, t.id, &got), 0);
  assert_int_equal(got.created_at, INT64_MAX);
  assert_true(OPS(s)->healthy(s));
}

static void t_refresh_insert_get(void **state) {
  users_store_t *s = ST(state);
  int64_t uid = mkuser(s, "alice");
  refresh_rec_t r = mkrt(1, 1, uid, 9000), got;
  r.expires_at = INT64_MAX;
  assert_int_equal(OPS(s)->refresh_insert(s, &r), 0);
  memset(&got, 0xAA, sizeof got);
  assert_int_equal(OPS(s)->refresh_get(s, r.token_hash, &got), 0);
  assert_rt_equal(&got, &r);
  assert_false(got.used);
  assert_false(got.revoked);

  /* flags are stored as given */
  refresh_rec_t r2 = mkrt(2, 1, uid, 9000);
  r2.used = true;
  assert_int_equal(OPS(s)->refresh_insert(s, &r2), 0);
  assert_int_equal(OPS(s)->refresh_get(s, r2.token_hash, &got), 0);
  assert_rt_equal(&got, &r2);

  refresh_rec_t unknown = mkrt(3, 1, uid, 9000);
  assert_int_equal(OPS(s)->refresh_get(s, unknown.token_hash, &got), -ENOENT);
  /* a hash differing only in its last byte is another token */
  unknown = r;
  unknown.token_hash[31] ^= 1;
  assert_int_equal(OPS(s)->refresh_get(s, unknown.token_hash, &got), -ENOENT);
  /* same hash again */
  assert_int_equal(OPS(s)->refresh_insert(s, &r), -EEXIST);
  /* a token for a user that does not exist */
  refresh_rec_t orphan = mkrt(4, 1, uid + 1000, 9000);
  assert_int_equal(OPS(s)->refresh_insert(s, &orphan), -ENOENT);
  assert_int_equal(OPS(s)->refresh_get(s, orphan.token_hash, &got), -ENOENT);
  assert_int_equal(OPS(s)->refresh_insert(s, NULL), -EINVAL);
  assert_int_equal(OPS(s)->refresh_get(s, NULL, &got), -EINVAL);
  assert_true(OPS(s)->healthy(s));
}

static void t_refresh_rotate_ok(void **state) {
  users_store_t *s = ST(state);
  int64_t uid = mkuser(s, "alice");
  refresh_rec_t old = mkrt(1, 7, uid, 9000), next = mkrt(2, 7, uid, 19000), got;
  assert_int_equal(OPS(s)->refresh_insert(s, &old), 0);
  assert_int_equal(OPS(s)->refresh_rotate(s, old.token_hash, &next), 0);
  assert_int_equal(OPS(s)->refresh_get(s, old.token_hash, &got), 0);
  assert_true(got.used);
  assert_false(got.revoked);
  assert_int_equal(OPS(s)->refresh_get(s, next.token_hash, &got), 0);
  assert_rt_equal(&got, &next);
  assert_memory_equal(got.family, old.family, 16);
  /* the chain goes on from the successor */
  refresh_rec_t third = mkrt(3, 7, uid, 29000);
  assert_int_equal(OPS(s)->refresh_rotate(s, next.token_hash, &third), 0);
  assert_int_equal(OPS(s)->refresh_get(s, third.token_hash, &got), 0);
  assert_false(got.used);
}

static void t_refresh_rotate_used(void **state) {
  users_store_t *s = ST(state);
  int64_t uid = mkuser(s, "alice");
  refresh_rec_t old = mkrt(1, 7, uid, 9000), next = mkrt(2, 7, uid, 19000), again = mkrt(3, 7, uid, 19000), got;
  assert_int_equal(OPS(s)->refresh_insert(s, &old), 0);
  assert_int_equal(OPS(s)->refresh_rotate(s, old.token_hash, &next), 0);
  assert_int_equal(OPS(s)->refresh_rotate(s, old.token_hash, &again), -EALREADY);
  assert_int_equal(OPS(s)->refresh_get(s, again.token_hash, &got), -ENOENT);
  assert_int_equal(OPS(s)->refresh_get(s, next.token_hash, &got), 0);
  assert_false(got.used); /* the legitimate successor is unaffected */
}

static void t_refresh_rotate_revoked(void **state) {
  users_store_t *s = ST(state);
  int64_t uid = mkuser(s, "alice");
  refresh_rec_t old = mkrt(1, 7, uid, 9000), next = mkrt(2, 7, uid, 19000), got;
  assert_int_equal(OPS(s)->refresh_insert(s, &old), 0);
  assert_int_equal(OPS(s)->refresh_revoke(s, old.token_hash), 0);
  assert_int_equal(OPS(s)->refresh_rotate(s, old.token_hash, &next), -EACCES);
  assert_int_equal(OPS(s)->refresh_get(s, next.token_hash, &got), -ENOENT);
  assert_int_equal(OPS(s)->refresh_get(s, old.token_hash, &got), 0);
  assert_false(got.used);

  /* used and then revoked (family shut down after a theft): -EACCES */
  refresh_rec_t a = mkrt(10, 8, uid, 9000), b = mkrt(11, 8, uid, 9000), c = mkrt(12, 8, uid, 9000);
  assert_int_equal(OPS(s)->refresh_insert(s, &a), 0);
  assert_int_equal(OPS(s)->refresh_rotate(s, a.token_hash, &b), 0);
  assert_int_equal(OPS(s)->refresh_revoke_family(s, a.family), 0);
  assert_int_equal(OPS(s)->refresh_rotate(s, a.token_hash, &c), -EACCES);
}

static void t_refresh_rotate_unknown(void **state) {
  users_store_t *s = ST(state);
  int64_t uid = mkuser(s, "alice");
  refresh_rec_t old = mkrt(1, 7, uid, 9000), next = mkrt(2, 7, uid, 19000), got;
  assert_int_equal(OPS(s)->refresh_rotate(s, old.token_hash, &next), -ENOENT);
  assert_int_equal(OPS(s)->refresh_get(s, next.token_hash, &got), -ENOENT);
  assert_int_equal(OPS(s)->refresh_rotate(s, NULL, &next), -EINVAL);
  assert_int_equal(OPS(s)->refresh_rotate(s, old.token_hash, NULL), -EINVAL);
  assert_true(OPS(s)->healthy(s));
}

/* Refused successors leave the old token usable: the whole rotation is
 * one transaction. */
static void t_refresh_rotate_refused_next(void **state) {
  users_store_t *s = ST(state);
  int64_t uid = mkuser(s, "alice");
  int64_t uid2 = mkuser(s, "bob");
  refresh_rec_t old = mkrt(1, 7, uid, 9000), got;

  assert_int_equal(OPS(s)->refresh_insert(s, &old), 0);
  refresh_rec_t other_family = mkrt(2, 8, uid, 19000);
  assert_int_equal(OPS(s)->refresh_rotate(s, old.token_hash, &other_family), -EINVAL);
  assert_int_equal(OPS(s)->refresh_get(s, other_family.token_hash, &got), -ENOENT);
  refresh_rec_t other_user = mkrt(3, 7, uid2, 19000);
  assert_int_equal(OPS(s)->refresh_rotate(s, old.token_hash, &other_user), -EINVAL);
  assert_int_equal(OPS(s)->refresh_get(s, other_user.token_hash, &got), -ENOENT);

  /* successor hash already stored: the INSERT fails after the UPDATE
   * marked old used; the rollback must undo that mark */
  refresh_rec_t taken = mkrt(4, 7, uid, 19000);
  assert_int_equal(OPS(s)->refresh_insert(s, &taken), 0);
  assert_int_equal(OPS(s)->refresh_rotate(s, old.token_hash, &taken), -EEXIST);
  /* next == old itself */
  assert_int_equal(OPS(s)->refresh_rotate(s, old.token_hash, &old), -EEXIST);

  assert_int_equal(OPS(s)->refresh_get(s, old.token_hash, &got), 0);
  assert_false(got.used);
  refresh_rec_t fine = mkrt(5, 7, uid, 19000);
  assert_int_equal(OPS(s)->refresh_rotate(s, old.token_hash, &fine), 0);
  assert_true(OPS(s)->healthy(s));
}

static void t_refresh_revoke(void **state) {
  users_store_t *s = ST(state);
  int64_t uid = mkuser(s, "alice");
  refresh_rec_t a = mkrt(1, 7, uid, 9000), b = mkrt(2, 7, uid, 9000), got;
  assert_int_equal(OPS(s)->refresh_insert(s, &a), 0);
  assert_int_equal(OPS(s)->refresh_insert(s, &b), 0);
  assert_int_equal(OPS(s)->refresh_revoke(s, a.token_hash), 0);
  assert_int_equal(OPS(s)->refresh_get(s, a.token_hash, &got), 0);
  assert_true(got.revoked);
  assert_false(got.used);
  assert_int_equal(OPS(s)->refresh_get(s, b.token_hash, &got), 0);
  assert_false(got.revoked); /* same family, other token: untouched */
  assert_int_equal(OPS(s)->refresh_revoke(s, a.token_hash), 0); /* idempotent */
  refresh_rec_t unknown = mkrt(3, 7, uid, 9000);
  assert_int_equal(OPS(s)->refresh_revoke(s, unknown.token_hash), -ENOENT);
  assert_int_equal(OPS(s)->refresh_revoke(s, NULL), -EINVAL);
}

static void t_refresh_revoke_family(void **state) {
  users_store_t *s = ST(state);
  int64_t uid = mkuser(s, "alice");
  refresh_rec_t fa[3] = {mkrt(1, 7, uid, 9000), mkrt(2, 7, uid, 9000), mkrt(3, 7, uid, 9000)};
  refresh_rec_t fb = mkrt(4, 8, uid, 9000), got;
  fa[1].used = true;
  for (int i = 0; i < 3; i++) assert_int_equal(OPS(s)->refresh_insert(s, &fa[i]), 0);
  assert_int_equal(OPS(s)->refresh_insert(s, &fb), 0);

  assert_int_equal(OPS(s)->refresh_revoke_family(s, fa[0].family), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(OPS(s)->refresh_get(s, fa[i].token_hash, &got), 0);
    assert_true(got.revoked);
    assert_int_equal(got.used, fa[i].used); /* only the revoked flag changes */
  }
  assert_int_equal(OPS(s)->refresh_get(s, fb.token_hash, &got), 0);
  assert_false(got.revoked);

  uint8_t none[16];
  memset(none, 0x55, sizeof none);
  assert_int_equal(OPS(s)->refresh_revoke_family(s, none), -ENOENT);
  assert_int_equal(OPS(s)->refresh_revoke_family(s, NULL), -EINVAL);
}

static void t_refresh_purge_expired(void **state) {
  users_store_t *s = ST(state);
  int64_t uid = mkuser(s, "alice");
  refresh_rec_t r[4] = {mkrt(1, 7, uid, 100), mkrt(2, 7, uid, 200), mkrt(3, 8, uid, 300),
                        mkrt(4, 8, uid, INT64_MAX)};
  r[0].revoked = true; /* state does not matter, only expiry */
  for (int i = 0; i < 4; i++) assert_int_equal(OPS(s)->refresh_insert(s, &r[i]), 0);
  refresh_rec_t got;
  assert_int_equal(OPS(s)->refresh_purge_expired(s, 99), 0);
  assert_int_equal(OPS(s)->refresh_purge_expired(s, 200), 2); /* expires_at <= now */
  assert_int_equal(OPS(s)->refresh_get(s, r[0].token_hash, &got), -ENOENT);
  assert_int_equal(OPS(s)->refresh_get(s, r[1].token_hash, &got), -ENOENT);
  assert_int_equal(OPS(s)->refresh_get(s, r[2].token_hash, &got), 0);
  assert_int_equal(OPS(s)->refresh_purge_expired(s, 200), 0);
  assert_int_equal(OPS(s)->refresh_purge_expired(s, 1000), 1);
  assert_int_equal(OPS(s)->refresh_get(s, r[3].token_hash, &got), 0);
}

/* ---- concurrency ---- */

#define NTHREADS 8
#define NNAMES 10

typedef struct {
  users_store_t *s;
  int idx;
  int ok, exist, other;
  atomic_int *go;
} cthread_t;

static void *create_thread(void *arg) {
  cthread_t *t = arg;
  while (!atomic_load(t->go)) {
  }
  for (int k = 0; k < NNAMES; k++) {
    /* each thread walks the names from another starting point */
    char name[16];
    snprintf(name, sizeof name, "user%d", (k + t->idx) % NNAMES);
    int r = t->s->ops->user_create(t->s, name, "D", HASH1, k, NULL);
    if (r == 0) t->ok++;
    else if (r == -EEXIST) t->exist++;
    else t->other++;
  }
  return NULL;
}

/* 8 threads create the same 10 users: exactly 10 succeed. */
static void concurrent_create(users_store_t *s) {
  pthread_t th[NTHREADS];
  cthread_t ct[NTHREADS];
  atomic_int go = 0;
  for (int i = 0; i < NTHREADS; i++) {
    ct[i] = (cthread_t){.s = s, .idx = i, .go = &go};
    assert_int_equal(pthread_create(&th[i], NULL, create_thread, &ct[i]), 0);
  }
  atomic_store(&go, 1);
  int ok = 0, exist = 0, other = 0;
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join(th[i], NULL);
    ok += ct[i].ok;
    exist += ct[i].exist;
    other += ct[i].other;
  }
  assert_int_equal(other, 0);
  assert_int_equal(ok, NNAMES);
  assert_int_equal(exist, NTHREADS * NNAMES - NNAMES);
  int64_t ids[NNAMES];
  for (int k = 0; k < NNAMES; k++) {
    char name[16];
    user_rec_t u;
    snprintf(name, sizeof name, "user%d", k);
    assert_int_equal(s->ops->user_by_name(s, name, &u), 0);
    ids[k] = u.id;
    for (int j = 0; j < k; j++) assert_true(ids[j] != ids[k]);
  }
}

static void t_concurrent_create(void **state) { concurrent_create(ST(state)); }

typedef struct {
  users_store_t *s;
  const uint8_t *old;
  refresh_rec_t next;
  int r;
  atomic_int *go;
} rthread_t;

static void *rotate_thread(void *arg) {
  rthread_t *t = arg;
  while (!atomic_load(t->go)) {
  }
  t->r = t->s->ops->refresh_rotate(t->s, t->old, &t->next);
  return NULL;
}

/* 8 threads present the same token at once: exactly one rotation wins. */
static void t_concurrent_rotate(void **state) {
  users_store_t *s = ST(state);
  int64_t uid = mkuser(s, "alice");
  refresh_rec_t old = mkrt(100, 7, uid, 9000), got;
  assert_int_equal(OPS(s)->refresh_insert(s, &old), 0);
  pthread_t th[NTHREADS];
  rthread_t rt[NTHREADS];
  atomic_int go = 0;
  for (int i = 0; i < NTHREADS; i++) {
    rt[i] = (rthread_t){.s = s, .old = old.token_hash, .next = mkrt((uint8_t)i, 7, uid, 9000), .go = &go};
    assert_int_equal(pthread_create(&th[i], NULL, rotate_thread, &rt[i]), 0);
  }
  atomic_store(&go, 1);
  int won = 0, already = 0, present = 0;
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join(th[i], NULL);
    if (rt[i].r == 0) won++;
    else if (rt[i].r == -EALREADY) already++;
    if (OPS(s)->refresh_get(s, rt[i].next.token_hash, &got) == 0) {
      present++;
      assert_int_equal(rt[i].r, 0); /* only the winner's successor exists */
    }
  }
  assert_int_equal(won, 1);
  assert_int_equal(already, NTHREADS - 1);
  assert_int_equal(present, 1);
}

#define SUITE_TEST(f) cmocka_unit_test_setup_teardown(f, suite_setup, suite_teardown)

/* The suite's tests, to put in a cmocka test array (one group per binary,
 * so that the runner's pass/fail count covers everything). Call
 * users_store_suite_use first: make() returns a fresh, empty store (NULL on
 * failure), destroy() closes it and removes its data. */
#define USERS_STORE_SUITE_TESTS                                                                    \
  SUITE_TEST(t_user_create_get), SUITE_TEST(t_user_duplicate), SUITE_TEST(t_user_unknown),        \
      SUITE_TEST(t_user_set_password_hash), SUITE_TEST(t_user_unicode),                            \
      SUITE_TEST(t_user_limits), SUITE_TEST(t_refresh_insert_get), SUITE_TEST(t_refresh_rotate_ok), \
      SUITE_TEST(t_refresh_rotate_used), SUITE_TEST(t_refresh_rotate_revoked),                     \
      SUITE_TEST(t_refresh_rotate_unknown), SUITE_TEST(t_refresh_rotate_refused_next),             \
      SUITE_TEST(t_refresh_revoke), SUITE_TEST(t_refresh_revoke_family),                           \
      SUITE_TEST(t_refresh_purge_expired), SUITE_TEST(t_concurrent_create),                        \
      SUITE_TEST(t_concurrent_rotate)

static void users_store_suite_use(users_store_t *(*make)(void), void (*destroy)(users_store_t *)) {
  suite_make = make;
  suite_destroy = destroy;
}

#endif
