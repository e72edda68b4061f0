#!/usr/bin/env bash
# Every STORM test suite, in order: unit tests, black-box tests with two
# independent WebSocket clients (Node ws, Python websockets), the users and
# messaging suites against a local cluster, the same again under ASan+UBSan,
# then bounded fuzzing. Starts NATS, PostgreSQL and Redis first. Prints one closing line
# "suites: N passed, N failed" and exits non-zero if any suite failed.
set -u
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
pass=0; fail=0; failed=()

suite() { # name, command...
  local name=$1; shift
  echo "=== suite: $name"
  local t0=$SECONDS
  if "$@"; then pass=$((pass + 1)); echo "=== suite $name: ok ($((SECONDS - t0)) s)"
  else fail=$((fail + 1)); failed+=("$name"); echo "=== suite $name: FAILED ($((SECONDS - t0)) s)"; fi
}

blackbox() { # binary
  STORM_BIN=$1 node --test test/blackbox/ &&
  STORM_BIN=$1 /usr/bin/python3 -m unittest discover -s test/blackbox -p 'test_*.py'
}

# Real NATS, PostgreSQL and Redis for the distributed-mode tests: every
# suite below sees STORM_TEST_NATS_URL, STORM_TEST_PG and STORM_TEST_REDIS.
INFRA_DIR=$(mktemp -d /tmp/storm-infra.XXXXXX)
trap 'scripts/infra.sh stop "$INFRA_DIR"' EXIT
if scripts/infra.sh start "$INFRA_DIR" >/dev/null; then
  # shellcheck disable=SC1091
  source "$INFRA_DIR/env"
else
  echo "test-all: could not start NATS/PostgreSQL/Redis (logs in $INFRA_DIR)"; fail=$((fail + 1)); failed+=("infra")
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

suite build make -j2 all unit-build bench-build
suite unit make -s unit
suite blackbox blackbox build/storm
# The users and messaging suites again, each server a whole local cluster
# (scripts/cluster.sh: 3 NATS nodes, PostgreSQL, Redis, 3 gateways, 2
# replicas per service); cluster_faults.test.js already ran above.
suite cluster-blackbox env STORM_TEST_TOPOLOGY=cluster STORM_BIN=build/storm node --test \
  test/blackbox/auth.test.js test/blackbox/messaging.test.js test/blackbox/messaging_badinput.test.js \
  test/blackbox/messaging_durability.test.js test/blackbox/broadcast.test.js test/blackbox/ws.test.js \
  test/blackbox/notifications.test.js test/blackbox/media_attachments.test.js
suite k6-syntax scripts/check-k6.sh
suite asan-build make -j2 BUILD=asan all unit-build
suite asan-unit make -s BUILD=asan unit
suite asan-blackbox blackbox build/asan/storm
suite fuzz scripts/fuzz.sh "$FUZZ_SECONDS"

[ $fail -eq 0 ] || echo "failed suites: ${failed[*]}"
echo "suites: $pass passed, $fail failed"
[ $fail -eq 0 ]
