/* Unit tests for bus/bus_nats: the shared contract suite (bus_suite.h)
 * against the NATS server at STORM_TEST_NATS_URL (required: the binary fails
 * without it), then NATS-only behaviour against nats-server processes this
 * binary starts itself on free loopback ports, so it can kill and restart
 * them: reconnects, the reconnect buffer, starting while NATS is down, the
 * server's max_payload, queue groups across connections, a 2-node cluster
 * with a server list, the inbound queue bound. */
#include "bus_suite.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nats/nats.h>

#include "bus/bus_local.h"
#include "bus/bus_nats.h"

static const char *g_url;

static bus_t *open_with(uv_loop_t *loop, const bus_nats_opts_t *o) {
  bus_t *b = NULL;
  int rc = bus_nats_open(loop, o, &b);
  if (rc < 0) fail_msg("bus_nats_open(%s): %d", o->servers, rc);
  return b;
}

static bus_t *nats_open(uv_loop_t *loop) {
  bus_nats_opts_t o = {.servers = g_url, .fail_if_down = true};
  return open_with(loop, &o);
}

/* Nothing more is coming once the bus has received nothing for 150 ms, has
 * nothing queued and no request pending: on loopback a message in flight
 * arrives within a millisecond or two. */
static void nats_settle(fx_t *f) {
  bus_nats_stats_t st;
  uint64_t last = UINT64_MAX, t0 = uv_hrtime(), quiet_since = t0;
  uv_timer_start(&f->tick, tick_cb, 5, 5);
  for (;;) {
    uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(bus_nats_stats(f->bus, &st), 0);
    uint64_t now = uv_hrtime();
    if (st.received != last || st.queued || st.pending_requests) {
      last = st.received;
      quiet_since = now;
    } else if (now - quiet_since > 150000000ULL) {
      break;
    }
    if (now - t0 > 30000000000ULL) fail_msg("settle: the bus never went quiet");
  }
  uv_timer_stop(&f->tick);
}

static const suite_engine_t nats_engine = {"nats", nats_open, nats_settle};

/* ---- our own nats-server processes ---- */

typedef struct {
  pid_t pid;
  int port;
  char conf[128]; /* config file, or "" */
} srv_t;

/* Every server started, so a failing test (cmocka longjmps out of it) still
 * leaves no nats-server or config file behind: see kill_servers. */
static srv_t *g_srvs[8];

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static bool port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static void srv_start(srv_t *s) {
  char port[16];
  snprintf(port, sizeof port, "%d", s->port);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    if (s->conf[0])
      execlp("nats-server", "nats-server", "-c", s->conf, (char *)NULL);
    else
      execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", port, (char *)NULL);
    _exit(127);
  }
  s->pid = pid;
  for (size_t i = 0; i < sizeof g_srvs / sizeof g_srvs[0]; i++) {
    if (g_srvs[i] == s) break;
    if (!g_srvs[i]) {
      g_srvs[i] = s;
      break;
    }
  }
  for (int i = 0; i < 200 && !port_open(s->port); i++) usleep(25000);
  if (!port_open(s->port)) fail_msg("nats-server on port %d did not start", s->port);
}

static void srv_kill(srv_t *s) {
  if (s->pid <= 0) return;
  kill(s->pid, SIGKILL);
  waitpid(s->pid, NULL, 0);
  s->pid = 0;
}

static int kill_servers(void **state) {
  for (size_t i = 0; i < sizeof g_srvs / sizeof g_srvs[0]; i++) {
    if (!g_srvs[i]) continue;
    srv_kill(g_srvs[i]);
    if (g_srvs[i]->conf[0]) unlink(g_srvs[i]->conf);
    g_srvs[i] = NULL;
  }
  return 0;
}

static void srv_plain(srv_t *s) {
  *s = (srv_t){0};
  s->port = free_port();
  srv_start(s);
}

/* Writes a config file; `extra` is appended inside the top level. */
static void srv_conf(srv_t *s, const char *extra) {
  snprintf(s->conf, sizeof s->conf, "/tmp/storm-test-nats-%d-%d.conf", (int)getpid(), s->port);
  FILE *fp = fopen(s->conf, "w");
  assert_non_null(fp);
  fprintf(fp, "listen: 127.0.0.1:%d\n%s\n", s->port, extra ? extra : "");
  fclose(fp);
}

