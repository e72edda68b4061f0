#!/usr/bin/env bash
# Installs every build and test dependency of STORM on Debian 12, idempotently:
# apt packages only when one is missing, npm packages from the lockfile only
# when node_modules is stale. Runs as root (or with sudo available).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(
  build-essential pkg-config clang libclang-rt-14-dev   # compilers, libFuzzer + sanitizers
  libuv1-dev libjansson-dev libsodium-dev libssl-dev libsqlite3-dev  # runtime libraries
  libnats-dev libhiredis-dev libpq-dev libcurl4-openssl-dev          # distributed-mode clients
  nats-server postgresql redis-server                    # distributed-mode servers (tests, cluster script)
  libcmocka-dev                                          # C unit tests
  python3 python3-websockets                             # black-box test client
  wrk nginx-light curl procps iproute2                   # benchmark and tooling (ss: which gateway holds a test socket)
)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js may come from elsewhere than Debian (a nodesource build bundles npm
# and conflicts with Debian's npm package): ask for the commands, not packages.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node test tooling, pinned by package-lock.json.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "deps: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules
fi
