#!/usr/bin/env bash
# L4 benchmark: direct vs Doorman vs HAProxy (mode tcp) vs nginx (stream), in one run, on
# 127.0.0.1. Not a ctest test. Each proxy gets 2 threads/workers (the machine has 2 cores).
#   redis-benchmark GET/SET requests/s with p50/p99 (keep-alive, 50 clients)
#   new connections/s: redis-benchmark -k 0 (one TCP connection per PING)
#   bulk throughput: iperf3 -t DURATION
# Besides the rates it reports each proxy's CPU time per operation (utime+stime of the proxy's
# processes from /proc, user+kernel): µs per GET/SET request, per new connection, per MiB. On a
# shared machine the rates swing between rounds; CPU per operation is the steadier figure.
# usage: bench/l4/run.sh [BUILD_DIR]    (prints Markdown tables; ratios are vs HAProxy)
# env:   ROUNDS (default 1; the targets run in turn within each round), DURATION (iperf3 seconds,
#        default 5), BENCH_REQUESTS (100000), BENCH_CONNECTIONS (20000),
#        DOORMAN_BIN (default BUILD_DIR/dataplane/doorman-dataplane), DOORMAN_ARGS (extra
#        dataplane flags, e.g. "--l4-splice --l4-splice-pipe-size 1048576")
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
ROUNDS=${ROUNDS:-1}
DURATION=${DURATION:-5}
DOORMAN_BIN=${DOORMAN_BIN:-$build/dataplane/doorman-dataplane}
read -r -a DOORMAN_EXTRA <<<"${DOORMAN_ARGS:-}"
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
"$DOORMAN_BIN" --controller "127.0.0.1:$grpc" --bind-address 127.0.0.1 \
  --metrics-listen "127.0.0.1:$dm" --workers 2 --log-format text "${DOORMAN_EXTRA[@]}" >"$tmp/dp.log" 2>&1 & pids+=($!)
dp_pid=$!

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
hp_pid=$!

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
ng_pid=$!

for p in $redis $iperf $d_redis $d_iperf $h_redis $h_iperf $n_redis $n_iperf; do wait_port "$p"; done

ng_workers=$(pgrep -P "$ng_pid" | tr '\n' ' ')

# CPU ticks (utime+stime, 1/CLK_TCK s) used so far by the given processes (all their threads).
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
hz=$(getconf CLK_TCK)
# redis-benchmark --csv: "test","rps","avg","min","p50","p95","p99","max"
rb() {  # port -> "get_rps get_p50 get_p99 set_rps set_p50 set_p99"
  redis-benchmark -h 127.0.0.1 -p "$1" -n "$N" -c 50 -t get,set --csv 2>/dev/null |
    awk -F'"' '/^"(GET|SET)"/ {printf "%s %s %s ", $4, $10, $14}'
}
conns() {  # port -> new connections/s (one connection per request)
  redis-benchmark -h 127.0.0.1 -p "$1" -n "$NCONN" -c 20 -k 0 -t ping_inline --csv 2>/dev/null |
    awk -F'"' '/PING_INLINE/ {print $4}'
}
bulk() {  # port -> "Gbit/s MiB"
  iperf3 -c 127.0.0.1 -p "$1" -t "$DURATION" -J 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin)["end"]["sum_received"]; print("%.2f %.1f" % (d["bits_per_second"]/1e9, d["bytes"]/1048576))'
}
us_per() { python3 -c "print('%.1f' % (($2 - $1) * 1e6 / $hz / $3))" 2>/dev/null || echo "-"; }
ratio() { python3 -c "print('%.2f' % ($1/$2))" 2>/dev/null || echo "-"; }

