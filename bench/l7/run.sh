#!/usr/bin/env bash
# L7 benchmark (not a test): wrk keep-alive against one nginx backend (3-byte body) direct,
# through Doorman, through HAProxy (http mode, http-reuse always) and through nginx (upstream
# keepalive) — plain HTTP and with TLS termination — in one run, on 127.0.0.1 only.
# Every proxy runs one worker/thread. Prints RPS, p50, p99 and the ratio to HAProxy.
#
# usage: bench/l7/run.sh [BUILD_DIR]   env: DURATION=5 (s per run) CONNS=64 ROUNDS=1
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-1}
for bin in nginx haproxy wrk openssl curl; do
  command -v "$bin" >/dev/null || { echo "missing $bin (bash scripts/deps.sh test)" >&2; exit 1; }
done
[ -x "$build/dataplane/doorman-dataplane" ] || { echo "build first: bash scripts/build.sh" >&2; exit 1; }

tmp=$(mktemp -d /tmp/doorman-bench-l7.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {  # bounded readiness poll
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 did not open" >&2; exit 1
}

BACKEND=$(port); DM_HTTP=$(port); DM_HTTPS=$(port); HA_HTTP=$(port); HA_HTTPS=$(port); NG_HTTP=$(port); NG_HTTPS=$(port)
GRPC=$(port); CTL_METRICS=$(port); DP_METRICS=$(port)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tmp/key.pem" \
  -out "$tmp/crt.pem" -days 2 -subj /CN=bench.local -addext subjectAltName=DNS:bench.local 2>/dev/null
cat "$tmp/crt.pem" "$tmp/key.pem" >"$tmp/haproxy.pem"

# --- nginx backend and nginx proxy (one worker each) ------------------------------------------
nginx_conf() {  # $1 name, $2 server blocks
  mkdir -p "$tmp/$1"
  cat >"$tmp/$1/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/$1/nginx.pid;
error_log $tmp/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $tmp/$1; proxy_temp_path $tmp/$1; fastcgi_temp_path $tmp/$1;
  uwsgi_temp_path $tmp/$1; scgi_temp_path $tmp/$1;
  $2
}
NGX
}
nginx_conf backend "server { listen 127.0.0.1:$BACKEND; location / { return 200 \"ok\\n\"; } }"
nginx_conf proxy "upstream be { server 127.0.0.1:$BACKEND; keepalive 64; }
  server { listen 127.0.0.1:$NG_HTTP; listen 127.0.0.1:$NG_HTTPS ssl;
    ssl_certificate $tmp/crt.pem; ssl_certificate_key $tmp/key.pem;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
nginx -c "$tmp/backend/nginx.conf" -p "$tmp/backend" & pids+=($!)
nginx -c "$tmp/proxy/nginx.conf" -p "$tmp/proxy" 2>/dev/null & pids+=($!)
NG_PID=$!

# --- HAProxy ------------------------------------------------------------------------------------
cat >"$tmp/haproxy.cfg" <<HAP
global
  nbthread 1
  maxconn 4000
  log stderr format raw local0 err
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend plain
  bind 127.0.0.1:$HA_HTTP
  bind 127.0.0.1:$HA_HTTPS ssl crt $tmp/haproxy.pem alpn http/1.1
  default_backend be
backend be
  server b1 127.0.0.1:$BACKEND
HAP
haproxy -f "$tmp/haproxy.cfg" -db >"$tmp/haproxy.log" 2>&1 & pids+=($!)
HA_PID=$!

# --- Doorman (controller in standalone --manifests mode, one dataplane worker) -------------------
mkdir -p "$tmp/manifests"
b64() { base64 -w0 "$1"; }
cat >"$tmp/manifests/bench.yaml" <<YAML
apiVersion: v1
kind: Secret
metadata: {name: bench-tls, namespace: default}
type: kubernetes.io/tls
data: {tls.crt: $(b64 "$tmp/crt.pem"), tls.key: $(b64 "$tmp/key.pem")}
---
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {name: bench, namespace: default}
spec:
  listeners:
    - {name: web, port: $DM_HTTP, protocol: HTTP}
    - {name: secure, port: $DM_HTTPS, protocol: HTTPS, tls: {certificates: [{secretName: bench-tls}]}}
  routes:
    - {name: plain, listener: web, backends: [{endpoints: [{address: 127.0.0.1, port: $BACKEND}]}]}
    - {name: tls, listener: secure, backends: [{endpoints: [{address: 127.0.0.1, port: $BACKEND}]}]}
YAML
"$build/controller/doorman-controller" --manifests "$tmp/manifests" --grpc-listen "127.0.0.1:$GRPC" \
  --metrics-listen "127.0.0.1:$CTL_METRICS" >"$tmp/controller.log" 2>&1 & pids+=($!)
wait_port "$GRPC"
"$build/dataplane/doorman-dataplane" --controller "127.0.0.1:$GRPC" --bind-address 127.0.0.1 --workers 1 \
  --metrics-listen "127.0.0.1:$DP_METRICS" >"$tmp/dataplane.log" 2>&1 & pids+=($!)
DM_PID=$!

for p in $BACKEND $NG_HTTP $NG_HTTPS $HA_HTTP $HA_HTTPS $DM_HTTP $DM_HTTPS; do wait_port "$p"; done
for u in "http://127.0.0.1:$BACKEND/" "http://127.0.0.1:$DM_HTTP/" "http://127.0.0.1:$HA_HTTP/" "http://127.0.0.1:$NG_HTTP/" \
         "https://127.0.0.1:$DM_HTTPS/" "https://127.0.0.1:$HA_HTTPS/" "https://127.0.0.1:$NG_HTTPS/"; do
  [ "$(curl -sk --max-time 5 "$u")" = "ok" ] || { echo "sanity check failed for $u" >&2; cat "$tmp/dataplane.log" >&2; exit 1; }
done

# CPU ticks of a process and its children threads/workers: "user system" ("0 0" = none).
cpu_ticks() {
  [ -z "$1" ] && { echo "0 0"; return; }
  local u=0 k=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    read -r pu pk < <(awk '{print $14, $15}' "/proc/$p/stat" 2>/dev/null || echo "0 0")
    u=$((u + pu)); k=$((k + pk))
  done
  echo "$u $k"
}
HZ=$(getconf CLK_TCK)

# wrk → "rps p50_ms p99_ms cpu_us_per_req user_us_per_req" ($2 = proxy pid, "" for direct)
run_wrk() {
  local out c0 c1
  c0=$(cpu_ticks "$2")
  out=$(timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$1")
  c1=$(cpu_ticks "$2")
  local rps p50 p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  to_ms() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v+0} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v }'; }
  local reqs
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  local u0 k0 u1 k1
  read -r u0 k0 <<<"$c0"
  read -r u1 k1 <<<"$c1"
  per_req() { awk -v d="$1" -v hz="$HZ" -v n="$reqs" 'BEGIN{ if (n>0) printf "%.1f", d*1e6/hz/n; else print "-" }'; }
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") $(per_req $((u1 + k1 - u0 - k0))) $(per_req $((u1 - u0)))"
}

