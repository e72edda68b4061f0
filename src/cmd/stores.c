/* stores.c — see stores.h. */
#include "cmd/stores.h"

#include <errno.h>

#include "core/log.h"
#include "store/pg/media_pg.h"
#include "store/pg/messages_pg.h"
#include "store/pg/pg_db.h"
#include "store/pg/users_pg.h"
#include "store/sqlite/media_sqlite.h"
#include "store/sqlite/messages_sqlite.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/users_sqlite.h"

static bool use_pg(const cmd_db_t *db) { return db->cfg->db_url[0] != '\0'; }

static int open_db(cmd_db_t *db) {
  char err[512];
  if (use_pg(db)) {
    if (db->pg) return 0;
    if (pg_db_open(db->cfg->db_url, 0, &db->pg, err, sizeof err) < 0) {
      /* The URL may hold a password: name the setting, not the value. */
      log_error("main", "cannot open the PostgreSQL database (--db / DATABASE_URL): %s", err);
      return -1;
    }
    return 0;
  }
  if (db->sqlite) return 0;
  if (sqlite_db_open(db->cfg->data_dir, &db->sqlite, err, sizeof err) < 0) {
    log_error("main", "cannot open the database in %s: %s", db->cfg->data_dir, err);
    return -1;
  }
  return 0;
}

static int opened(int rc, const char *what) {
  if (rc == 0) return 0;
  log_error("main", "cannot open the %s store: %s%s", what, uv_strerror(rc),
            rc == -EPROTO ? " (the database schema is older than this binary: run `storm migrate`)"
                          : "");
  return -1;
}

int cmd_users_store_open(cmd_db_t *db, users_store_t **out) {
  if (open_db(db)) return -1;
  if (use_pg(db)) return opened(users_pg_open(db->pg, NULL, out), "users");
  return opened(users_sqlite_open(db->sqlite, out), "users");
}

int cmd_messages_store_open(cmd_db_t *db, uv_loop_t *loop, messages_store_t **out) {
  if (open_db(db)) return -1;
  if (use_pg(db)) {
    /* Node ids (in message ids) are leased from the database: replicas
     * never share one. */
    messages_pg_opts_t o = {.loop = loop};
    return opened(messages_pg_open(db->pg, &o, out), "messages");
  }
  messages_sqlite_opts_t o = {.loop = loop, .node_id = 0};
  return opened(messages_sqlite_open(db->sqlite, &o, out), "messages");
}

int cmd_media_store_open(cmd_db_t *db, media_store_t **out) {
  if (open_db(db)) return -1;
  if (use_pg(db)) return opened(media_pg_open(db->pg, NULL, out), "media");
  return opened(media_sqlite_open(db->sqlite, out), "media");
}

static void probe_run(uv_work_t *w) {
  cmd_db_t *db = w->data;
  pg_db_ping(db->pg);
}

static void probe_done(uv_work_t *w, int status) {
  (void)status;
  ((cmd_db_t *)w->data)->probing = false;
}

static void on_probe(uv_timer_t *t) {
  cmd_db_t *db = t->data;
  if (db->probing) return;
  db->probe_work.data = db;
  if (uv_queue_work(t->loop, &db->probe_work, probe_run, probe_done) == 0) db->probing = true;
}

static bool database_ready(void *arg) { return pg_db_ready(((cmd_db_t *)arg)->pg); }

bool cmd_db_store_checks(const cmd_db_t *db) { return !use_pg(db); }

void cmd_db_watch(cmd_db_t *db, uv_loop_t *loop, health_t *health) {
  if (!db->pg || db->probe_open) return;
  health_add(health, "database", database_ready, db);
  uv_timer_init(loop, &db->probe);
  db->probe.data = db;
  db->probe_open = true;
  uv_timer_start(&db->probe, on_probe, 1000, 1000);
}

void cmd_db_unwatch(cmd_db_t *db) {
  if (!db->probe_open) return;
  db->probe_open = false;
  uv_close((uv_handle_t *)&db->probe, NULL);
}

void cmd_db_close(cmd_db_t *db) {
  sqlite_db_close(db->sqlite);
  db->sqlite = NULL;
  if (db->pg) pg_db_close(db->pg);
  db->pg = NULL;
}
