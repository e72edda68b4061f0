/*
 * messages_store_bench.c — durable appends per second through the messages
 * store (group commit), SQLite or PostgreSQL, with N concurrent producers,
 * and the append-to-callback latency (p50/p99) they see.
 *
 * A producer is a client waiting for its ack: it has one append in flight
 * and sends the next one from the callback (closed loop), all on the real
 * loop, as the messages service will do. N producers spread over 8
 * channels. Each N runs on a fresh database: 0.3 s warm-up, then a timed
 * window (default 2 s). Every ack is durable (the writer's connection runs
 * synchronous=FULL: one fdatasync of the WAL per batch), so throughput is
 * about batch size / fsync time; the first line measures this disk's
 * fdatasync latency to read the rest against.
 *
 * Built by `make BUILD=release bench-build`; from the repository root:
 *   build/release/bench/messages_store_bench [dir|postgresql://...] [seconds] [N...]
 * dir (default
 * build/bench-msgs, on the repository's disk: /tmp may be tmpfs, where
 * fsync is free) is created and emptied for every run.
 *
 * PostgreSQL: give a postgresql:// URL instead of dir (link libstorm.a and
 * add libpq). Each run starts from an empty schema (the bench DROPs and
 * re-creates schema public: use a throwaway database); commits are
 * synchronous (synchronous_commit=on), so an ack means PostgreSQL's WAL
 * flush, as in the service. The fdatasync line is then skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "core/log.h"
#include "store/messages_store.h"
#include "store/sqlite/messages_sqlite.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/users_sqlite.h"
#include "store/pg/messages_pg.h"
#include "store/pg/pg_db.h"
#include "store/pg/users_pg.h"
#include "store/users_store.h"

#define NCHAN 8
#define MAX_SAMPLES (8u << 20)

typedef struct run run_t;

typedef struct {
  run_t *run;
  int64_t channel_id, author_id;
  uint64_t sent_at;
  unsigned seq;
} producer_t;

struct run {
  messages_store_t *s;
  uint64_t t_measure, t_end; /* uv_hrtime ns */
  uint64_t acked, errors;
  uint64_t *lat;             /* ns, of acks inside the window */
  size_t nlat;
  bool stopping;
  int in_flight;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  return remove(path);
}

static void send_one(producer_t *p);

static void on_ack(void *arg, int status, const msg_ack_t *ack) {
  producer_t *p = arg;
  run_t *r = p->run;
  uint64_t now = uv_hrtime();
  r->in_flight--;
  if (status != 0) r->errors++;
  if (now >= r->t_measure && now < r->t_end) {
    r->acked++;
    if (r->nlat < MAX_SAMPLES) r->lat[r->nlat++] = now - p->sent_at;
  }
  if (now >= r->t_end) r->stopping = true;
  if (!r->stopping) send_one(p);
}

