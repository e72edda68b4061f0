/* opts.c — see opts.h. Options are data: each names the scenarios that
 * accept it, so a misplaced option is refused rather than ignored. */
#include "load/opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
  S_HOLD = 1, S_FANOUT = 2, S_ROOMS = 4, S_AUTH = 8, S_WS = 16, S_CHAT = 32, S_DAY = 64, S_MEDIA = 128,
  S_WSRUN = 7,                     /* the rooms family */
  S_ENGINE = S_WSRUN | S_CHAT | S_DAY, /* every run of the WebSocket engine (ctl.h) */
  S_VU = S_AUTH | S_WS | S_MEDIA,  /* the k6 mirrors: VU threads */
  S_ALL = 255
};

void opts_usage(void) {
  fprintf(stderr,
          "usage: storm-load hold   --url URL --conns N --rate CONNS_PER_S --duration S [--token T]\n"
          "       storm-load fanout --url URL --members N --rate MSGS_PER_S --duration S [--conn-rate R]\n"
          "       storm-load rooms  --url URL --rooms R --room-size S (--rate MSGS_PER_S_PER_ROOM --duration S |\n"
          "                         --rate-start A --rate-step B --rate-max C --step-seconds T)\n"
          "                         [--p99-target-ms 50] [--conn-rate R]\n"
          "       storm-load auth   --url URL --vus N (--iterations K | --duration S) [--think-ms 1000]\n"
          "       storm-load ws     --url URL --vus N (--iterations K | --duration S)\n"
          "       storm-load media  --url URL --vus N (--iterations K | --duration S)\n"
          "       storm-load chat   --url URL --users U --rate ACTIONS_PER_S_PER_USER --duration S\n"
          "                         [--channels 1x*,U/50x50,U/5x5] [--dms U/2] [--seed 1] [--history-limit 20]\n"
          "                         [--weights send=50,typing=30,history=10,read=10] [--conn-rate R]\n"
          "       storm-load storm-day --url URL --plan FILE.json [--room-users 5] [--devices 20] [--conn-rate 5000]\n"
          "hold/fanout/rooms: [--mode durable|broadcast] [--peer]\n"
          "fanout/rooms:      [--nonces seq|random]\n"
          "hold/fanout/rooms/chat/storm-day: [--procs N] [--server-pid PID]...\n"
          "every scenario:    [--report FILE.json] [--html FILE.html] [--prefix P]\n"
          "Loopback targets only (http://127.x.x.x:PORT); at most %d connections per process, %d per run\n"
          "(--procs), %d s of measured time, %d per second.\n",
          LOAD_MAX_CONNS, LOAD_MAX_TOTAL_CONNS, LOAD_MAX_DURATION_S, LOAD_MAX_RATE);
}

static int num(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
  *out = v;
  return 0;
}

static int bad(const char *a, const char *v) {
  fprintf(stderr, "storm-load: bad value for %s: %s (limits: %d connections per process, %d per run, %d s, %d per s)\n",
          a, v, LOAD_MAX_CONNS, LOAD_MAX_TOTAL_CONNS, LOAD_MAX_DURATION_S, LOAD_MAX_RATE);
  return 2;
}