summary=()
for round in $(seq "$ROUNDS"); do
  declare -A R=()
  for name in direct doorman haproxy nginx; do
    case $name in
      direct) rp=$redis; ip=$iperf; procs=() ;;
      doorman) rp=$d_redis; ip=$d_iperf; procs=("$dp_pid") ;;
      haproxy) rp=$h_redis; ip=$h_iperf; procs=("$hp_pid") ;;
      nginx) rp=$n_redis; ip=$n_iperf; read -r -a procs <<<"$ng_workers" ;;
    esac
    t0=$(ticks "${procs[@]}"); R[$name.rb]=$(rb "$rp"); t1=$(ticks "${procs[@]}")
    R[$name.conn]=$(conns "$rp"); t2=$(ticks "${procs[@]}")
    read -r gbit mib <<<"$(bulk "$ip")"; t3=$(ticks "${procs[@]}")
    R[$name.bulk]=$gbit
    if [ "$name" = direct ]; then
      R[$name.cpu]="- / - / -"
    else
      R[$name.cpu]="$(us_per "$t0" "$t1" $((2 * N))) / $(us_per "$t1" "$t2" "$NCONN") / $(us_per "$t2" "$t3" "$mib")"
    fi
  done
  echo
  echo "Round $round of $ROUNDS ($(date -u +%H:%M:%S) UTC)"
  echo
  echo "| target | GET req/s | GET p50/p99 ms | SET req/s | SET p50/p99 ms | new conn/s | iperf3 Gbit/s | CPU µs/req / µs/conn / µs/MiB |"
  echo "|---|---|---|---|---|---|---|---|"
  for name in direct doorman haproxy nginx; do
    read -r g gp50 gp99 s sp50 sp99 <<<"${R[$name.rb]}"
    echo "| $name | $g | $gp50 / $gp99 | $s | $sp50 / $sp99 | ${R[$name.conn]} | ${R[$name.bulk]} | ${R[$name.cpu]} |"
  done
  read -r dg dgp50 dgp99 ds dsp50 dsp99 <<<"${R[doorman.rb]}"
  read -r hg hgp50 hgp99 hs hsp50 hsp99 <<<"${R[haproxy.rb]}"
  IFS=' /' read -r dcr dcc dcb <<<"${R[doorman.cpu]}"
  IFS=' /' read -r hcr hcc hcb <<<"${R[haproxy.cpu]}"
  line="GET $(ratio "$dg" "$hg"), SET $(ratio "$ds" "$hs"), new conn/s $(ratio "${R[doorman.conn]}" "${R[haproxy.conn]}"), bulk $(ratio "${R[doorman.bulk]}" "${R[haproxy.bulk]}"); CPU per op (HAProxy / Doorman, > 1 = Doorman cheaper): req $(ratio "$hcr" "$dcr"), conn $(ratio "$hcc" "$dcc"), MiB $(ratio "$hcb" "$dcb")"
  echo
  echo "Doorman / HAProxy: $line"
  summary+=("round $round: $line")
  # Every figure as a ratio where > 1 means Doorman is better: rates Doorman ÷ HAProxy,
  # latencies and CPU HAProxy ÷ Doorman.
  echo "$(ratio "$dg" "$hg") $(ratio "$ds" "$hs") $(ratio "${R[doorman.conn]}" "${R[haproxy.conn]}") \
$(ratio "${R[doorman.bulk]}" "${R[haproxy.bulk]}") $(ratio "$hgp50" "$dgp50") $(ratio "$hgp99" "$dgp99") \
$(ratio "$hsp50" "$dsp50") $(ratio "$hsp99" "$dsp99") $(ratio "$hcr" "$dcr") $(ratio "$hcc" "$dcc") \
$(ratio "$hcb" "$dcb")" >>"$tmp/ratios"
done
if [ "$ROUNDS" -gt 1 ]; then
  echo
  echo "All rounds, Doorman / HAProxy:"
  for l in "${summary[@]}"; do echo "- $l"; done
  echo
  echo "Median over $ROUNDS rounds (min–max), every figure as 'better than HAProxy' when > 1:"
  python3 - "$tmp/ratios" <<'PY'
import statistics, sys
names = ["GET req/s", "SET req/s", "new conn/s", "bulk", "GET p50 (HAProxy/Doorman)",
         "GET p99 (HAProxy/Doorman)", "SET p50 (HAProxy/Doorman)", "SET p99 (HAProxy/Doorman)",
         "CPU/req (HAProxy/Doorman)", "CPU/conn (HAProxy/Doorman)", "CPU/MiB (HAProxy/Doorman)"]
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
for i, name in enumerate(names):
    vals = [float(r[i]) for r in rows if i < len(r) and r[i] != "-"]
    if vals:
        print("- %-28s %.2f (%.2f–%.2f)" % (name, statistics.median(vals), min(vals), max(vals)))
PY
fi
