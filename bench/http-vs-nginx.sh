#!/usr/bin/env bash
# Benchmark (not a test): wrk against STORM's GET /healthz and against nginx
# serving a small static file, on this machine, in the same run, with the
# same wrk settings. Both servers get one worker (STORM is one loop per
# process). Prints requests/s for both and the ratio.
#   usage: bench/http-vs-nginx.sh [duration_s=10] [connections=50]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10}; conns=${2:-50}
make -s BUILD=release >/dev/null
tmp=$(mktemp -d)
cleanup() { kill "$spid" "$(cat "$tmp/nginx.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sport=$(free_port); nport=$(free_port)

STORM_JWT_SECRET=bench-only-secret-0123456789abcdef0123456789 \
  build/release/storm serve --port "$sport" --data "$tmp/data" --log-level warn 2>"$tmp/storm.log" &
spid=$!

printf '{"status":"ok"}' >"$tmp/healthz"
cat >"$tmp/nginx.conf" <<NGX
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err warn;
daemon on;
events { worker_connections 1024; }
http {
  access_log off;
  open_file_cache max=16 inactive=60s;   # no open()/fstat() per request: closer to an in-memory answer
  server {
    listen 127.0.0.1:$nport;
    location = /healthz { default_type application/json; alias $tmp/healthz; }
  }
}
NGX
nginx -c "$tmp/nginx.conf" -p "$tmp"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$sport/healthz" >/dev/null && curl -sf "http://127.0.0.1:$nport/healthz" >/dev/null && break; sleep 0.1; done

run() { wrk -t1 -c"$conns" -d"${dur}s" --latency "$1" | tee -a "$tmp/wrk.out" | awk '/Requests\/sec/ {print $2}'; }
echo "wrk -t1 -c$conns -d${dur}s, $(nproc) cores shared by client and server"
storm_rps=$(run "http://127.0.0.1:$sport/healthz")
nginx_rps=$(run "http://127.0.0.1:$nport/healthz")
grep -E 'Latency|99%' "$tmp/wrk.out" | sed 's/^/  /'
printf 'storm  GET /healthz : %12.0f req/s\n' "$storm_rps"
printf 'nginx  static file  : %12.0f req/s\n' "$nginx_rps"
awk -v s="$storm_rps" -v n="$nginx_rps" 'BEGIN { printf "ratio storm/nginx  : %12.2f\n", s / n }'