static void send_one(producer_t *p) {
  char body[96];
  int n = snprintf(body, sizeof body, "benchmark message %u from producer %p, about 60 bytes",
                   p->seq++, (void *)p);
  msg_append_t m = {.channel_id = p->channel_id, .author_id = p->author_id,
                    .body = {body, (size_t)n}};
  p->sent_at = uv_hrtime();
  if (p->run->s->ops->append(p->run->s, &m, on_ack, p) == 0) p->run->in_flight++;
  else p->run->errors++;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void fresh_dir(const char *dir) {
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  if (mkdir(dir, 0700) != 0) {
    perror(dir);
    exit(1);
  }
}

/* Median fdatasync latency of 4 KiB appends to a file in dir, in us. */
static double fsync_us(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/fsync-probe", dir);
  int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
  if (fd < 0) return -1;
  char block[4096];
  memset(block, 'x', sizeof block);
  enum { N = 200 };
  uint64_t t[N];
  for (int i = 0; i < N; i++) {
    uint64_t t0 = uv_hrtime();
    if (write(fd, block, sizeof block) != (ssize_t)sizeof block || fdatasync(fd) != 0) {
      close(fd);
      return -1;
    }
    t[i] = uv_hrtime() - t0;
  }
  close(fd);
  unlink(path);
  qsort(t, N, sizeof t[0], cmp_u64);
  return (double)t[N / 2] / 1e3;
}

static bool is_pg(const char *where) { return strncmp(where, "postgres", 8) == 0; }

static int run_one(const char *dir, int nprod, double seconds, uint64_t *lat) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  sqlite_db_t *db = NULL;
  pg_db_t *pg = NULL;
  char err[256];
  users_store_t *us;
  messages_store_t *s;
  if (is_pg(dir)) {
    if (pg_db_open(dir, 0, &pg, err, sizeof err) != 0) {
      fprintf(stderr, "open: %s\n", err);
      return -1;
    }
    pg_conn_t *c = pg_db_acquire(pg);
    if (!c || pg_cmd(c, "DROP SCHEMA public CASCADE", "reset") < 0 ||
        pg_cmd(c, "CREATE SCHEMA public", "reset") < 0)
      return -1;
    pg_db_release(pg, c);
    users_pg_opts_t uo = {.migrate_on_open = true};
    messages_pg_opts_t mo = {.loop = &loop, .migrate_on_open = true};
    if (users_pg_open(pg, &uo, &us) != 0 || messages_pg_open(pg, &mo, &s) != 0) return -1;
  } else {
    fresh_dir(dir);
    if (sqlite_db_open(dir, &db, err, sizeof err) != 0) {
      fprintf(stderr, "open: %s\n", err);
      return -1;
    }
    messages_sqlite_opts_t o = {.loop = &loop, .node_id = 1};
    if (users_sqlite_open(db, &us) != 0 || messages_sqlite_open(db, &o, &s) != 0) return -1;
  }
  user_rec_t u;
  if (us->ops->user_create(us, "bench", "Bench", "h", 1, &u) != 0) return -1;
  int64_t ch[NCHAN];
  for (int i = 0; i < NCHAN; i++) {
    char name[16];
    channel_rec_t c;
    snprintf(name, sizeof name, "c%d", i);
    if (s->ops->channel_create(s, name, NULL, false, u.id, 1, &c) != 0) return -1;
    ch[i] = c.id;
  }

  run_t r = {.s = s, .lat = lat};
  producer_t *p = calloc((size_t)nprod, sizeof *p);
  uint64_t start = uv_hrtime();
  r.t_measure = start + 300000000ull;
  r.t_end = r.t_measure + (uint64_t)(seconds * 1e9);
  for (int i = 0; i < nprod; i++) {
    p[i] = (producer_t){.run = &r, .channel_id = ch[i % NCHAN], .author_id = u.id};
    send_one(&p[i]);
  }
  /* stats at the start of the window: run until then */
  while (uv_hrtime() < r.t_measure) uv_run(&loop, UV_RUN_ONCE);
  msg_store_stats_t st0, st1;
  s->ops->stats(s, &st0);
  while (uv_hrtime() < r.t_end) uv_run(&loop, UV_RUN_ONCE);
  s->ops->stats(s, &st1);
  r.stopping = true;
  while (r.in_flight > 0) uv_run(&loop, UV_RUN_ONCE);

  double secs = seconds;
  uint64_t batches = st1.batches - st0.batches, msgs = st1.appended - st0.appended;
  qsort(r.lat, r.nlat, sizeof r.lat[0], cmp_u64);
  double p50 = r.nlat ? (double)r.lat[r.nlat / 2] / 1e6 : 0;
  double p99 = r.nlat ? (double)r.lat[r.nlat * 99 / 100] / 1e6 : 0;
  printf("%6d %12.0f %10.2f %10.2f %10.1f %9llu %7llu\n", nprod, (double)r.acked / secs, p50,
         p99, batches ? (double)msgs / (double)batches : 0, (unsigned long long)st1.max_batch,
         (unsigned long long)r.errors);
  fflush(stdout);

  s->ops->close(s);
  us->ops->close(us);
  uv_run(&loop, UV_RUN_DEFAULT);
  sqlite_db_close(db);
  if (pg) pg_db_close(pg);
  uv_loop_close(&loop);
  free(p);
  return 0;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "build/bench-msgs";
  double seconds = argc > 2 ? atof(argv[2]) : 2.0;
  int def[] = {1, 4, 16, 64, 256, 1024};
  int *ns = def, nn = (int)(sizeof def / sizeof def[0]);
  if (argc > 3) {
    nn = argc - 3;
    ns = calloc((size_t)nn, sizeof *ns);
    for (int i = 0; i < nn; i++) ns[i] = atoi(argv[3 + i]);
  }
  log_set_level(LOG_LEVEL_WARN);
  uint64_t *lat = malloc(MAX_SAMPLES * sizeof *lat);
  if (!lat) return 1;
  if (is_pg(dir)) {
    printf("PostgreSQL (synchronous_commit=on)\n");
  } else {
    fresh_dir(dir);
    printf("dir %s, fdatasync of a 4 KiB append: median %.0f us\n", dir, fsync_us(dir));
  }
  printf("%6s %12s %10s %10s %10s %9s %7s\n", "N", "appends/s", "p50 ms", "p99 ms",
         "avg batch", "max batch", "errors");
  for (int i = 0; i < nn; i++)
    if (run_one(dir, ns[i], seconds, lat) != 0) return 1;
  free(lat);
  if (!is_pg(dir)) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
