#!/usr/bin/env bash
# Starts and stops the real servers that distributed-mode tests need, as
# plain processes on 127.0.0.1 under one directory (no systemd, no Docker):
#
#   scripts/infra.sh start DIR   -> nats-server, PostgreSQL 15, redis-server;
#                                   writes DIR/env (sourceable `export` lines:
#                                   STORM_TEST_NATS_URL, STORM_TEST_PG,
#                                   STORM_TEST_REDIS) and prints it
#   scripts/infra.sh stop DIR    -> stops whatever DIR holds, removes DIR
#
# Ports are picked free by the kernel at start. PostgreSQL keeps fsync on:
# tests that kill processes must prove durability on a real disk flush.
# initdb refuses root, so PostgreSQL runs as the postgres user and DIR must
# be traversable by it (use /tmp, not /root).
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() { # seconds, command...
  local n=$(( $1 * 20 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "infra: timed out waiting for: $*" >&2
  return 1
}

start() {
  local d=$1
  mkdir -p "$d"
  d=$(cd "$d" && pwd)
  chmod 755 "$d"
  local nats_port nats_mon pg_port redis_port
  nats_port=$(free_port); nats_mon=$(free_port); pg_port=$(free_port); redis_port=$(free_port)

  nats-server -a 127.0.0.1 -p "$nats_port" -m "$nats_mon" -l "$d/nats.log" -P "$d/nats.pid" &
  wait_for 10 curl -sf "http://127.0.0.1:$nats_mon/healthz"

  mkdir -p "$d/pg"
  chown postgres: "$d/pg"
  runuser -u postgres -- "$PGBIN/initdb" -D "$d/pg/data" -U postgres --auth-local=trust \
    --auth-host=trust -E UTF8 --locale=C.UTF-8 >"$d/pg/initdb.log" 2>&1
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d/pg/data" -l "$d/pg/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $d/pg -c max_connections=200" start >/dev/null
  runuser -u postgres -- psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE storm_test" >/dev/null

  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$d" \
    --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log"
  wait_for 10 redis-cli -p "$redis_port" ping

  cat >"$d/env" <<EOF
export STORM_TEST_NATS_URL=nats://127.0.0.1:$nats_port
export STORM_TEST_NATS_MON=http://127.0.0.1:$nats_mon
export STORM_TEST_PG='postgresql://postgres@127.0.0.1:$pg_port/storm_test'
export STORM_TEST_REDIS=127.0.0.1:$redis_port
EOF
  cat "$d/env"
}

stop() {
  local d=$1
  [ -d "$d" ] || return 0
  [ -f "$d/nats.pid" ] && kill "$(cat "$d/nats.pid")" 2>/dev/null || true
  [ -f "$d/redis.pid" ] && kill "$(cat "$d/redis.pid")" 2>/dev/null || true
  [ -d "$d/pg/data" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$d"
}

case "${1:-}" in
  start) start "${2:?usage: infra.sh start DIR}" ;;
  stop) stop "${2:?usage: infra.sh stop DIR}" ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
