/* Unit tests for the notifications store on Redis, against real
 * redis-server processes.
 *
 * Part 1 is the backend-independent suite (notifications_store_suite.h,
 * shared with test_notifications_store.c) on the shared server of
 * STORM_TEST_REDIS (scripts/infra.sh): the test FAILS when it is unset.
 * Part 2 is what is specific to Redis: the key layout and its 7-day TTL
 * (read back with PTTL), malformed elements skipped, and failures — a
 * server killed and restarted (fail fast while down, serve again after),
 * a stopped server (the op in flight fails when the watchdog fires). Those
 * start their own redis-server on a free port. */
#include "core/log.h"
#include "notifications_store_suite.h"
#include "redis_server_fixture.h"
#include "store/redis/notifications_redis.h"
#include "store/redis/redis_client.h"

static int64_t read_clock(void *arg) { return *(int64_t *)arg; }

static struct {
  redis_client_t *rc;
  uv_loop_t *loop;
} cur;

static bool is_ready(void *arg) { return redis_client_ready(arg); }
static bool is_down(void *arg) { return !redis_client_ready(arg); }

static notif_store_t *open_store(uv_loop_t *loop, const char *addr, int64_t *clock,
                                 uint64_t timeout_ms) {
  redis_client_opts_t ro = {.addr = addr, .timeout_ms = timeout_ms, .name = "notif-test"};
  if (redis_client_open(loop, &ro, &cur.rc) != 0) return NULL;
  cur.loop = loop;
  if (!run_until(loop, is_ready, cur.rc, 3000)) {
    fprintf(stderr, "no connection to redis at %s\n", addr);
    return NULL;
  }
  notif_redis_opts_t o = {.redis = cur.rc, .clock = read_clock, .clock_arg = clock};
  notif_store_t *s = NULL;
  return notif_redis_open(&o, &s) == 0 ? s : NULL;
}

/* Part 2's private server, when set: the suite's setup opens the store there. */
static const char *private_addr;

static notif_store_t *redis_make(uv_loop_t *loop, int64_t *clock) {
  return private_addr ? open_store(loop, private_addr, clock, 300)
                      : open_store(loop, redis_test_addr(), clock, 0);
}

static void redis_destroy(notif_store_t *s) {
  s->ops->close(s);
  redis_client_close(cur.rc, NULL, NULL);
  cur.rc = NULL;
}

/* ---- a synchronous client for checks, and private servers ---- */

static redisContext *sync_client(const char *addr) {
  char host[64];
  snprintf(host, sizeof host, "%s", addr);
  char *colon = strrchr(host, ':');
  assert_non_null(colon);
  *colon = '\0';
  redisContext *c = redisConnect(host, atoi(colon + 1));
  assert_true(c && !c->err);
  return c;
}

/* ==== part 2 ==== */

static void t_key_layout_and_ttl(void **state) {
  nctx_t *c = NC(state);
  assert_int_equal(n_add(c, c->uid, 42), 0);
  n_mute(c, c->uid, 9, true);
  redisContext *rc = sync_client(redis_test_addr());
  char key[64];
  snprintf(key, sizeof key, "storm:notif:{%lld}", (long long)c->uid);
  redisReply *r = redisCommand(rc, "PTTL %s", key);
  assert_int_equal(r->type, REDIS_REPLY_INTEGER);
  assert_true(r->integer > NOTIF_TTL_MS - 60000 && r->integer <= NOTIF_TTL_MS);
  freeReplyObject(r);
  r = redisCommand(rc, "TTL %s", key); /* the check, in seconds */
  assert_true(r->integer > 7 * 86400 - 60 && r->integer <= 7 * 86400);
  freeReplyObject(r);
  r = redisCommand(rc, "LINDEX %s 0", key);
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  char want[96];
  snprintf(want, sizeof want, "42:%lld:dm:{\"k\":1}", (long long)c->clock);
  assert_string_equal(r->str, want);
  freeReplyObject(r);
  r = redisCommand(rc, "SISMEMBER storm:notif:mute:{%lld} 9", (long long)c->uid);
  assert_int_equal(r->integer, 1);
  freeReplyObject(r);
  r = redisCommand(rc, "TTL storm:notif:mute:{%lld}", (long long)c->uid);
  assert_int_equal(r->integer, -1); /* mutes do not expire */
  freeReplyObject(r);
  redisFree(rc);
}

