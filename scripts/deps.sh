#!/usr/bin/env bash
# Installs the Debian 12 packages Doorman needs to build and test, only those missing.
# Quiet when nothing is missing. Must run as root (or with sudo available) when installing.
set -euo pipefail

BUILD_PKGS=(build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libcpprest-dev libboost-dev libssl-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libyaml-cpp-dev libre2-dev)
# Real peers and clients used by the integration tests and the demo.
TEST_PKGS=(python3 curl redis-server redis-tools procps iproute2 openssl nginx libnginx-mod-stream haproxy dnsutils dnsmasq-base iperf3 postgresql)

want=("${BUILD_PKGS[@]}")
case "${1:-build}" in
  build) ;;
  test|demo) want+=("${TEST_PKGS[@]}") ;;
  *) echo "usage: deps.sh [build|test|demo]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts redis-server as a system service on install; the tests run their own instances.
if printf '%s\n' "${missing[@]}" | grep -qx redis-server && command -v systemctl >/dev/null; then
  $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
