#!/usr/bin/env bash
# Builds the unit tests with -fsanitize=address,undefined in build-asan/ and runs them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh" build
DOORMAN_TARGETS=unit_tests \
  "$root/scripts/build.sh" "$root/build-asan" -DDOORMAN_SANITIZE=ON
cd "$root/build-asan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --output-on-failure --timeout 300 -L unit
