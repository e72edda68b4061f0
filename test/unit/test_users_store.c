/* Unit tests for the users store.
 *
 * Part 1 is a backend-independent suite written against users_store_t
 * only: after users_store_suite_use(make, destroy), every test of
 * USERS_STORE_SUITE_TESTS runs on a fresh store from make(). The PostgreSQL backend is meant to run the very
 * same suite (move part 1 into a shared header when it arrives), by
 * putting USERS_STORE_SUITE_TESTS in its own test array.
 * Part 2 tests what is specific to SQLite: data directory, pragmas,
 * migrations, fault injection (read-only connection, failing trigger,
 * out-of-limit rows), the db lock and close. Every test works in its own
 * mkdtemp directory, removed afterwards. */
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

#include "core/log.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/users_sqlite.h"
#include "store/users_store.h"

/* ==== part 1: the backend-independent suite ==== */

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

/* ==== part 2: SQLite ==== */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  return remove(path);
}

static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void make_tmpdir(char *dir, size_t len) {
  snprintf(dir, len, "/tmp/storm-users-XXXXXX");
  assert_non_null(mkdtemp(dir));
}

/* The current store of the suite: tests run one at a time. */
static struct {
  char dir[64];
  sqlite_db_t *db;
  users_store_t *s;
} cur;

static users_store_t *sqlite_make(void) {
  snprintf(cur.dir, sizeof cur.dir, "/tmp/storm-users-XXXXXX");
  if (!mkdtemp(cur.dir)) return NULL;
  char err[256];
  if (sqlite_db_open(cur.dir, &cur.db, err, sizeof err) != 0) {
    fprintf(stderr, "sqlite_db_open: %s\n", err);
    return NULL;
  }
  if (users_sqlite_open(cur.db, &cur.s) != 0) return NULL;
  return cur.s;
}

static void sqlite_destroy(users_store_t *s) {
  s->ops->close(s);
  sqlite_db_close(cur.db);
  rm_rf(cur.dir);
  memset(&cur, 0, sizeof cur);
}

/* Per-test fixture of part 2: a temp dir and the log captured in a memfd
 * (failures are logged; we check those lines and keep the output clean). */
typedef struct {
  char dir[64];
  char path[128]; /* dir/data, not yet created */
  int log_fd;
} fx_t;

static int fx_setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  make_tmpdir(f->dir, sizeof f->dir);
  snprintf(f->path, sizeof f->path, "%s/data", f->dir);
  f->log_fd = memfd_create("log", 0);
  if (f->log_fd < 0) return -1;
  log_set_fd(f->log_fd);
  log_set_level(LOG_LEVEL_INFO);
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  fx_t *f = *state;
  log_set_fd(2);
  log_set_level(LOG_LEVEL_WARN);
  close(f->log_fd);
  rm_rf(f->dir);
  free(f);
  return 0;
}