static char *url_of(const srv_t *s, char *buf, size_t n) {
  snprintf(buf, n, "nats://127.0.0.1:%d", s->port);
  return buf;
}

/* A fixture whose bus is on one of our servers, reconnecting quickly. */
static void fx_on(fx_t *f, const char *url, int buf_bytes, bool fail_if_down) {
  assert_int_equal(uv_loop_init(&f->loop), 0);
  bus_nats_opts_t o = {.servers = url,
                       .reconnect_wait_ms = 20,
                       .reconnect_wait_max_ms = 100,
                       .reconnect_buf_bytes = buf_bytes,
                       .fail_if_down = fail_if_down};
  f->bus = open_with(&f->loop, &o);
  f->closed = 0;
  uv_timer_init(&f->loop, &f->tick);
}

/* Returns once the server has processed everything `bus` sent before (its
 * SUBs in particular): a message to ourselves makes the round trip. */
static void sync_bus(fx_t *f, bus_t *bus) {
  static int seq;
  char subj[64];
  snprintf(subj, sizeof subj, "sync.%d", ++seq);
  int n = 0;
  bus_sub_t *s;
  assert_int_equal(bus_subscribe(bus, subj, NULL, count_cb, &n, &s), 0);
  assert_int_equal(bus_publish(bus, subj, NULL, NULL, 0), 0);
  RUN_UNTIL(f, n == 1);
  assert_int_equal(bus_unsubscribe(s), 0);
}

static void close_extra(fx_t *f, bus_t *b) {
  int closed = 0;
  bus_close(b, count_closed, &closed);
  RUN_UNTIL(f, closed == 1);
}

/* ---- opening ---- */

