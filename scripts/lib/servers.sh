# shellcheck shell=bash
# Functions that start the real servers STORM's distributed mode uses, as
# plain processes on 127.0.0.1 (no systemd, no Docker). Sourced by
# scripts/infra.sh (one of each, for tests) and scripts/cluster.sh (the
# local cluster). Each start_* function waits until its server answers.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() { # seconds, command...
  local n=$(( $1 * 20 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "servers: timed out waiting for: $*" >&2
  return 1
}

# start_nats DIR NAME PORT MONPORT [CLUSTERPORT ROUTES...]
# ROUTES are the cluster ports of the other nodes.
start_nats() {
  local d=$1 name=$2 port=$3 mon=$4 cport=${5:-}
  shift 5 2>/dev/null || shift $#
  local conf="$d/$name.conf"
  {
    echo "server_name: $name"
    echo "host: 127.0.0.1"
    echo "port: $port"
    echo "http: \"127.0.0.1:$mon\""
    echo "pid_file: \"$d/$name.pid\""
    echo "log_file: \"$d/$name.log\""
    if [ -n "$cport" ]; then
      echo "cluster {"
      echo "  name: storm"
      echo "  host: 127.0.0.1"
      echo "  port: $cport"
      printf '  routes: ['
      local sep=""
      for r in "$@"; do printf '%snats-route://127.0.0.1:%s' "$sep" "$r"; sep=", "; done
      echo "]"
      echo "}"
    fi
  } >"$conf"
  nats-server -c "$conf" >/dev/null 2>&1 &
  wait_for 10 curl -sf "http://127.0.0.1:$mon/healthz"
}

# start_pg DIR PORT DBNAME — fsync stays on: durability tests rely on it.
start_pg() {
  local d=$1 port=$2 db=$3
  mkdir -p "$d/pg"
  chmod 755 "$d"
  chown postgres: "$d/pg"
  runuser -u postgres -- "$PGBIN/initdb" -D "$d/pg/data" -U postgres --auth-local=trust \
    --auth-host=trust -E UTF8 --locale=C.UTF-8 >"$d/pg/initdb.log" 2>&1
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d/pg/data" -l "$d/pg/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $d/pg -c max_connections=200" start >/dev/null
  runuser -u postgres -- psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE $db" >/dev/null
}

stop_pg() {
  local d=$1
  [ -d "$d/pg/data" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d/pg/data" -m fast stop >/dev/null 2>&1 || true
}

# start_redis DIR PORT
start_redis() {
  local d=$1 port=$2
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$d" \
    --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log"
  wait_for 10 redis-cli -p "$port" ping
}

# start_s3rver DIR PORT ACCESS_KEY SECRET_KEY — the S3-compatible test
# server (scripts/s3rver.js: npm @20minutes/s3rver, which verifies SigV4),
# its objects under DIR/s3, pid in DIR/s3rver.pid, log in DIR/s3rver.log.
start_s3rver() {
  local d=$1 port=$2 ak=$3 sk=$4
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  mkdir -p "$d/s3"
  S3RVER_ACCESS_KEY=$ak S3RVER_SECRET_KEY=$sk \
    node "$root/scripts/s3rver.js" --address 127.0.0.1 --port "$port" --directory "$d/s3" \
    >"$d/s3rver.log" 2>&1 &
  echo $! >"$d/s3rver.pid"
  wait_for 15 grep -q "s3rver listening" "$d/s3rver.log"
}

kill_pidfile() { # FILE
  [ -f "$1" ] && kill "$(cat "$1")" 2>/dev/null || true
}
