/* Unit tests for store/redis: the reconnecting client (redis_client) and the
 * shared-state scripts (redis_shared: presence across gateways, rate-limit
 * buckets), against real redis-server processes. The shared server comes
 * from STORM_TEST_REDIS (scripts/infra.sh); tests that kill, stop or
 * password-protect a server start their own on a free port. */
#include <errno.h>
#include <hiredis.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "core/log.h"
#include "redis_server_fixture.h"
#include "store/redis/redis_client.h"
#include "store/redis/redis_shared.h"

/* ---- helpers ---- */

static bool flag_set(void *arg) { return *(int *)arg != 0; }
static bool is_ready(void *arg) { return redis_client_ready(arg); }
static bool is_down(void *arg) { return !redis_client_ready(arg); }

static void closed_cb(void *arg) { (*(int *)arg)++; }

static void close_client(uv_loop_t *loop, redis_client_t *rc) {
  int closed = 0;
  redis_client_close(rc, closed_cb, &closed);
  assert_int_equal(closed, 0); /* after libuv closed the handles */
  assert_true(run_until(loop, flag_set, &closed, 3000));
  uv_run(loop, UV_RUN_NOWAIT); /* the adapter's poll handle */
  assert_int_equal(closed, 1);
}

static redis_client_t *open_client(uv_loop_t *loop, const char *addr, const char *password,
                                   uint64_t timeout_ms) {
  redis_client_opts_t o = {.addr = addr, .password = password, .timeout_ms = timeout_ms};
  redis_client_t *rc = NULL;
  assert_int_equal(redis_client_open(loop, &o, &rc), 0);
  assert_non_null(rc);
  return rc;
}

typedef struct {
  int calls;
  bool null_reply;
  int type;
  long long integer;
  char str[64];
} reply_t;

static void on_reply(redis_client_t *rc, const redisReply *r, void *arg) {
  (void)rc;
  reply_t *out = arg;
  out->calls++;
  out->null_reply = r == NULL;
  if (!r) return;
  out->type = r->type;
  out->integer = r->integer;
  if (r->str) snprintf(out->str, sizeof out->str, "%s", r->str);
}

static bool reply_in(void *arg) { return ((reply_t *)arg)->calls > 0; }

static void command(redis_client_t *rc, reply_t *out, int argc, const char **argv) {
  memset(out, 0, sizeof *out);
  assert_int_equal(redis_client_command(rc, on_reply, out, argc, argv, NULL), 0);
  assert_int_equal(out->calls, 0); /* never from inside the call */
}

/* ---- client ---- */

