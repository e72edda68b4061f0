/*
 * redis_server_fixture.h — what the Redis unit tests share: the address
 * of the shared server (STORM_TEST_REDIS, from scripts/infra.sh; unset is
 * a test FAILURE, never a skip), a loop runner for the asynchronous
 * client, and private redis-server processes on free loopback ports for
 * tests that kill, stop or password-protect a server (never the shared
 * one).
 *
 * Include it in one test file (it defines static functions). A private
 * server has no persistence (--save "", no AOF, --dir /tmp) and writes
 * nothing to stdout; the test that starts one must kill it (also on
 * failure paths it controls: teardowns).
 */
#ifndef STORM_TEST_REDIS_SERVER_FIXTURE_H
#define STORM_TEST_REDIS_SERVER_FIXTURE_H

#include <fcntl.h>
#include <hiredis.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

/* STORM_TEST_REDIS ("host:port"); fails the test when it is unset. */
static const char *redis_test_addr(void) {
  const char *a = getenv("STORM_TEST_REDIS");
  if (!a || !a[0]) {
    fprintf(stderr, "STORM_TEST_REDIS is not set: start Redis with scripts/infra.sh start DIR "
                    "and source DIR/env (scripts/test-all.sh does it)\n");
    fail();
  }
  return a;
}

static void run_until_timeout(uv_timer_t *t) { *(bool *)t->data = true; }

/* Runs the loop until pred(arg) or ms elapse; returns pred's last value.
 * The client's own timers are unreferenced (they never keep a loop
 * alive), so a referenced timer of ours keeps uv_run from returning at
 * once while we wait. */
static bool run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, uint64_t ms) {
  bool expired = false;
  uv_timer_t t;
  uv_timer_init(loop, &t);
  t.data = &expired;
  uv_timer_start(&t, run_until_timeout, ms, 0);
  while (!pred(arg) && !expired) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return pred(arg);
}

/* A port nothing listens on right now (bound, read back, released). */
static int free_port(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_tcp_t t;
  uv_tcp_init(&loop, &t);
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&sa, 0), 0);
  int len = sizeof sa;
  uv_tcp_getsockname(&t, (struct sockaddr *)&sa, &len);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return ntohs(sa.sin_port);
}

/* A private redis-server on 127.0.0.1. */
typedef struct {
  pid_t pid;
  int port;
  char addr[32]; /* "127.0.0.1:<port>" */
} redis_server_t;

/* Starts one on port (0: a free one; a killed server's port to restart
 * it), requiring password when not NULL, and waits until it accepts a
 * connection (fails the test after 3 s). */
static void redis_server_start(redis_server_t *s, int port, const char *password) {
  s->port = port ? port : free_port();
  snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", s->port);
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", s->port);
  s->pid = fork();
  assert_true(s->pid >= 0);
  if (s->pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 1);
    if (password)
      execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", "/tmp", "--requirepass", password, (char *)NULL);
    else
      execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", "/tmp", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 300; i++) {
    redisContext *c = redisConnect("127.0.0.1", s->port);
    bool ok = c && !c->err;
    redisFree(c);
    if (ok) return;
    usleep(10000);
  }
  fail_msg("redis-server did not start on port %d", s->port);
}

/* SIGKILL and reap: no shutdown, as a crash would. */
static void redis_server_kill(redis_server_t *s) {
  kill(s->pid, SIGKILL);
  waitpid(s->pid, NULL, 0);
}

#endif
