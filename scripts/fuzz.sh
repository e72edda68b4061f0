#!/usr/bin/env bash
# Builds every libFuzzer target (test/fuzz/fuzz_*.c) and runs each for a
# bounded time (first argument, seconds; default 30) starting from its seed
# corpus in test/fuzz/corpus/<name>/. New inputs go to a scratch directory,
# not the tree. A crash, leak or sanitizer report fails the run and leaves
# the reproducer in build/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
make -s -j2 BUILD=fuzz fuzz-build
mkdir -p build/fuzz/artifacts
status=0
for bin in build/fuzz/fuzz/fuzz_*; do
  case $bin in *.d) continue ;; esac
  name=$(basename "$bin"); name=${name#fuzz_}
  scratch=$(mktemp -d)
  seeds=test/fuzz/corpus/$name
  [ -d "$seeds" ] || seeds=""
  echo "fuzz: $name for ${secs}s"
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix=build/fuzz/artifacts/"$name"- "$scratch" $seeds >build/fuzz/"$name".log 2>&1; then
    echo "fuzz: $name FAILED"; tail -40 build/fuzz/"$name".log; status=1
  else
    grep -E 'stat::number_of_executed_units|Done' build/fuzz/"$name".log | tail -2
  fi
  rm -rf "$scratch"
done
exit $status
