#!/usr/bin/env bash
# A local STORM cluster of real processes on 127.0.0.1, the topology the
# distributed-mode tests run on:
#   - a 3-node NATS cluster (routes between all three),
#   - PostgreSQL 15 (initdb into the state directory), migrated with
#     `storm migrate`,
#   - Redis,
#   - an S3-compatible server (scripts/s3rver.js, signatures checked) that
#     holds the media objects: every gateway streams uploads into it and
#     serves downloads from it, whichever gateway took the upload,
#   - 3 gateway processes sharing one port (--reuseport; the kernel spreads
#     connections over them), each on a different first NATS node,
#   - 2 replicas of each other service: users, messages, media (metadata
#     in PostgreSQL) and notifications (its store is the Redis above).
#
#   scripts/cluster.sh up      start everything; prints the gateway URL
#   scripts/cluster.sh status  every process: alive? ready?
#   scripts/cluster.sh down    stop everything, remove the state directory
#   scripts/cluster.sh env     the addresses, as sourceable `export` lines
#
# Settings (environment): STORM_CLUSTER_DIR (state, default
# /tmp/storm-cluster), STORM_BIN (default build/storm), GATEWAY_PORT
# (default: a free port), STORM_CLUSTER_ARGS (extra `storm serve` flags for
# every STORM process, e.g. fast argon2 for tests), STORM_JWT_SECRET
# (default: generated once into the state directory).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/servers.sh
source scripts/lib/servers.sh

DIR=${STORM_CLUSTER_DIR:-/tmp/storm-cluster}
STORM_BIN=${STORM_BIN:-build/storm}

storm_procs() { # name port args... per line, from the state
  cat "$DIR/procs"
}

up() {
  if [ -f "$DIR/env" ]; then echo "cluster: already up (state in $DIR); run down first" >&2; exit 1; fi
  [ -x "$STORM_BIN" ] || { echo "cluster: no binary at $STORM_BIN (run make)" >&2; exit 1; }
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  chmod 755 "$DIR"

  local n1 n2 n3 m1 m2 m3 c1 c2 c3
  n1=$(free_port); n2=$(free_port); n3=$(free_port)
  m1=$(free_port); m2=$(free_port); m3=$(free_port)
  c1=$(free_port); c2=$(free_port); c3=$(free_port)
  start_nats "$DIR" nats1 "$n1" "$m1" "$c1" "$c2" "$c3"
  start_nats "$DIR" nats2 "$n2" "$m2" "$c2" "$c1" "$c3"
  start_nats "$DIR" nats3 "$n3" "$m3" "$c3" "$c1" "$c2"
  for m in "$m1" "$m2" "$m3"; do
    wait_for 10 bash -c "curl -sf http://127.0.0.1:$m/routez | grep -q '\"num_routes\": 2'"
  done

  local pg redis
  pg=$(free_port); redis=$(free_port)
  start_pg "$DIR" "$pg" storm
  start_redis "$DIR" "$redis"
  local s3 s3_secret
  s3=$(free_port)
  s3_secret=$(head -c 30 /dev/urandom | base64 | tr -d '\n/+=')
  start_s3rver "$DIR" "$s3" storm-cluster "$s3_secret"
  export MINIO_ENDPOINT="http://127.0.0.1:$s3" MINIO_ACCESS_KEY=storm-cluster \
    MINIO_SECRET_KEY="$s3_secret" MINIO_BUCKET=storm-media

  local db="postgresql://postgres@127.0.0.1:$pg/storm"
  "$STORM_BIN" migrate --db "$db" >"$DIR/migrate.log" 2>&1 || {
    echo "cluster: storm migrate failed:" >&2; cat "$DIR/migrate.log" >&2; exit 1; }

  if [ -z "${STORM_JWT_SECRET:-}" ]; then
    [ -f "$DIR/jwt.secret" ] || head -c 48 /dev/urandom | base64 | tr -d '\n' >"$DIR/jwt.secret"
    STORM_JWT_SECRET=$(cat "$DIR/jwt.secret")
  fi
  export STORM_JWT_SECRET

  local gw=${GATEWAY_PORT:-$(free_port)}
  local nats_urls=("nats://127.0.0.1:$n1" "nats://127.0.0.1:$n2" "nats://127.0.0.1:$n3")
  : >"$DIR/procs"
  # name services port first-nats-index
  local specs=(
    "gateway1 gateway $gw 0" "gateway2 gateway $gw 1" "gateway3 gateway $gw 2"
    "users1 users - 0" "users2 users - 1"
    "messages1 messages - 1" "messages2 messages - 2"
    "media1 media - 2" "media2 media - 0"
    "notifications1 notifications - 0" "notifications2 notifications - 1"
  )
  for spec in "${specs[@]}"; do
    read -r name services port first <<<"$spec"
    [ "$port" = "-" ] && port=$(free_port)
    # Each process lists all three NATS nodes, starting with its own.
    local bus="${nats_urls[$first]}"
    for i in 0 1 2; do [ "$i" != "$first" ] && bus="$bus,${nats_urls[$i]}"; done
    mkdir -p "$DIR/$name"
    # shellcheck disable=SC2086
    "$STORM_BIN" serve --services "$services" --host 127.0.0.1 --port "$port" --reuseport \
      --data "$DIR/$name" --bus "$bus" --db "$db" --redis "127.0.0.1:$redis" \
      ${STORM_CLUSTER_ARGS:-} >"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
    echo "$name $services $port" >>"$DIR/procs"
  done
  # Ready = every process answers /readyz with 200 (bus, stores connected).
  while read -r name _ port; do
    if ! wait_for 20 curl -sf "http://127.0.0.1:$port/readyz"; then
      echo "cluster: $name did not become ready; its log:" >&2
      tail -20 "$DIR/$name.log" >&2
      exit 1
    fi
  done < <(storm_procs)

  cat >"$DIR/env" <<EOF
export STORM_CLUSTER_URL=http://127.0.0.1:$gw
export STORM_CLUSTER_GATEWAY_PORT=$gw
export STORM_CLUSTER_NATS=nats://127.0.0.1:$n1,nats://127.0.0.1:$n2,nats://127.0.0.1:$n3
export STORM_CLUSTER_NATS_PIDS="$DIR/nats1.pid $DIR/nats2.pid $DIR/nats3.pid"
export STORM_CLUSTER_DB=$db
export STORM_CLUSTER_REDIS=127.0.0.1:$redis
export STORM_CLUSTER_S3=http://127.0.0.1:$s3
export STORM_CLUSTER_DIR=$DIR
EOF
  echo "cluster: up — gateways on http://127.0.0.1:$gw (state and logs in $DIR)"
}

