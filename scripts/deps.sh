#!/usr/bin/env bash
# Installs the Debian 12 packages Doorman needs to build and test, only those missing.
# Quiet when nothing is missing. Must run as root (or with sudo available) when installing.
set -euo pipefail

BUILD_PKGS=(build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libcpprest-dev libboost-dev libssl-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libyaml-cpp-dev libre2-dev)
# Real peers and clients used by the integration tests and the demo.
TEST_PKGS=(python3 curl redis-server redis-tools procps iproute2 openssl
  python3-yaml golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev prometheus
  nginx-light libnginx-mod-stream haproxy wrk python3-websockets
  dnsutils dnsmasq-base iperf3 postgresql libcap2-bin)

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
# Debian starts these as system services on install; the tests and benchmarks run their own
# instances on 127.0.0.1, so the system-wide ones are stopped and disabled.
if command -v systemctl >/dev/null; then
  # package:service pairs; only services of packages installed just now are touched.
  for pair in redis-server:redis-server prometheus:prometheus prometheus:prometheus-node-exporter \
              nginx-light:nginx nginx:nginx haproxy:haproxy dnsmasq:dnsmasq; do
    if printf '%s\n' "${missing[@]}" | grep -qx "${pair%%:*}"; then
      $SUDO systemctl disable --now "${pair#*:}" >/dev/null 2>&1 || true
    fi
  done
fi
