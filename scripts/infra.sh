#!/usr/bin/env bash
# Starts and stops the real servers that distributed-mode tests need, as
# plain processes on 127.0.0.1 under one directory (no systemd, no Docker):
#
#   scripts/infra.sh start DIR   -> nats-server, PostgreSQL 15, redis-server,
#                                   s3rver (S3, scripts/s3rver.js);
#                                   writes DIR/env (sourceable `export` lines:
#                                   STORM_TEST_NATS_URL, STORM_TEST_PG,
#                                   STORM_TEST_REDIS, STORM_TEST_S3_ENDPOINT,
#                                   STORM_TEST_S3_ACCESS_KEY,
#                                   STORM_TEST_S3_SECRET_KEY) and prints it
#   scripts/infra.sh stop DIR    -> stops whatever DIR holds, removes DIR
#
# Ports are picked free by the kernel at start. PostgreSQL keeps fsync on:
# tests that kill processes must prove durability on a real disk flush.
# initdb refuses root, so PostgreSQL runs as the postgres user and DIR must
# be traversable by it (use /tmp, not /root).
set -euo pipefail

# shellcheck source=scripts/lib/servers.sh
source "$(dirname "$0")/lib/servers.sh"

start() {
  local d=$1
  mkdir -p "$d"
  d=$(cd "$d" && pwd)
  local nats_port nats_mon pg_port redis_port s3_port s3_secret
  nats_port=$(free_port); nats_mon=$(free_port); pg_port=$(free_port); redis_port=$(free_port)
  s3_port=$(free_port)
  # A fresh secret per run: tests must sign with the configured key.
  s3_secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(30))')
  start_nats "$d" nats "$nats_port" "$nats_mon"
  start_pg "$d" "$pg_port" storm_test
  start_redis "$d" "$redis_port"
  start_s3rver "$d" "$s3_port" storm-test-access "$s3_secret"
  cat >"$d/env" <<EOV
export STORM_TEST_NATS_URL=nats://127.0.0.1:$nats_port
export STORM_TEST_NATS_MON=http://127.0.0.1:$nats_mon
export STORM_TEST_PG='postgresql://postgres@127.0.0.1:$pg_port/storm_test'
export STORM_TEST_REDIS=127.0.0.1:$redis_port
export STORM_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
export STORM_TEST_S3_ACCESS_KEY=storm-test-access
export STORM_TEST_S3_SECRET_KEY='$s3_secret'
EOV
  cat "$d/env"
}

stop() {
  local d=$1
  [ -d "$d" ] || return 0
  kill_pidfile "$d/nats.pid"
  kill_pidfile "$d/redis.pid"
  kill_pidfile "$d/s3rver.pid"
  [ -d "$d/pg/data" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$d"
}

case "${1:-}" in
  start) start "${2:?usage: infra.sh start DIR}" ;;
  stop) stop "${2:?usage: infra.sh stop DIR}" ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