status() {
  [ -f "$DIR/procs" ] || { echo "cluster: down"; return 1; }
  local bad=0
  for n in nats1 nats2 nats3; do
    if kill -0 "$(cat "$DIR/$n.pid" 2>/dev/null)" 2>/dev/null; then echo "$n: running"
    else echo "$n: NOT RUNNING"; bad=1; fi
  done
  while read -r name services port; do
    local pid; pid=$(cat "$DIR/$name.pid")
    if ! kill -0 "$pid" 2>/dev/null; then echo "$name ($services): NOT RUNNING"; bad=1; continue; fi
    local code; code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)
    echo "$name ($services, pid $pid, port $port): readyz $code"
    [ "$code" = 200 ] || bad=1
  done < <(storm_procs)
  return $bad
}

down() {
  [ -d "$DIR" ] || return 0
  if [ -f "$DIR/procs" ]; then
    while read -r name _ _; do kill_pidfile "$DIR/$name.pid"; done < <(storm_procs)
    # SIGTERM drains; give them the shutdown timeout, then insist.
    for _ in $(seq 100); do
      local alive=0
      while read -r name _ _; do kill -0 "$(cat "$DIR/$name.pid")" 2>/dev/null && alive=1; done < <(storm_procs)
      [ $alive = 0 ] && break
      sleep 0.1
    done
    while read -r name _ _; do kill -9 "$(cat "$DIR/$name.pid")" 2>/dev/null || true; done < <(storm_procs)
  fi
  for n in nats1 nats2 nats3; do kill_pidfile "$DIR/$n.pid"; done
  kill_pidfile "$DIR/redis.pid"
  kill_pidfile "$DIR/s3rver.pid"
  stop_pg "$DIR"
  rm -rf "$DIR"
  echo "cluster: down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) cat "$DIR/env" ;;
  *) echo "usage: $0 up|status|down|env" >&2; exit 2 ;;
esac
