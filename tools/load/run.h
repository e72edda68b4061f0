/*
 * run.h — storm-load's options and the scenarios it runs.
 *
 * Contract:
 * - Every run is bounded: LOAD_MAX_TOTAL_CONNS connections per run, at most
 *   LOAD_MAX_CONNS per process (one process stays under the 20,000-file
 *   limit; more needs --procs), LOAD_MAX_DURATION_S of measured time plus
 *   fixed setup and drain timeouts, rates up to LOAD_MAX_RATE.
 * - A scenario returns 0 when the run completed cleanly and the report was
 *   written, 1 when the run observed errors (or missed a threshold), 2 when
 *   setup failed or a worker died (message on stderr).
 * - Progress goes to stderr once a second; the JSON report to stdout and
 *   opts->report (if set), the HTML report to opts->html (if set).
 */
#ifndef STORM_LOAD_RUN_H
#define STORM_LOAD_RUN_H

#include <stdbool.h>

#include "load/chatmix.h"
#include "load/dayplan.h"
#include "load/plan.h"
#include "load/target.h"

#define LOAD_MAX_CONNS 19000
#define LOAD_MAX_TOTAL_CONNS 100000
#define LOAD_MAX_PROCS 16
#define LOAD_MAX_DURATION_S 3600
#define LOAD_MAX_RATE 100000
#define LOAD_MAX_PIDS 8
#define LOAD_MAX_VUS 1000
#define LOAD_MAX_ITERATIONS 1000000

enum load_mode { LOAD_DURABLE, LOAD_BROADCAST };
/* How the workers drive a WebSocket run: rooms (hold, fanout, rooms: fixed
 * senders), chat (every user acts), storm-day (phases). */
enum load_kind { LOAD_KIND_ROOMS, LOAD_KIND_CHAT, LOAD_KIND_DAY };

typedef struct {
  const char *scenario; /* "hold", "fanout", "rooms", "chat", "storm-day", "auth", "ws", "media" */
  target_t target;
  unsigned conns;      /* hold: connections; fanout: members (the sender is one more) */
  unsigned rooms;      /* rooms: R */
  unsigned room_size;  /* rooms: S, the sender included */
  double rate;         /* hold: conns/s; fanout: msgs/s; rooms: msgs/s per room (fixed); chat: actions/s per user */
  double conn_rate;    /* fanout, rooms: connections/s */
  double duration;     /* seconds */
  bool ramp;           /* rooms: --rate-start given */
  double rate_start, rate_step, rate_max, step_seconds;
  double p99_target_ms;
  enum load_mode mode;
  bool random_nonces;  /* --nonces random: scattered in the server's nonce index, like UUIDs */
  bool peer;           /* the target is a Bun/Node ws peer: GET /ws?room=C, no setup */
  unsigned procs;      /* worker processes (1: one worker, no source-address binding) */
  int server_pids[LOAD_MAX_PIDS];
  unsigned npids;
  unsigned vus, iterations; /* auth, ws, media: VUs, iterations shared by all VUs (k6's meaning) */
  unsigned think_ms;   /* auth: pause after each iteration (k6's sleep(1)) */
  const char *token;   /* hold: use this token instead of registering */
  /* chat */
  unsigned users, dms, history_limit;
  chat_class_t classes[CHAT_MAX_CLASSES];
  unsigned nclasses;
  chat_weights_t weights;
  uint64_t seed;
  /* storm-day */
  const char *plan_path;
  day_plan_t day;
  unsigned room_users, devices; /* accounts per room, connections (devices) per account */
  const char *report, *html;
  char prefix[16];     /* username prefix of the accounts this run creates */
} load_opts_t;

/* What the workers need to know about a WebSocket run, set up by the parent
 * before it forks (tokens and channels are inherited). */
typedef struct {
  unsigned conns;      /* all connections of the run */
  unsigned rooms;      /* 0 (hold) or R; room r is conns [r*S, (r+1)*S), its sender the first */
  unsigned room_size;
  char **tokens;       /* NULL (peer), 1 (hold: shared) or conns tokens */
  unsigned ntokens;
  long long *channels; /* rooms entries: the channel (or peer room) id of each room */
  plan_t plan;
  enum load_kind kind;
  const chat_layout_t *chat; /* chat: conversations (channel ids filled) */
  const day_plan_t *day;     /* storm-day: phases; rooms x room_size slots */
  unsigned room_users, devices; /* storm-day: room r's accounts are tokens [r*room_users, (r+1)*room_users) */
} load_shape_t;

int load_run_hold(const load_opts_t *o);
int load_run_fanout(const load_opts_t *o);
int load_run_rooms(const load_opts_t *o);
int load_run_chat(const load_opts_t *o);
int load_run_day(const load_opts_t *o);
int load_run_auth(const load_opts_t *o);
int load_run_ws(const load_opts_t *o);
int load_run_media(const load_opts_t *o);

#endif
