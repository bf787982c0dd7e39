#!/bin/sh
# rpc.sh: build and run the RPC benchmark (canopy RPC vs plain nng req/rep
# on tcp loopback). Extra arguments go to rpc_bench (--seconds S, --rounds N).
# rpc_bench alternates rounds of the two and keeps the medians; the CPU
# model, BLAS core and load average are printed beside the figures. The
# last line reads "rpc: throughput_ratio=X latency_ratio=Y load=L".
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench-rpc"
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$root" --buildtype=release >/dev/null
fi
ninja -C "$build" bench/rpc_bench cli/canopy >/dev/null
. "$root/bench/lib.sh"
bench_header rpc "$build/cli/canopy" "rpc_bench --rounds (default 5)"
out=$("$build/bench/rpc_bench" "$@")
printf '%s\n' "$out" | sed '$d'
printf '%s load=%s\n' "$(printf '%s\n' "$out" | tail -n 1)" "$(cut -d' ' -f1 /proc/loadavg)"
