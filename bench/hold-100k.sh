#!/usr/bin/env bash
# Benchmark (not a test), issue 5 `hold` target: N idle authenticated
# WebSocket connections held at once on this machine, spread over G gateway
# processes sharing one port (--reuseport; each process stays under the
# 20,000-files limit) and opened by storm-load with W worker processes
# (each on its own source address 127.0.0.(2+k), so ephemeral ports never
# run short). Prints storm-load's summary, then each gateway's open
# open files and RSS in the middle of the hold.
#
#   usage: bench/hold-100k.sh [conns=100000] [gateways=6] [workers=6] [rate=5000] [hold_s=20]
#
# The gateways are embedded processes with one shared signing secret: the
# token (minted once with `storm token`) is verified statelessly by each,
# and an idle connection needs nothing else (its user has no channels).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}; G=${2:-6}; W=${3:-6}; RATE=${4:-5000}; HOLD=${5:-20}
BIN=build/release
make -s BUILD=release all
export STORM_JWT_SECRET=bench-only-secret-0123456789abcdef0123456789
DIR=$(mktemp -d /tmp/storm-hold.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT

echo 'bench-password-1' | $BIN/storm user create idle --data "$DIR/g0" >/dev/null
TOKEN=$($BIN/storm token --user idle --ttl 3600 --data "$DIR/g0")
for i in $(seq 0 $((G - 1))); do
  $BIN/storm serve --port "$PORT" --reuseport --data "$DIR/g$i" --log-level warn \
    --max-connections 19500 --ws-heartbeat 60s --ws-idle-timeout 10m >"$DIR/g$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.05; done
sleep 0.5

spids=(); for p in "${pids[@]}"; do spids+=(--server-pid "$p"); done
$BIN/storm-load hold --url "http://127.0.0.1:$PORT" --conns "$N" --rate "$RATE" --duration "$HOLD" \
  --procs "$W" --token "$TOKEN" "${spids[@]}" --report "$DIR/report.json" >/dev/null &
load=$!
# Mid-hold: every connection should be open now.
sleep $(( N / RATE + HOLD / 2 + 2 ))
total=0
for i in "${!pids[@]}"; do
  p=${pids[$i]}
  fds=$(ls /proc/"$p"/fd 2>/dev/null | wc -l)
  rss=$(awk '/VmRSS/ {print $2}' /proc/"$p"/status 2>/dev/null)
  total=$((total + fds))
  echo "mid-hold: gateway $i (pid $p): $fds open files, RSS ${rss} KiB"
done
echo "mid-hold: $total open files over $G gateways"
wait $load || true
python3 - "$DIR/report.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"connected {r['connected']} of {r['connections']}, failed {r['failed']}, dropped {r['dropped']}, "
      f"connect p50 {r['connect_ms']['p50']} ms p99 {r['connect_ms']['p99']} ms, "
      f"server RSS {r.get('server_rss_kb_baseline')} -> {r.get('server_rss_kb_end')} KiB "
      f"({r.get('server_rss_bytes_per_conn')} B/conn), close codes {r.get('close_codes')}")
EOF
echo "($(date -u +%FT%TZ), $(nproc) cores)"