/* Everything logged so far by the test (static buffer). */
static const char *logged(fx_t *f) {
  static char buf[16384];
  ssize_t n = pread(f->log_fd, buf, sizeof buf - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

static sqlite_db_t *open_ok(const char *dir) {
  sqlite_db_t *db = NULL;
  char err[256] = "x";
  int r = sqlite_db_open(dir, &db, err, sizeof err);
  if (r != 0) fprintf(stderr, "open: %s\n", err);
  assert_int_equal(r, 0);
  assert_string_equal(err, "");
  assert_non_null(db);
  return db;
}

/* First column of the first row of a constant query, as int64. */
static int64_t q_int(sqlite_db_t *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(sqlite_db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void q_text(sqlite_db_t *db, const char *sql, char *out, size_t len) {
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(sqlite_db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
}

static void exec_ok(sqlite_db_t *db, const char *sql) {
  assert_int_equal(sqlite3_exec(sqlite_db_handle(db), sql, NULL, NULL, NULL), SQLITE_OK);
}

static void t_sqlite_data_dir_created(void **state) {
  fx_t *f = *state;
  struct stat st;
  assert_int_equal(stat(f->path, &st), -1);
  sqlite_db_t *db = open_ok(f->path);
  assert_int_equal(stat(f->path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0700);
  char file[192];
  snprintf(file, sizeof file, "%s/storm.db", f->path);
  assert_int_equal(stat(file, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0600); /* password hashes: owner only */
  snprintf(file, sizeof file, "%s/storm.db-wal", f->path);
  assert_int_equal(stat(file, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  sqlite_db_close(db);
  /* an existing directory keeps its mode */
  assert_int_equal(chmod(f->path, 0750), 0);
  db = open_ok(f->path);
  assert_int_equal(stat(f->path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0750);
  sqlite_db_close(db);
}

static void t_sqlite_open_errors(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = (sqlite_db_t *)(uintptr_t)1; /* must stay untouched on failure */
  char err[256];
  assert_int_equal(sqlite_db_open(NULL, &db, err, sizeof err), -EINVAL);
  assert_int_equal(sqlite_db_open("", &db, err, sizeof err), -EINVAL);
  assert_int_equal(sqlite_db_open(f->path, NULL, err, sizeof err), -EINVAL);
  assert_true(err[0] != '\0');

  /* parent missing: one level only */
  char deep[192];
  snprintf(deep, sizeof deep, "%s/a/b", f->dir);
  assert_int_equal(sqlite_db_open(deep, &db, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, "cannot create data dir"));

  /* storm.db cannot be created (a directory stands in its way) */
  char blocked[192];
  assert_int_equal(mkdir(f->path, 0700), 0);
  snprintf(blocked, sizeof blocked, "%s/storm.db", f->path);
  assert_int_equal(mkdir(blocked, 0700), 0);
  assert_int_equal(sqlite_db_open(f->path, &db, err, sizeof err), -EISDIR);
  assert_non_null(strstr(err, "cannot create"));
  assert_int_equal(rmdir(blocked), 0);
  assert_int_equal(rmdir(f->path), 0);

  /* data dir is a file */
  int fd = open(f->path, O_CREAT | O_WRONLY, 0600);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(sqlite_db_open(f->path, &db, err, sizeof err), -ENOTDIR);
  assert_non_null(strstr(err, "not a directory"));
  /* NULL err is allowed */
  assert_int_equal(sqlite_db_open(f->path, &db, NULL, 0), -ENOTDIR);
  assert_true(db == (sqlite_db_t *)(uintptr_t)1);
}

static void t_sqlite_not_a_database(void **state) {
  fx_t *f = *state;
  assert_int_equal(mkdir(f->path, 0700), 0);
  char file[192];
  snprintf(file, sizeof file, "%s/storm.db", f->path);
  FILE *fp = fopen(file, "w");
  assert_non_null(fp);
  for (int i = 0; i < 512; i++) fputs("this is not a database ", fp);
  fclose(fp);
  sqlite_db_t *db = NULL;
  char err[256];
  assert_int_equal(sqlite_db_open(f->path, &db, err, sizeof err), -EIO);
  assert_null(db);
  assert_non_null(strstr(err, "not a database"));
}

static void t_sqlite_pragmas(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  char mode[16];
  q_text(db, "PRAGMA journal_mode", mode, sizeof mode);
  assert_string_equal(mode, "wal");
  assert_int_equal(q_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
  assert_int_equal(q_int(db, "PRAGMA foreign_keys"), 1);
  assert_int_equal(q_int(db, "PRAGMA busy_timeout"), SQLITE_DB_BUSY_TIMEOUT_MS);
  sqlite_db_close(db);
  /* WAL is a property of the file: a plain connection sees it too */
  char file[192];
  snprintf(file, sizeof file, "%s/storm.db", f->path);
  sqlite3 *c;
  assert_int_equal(sqlite3_open(file, &c), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(c, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  sqlite3_close(c);
}

static void t_sqlite_migrations_once(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  const int64_t nmig = (int64_t)sqlite_migrations_count;
  const int last = sqlite_migrations[sqlite_migrations_count - 1].version;
  assert_int_equal(q_int(db, "SELECT count(*) FROM schema_migrations"), nmig);
  assert_int_equal(q_int(db, "SELECT min(version) FROM schema_migrations"), 1);
  char name[32];
  q_text(db, "SELECT name FROM schema_migrations WHERE version = 1", name, sizeof name);
  assert_string_equal(name, sqlite_migrations[0].name);
  int64_t applied_at = q_int(db, "SELECT applied_at FROM schema_migrations WHERE version = 1");
  assert_true(applied_at > 1600000000000); /* unix ms */
  assert_int_equal(sqlite_db_schema_version(db), last);
  /* the tables and indexes of migration 1 exist */
  assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN "
                             "('users','refresh_tokens','refresh_tokens_family',"
                             "'refresh_tokens_expires_at')"),
                   4);
  char err[256];
  assert_int_equal(sqlite_db_migrate(db, err, sizeof err), 0); /* nothing pending */
  sqlite_db_close(db);

  db = open_ok(f->path); /* re-open: a no-op */
  assert_int_equal(q_int(db, "SELECT count(*) FROM schema_migrations"), nmig);
  assert_int_equal(q_int(db, "SELECT applied_at FROM schema_migrations WHERE version = 1"),
                   applied_at);
  sqlite_db_close(db);
  assert_non_null(strstr(logged(f), "applied migration 1"));
}

static void t_sqlite_future_version_refused(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  exec_ok(db, "INSERT INTO schema_migrations VALUES (999, 'from the future', 0)");
  sqlite_db_close(db);
  db = NULL;
  char err[256];
  assert_int_equal(sqlite_db_open(f->path, &db, err, sizeof err), -ENOTSUP);
  assert_null(db);
  assert_non_null(strstr(err, "999"));
  assert_non_null(strstr(err, "newer"));
}

/* The binary's own migrations followed by extra ones numbered after its
 * last version (the database already records every binary migration, so
 * a test list must contain them all). Returns the list length. */
static size_t with_extra(sqlite_migration_t *out, const sqlite_migration_t *extra, size_t n) {
  size_t k = sqlite_migrations_count;
  memcpy(out, sqlite_migrations, k * sizeof *out);
  memcpy(out + k, extra, n * sizeof *out);
  return k + n;
}

static void t_sqlite_failing_migration(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  char err[256];
  const int last = sqlite_migrations[sqlite_migrations_count - 1].version;
  sqlite_migration_t list[64];
  const sqlite_migration_t bad[] = {
      {last + 1, "bad", "CREATE TABLE t2(x); INSERT INTO no_such_table VALUES (1);"},
  };
  size_t n = with_extra(list, bad, 1);
  assert_int_equal(sqlite_db_apply_migrations(db, list, n, err, sizeof err), -EIO);
  char want[64];
  snprintf(want, sizeof want, "migration %d (bad)", last + 1);
  assert_non_null(strstr(err, want));
  assert_non_null(strstr(err, "no_such_table"));
  /* rolled back: neither the table nor the record */
  assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 't2'"), 0);
  assert_int_equal(sqlite_db_schema_version(db), last);
  assert_true(sqlite3_get_autocommit(sqlite_db_handle(db)));

  const sqlite_migration_t good[] = {
      {last + 1, "t2", "CREATE TABLE t2(x); INSERT INTO t2 VALUES (42);"},
      {last + 2, "t3", "CREATE TABLE t3(y);"},
  };
  n = with_extra(list, good, 2);
  assert_int_equal(sqlite_db_apply_migrations(db, list, n, err, sizeof err), 2);
  assert_int_equal(q_int(db, "SELECT x FROM t2"), 42);
  assert_int_equal(sqlite_db_schema_version(db), last + 2);
  assert_int_equal(sqlite_db_apply_migrations(db, list, n, err, sizeof err), 0);
  /* this binary does not know them */
  assert_int_equal(sqlite_db_migrate(db, err, sizeof err), -ENOTSUP);
  snprintf(want, sizeof want, "version %d (t2)", last + 1);
  assert_non_null(strstr(err, want));
  sqlite_db_close(db);
}

static void t_sqlite_bad_migration_list(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  char err[256];
  const sqlite_migration_t unordered[] = {sqlite_migrations[0], {3, "c", "SELECT 1"}, {2, "b", "SELECT 1"}};
  assert_int_equal(sqlite_db_apply_migrations(db, unordered, 3, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "out of order"));
  const sqlite_migration_t dup[] = {sqlite_migrations[0], {1, "again", "SELECT 1"}};
  assert_int_equal(sqlite_db_apply_migrations(db, dup, 2, err, sizeof err), -EINVAL);
  const sqlite_migration_t zero[] = {{0, "zero", "SELECT 1"}};
  assert_int_equal(sqlite_db_apply_migrations(db, zero, 1, err, sizeof err), -EINVAL);
  const sqlite_migration_t nosql[] = {sqlite_migrations[0], {2, "nosql", NULL}};
  assert_int_equal(sqlite_db_apply_migrations(db, nosql, 2, err, sizeof err), -EINVAL);
  assert_int_equal(sqlite_db_apply_migrations(db, NULL, 1, err, sizeof err), -EINVAL);
  assert_int_equal(sqlite_db_apply_migrations(NULL, sqlite_migrations, 1, err, sizeof err), -EINVAL);
  /* an empty list cannot account for the recorded versions */
  assert_int_equal(sqlite_db_apply_migrations(db, NULL, 0, err, sizeof err), -ENOTSUP);
  assert_int_equal(sqlite_db_schema_version(db),
                   sqlite_migrations[sqlite_migrations_count - 1].version);
  sqlite_db_close(db);
}

/* Backend failures: -EIO, a log line with SQLite's message, healthy()
 * false until an operation succeeds. query_only makes every write fail. */
static void t_sqlite_io_error_unhealthy(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  users_store_t *s;
  assert_int_equal(users_sqlite_open(db, &s), 0);
  user_rec_t u;
  assert_int_equal(s->ops->user_create(s, "alice", "A", HASH1, 1, &u), 0);
  refresh_rec_t r = mkrt(1, 7, u.id, 9000), next = mkrt(2, 7, u.id, 9000), got;
  assert_int_equal(s->ops->refresh_insert(s, &r), 0);

  exec_ok(db, "PRAGMA query_only=1");
  assert_int_equal(s->ops->user_create(s, "bob", "B", HASH1, 1, NULL), -EIO);
  assert_false(s->ops->healthy(s));
  assert_non_null(strstr(logged(f), "users user_create"));
  assert_non_null(strstr(logged(f), "readonly"));
  assert_non_null(strstr(logged(f), "\"component\":\"store\""));
  assert_int_equal(s->ops->user_set_password_hash(s, u.id, HASH2), -EIO);
  refresh_rec_t r3 = mkrt(3, 7, u.id, 9000);
  assert_int_equal(s->ops->refresh_insert(s, &r3), -EIO);
  assert_int_equal(s->ops->refresh_rotate(s, r.token_hash, &next), -EIO);
  assert_int_equal(s->ops->refresh_revoke(s, r.token_hash), -EIO);
  assert_int_equal(s->ops->refresh_revoke_family(s, r.family), -EIO);
  assert_int_equal(s->ops->refresh_purge_expired(s, 100000), -EIO);
  assert_false(s->ops->healthy(s));
  assert_true(sqlite3_get_autocommit(sqlite_db_handle(db))); /* no transaction left open */

  /* a successful query restores health; nothing was changed */
  assert_int_equal(s->ops->refresh_get(s, r.token_hash, &got), 0);
  assert_true(s->ops->healthy(s));
  assert_false(got.used);
  assert_false(got.revoked);
  assert_int_equal(s->ops->user_by_id(s, u.id, &u), 0);
  assert_string_equal(u.password_hash, HASH1);

  exec_ok(db, "PRAGMA query_only=0");
  assert_int_equal(s->ops->refresh_rotate(s, r.token_hash, &next), 0);
  s->ops->close(s);
  sqlite_db_close(db);
}

/* A failure inside rotate's transaction after the UPDATE (the INSERT of
 * the successor is aborted by a trigger): old stays unused. */
static void t_sqlite_rotate_rollback(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  users_store_t *s;
  assert_int_equal(users_sqlite_open(db, &s), 0);
  int64_t uid = mkuser(s, "alice");
  refresh_rec_t old = mkrt(1, 7, uid, 9000), next = mkrt(2, 7, uid, 9000), got;
  assert_int_equal(s->ops->refresh_insert(s, &old), 0);
  exec_ok(db, "CREATE TRIGGER boom BEFORE INSERT ON refresh_tokens "
              "BEGIN SELECT RAISE(ABORT, 'injected fault'); END");
  assert_int_equal(s->ops->refresh_rotate(s, old.token_hash, &next), -EIO);
  assert_false(s->ops->healthy(s));
  assert_non_null(strstr(logged(f), "injected fault"));
  assert_true(sqlite3_get_autocommit(sqlite_db_handle(db)));
  assert_int_equal(s->ops->refresh_get(s, old.token_hash, &got), 0);
  assert_false(got.used);
  assert_int_equal(s->ops->refresh_get(s, next.token_hash, &got), -ENOENT);
  exec_ok(db, "DROP TRIGGER boom");
  assert_int_equal(s->ops->refresh_rotate(s, old.token_hash, &next), 0);
  assert_true(s->ops->healthy(s));
  s->ops->close(s);
  sqlite_db_close(db);
}

/* Rows written behind the store's back beyond its limits are reported,
 * not truncated. */
static void t_sqlite_row_beyond_limits(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  users_store_t *s;
  assert_int_equal(users_sqlite_open(db, &s), 0);
  exec_ok(db, "INSERT INTO users VALUES (5, 'a-username-longer-than-thirty-two-bytes', 'd', 'h', 1)");
  exec_ok(db, "INSERT INTO users VALUES (6, 'ok', 'd', 'h', 1)");
  exec_ok(db, "INSERT INTO refresh_tokens(token_hash, family, user_id, created_at, expires_at) "
              "VALUES (zeroblob(32), x'0102', 6, 1, 2)");
  exec_ok(db, "INSERT INTO refresh_tokens(token_hash, family, user_id, created_at, expires_at) "
              "VALUES (x'01', zeroblob(16), 6, 1, 2)");
  user_rec_t u;
  assert_int_equal(s->ops->user_by_id(s, 5, &u), -EIO);
  assert_false(s->ops->healthy(s));
  assert_non_null(strstr(logged(f), "exceeds the field limits"));
  assert_int_equal(s->ops->user_by_id(s, 6, &u), 0);
  assert_true(s->ops->healthy(s));
  uint8_t zero[32] = {0};
  refresh_rec_t r;
  assert_int_equal(s->ops->refresh_get(s, zero, &r), -EIO);
  assert_non_null(strstr(logged(f), "malformed hash or family"));
  s->ops->close(s);
  sqlite_db_close(db);
}

static void t_sqlite_open_store_errors(void **state) {
  fx_t *f = *state;
  users_store_t *s = (users_store_t *)(uintptr_t)1;
  assert_int_equal(users_sqlite_open(NULL, &s), -EINVAL);
  sqlite_db_t *db = open_ok(f->path);
  assert_int_equal(users_sqlite_open(db, NULL), -EINVAL);
  /* schema missing: preparing fails */
  exec_ok(db, "PRAGMA foreign_keys=OFF; DROP TABLE refresh_tokens");
  assert_int_equal(users_sqlite_open(db, &s), -EIO);
  assert_true(s == (users_store_t *)(uintptr_t)1);
  assert_non_null(strstr(logged(f), "no such table: refresh_tokens"));
  sqlite_db_close(db);
}

/* The exact row count after the concurrent creation of part 1. */
static void t_sqlite_concurrent_rows(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  users_store_t *s;
  assert_int_equal(users_sqlite_open(db, &s), 0);
  concurrent_create(s);
  assert_int_equal(q_int(db, "SELECT count(*) FROM users"), NNAMES);
  s->ops->close(s);
  sqlite_db_close(db);
}

typedef struct {
  users_store_t *s;
  atomic_int done;
  int r;
} lthread_t;

static void *locked_create(void *arg) {
  lthread_t *t = arg;
  t->r = t->s->ops->user_create(t->s, "waiter", "W", HASH1, 1, NULL);
  atomic_store(&t->done, 1);
  return NULL;
}

/* A store operation waits while another party holds the db lock (as a
 * store does across a transaction). */
static void t_sqlite_lock_excludes_stores(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  users_store_t *s;
  assert_int_equal(users_sqlite_open(db, &s), 0);
  lthread_t t = {.s = s};
  pthread_t th;
  sqlite_db_lock(db);
  assert_int_equal(pthread_create(&th, NULL, locked_create, &t), 0);
  struct timespec ts = {0, 100 * 1000 * 1000};
  nanosleep(&ts, NULL);
  assert_int_equal(atomic_load(&t.done), 0);
  assert_int_equal(q_int(db, "SELECT count(*) FROM users"), 0);
  sqlite_db_unlock(db);
  pthread_join(th, NULL);
  assert_int_equal(t.r, 0);
  assert_int_equal(q_int(db, "SELECT count(*) FROM users"), 1);
  s->ops->close(s);
  sqlite_db_close(db);
}

/* Closing the db with a statement still prepared: logged, and the file is
 * really closed once that statement is finalized (ASan checks no leak). */
static void t_sqlite_close_with_open_statement(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(sqlite_db_handle(db), "SELECT 1", -1, &st, NULL), SQLITE_OK);
  sqlite_db_close(db);
  assert_non_null(strstr(logged(f), "a store was not closed"));
  assert_int_equal(sqlite3_step(st), SQLITE_ROW); /* still usable: the close was deferred */
  sqlite3_finalize(st);
  sqlite_db_close(NULL);
}

/* Data survives close and re-open (the file, not a cache, holds it). */
static void t_sqlite_persistence(void **state) {
  fx_t *f = *state;
  sqlite_db_t *db = open_ok(f->path);
  users_store_t *s;
  assert_int_equal(users_sqlite_open(db, &s), 0);
  user_rec_t a, got;
  assert_int_equal(s->ops->user_create(s, "alice", "A", HASH1, 1, &a), 0);
  refresh_rec_t r = mkrt(1, 7, a.id, 9000);
  assert_int_equal(s->ops->refresh_insert(s, &r), 0);
  s->ops->close(s);
  sqlite_db_close(db);
  db = open_ok(f->path);
  assert_int_equal(users_sqlite_open(db, &s), 0);
  assert_int_equal(s->ops->user_by_name(s, "alice", &got), 0);
  assert_user_equal(&got, &a);
  refresh_rec_t rg;
  assert_int_equal(s->ops->refresh_get(s, r.token_hash, &rg), 0);
  assert_rt_equal(&rg, &r);
  /* deleting a user cascades to their tokens (foreign_keys=ON) */
  exec_ok(db, "DELETE FROM users WHERE username = 'alice'");
  assert_int_equal(s->ops->refresh_get(s, r.token_hash, &rg), -ENOENT);
  s->ops->close(s);
  sqlite_db_close(db);
}

#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void) {
  log_set_level(LOG_LEVEL_WARN); /* the suite's "applied migration" lines are noise */
  users_store_suite_use(sqlite_make, sqlite_destroy);
  const struct CMUnitTest tests[] = {
      USERS_STORE_SUITE_TESTS,
      FX_TEST(t_sqlite_data_dir_created),
      FX_TEST(t_sqlite_open_errors),
      FX_TEST(t_sqlite_not_a_database),
      FX_TEST(t_sqlite_pragmas),
      FX_TEST(t_sqlite_migrations_once),
      FX_TEST(t_sqlite_future_version_refused),
      FX_TEST(t_sqlite_failing_migration),
      FX_TEST(t_sqlite_bad_migration_list),
      FX_TEST(t_sqlite_io_error_unhealthy),
      FX_TEST(t_sqlite_rotate_rollback),
      FX_TEST(t_sqlite_row_beyond_limits),
      FX_TEST(t_sqlite_open_store_errors),
      FX_TEST(t_sqlite_concurrent_rows),
      FX_TEST(t_sqlite_lock_excludes_stores),
      FX_TEST(t_sqlite_close_with_open_statement),
      FX_TEST(t_sqlite_persistence),
  };
  return cmocka_run_group_tests_name("users_store", tests, NULL, NULL);
}