int opts_parse(int argc, char **argv, load_opts_t *o) {
  static const struct { const char *name; int bit; } scen[] = {
      {"hold", S_HOLD}, {"fanout", S_FANOUT}, {"rooms", S_ROOMS}, {"auth", S_AUTH},
      {"ws", S_WS},     {"chat", S_CHAT},     {"storm-day", S_DAY}, {"media", S_MEDIA}};
  int sb = 0;
  for (size_t i = 0; argc >= 2 && i < sizeof scen / sizeof scen[0]; i++)
    if (!strcmp(argv[1], scen[i].name)) {
      sb = scen[i].bit;
      o->scenario = scen[i].name;
    }
  if (!sb) {
    opts_usage();
    return 2;
  }
  o->conn_rate = 2000;
  o->p99_target_ms = 50;
  o->procs = 1;
  o->think_ms = 1000;
  o->history_limit = 20;
  o->seed = 1;
  o->room_users = 5;
  o->devices = 20;
  chat_default_weights(&o->weights);
  const char *classes = NULL;
  bool have_dms = false;
  char err[256];
  snprintf(o->prefix, sizeof o->prefix, "ld%d_", (int)(getpid() % 10000000));
  const char *url = NULL;
  double d, duration = -1;
  bool have_rate = false, have_procs = false, have_conn_rate = false;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int ok = 1; /* 1: known option, value ok */
#define OPT(NAME, BITS) (!strcmp(a, NAME) && (sb & (BITS)))
    if (OPT("--peer", S_WSRUN)) {
      o->peer = true;
      continue;
    }
    if (!v) {
      fprintf(stderr, "storm-load: %s needs a value\n", a);
      return 2;
    }
    if (OPT("--url", S_ALL)) url = v;
    else if (OPT("--conns", S_HOLD) || OPT("--members", S_FANOUT)) {
      ok = !num(v, 1, LOAD_MAX_TOTAL_CONNS - (sb == S_FANOUT), &d);
      o->conns = (unsigned)d;
    } else if (OPT("--rooms", S_ROOMS)) {
      ok = !num(v, 1, LOAD_MAX_TOTAL_CONNS / 2, &d);
      o->rooms = (unsigned)d;
    } else if (OPT("--room-size", S_ROOMS)) {
      ok = !num(v, 2, LOAD_MAX_TOTAL_CONNS, &d);
      o->room_size = (unsigned)d;
    } else if (OPT("--rate", S_WSRUN | S_CHAT)) {
      ok = !num(v, 0.001, LOAD_MAX_RATE, &o->rate);
      have_rate = true;
    } else if (OPT("--duration", S_ALL & ~S_DAY)) ok = !num(v, 0, LOAD_MAX_DURATION_S, &duration);
    else if (OPT("--conn-rate", S_FANOUT | S_ROOMS | S_CHAT | S_DAY)) {
      ok = !num(v, 1, LOAD_MAX_RATE, &o->conn_rate);
      have_conn_rate = true;
    } else if (OPT("--users", S_CHAT)) {
      ok = !num(v, 2, LOAD_MAX_TOTAL_CONNS, &d);
      o->users = (unsigned)d;
    } else if (OPT("--channels", S_CHAT)) classes = v;
    else if (OPT("--dms", S_CHAT)) {
      ok = !num(v, 0, 4.0 * LOAD_MAX_TOTAL_CONNS, &d);
      o->dms = (unsigned)d;
      have_dms = true;
    } else if (OPT("--weights", S_CHAT)) {
      if (chat_parse_weights(v, &o->weights, err, sizeof err) < 0) {
        fprintf(stderr, "storm-load: bad value for --weights: %s\n", err);
        return 2;
      }
    } else if (OPT("--seed", S_CHAT)) {
      ok = !num(v, 1, 4294967295.0, &d);
      o->seed = (uint64_t)d;
    } else if (OPT("--history-limit", S_CHAT)) {
      ok = !num(v, 1, 100, &d);
      o->history_limit = (unsigned)d;
    } else if (OPT("--plan", S_DAY)) o->plan_path = v;
    else if (OPT("--room-users", S_DAY)) {
      ok = !num(v, 1, 1000, &d);
      o->room_users = (unsigned)d;
    } else if (OPT("--devices", S_DAY)) {
      ok = !num(v, 1, 1000, &d);
      o->devices = (unsigned)d;
    }
    else if (OPT("--rate-start", S_ROOMS)) {
      ok = !num(v, 0.001, LOAD_MAX_RATE, &o->rate_start);
      o->ramp = true;
    } else if (OPT("--rate-step", S_ROOMS)) ok = !num(v, 0, LOAD_MAX_RATE, &o->rate_step);
    else if (OPT("--rate-max", S_ROOMS)) ok = !num(v, 0.001, LOAD_MAX_RATE, &o->rate_max);
    else if (OPT("--step-seconds", S_ROOMS)) ok = !num(v, 0.1, LOAD_MAX_DURATION_S, &o->step_seconds);
    else if (OPT("--p99-target-ms", S_ROOMS)) ok = !num(v, 0.001, 3600000, &o->p99_target_ms);
    else if (OPT("--mode", S_FANOUT | S_ROOMS)) {
      ok = !strcmp(v, "durable") || !strcmp(v, "broadcast");
      o->mode = !strcmp(v, "broadcast") ? LOAD_BROADCAST : LOAD_DURABLE;
    } else if (OPT("--nonces", S_FANOUT | S_ROOMS)) {
      ok = !strcmp(v, "seq") || !strcmp(v, "random");
      o->random_nonces = !strcmp(v, "random");
    } else if (OPT("--procs", S_ENGINE)) {
      ok = !num(v, 1, LOAD_MAX_PROCS, &d);
      o->procs = (unsigned)d;
      have_procs = true;
    } else if (OPT("--server-pid", S_ENGINE)) {
      ok = !num(v, 1, 4194304, &d) && o->npids < LOAD_MAX_PIDS;
      if (ok) o->server_pids[o->npids++] = (int)d;
    } else if (OPT("--vus", S_VU)) {
      ok = !num(v, 1, LOAD_MAX_VUS, &d);
      o->vus = (unsigned)d;
    } else if (OPT("--iterations", S_VU)) {
      ok = !num(v, 1, LOAD_MAX_ITERATIONS, &d);
      o->iterations = (unsigned)d;
    } else if (OPT("--think-ms", S_AUTH)) {
      ok = !num(v, 0, 60000, &d);
      o->think_ms = (unsigned)d;
    } else if (OPT("--token", S_HOLD)) o->token = v;
    else if (OPT("--report", S_ALL)) o->report = v;
    else if (OPT("--html", S_ALL)) o->html = v;
    else if (OPT("--prefix", S_ALL)) {
      ok = strlen(v) >= 1 && strlen(v) < sizeof o->prefix && strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == strlen(v);
      if (ok) snprintf(o->prefix, sizeof o->prefix, "%s", v);
    } else {
      fprintf(stderr, "storm-load: unknown option %s for %s\n", a, o->scenario);
      opts_usage();
      return 2;
    }
#undef OPT
    if (!ok) return bad(a, v);
    i++;
  }
  if (!url) {
    fprintf(stderr, "storm-load: --url is required\n");
    return 2;
  }
  const char *terr = NULL;
  if (target_parse(url, &o->target, &terr) < 0) {
    fprintf(stderr, "storm-load: %s: %s\n", url, terr);
    return 2;
  }
  o->duration = duration < 0 ? 0 : duration;
  if (o->peer) o->mode = LOAD_BROADCAST;
  if (o->peer && o->token) {
    fprintf(stderr, "storm-load: --token makes no sense with --peer (a peer takes no token)\n");
    return 2;
  }
  unsigned total = 0;
  const char *what = "--conns";
  switch (sb) {
  case S_HOLD:
  case S_FANOUT:
    if (!o->conns || !have_rate) {
      fprintf(stderr, "storm-load: --url, --%s and --rate are required\n", sb == S_HOLD ? "conns" : "members");
      return 2;
    }
    total = o->conns + (sb == S_FANOUT);
    what = sb == S_HOLD ? "--conns" : "--members";
    break;
  case S_ROOMS:
    if (!o->rooms || !o->room_size) {
      fprintf(stderr, "storm-load: --rooms and --room-size are required\n");
      return 2;
    }
    if (o->ramp == have_rate || (o->ramp && (!o->rate_max || !o->step_seconds))) {
      fprintf(stderr, "storm-load: give either --rate (and --duration) or --rate-start, --rate-step, --rate-max"
                      " and --step-seconds\n");
      return 2;
    }
    if ((uint64_t)o->rooms * o->room_size > LOAD_MAX_TOTAL_CONNS) {
      fprintf(stderr, "storm-load: bad value for --rooms x --room-size: %u (at most %d connections per run)\n",
              o->rooms * o->room_size, LOAD_MAX_TOTAL_CONNS);
      return 2;
    }
    total = o->rooms * o->room_size;
    what = "--rooms x --room-size";
    break;
  case S_CHAT:
    if (!o->users || !have_rate || duration <= 0) {
      fprintf(stderr, "storm-load: --users, --rate and --duration (above 0) are required\n");
      return 2;
    }
    if (o->rate * o->users > LOAD_MAX_RATE) {
      fprintf(stderr, "storm-load: bad value for --rate: %g actions/s per user x %u users is more than %d per second\n",
              o->rate, o->users, LOAD_MAX_RATE);
      return 2;
    }
    if (classes) {
      if (chat_parse_classes(classes, o->users, o->classes, &o->nclasses, err, sizeof err) < 0) {
        fprintf(stderr, "storm-load: bad value for --channels: %s\n", err);
        return 2;
      }
    } else {
      chat_default_classes(o->users, o->classes, &o->nclasses);
    }
    if (!have_dms) o->dms = o->users / 2;
    total = o->users;
    what = "--users";
    break;
  case S_DAY: {
    if (!o->plan_path) {
      fprintf(stderr, "storm-load: --plan FILE is required\n");
      return 2;
    }
    if (dayplan_load(o->plan_path, &o->day, err, sizeof err) < 0) {
      fprintf(stderr, "storm-load: bad plan %s: %s\n", o->plan_path, err);
      return 2;
    }
    unsigned S = o->room_users * o->devices;
    if (S < 2 || S > 1000) {
      fprintf(stderr, "storm-load: bad value for --room-users x --devices: %u (a room has 2 to 1000 connections)\n", S);
      return 2;
    }
    if (!have_conn_rate) o->conn_rate = 5000;
    total = o->day.max_conns;
    what = "the plan's conns";
    /* Rooms go to workers in turn: the busiest worker holds ceil(R/P) rooms. */
    unsigned rooms = (total + S - 1) / S, need = 1;
    while (need < LOAD_MAX_PROCS && (uint64_t)((rooms + need - 1) / need) * S > LOAD_MAX_CONNS) need++;
    if (o->procs < need || (uint64_t)((rooms + need - 1) / need) * S > LOAD_MAX_CONNS) {
      fprintf(stderr, "storm-load: bad value for --procs: %u connections in rooms of %u need --procs %u or more (at most %d per process)\n",
              total, S, need, LOAD_MAX_CONNS);
      return 2;
    }
    if (o->procs > rooms) o->procs = rooms;
    return 0;
  }
  default:
    if (!o->vus || (!o->iterations && duration <= 0)) {
      fprintf(stderr, "storm-load: --vus and --iterations or --duration are required\n");
      return 2;
    }
    return 0;
  }
  if (total > (uint64_t)o->procs * LOAD_MAX_CONNS) {
    unsigned need = (total + LOAD_MAX_CONNS - 1) / LOAD_MAX_CONNS;
    fprintf(stderr, "storm-load: bad value for %s: %u connections need --procs %u or more (at most %d per process)\n",
            what, total, need, LOAD_MAX_CONNS);
    return 2;
  }
  if (o->procs > total) o->procs = total;
  (void)have_procs;
  return 0;
}