static void t_malformed_elements_skipped(void **state) {
  nctx_t *c = NC(state);
  assert_int_equal(n_add(c, c->uid, 1), 0);
  redisContext *rc = sync_client(redis_test_addr());
  const char *junk[] = {"garbage", "12:", "x:1:dm:{}", "3:4::{}", "5:6:dm", "0:1:dm:{}"};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
    freeReplyObject(redisCommand(rc, "LPUSH storm:notif:{%lld} %s", (long long)c->uid, junk[i]));
  redisFree(rc);
  assert_int_equal(n_add(c, c->uid, 2), 0);
  log_set_level(LOG_LEVEL_ERROR);
  nres_t r;
  n_list(c, c->uid, &r);
  log_set_level(LOG_LEVEL_WARN);
  assert_int_equal(r.nitems, 2);
  assert_int_equal(r.ids[0], 2);
  assert_int_equal(r.ids[1], 1);
}

static redis_server_t priv;

static int private_setup(void **state) {
  redis_server_start(&priv, 0, NULL);
  private_addr = priv.addr;
  int rc = nsuite_setup(state);
  private_addr = NULL;
  return rc;
}

static int private_teardown(void **state) {
  int rc = nsuite_teardown(state);
  if (priv.pid > 0) redis_server_kill(&priv);
  priv.pid = 0;
  return rc;
}

static void t_killed_and_restarted(void **state) {
  nctx_t *c = NC(state);
  assert_int_equal(n_add(c, c->uid, 1), 0);
  log_set_level(LOG_LEVEL_ERROR + 1);
  redis_server_kill(&priv);
  assert_true(run_until(&c->loop, is_down, cur.rc, 3000));
  assert_false(c->s->ops->ready(c->s));
  /* Down: fail fast, no callback. */
  nres_t r = {0};
  notif_t n = {.id = 2, .user_id = c->uid, .created_at = c->clock, .type = "dm", .payload = "{}",
               .payload_len = 2};
  uint64_t t0 = uv_hrtime();
  assert_int_equal(c->s->ops->add(c->s, &n, nres_status, &r), -ENOTCONN);
  assert_int_equal(c->s->ops->list(c->s, c->uid, nres_list, &r), -ENOTCONN);
  assert_int_equal(c->s->ops->mute_get(c->s, c->uid, 1, nres_count, &r), -ENOTCONN);
  assert_true(uv_hrtime() - t0 < 10 * 1000000ULL);
  uv_run(&c->loop, UV_RUN_NOWAIT);
  assert_int_equal(r.calls, 0);
  /* Back on the same port: the client reconnects by itself. */
  redis_server_start(&priv, priv.port, NULL);
  assert_true(run_until(&c->loop, is_ready, cur.rc, 8000));
  log_set_level(LOG_LEVEL_WARN);
  assert_true(c->s->ops->ready(c->s));
  assert_int_equal(n_add(c, c->uid, 3), 0);
  nres_t l;
  n_list(c, c->uid, &l);
  assert_int_equal(l.nitems, 1); /* the private server keeps nothing across a restart */
  assert_int_equal(l.ids[0], 3);
}

static void t_stopped_server_fails_in_flight(void **state) {
  nctx_t *c = NC(state);
  log_set_level(LOG_LEVEL_ERROR + 1);
  kill(priv.pid, SIGSTOP);
  nres_t r = {0};
  notif_t n = {.id = 2, .user_id = c->uid, .created_at = c->clock, .type = "dm", .payload = "{}",
               .payload_len = 2};
  assert_int_equal(c->s->ops->add(c->s, &n, nres_status, &r), 0);
  nres_t l = {0};
  assert_int_equal(c->s->ops->list(c->s, c->uid, nres_list, &l), 0);
  nwait(c, &l, 1); /* the watchdog (300 ms) drops the connection */
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, -ENOTCONN);
  assert_int_equal(l.status, -ENOTCONN);
  assert_int_equal(l.nitems, 0);
  kill(priv.pid, SIGCONT);
  assert_true(run_until(&c->loop, is_ready, cur.rc, 8000));
  log_set_level(LOG_LEVEL_WARN);
  n.id = 3;
  assert_int_equal(n_add(c, c->uid, 4), 0);
}

static void t_open_arguments(void **state) {
  (void)state;
  notif_store_t *s = NULL;
  notif_redis_opts_t o = {0};
  assert_int_equal(notif_redis_open(NULL, &s), -EINVAL);
  assert_int_equal(notif_redis_open(&o, &s), -EINVAL);
  assert_null(s);
}

int main(void) {
  log_set_level(LOG_LEVEL_WARN);
  nsuite_make = redis_make;
  nsuite_destroy = redis_destroy;
  const struct CMUnitTest tests[] = {
      NOTIF_STORE_SUITE_TESTS,
      NSUITE_TEST(t_key_layout_and_ttl),
      NSUITE_TEST(t_malformed_elements_skipped),
      cmocka_unit_test_setup_teardown(t_killed_and_restarted, private_setup, private_teardown),
      cmocka_unit_test_setup_teardown(t_stopped_server_fails_in_flight, private_setup,
                                      private_teardown),
      cmocka_unit_test(t_open_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
