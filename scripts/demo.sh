#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds, and runs the standalone demo
# (controller --manifests examples/quickstart.yaml + dataplane + two sample backends) until Ctrl-C.
# Set DOORMAN_DEMO_ONESHOT=1 to run the printed checks once and exit (used by the test suite).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh" demo
"$root/scripts/build.sh" "$root/build"
B="$root/build"
work=$(mktemp -d /tmp/doorman-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

for port in 8080 8081 9001 9002 18000 9100 9101; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "demo: port $port is already in use on 127.0.0.1; stop whatever holds it first" >&2; exit 1
  fi
done
waitfor() {  # waitfor URL: up to 10 s for the URL to answer 200
  for _ in $(seq 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "demo: $1 did not come up; logs in $work" >&2; return 1
}

python3 "$root/tests/integration/backend.py" --port 9001 --name a >"$work/a.log" 2>&1 & pids+=($!)
python3 "$root/tests/integration/backend.py" --port 9002 --name b >"$work/b.log" 2>&1 & pids+=($!)
"$B/controller/doorman-controller" --manifests "$root/examples/quickstart.yaml" \
  --grpc-listen 127.0.0.1:18000 --metrics-listen 127.0.0.1:9100 >"$work/controller.log" 2>&1 & pids+=($!)
"$B/dataplane/doorman-dataplane" --controller 127.0.0.1:18000 --bind-address 127.0.0.1 \
  --metrics-listen 127.0.0.1:9101 >"$work/dataplane.log" 2>&1 & pids+=($!)
waitfor http://127.0.0.1:9001/healthz; waitfor http://127.0.0.1:9002/healthz
waitfor http://127.0.0.1:9100/readyz; waitfor http://127.0.0.1:9101/readyz
for _ in $(seq 200); do curl -fs -o /dev/null -H 'Host: app.local' http://127.0.0.1:8080/ && break; sleep 0.05; done

cat <<'TXT'

Doorman demo is running (controller :18000 gRPC, :9100 metrics; dataplane :9101 metrics).
Manifest: examples/quickstart.yaml (edit it: routing changes without a restart).

Try:
  curl -H 'Host: app.local' http://127.0.0.1:8080/          # L7: alternates backend a / b
  curl -H 'Host: app.local' http://127.0.0.1:8080/api/x     # L7: path rule -> backend b
  curl -H 'Host: www.app.local' http://127.0.0.1:8080/      # L7: wildcard host
  curl -H 'Host: nope.local' http://127.0.0.1:8080/         # L7: 404, no route
  curl http://127.0.0.1:8081/                               # L4: TCP, one backend per connection
  curl -s http://127.0.0.1:9101/metrics | grep ^doorman_    # dataplane metrics
  curl -s http://127.0.0.1:9100/debug/snapshot              # the routing state being served
TXT
echo "Logs: $work"

if [ "${DOORMAN_DEMO_ONESHOT:-0}" = 1 ]; then
  set -x
  curl -fsS -H 'Host: app.local' http://127.0.0.1:8080/
  curl -fsS -H 'Host: app.local' http://127.0.0.1:8080/
  curl -fsS -H 'Host: app.local' http://127.0.0.1:8080/api/x
  curl -fsS http://127.0.0.1:8081/
  curl -s -o /dev/null -w '%{http_code}\n' -H 'Host: nope.local' http://127.0.0.1:8080/ | grep -qx 404
  exit 0
fi
echo "Press Ctrl-C to stop."
wait