echo "# wrk -t1 -c$CONNS -d${DURATION}s --latency, $ROUNDS round(s), $(nproc) CPUs, $(date -u +%FT%TZ)"
printf '%-22s %12s %9s %9s %10s %14s %10s\n' target "req/s" "p50 ms" "p99 ms" "vs haproxy" "proxy CPU us/req" "of it user"
for round in $(seq 1 "$ROUNDS"); do
  for proto in http https; do
    declare -A R=()
    if [ "$proto" = http ]; then
      targets=("direct http://127.0.0.1:$BACKEND/ -" "doorman http://127.0.0.1:$DM_HTTP/ $DM_PID" "haproxy http://127.0.0.1:$HA_HTTP/ $HA_PID" "nginx http://127.0.0.1:$NG_HTTP/ $NG_PID")
    else
      targets=("doorman-tls https://127.0.0.1:$DM_HTTPS/ $DM_PID" "haproxy-tls https://127.0.0.1:$HA_HTTPS/ $HA_PID" "nginx-tls https://127.0.0.1:$NG_HTTPS/ $NG_PID")
    fi
    for t in "${targets[@]}"; do
      read -r name url pid <<<"$t"
      [ "$pid" = "-" ] && pid=""
      R[$name]=$(run_wrk "$url" "$pid")
    done
    ha=${R[haproxy]:-${R[haproxy-tls]}}
    ha_rps=${ha%% *}
    for t in "${targets[@]}"; do
      name=${t%% *}
      read -r rps p50 p99 cpu user <<<"${R[$name]}"
      ratio=$(awk -v a="$rps" -v b="$ha_rps" 'BEGIN{ if (b>0) printf "%.2fx", a/b; else print "-" }')
      [ "$name" = direct ] && { cpu="-"; user="-"; }
      printf '%-22s %12s %9s %9s %10s %14s %10s\n' "$name (r$round)" "$rps" "$p50" "$p99" "$ratio" "$cpu" "$user"
    done
    # Doorman against HAProxy, each figure as a ratio where > 1 means Doorman is better.
    dm=${R[doorman]:-${R[doorman-tls]}}
    read -r d_rps d_p50 d_p99 d_cpu _ <<<"$dm"
    read -r h_rps h_p50 h_p99 h_cpu _ <<<"$ha"
    awk -v p="$proto" -v dr="$d_rps" -v hr="$h_rps" -v d5="$d_p50" -v h5="$h_p50" -v d9="$d_p99" -v h9="$h_p99" \
        -v dc="$d_cpu" -v hc="$h_cpu" 'BEGIN{ if (hr>0 && d5>0 && d9>0 && dc>0) printf "%s %.3f %.3f %.3f %.3f\n", p, dr/hr, h5/d5, h9/d9, hc/dc }' \
      >>"$tmp/ratios"
    unset R
  done
done
if [ "$ROUNDS" -gt 1 ]; then
  echo
  echo "Median over $ROUNDS rounds (min–max), Doorman vs HAProxy, > 1 = Doorman better:"
  python3 - "$tmp/ratios" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
for proto in ("http", "https"):
    got = [[float(x) for x in r[1:]] for r in rows if r[0] == proto]
    if not got:
        continue
    parts = []
    for i, name in enumerate(["req/s", "p50 (HAProxy/Doorman)", "p99 (HAProxy/Doorman)", "CPU/req (HAProxy/Doorman)"]):
        vals = [g[i] for g in got]
        parts.append("%s %.2f (%.2f–%.2f)" % (name, statistics.median(vals), min(vals), max(vals)))
    print("- %s: %s" % (proto, "; ".join(parts)))
PY
fi