static void test_open_errors(void **state) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  bus_t *b = (bus_t *)&loop;
  bus_nats_opts_t o = {0};
  assert_int_equal(bus_nats_open(&loop, &o, &b), -EINVAL);
  assert_null(b);
  assert_int_equal(bus_nats_open(&loop, NULL, &b), -EINVAL);
  o.servers = "";
  assert_int_equal(bus_nats_open(&loop, &o, &b), -EINVAL);
  o.servers = " , ,";
  assert_int_equal(bus_nats_open(&loop, &o, &b), -EINVAL);
  o.servers = g_url;
  assert_int_equal(bus_nats_open(NULL, &o, &b), -EINVAL);
  assert_int_equal(bus_nats_open(&loop, &o, NULL), -EINVAL);
  o.connect_timeout_ms = -1;
  assert_int_equal(bus_nats_open(&loop, &o, &b), -EINVAL);
  o.connect_timeout_ms = 0;
  o.reconnect_buf_bytes = -5;
  assert_int_equal(bus_nats_open(&loop, &o, &b), -EINVAL);
  o.reconnect_buf_bytes = 0;
  o.servers = "nats://127.0.0.1:notaport";
  assert_int_equal(bus_nats_open(&loop, &o, &b), -EINVAL);
  assert_null(b);

  /* fail_if_down with nobody listening */
  char url[64];
  snprintf(url, sizeof url, "nats://127.0.0.1:%d", free_port());
  o.servers = url;
  o.fail_if_down = true;
  assert_int_equal(bus_nats_open(&loop, &o, &b), -ECONNREFUSED);
  assert_null(b);
  uv_run(&loop, UV_RUN_DEFAULT); /* the handles made before the failure close */
  assert_int_equal(uv_loop_close(&loop), 0);

  /* stats are for NATS buses only */
  bus_nats_stats_t st;
  assert_int_equal(uv_loop_init(&loop), 0);
  bus_t *l = bus_local_new(&loop, 0);
  assert_int_equal(bus_nats_stats(l, &st), -EINVAL);
  assert_int_equal(bus_nats_stats(NULL, &st), -EINVAL);
  bus_close(l, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Open while NATS is down: the bus works at once (subscriptions and
 * publishes are kept), reports not connected, and catches up when the
 * server starts; bus_max_payload then follows the server. */
static void test_start_while_down(void **state) {
  static srv_t s;
  s = (srv_t){.port = free_port()};
  srv_conf(&s, "max_payload: 65536");
  char url[64];
  fx_t f;
  fx_on(&f, url_of(&s, url, sizeof url), 0, false);
  assert_false(bus_is_connected(f.bus));
  assert_int_equal(bus_max_payload(f.bus), BUS_DEFAULT_MAX_PAYLOAD);
  rec_t r = {0};
  assert_int_equal(bus_subscribe(f.bus, "early", NULL, rec_cb, &r, NULL), 0);
  assert_int_equal(bus_publish(f.bus, "early", NULL, "buffered", 8), 0);
  uv_timer_start(&f.tick, tick_cb, 5, 5);
  for (int i = 0; i < 20; i++) uv_run(&f.loop, UV_RUN_ONCE);
  assert_false(bus_is_connected(f.bus));
  assert_int_equal(r.n, 0);
  srv_start(&s);
  RUN_UNTIL(&f, bus_is_connected(f.bus));
  RUN_UNTIL(&f, r.n == 1);
  assert_memory_equal(r.data, "buffered", 8);
  RUN_UNTIL(&f, bus_max_payload(f.bus) == 65536);
  char big[65537] = {0};
  assert_int_equal(bus_publish(f.bus, "early", NULL, big, sizeof big), -EMSGSIZE);
  fx_done(&f);
  srv_kill(&s);
  unlink(s.conf);
}

/* ---- reconnect ---- */

static void test_reconnect(void **state) {
  static srv_t s;
  srv_plain(&s);
  char url[64];
  fx_t f;
  fx_on(&f, url_of(&s, url, sizeof url), 0, true);
  assert_true(bus_is_connected(f.bus));
  int n = 0, wild = 0;
  assert_int_equal(bus_subscribe(f.bus, "r.x", NULL, count_cb, &n, NULL), 0);
  assert_int_equal(bus_subscribe(f.bus, "r.*", "grp", count_cb, &wild, NULL), 0);
  assert_int_equal(bus_publish(f.bus, "r.x", NULL, NULL, 0), 0);
  RUN_UNTIL(&f, n == 1 && wild == 1);

  srv_kill(&s);
  RUN_UNTIL(&f, !bus_is_connected(f.bus));
  for (int i = 0; i < 3; i++) assert_int_equal(bus_publish(f.bus, "r.x", NULL, "d", 1), 0);
  reply_t r = {.loop = &f.loop};
  assert_int_equal(bus_request(f.bus, "down.svc", NULL, 0, 100, reply_cb, &r, NULL), 0);
  RUN_UNTIL(&f, r.calls == 1);
  assert_int_equal(r.status, BUS_ETIMEDOUT); /* requests time out while down */
  assert_int_equal(n, 1);

  srv_start(&s);
  RUN_UNTIL(&f, bus_is_connected(f.bus));
  /* the subscriptions survived and the buffered publishes went out */
  RUN_UNTIL(&f, n == 4 && wild == 4);
  assert_int_equal(bus_publish(f.bus, "r.x", NULL, NULL, 0), 0);
  RUN_UNTIL(&f, n == 5);
  bus_nats_stats_t st;
  assert_int_equal(bus_nats_stats(f.bus, &st), 0);
  assert_true(st.reconnects >= 1);

  /* and again: the second outage is no different */
  srv_kill(&s);
  RUN_UNTIL(&f, !bus_is_connected(f.bus));
  srv_start(&s);
  RUN_UNTIL(&f, bus_is_connected(f.bus));
  assert_int_equal(bus_publish(f.bus, "r.x", NULL, NULL, 0), 0);
  RUN_UNTIL(&f, n == 6);
  fx_done(&f);
  srv_kill(&s);
}

/* While disconnected, publishes fill a bounded buffer, then fail with
 * -ENOBUFS; closing while down still completes. */
static void test_reconnect_buffer_bound(void **state) {
  static srv_t s;
  srv_plain(&s);
  char url[64];
  fx_t f;
  fx_on(&f, url_of(&s, url, sizeof url), 4096, true);
  srv_kill(&s);
  RUN_UNTIL(&f, !bus_is_connected(f.bus));
  char data[100];
  memset(data, 'b', sizeof data);
  int ok = 0, rc = 0;
  while (ok < 1000 && (rc = bus_publish(f.bus, "buf.x", NULL, data, sizeof data)) == 0) ok++;
  assert_int_equal(rc, -ENOBUFS);
  assert_true(ok >= 30 && ok <= 4096 / 100 + 1); /* ~4096 bytes of PUB lines */
  assert_int_equal(bus_request(f.bus, "buf.svc", data, sizeof data, 100, noreply_cb, NULL, NULL),
                   -ENOBUFS);
  bus_msg_t m = {"a", "buf.r", NULL, 0};
  assert_int_equal(bus_respond(f.bus, &m, data, sizeof data), -ENOBUFS);
  fx_done(&f);
}

/* ---- several connections ---- */

static void test_queue_group_two_buses(void **state) {
  fx_t f;
  fx_init(&f);
  bus_t *b2 = nats_open(&f.loop), *pub = nats_open(&f.loop);
  int n1 = 0, n2 = 0, plain1 = 0, plain2 = 0;
  assert_int_equal(bus_subscribe(f.bus, "qg.job", "workers", count_cb, &n1, NULL), 0);
  assert_int_equal(bus_subscribe(b2, "qg.*", "workers", count_cb, &n2, NULL), 0);
  assert_int_equal(bus_subscribe(f.bus, "qg.job", NULL, count_cb, &plain1, NULL), 0);
  assert_int_equal(bus_subscribe(b2, "qg.job", NULL, count_cb, &plain2, NULL), 0);
  sync_bus(&f, f.bus);
  sync_bus(&f, b2);
  enum { N = 400 };
  for (int i = 0; i < N; i++) assert_int_equal(bus_publish(pub, "qg.job", NULL, "j", 1), 0);
  RUN_UNTIL(&f, plain1 == N && plain2 == N && n1 + n2 == N);
  settle(&f);
  assert_int_equal(n1 + n2, N); /* each message to exactly one member */
  assert_true(n1 > 100 && n2 > 100);
  close_extra(&f, b2);
  close_extra(&f, pub);
  fx_done(&f);
}

/* The 503 of a request nobody hears never reaches a plain subscription,
 * even one that matches the inbox (the server may pick either). */
static void test_no_responders_not_delivered(void **state) {
  fx_t f;
  fx_init(&f);
  int spy = 0;
  assert_int_equal(bus_subscribe(f.bus, "_INBOX.>", NULL, count_cb, &spy, NULL), 0);
  for (int i = 0; i < 5; i++) {
    reply_t r = {0};
    assert_int_equal(bus_request(f.bus, "nobody.at.all", NULL, 0, 10000, reply_cb, &r, NULL), 0);
    RUN_UNTIL(&f, r.calls == 1);
    assert_int_equal(r.status, BUS_ENORESPONDERS);
  }
  settle(&f);
  assert_int_equal(spy, 0);
  fx_done(&f);
}

typedef struct {
  int n;
  bool slept;
} slow_t;

static void slow_cb(bus_t *bus, const bus_msg_t *msg, void *arg) {
  slow_t *s = arg;
  s->n++;
  if (!s->slept) {
    s->slept = true;
    uv_sleep(300); /* meanwhile libnats keeps handing messages over */
  }
}

/* A full inbound queue drops (and counts) instead of growing. */
static void test_inbound_queue_bound(void **state) {
  fx_t f;
  assert_int_equal(uv_loop_init(&f.loop), 0);
  bus_nats_opts_t o = {.servers = g_url, .inbound_max_msgs = 10, .fail_if_down = true};
  f.bus = open_with(&f.loop, &o);
  f.closed = 0;
  uv_timer_init(&f.loop, &f.tick);
  bus_t *pub = nats_open(&f.loop);
  slow_t s = {0};
  assert_int_equal(bus_subscribe(f.bus, "flood", NULL, slow_cb, &s, NULL), 0);
  sync_bus(&f, f.bus);
  bus_nats_stats_t st0;
  assert_int_equal(bus_nats_stats(f.bus, &st0), 0);
  enum { N = 2000 };
  for (int i = 0; i < N; i++) assert_int_equal(bus_publish(pub, "flood", NULL, "x", 1), 0);
  settle(&f);
  bus_nats_stats_t st;
  assert_int_equal(bus_nats_stats(f.bus, &st), 0);
  assert_int_equal(st.received - st0.received, N);
  assert_true(st.dropped_full > 0);
  assert_int_equal((uint64_t)s.n + st.dropped_full, N);
  assert_int_equal(st.queued, 0);
  close_extra(&f, pub);
  fx_done(&f);
}

/* Two routed servers; a bus with the list of both fails over when its
 * server dies, and requests cross the route. */
static void test_cluster(void **state) {
  static srv_t a, b;
  a = (srv_t){.port = free_port()};
  b = (srv_t){.port = free_port()};
  int ra = free_port(), rb = free_port();
  char ca[256], cb[256];
  snprintf(ca, sizeof ca,
           "server_name: a\ncluster { name: storm, listen: 127.0.0.1:%d, routes: "
           "[nats-route://127.0.0.1:%d] }",
           ra, rb);
  snprintf(cb, sizeof cb,
           "server_name: b\ncluster { name: storm, listen: 127.0.0.1:%d, routes: "
           "[nats-route://127.0.0.1:%d] }",
           rb, ra);
  srv_conf(&a, ca);
  srv_conf(&b, cb);
  srv_start(&a);
  srv_start(&b);
  char ua[64], ub[64], both[160];
  url_of(&a, ua, sizeof ua);
  url_of(&b, ub, sizeof ub);
  snprintf(both, sizeof both, "%s, %s", ua, ub);

  fx_t f;
  fx_on(&f, ua, 0, true);
  bus_nats_opts_t o = {.servers = ub, .fail_if_down = true};
  bus_t *onb = open_with(&f.loop, &o);
  echo_t e = {.replies = 1};
  assert_int_equal(bus_subscribe(onb, "cl.echo", NULL, echo_cb, &e, NULL), 0);
  sync_bus(&f, onb);
  /* interest crosses the route asynchronously: retry until it has */
  reply_t r = {0};
  for (int i = 0; i < 100; i++) {
    r = (reply_t){0};
    assert_int_equal(bus_request(f.bus, "cl.echo", "hop", 3, 2000, reply_cb, &r, NULL), 0);
    RUN_UNTIL(&f, r.calls == 1);
    if (r.status == 0) break;
    uv_sleep(20);
  }
  assert_int_equal(r.status, 0);
  assert_memory_equal(r.data, "echo:hop", 8);

  /* a bus given both servers survives the death of the one it is on */
  o.servers = both;
  o.reconnect_wait_ms = 20;
  bus_t *fo = open_with(&f.loop, &o);
  srv_kill(&a);
  RUN_UNTIL(&f, bus_is_connected(fo)); /* (f.bus too: it learnt b from a's INFO) */
  reply_t r2 = {0};
  for (int i = 0; i < 100; i++) {
    r2 = (reply_t){0};
    assert_int_equal(bus_request(fo, "cl.echo", "two", 3, 2000, reply_cb, &r2, NULL), 0);
    RUN_UNTIL(&f, r2.calls == 1);
    if (r2.status == 0) break;
    uv_sleep(20);
  }
  assert_int_equal(r2.status, 0);
  assert_memory_equal(r2.data, "echo:two", 8);
  close_extra(&f, fo);
  close_extra(&f, onb);
  fx_done(&f);
  srv_kill(&b);
  unlink(a.conf);
  unlink(b.conf);
}

static void test_url_required(void **state) {
  fail_msg("STORM_TEST_NATS_URL is not set. Start the test servers with "
           "`scripts/infra.sh start /tmp/infra-$USER` and `. /tmp/infra-$USER/env`, "
           "or run the whole suite with `make test`.");
}

/* libnats keeps process-wide threads and buffers: release them so ASan's
 * leak check sees a clean exit. */
static int teardown(void **state) {
  nats_CloseAndWait(5000);
  return 0;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  g_engine = &nats_engine;
  g_url = getenv("STORM_TEST_NATS_URL");
  if (!g_url || !*g_url) {
    const struct CMUnitTest missing[] = {cmocka_unit_test(test_url_required)};
    return cmocka_run_group_tests_name("bus_nats", missing, NULL, NULL);
  }
  const struct CMUnitTest tests[] = {
      BUS_SUITE_TESTS,
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test_teardown(test_start_while_down, kill_servers),
      cmocka_unit_test_teardown(test_reconnect, kill_servers),
      cmocka_unit_test_teardown(test_reconnect_buffer_bound, kill_servers),
      cmocka_unit_test(test_queue_group_two_buses),
      cmocka_unit_test(test_no_responders_not_delivered),
      cmocka_unit_test(test_inbound_queue_bound),
      cmocka_unit_test_teardown(test_cluster, kill_servers),
  };
  return cmocka_run_group_tests_name("bus_nats", tests, NULL, teardown);
}
