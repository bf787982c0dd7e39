#!/usr/bin/env bash
# bench/load.sh: sustained load on two parameter-server shards. Starts a
# scheduler and two `canopy ps` daemons on loopback (with a cluster token),
# configures one ASP job and runs 64 concurrent clients (threads with a
# ps_client each) that push a gradient and pull the values in a loop for up
# to 60 s (bench/load_bench.c). Reports throughput, the 99th percentile of
# one PushPull round trip (both shards) after a 5 s warm-up, errors, and
# how much the shards' resident memory grew after the warm-up. Ends with
#   load: clients=64 ops_per_s=N p99_ms=P errors=0 rss_growth_mb=M
#   bench/load.sh [--seconds 60] [--clients 64] [--params 100000]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=60
clients=64
params=100000
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) secs=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --params) params=$2; shift 2 ;;
    *) echo "usage: bench/load.sh [--seconds N] [--clients N] [--params N]" >&2; exit 2 ;;
  esac
done
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build -j2 cli/canopy bench/load_bench >/dev/null
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
export CANOPY_TOKEN
CANOPY_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sched=tcp://127.0.0.1:$(port)
build/cli/canopy scheduler --listen "$sched" --state-dir "$work/state" --log-level warn \
  2>"$work/scheduler.log" &
pids+=($!)
urls=()
shard_pids=()
for k in 1 2; do
  u=tcp://127.0.0.1:$(port)
  build/cli/canopy ps --scheduler "$sched" --listen "$u" --name "load-ps$k" --log-level warn \
    2>"$work/ps$k.log" &
  pids+=($!)
  shard_pids+=($!)
  urls+=("$u")
done
# Ready when the scheduler lists both shards alive.
for _ in $(seq 100); do
  n=$(build/cli/canopy status --scheduler "$sched" --json --timeout-ms 1000 2>/dev/null |
    grep -o '"role":"ps"[^}]*"state":"alive"' | wc -l || true)
  [ "$n" -ge 2 ] && break
  sleep 0.2
done
[ "${n:-0}" -ge 2 ] || { echo "bench/load.sh: the shards did not come up" >&2; cat "$work"/*.log >&2; exit 1; }
out=$(build/bench/load_bench --urls "$(IFS=,; echo "${urls[*]}")" \
  --pids "$(IFS=,; echo "${shard_pids[*]}")" --clients "$clients" --seconds "$secs" \
  --params "$params") || { echo "$out"; echo "bench/load.sh: the load run had errors" >&2; exit 1; }
echo "$out"
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
echo "cpu=\"$cpu\" cores=$(nproc) load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" params=$params shards=2"
get() { echo "$out" | grep -o "$1=[^ ]*" | cut -d= -f2; }
echo "load: clients=$clients ops_per_s=$(get ops_per_s) p99_ms=$(get p99_ms) errors=$(get errors) rss_growth_mb=$(get rss_growth_mb)"
