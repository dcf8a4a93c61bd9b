#!/usr/bin/env bash
# Configures and builds Doorman with Ninja + ccache.
# usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]   (default BUILD_DIR: build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bdir=${1:-$root/build}
shift || true
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1 CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
# Configure only when needed: a fresh dir, or new cmake args.
stamp="$bdir/.doorman-cmake-args"
args="-G Ninja $*"
mkdir -p "$bdir"
if [ ! -f "$bdir/build.ninja" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$args" ]; then
  cmake -S "$root" -B "$bdir" -G Ninja "$@" >"$bdir/configure.log" 2>&1 || {
    cat "$bdir/configure.log" >&2; exit 1; }
  echo "$args" >"$stamp"
fi
jobs=${DOORMAN_JOBS:-2}
# Ninja's progress lines are hidden (quiet when there is nothing to do); errors still show.
set +e
cmake --build "$bdir" -j"$jobs" ${DOORMAN_TARGETS:+--target $DOORMAN_TARGETS} 2>&1 |
  grep -vE '^\[[0-9]+/[0-9]+\] |^ninja: no work to do'
rc=${PIPESTATUS[0]}
set -e
exit "$rc"
