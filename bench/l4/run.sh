#!/usr/bin/env bash
# L4 benchmark: direct vs Doorman vs HAProxy (mode tcp) vs nginx (stream), in one run, on
# 127.0.0.1. Not a ctest test. Each proxy gets 2 threads/workers (the machine has 2 cores).
#   redis-benchmark GET/SET requests/s with p50/p99 (keep-alive, 50 clients)
#   new connections/s: redis-benchmark -k 0 (one TCP connection per PING)
#   bulk throughput: iperf3 -t 5
# usage: bench/l4/run.sh [BUILD_DIR]    (prints a Markdown table; ratios are vs HAProxy)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
tmp=$(mktemp -d /tmp/doorman-bench-l4.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
[ -n "${BENCH_KEEP:-}" ] && trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; echo "logs in $tmp"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not up" >&2; for f in "$tmp"/*.log; do echo "== $f"; tail -n 5 "$f"; done >&2; exit 1; }

N=${BENCH_REQUESTS:-100000}
NCONN=${BENCH_CONNECTIONS:-20000}
redis=$(port); iperf=$(port)
d_redis=$(port); d_iperf=$(port); h_redis=$(port); h_iperf=$(port); n_redis=$(port); n_iperf=$(port)
grpc=$(port); cm=$(port); dm=$(port)

redis-server --port "$redis" --bind 127.0.0.1 --save "" --appendonly no >"$tmp/redis.log" 2>&1 & pids+=($!)
iperf3 -s -B 127.0.0.1 -p "$iperf" >"$tmp/iperf.log" 2>&1 & pids+=($!)

mkdir -p "$tmp/m"
cat >"$tmp/m/lb.yaml" <<YAML
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {name: bench, namespace: default}
spec:
  listeners:
    - {name: redis, port: $d_redis, protocol: TCP}
    - {name: iperf, port: $d_iperf, protocol: TCP}
  routes:
    - {name: r, listener: redis, backends: [{endpoints: [{address: 127.0.0.1, port: $redis}]}]}
    - {name: i, listener: iperf, backends: [{endpoints: [{address: 127.0.0.1, port: $iperf}]}]}
YAML
"$build/controller/doorman-controller" --manifests "$tmp/m" --grpc-listen "127.0.0.1:$grpc" \
  --metrics-listen "127.0.0.1:$cm" >"$tmp/ctl.log" 2>&1 & pids+=($!)
wait_port "$grpc"
"$build/dataplane/doorman-dataplane" --controller "127.0.0.1:$grpc" --bind-address 127.0.0.1 \
  --metrics-listen "127.0.0.1:$dm" --workers 2 --log-format text >"$tmp/dp.log" 2>&1 & pids+=($!)

cat >"$tmp/haproxy.cfg" <<CFG
global
  nbthread 2
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 350s
  timeout server 350s
frontend fr
  bind 127.0.0.1:$h_redis
  default_backend br
backend br
  server s1 127.0.0.1:$redis
frontend fi
  bind 127.0.0.1:$h_iperf
  default_backend bi
backend bi
  server s1 127.0.0.1:$iperf
CFG
haproxy -f "$tmp/haproxy.cfg" -db >"$tmp/haproxy.log" 2>&1 & pids+=($!)

mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<CFG
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2;
error_log $tmp/nginx/logs/error.log;
pid $tmp/nginx/nginx.pid;
events { worker_connections 4000; }
stream {
  server { listen 127.0.0.1:$n_redis reuseport; proxy_pass 127.0.0.1:$redis; }
  server { listen 127.0.0.1:$n_iperf reuseport; proxy_pass 127.0.0.1:$iperf; }
}
CFG
nginx -p "$tmp/nginx" -e "$tmp/nginx/logs/error.log" -c "$tmp/nginx/nginx.conf" -g "daemon off;" \
  >"$tmp/nginx.log" 2>&1 & pids+=($!)

for p in $redis $iperf $d_redis $d_iperf $h_redis $h_iperf $n_redis $n_iperf; do wait_port "$p"; done

# redis-benchmark --csv: "test","rps","avg","min","p50","p95","p99","max"
rb() {  # port -> "get_rps get_p50 get_p99 set_rps set_p50 set_p99"
  redis-benchmark -h 127.0.0.1 -p "$1" -n "$N" -c 50 -t get,set --csv 2>/dev/null |
    awk -F'"' '/^"(GET|SET)"/ {printf "%s %s %s ", $4, $10, $14}'
}
conns() {  # port -> new connections/s (one connection per request)
  redis-benchmark -h 127.0.0.1 -p "$1" -n "$NCONN" -c 20 -k 0 -t ping_inline --csv 2>/dev/null |
    awk -F'"' '/PING_INLINE/ {print $4}'
}
bulk() {  # port -> Gbit/s
  iperf3 -c 127.0.0.1 -p "$1" -t 5 -J 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}

declare -A R
for name in direct doorman haproxy nginx; do
  case $name in
    direct) rp=$redis; ip=$iperf ;;
    doorman) rp=$d_redis; ip=$d_iperf ;;
    haproxy) rp=$h_redis; ip=$h_iperf ;;
    nginx) rp=$n_redis; ip=$n_iperf ;;
  esac
  R[$name.rb]=$(rb "$rp")
  R[$name.conn]=$(conns "$rp")
  R[$name.bulk]=$(bulk "$ip")
done

ratio() { python3 -c "print('%.2f' % ($1/$2))" 2>/dev/null || echo "-"; }
echo "| target | GET req/s | GET p50/p99 ms | SET req/s | SET p50/p99 ms | new conn/s | iperf3 Gbit/s |"
echo "|---|---|---|---|---|---|---|"
for name in direct doorman haproxy nginx; do
  read -r g gp50 gp99 s sp50 sp99 <<<"${R[$name.rb]}"
  echo "| $name | $g | $gp50 / $gp99 | $s | $sp50 / $sp99 | ${R[$name.conn]} | ${R[$name.bulk]} |"
done
read -r dg _ _ ds _ _ <<<"${R[doorman.rb]}"
read -r hg _ _ hs _ _ <<<"${R[haproxy.rb]}"
echo
echo "Doorman / HAProxy: GET $(ratio "$dg" "$hg"), SET $(ratio "$ds" "$hs"), new conn/s $(ratio "${R[doorman.conn]}" "${R[haproxy.conn]}"), bulk $(ratio "${R[doorman.bulk]}" "${R[haproxy.bulk]}")"