static void test_bad_address(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  redis_client_t *rc = NULL;
  const char *bad[] = {"", ":6379", "host:", "host:0", "host:70000", "host:12x"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    redis_client_opts_t o = {.addr = bad[i]};
    assert_int_equal(redis_client_open(&loop, &o, &rc), -EINVAL);
  }
  redis_client_opts_t none = {0};
  assert_int_equal(redis_client_open(&loop, &none, &rc), -EINVAL);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_command_roundtrip(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  redis_client_t *rc = open_client(&loop, redis_test_addr(), NULL, 0);
  assert_true(run_until(&loop, is_ready, rc, 3000));
  assert_int_equal(redis_client_connects(rc), 1);
  reply_t r;
  const char *ping[] = {"PING"};
  command(rc, &r, 1, ping);
  assert_true(run_until(&loop, reply_in, &r, 3000));
  assert_int_equal(r.type, REDIS_REPLY_STATUS);
  assert_string_equal(r.str, "PONG");
  /* An error reply is a reply, not a connection failure. */
  const char *bad[] = {"NOSUCHCOMMAND"};
  command(rc, &r, 1, bad);
  assert_true(run_until(&loop, reply_in, &r, 3000));
  assert_int_equal(r.type, REDIS_REPLY_ERROR);
  assert_true(redis_client_ready(rc));
  assert_int_equal(redis_client_command(rc, on_reply, &r, 0, ping, NULL), -EINVAL);
  assert_int_equal(redis_client_command(rc, NULL, &r, 1, ping, NULL), -EINVAL);
  close_client(&loop, rc);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Nothing listens: commands fail fast, the client keeps retrying quietly,
 * and it never keeps the loop alive by itself. */
static void test_down_fails_fast(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
  redis_client_t *rc = open_client(&loop, addr, NULL, 0);
  assert_false(run_until(&loop, is_ready, rc, 400));
  reply_t r;
  const char *ping[] = {"PING"};
  assert_int_equal(redis_client_command(rc, on_reply, &r, 1, ping, NULL), -ENOTCONN);
  assert_int_equal(redis_client_connects(rc), 0);
  close_client(&loop, rc);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* kill -9 with a command in flight: it fails (NULL reply), the client goes
 * down, fails fast, and comes back by itself when the server returns. */
static void test_reconnects_after_kill(void **state) {
  (void)state;
  redis_server_t s;
  redis_server_start(&s, 0, NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  redis_client_t *rc = open_client(&loop, s.addr, NULL, 0);
  assert_true(run_until(&loop, is_ready, rc, 3000));
  reply_t r;
  const char *block[] = {"BLPOP", "storm:test:never", "10"};
  command(rc, &r, 3, block);
  uv_run(&loop, UV_RUN_NOWAIT); /* flush it out */
  redis_server_kill(&s);
  assert_true(run_until(&loop, reply_in, &r, 3000));
  assert_true(r.null_reply);
  assert_true(run_until(&loop, is_down, rc, 1000));
  const char *ping[] = {"PING"};
  assert_int_equal(redis_client_command(rc, on_reply, &r, 1, ping, NULL), -ENOTCONN);
  redis_server_start(&s, s.port, NULL);
  assert_true(run_until(&loop, is_ready, rc, 8000));
  assert_int_equal(redis_client_connects(rc), 2);
  command(rc, &r, 1, ping);
  assert_true(run_until(&loop, reply_in, &r, 3000));
  assert_string_equal(r.str, "PONG");
  close_client(&loop, rc);
  redis_server_kill(&s);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* A stopped (SIGSTOP) server accepts nothing and answers nothing: the
 * watchdog fails the command after the timeout instead of hanging. */
static void test_watchdog_fails_stuck_command(void **state) {
  (void)state;
  redis_server_t s;
  redis_server_start(&s, 0, NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  redis_client_t *rc = open_client(&loop, s.addr, NULL, 300);
  assert_true(run_until(&loop, is_ready, rc, 3000));
  kill(s.pid, SIGSTOP);
  reply_t r;
  const char *ping[] = {"PING"};
  command(rc, &r, 1, ping);
  uint64_t t0 = uv_hrtime();
  assert_true(run_until(&loop, reply_in, &r, 3000));
  assert_true(r.null_reply);
  assert_true(uv_hrtime() - t0 >= 250 * 1000000ull);
  assert_false(redis_client_ready(rc));
  kill(s.pid, SIGCONT);
  assert_true(run_until(&loop, is_ready, rc, 8000));
  close_client(&loop, rc);
  redis_server_kill(&s);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_auth(void **state) {
  (void)state;
  redis_server_t s;
  redis_server_start(&s, 0, "s3cret-for-test");
  uv_loop_t loop;
  uv_loop_init(&loop);
  redis_client_t *good = open_client(&loop, s.addr, "s3cret-for-test", 0);
  redis_client_t *wrong = open_client(&loop, s.addr, "wrong", 0);
  redis_client_t *none = open_client(&loop, s.addr, NULL, 0);
  assert_true(run_until(&loop, is_ready, good, 3000));
  reply_t r;
  const char *set[] = {"SET", "storm:test:auth", "1"};
  command(good, &r, 3, set);
  assert_true(run_until(&loop, reply_in, &r, 3000));
  assert_string_equal(r.str, "OK");
  /* A refused password never makes the client ready. */
  assert_false(run_until(&loop, is_ready, wrong, 500));
  /* Without AUTH the connection is up but commands are refused by Redis:
   * that is the caller's error reply, not a silent success. */
  assert_true(run_until(&loop, is_ready, none, 3000));
  command(none, &r, 3, set);
  assert_true(run_until(&loop, reply_in, &r, 3000));
  assert_int_equal(r.type, REDIS_REPLY_ERROR);
  close_client(&loop, good);
  close_client(&loop, wrong);
  close_client(&loop, none);
  redis_server_kill(&s);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_close_fails_pending(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  redis_client_t *rc = open_client(&loop, redis_test_addr(), NULL, 0);
  assert_true(run_until(&loop, is_ready, rc, 3000));
  reply_t r;
  const char *block[] = {"BLPOP", "storm:test:never-pushed", "5"};
  command(rc, &r, 3, block);
  uv_run(&loop, UV_RUN_NOWAIT);
  close_client(&loop, rc);
  assert_int_equal(r.calls, 1);
  assert_true(r.null_reply);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- shared state ---- */

typedef struct {
  int calls, status;
  int64_t total;
} pres_t;

static void on_pres(int status, int64_t total, void *arg) {
  pres_t *p = arg;
  p->calls++;
  p->status = status;
  p->total = total;
}

static bool pres_in(void *arg) { return ((pres_t *)arg)->calls > 0; }

static int64_t presence(uv_loop_t *loop, redis_client_t *rc, const char *inst, int64_t user,
                        int64_t devices) {
  pres_t p = {0};
  int rc_ = inst ? redis_presence_set(rc, inst, user, devices, on_pres, &p)
                 : redis_presence_get(rc, user, on_pres, &p);
  assert_int_equal(rc_, 0);
  assert_true(run_until(loop, pres_in, &p, 3000));
  assert_int_equal(p.status, 0);
  return p.total;
}

static bool hb_done(void *arg) { (void)arg; return false; }

static void test_presence_across_instances(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  redis_client_t *rc = open_client(&loop, redis_test_addr(), NULL, 0);
  assert_true(run_until(&loop, is_ready, rc, 3000));
  char a[32], b[32], dead[32];
  long tag = (long)getpid() * 1000 + (long)(time(NULL) % 1000);
  snprintf(a, sizeof a, "ta%ld", tag);
  snprintf(b, sizeof b, "tb%ld", tag);
  snprintf(dead, sizeof dead, "td%ld", tag);
  int64_t user = 900000000 + tag % 100000000;
  assert_int_equal(redis_presence_heartbeat(rc, a), 0);
  assert_int_equal(redis_presence_heartbeat(rc, b), 0);
  run_until(&loop, hb_done, NULL, 50);
  assert_int_equal(presence(&loop, rc, a, user, 1), 1);  /* first device anywhere */
  assert_int_equal(presence(&loop, rc, b, user, 2), 3);  /* two more on another gateway */
  assert_int_equal(presence(&loop, rc, a, user, 0), 2);  /* a's last one left */
  assert_int_equal(presence(&loop, rc, NULL, user, 0), 2);
  /* An instance without a heartbeat (a crashed gateway) counts only in its
   * own call, and is then forgotten. */
  assert_int_equal(presence(&loop, rc, dead, user, 5), 7);
  assert_int_equal(presence(&loop, rc, NULL, user, 0), 2);
  assert_int_equal(presence(&loop, rc, b, user, 0), 0);
  assert_int_equal(presence(&loop, rc, NULL, user, 0), 0);
  pres_t p;
  assert_int_equal(redis_presence_set(rc, "", user, 1, on_pres, &p), -EINVAL);
  assert_int_equal(redis_presence_set(rc, a, 0, 1, on_pres, &p), -EINVAL);
  assert_int_equal(redis_presence_set(rc, a, user, -1, on_pres, &p), -EINVAL);
  close_client(&loop, rc);
  assert_int_equal(uv_loop_close(&loop), 0);
}

typedef struct {
  int calls, status;
  bool allowed;
  uint64_t retry;
} rl_t;

static void on_rl(int status, bool allowed, uint64_t retry, void *arg) {
  rl_t *r = arg;
  r->calls++;
  r->status = status;
  r->allowed = allowed;
  r->retry = retry;
}

static bool rl_in(void *arg) { return ((rl_t *)arg)->calls > 0; }

static rl_t take(uv_loop_t *loop, redis_client_t *rc, const char *key, double rate, double burst) {
  rl_t r = {0};
  assert_int_equal(redis_ratelimit_take(rc, key, rate, burst, on_rl, &r), 0);
  assert_true(run_until(loop, rl_in, &r, 3000));
  assert_int_equal(r.status, 0);
  return r;
}

static void test_ratelimit_bucket(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  redis_client_t *rc = open_client(&loop, redis_test_addr(), NULL, 0);
  redis_client_t *other = open_client(&loop, redis_test_addr(), NULL, 0); /* another gateway */
  assert_true(run_until(&loop, is_ready, rc, 3000));
  assert_true(run_until(&loop, is_ready, other, 3000));
  char key[48], key2[64];
  snprintf(key, sizeof key, "test-%d-%ld", (int)getpid(), (long)time(NULL));
  snprintf(key2, sizeof key2, "%s-b", key);
  /* Burst 3 at 1/s, shared by two clients: exactly 3 pass. */
  assert_true(take(&loop, rc, key, 1, 3).allowed);
  assert_true(take(&loop, other, key, 1, 3).allowed);
  assert_true(take(&loop, rc, key, 1, 3).allowed);
  rl_t denied = take(&loop, other, key, 1, 3);
  assert_false(denied.allowed);
  assert_true(denied.retry > 0 && denied.retry <= 1000);
  /* Another key has its own bucket. */
  assert_true(take(&loop, rc, key2, 1, 3).allowed);
  /* Refill: at 20/s a token comes back after 50 ms. */
  char key3[64];
  snprintf(key3, sizeof key3, "%s-c", key);
  assert_true(take(&loop, rc, key3, 20, 1).allowed);
  assert_false(take(&loop, rc, key3, 20, 1).allowed);
  run_until(&loop, hb_done, NULL, 120);
  assert_true(take(&loop, rc, key3, 20, 1).allowed);
  rl_t r;
  assert_int_equal(redis_ratelimit_take(rc, key, 0, 3, on_rl, &r), -EINVAL);
  assert_int_equal(redis_ratelimit_take(rc, key, 1, 0, on_rl, &r), -EINVAL);
  close_client(&loop, rc);
  close_client(&loop, other);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Redis down: the shared-state calls fail fast, so callers fall back. */
static void test_shared_calls_fail_fast_when_down(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
  redis_client_t *rc = open_client(&loop, addr, NULL, 0);
  pres_t p = {0};
  rl_t r = {0};
  assert_int_equal(redis_presence_set(rc, "x", 1, 1, on_pres, &p), -ENOTCONN);
  assert_int_equal(redis_ratelimit_take(rc, "k", 1, 1, on_rl, &r), -ENOTCONN);
  assert_int_equal(redis_presence_heartbeat(rc, "x"), -ENOTCONN);
  int flag = 0;
  assert_false(run_until(&loop, flag_set, &flag, 100));
  assert_int_equal(p.calls + r.calls, 0);
  close_client(&loop, rc);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  log_set_level(LOG_LEVEL_ERROR);
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_address),
      cmocka_unit_test(test_command_roundtrip),
      cmocka_unit_test(test_down_fails_fast),
      cmocka_unit_test(test_reconnects_after_kill),
      cmocka_unit_test(test_watchdog_fails_stuck_command),
      cmocka_unit_test(test_auth),
      cmocka_unit_test(test_close_fails_pending),
      cmocka_unit_test(test_presence_across_instances),
      cmocka_unit_test(test_ratelimit_bucket),
      cmocka_unit_test(test_shared_calls_fail_fast_when_down),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
