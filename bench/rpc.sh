#!/bin/sh
# rpc.sh: build and run the RPC benchmark (canopy RPC vs plain nng req/rep
# on tcp loopback). Extra arguments go to rpc_bench (--seconds S, --rounds N).
# The last line reads "rpc: throughput_ratio=X latency_ratio=Y".
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench-rpc"
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$root" --buildtype=release >/dev/null
fi
ninja -C "$build" bench/rpc_bench >/dev/null
"$build/bench/rpc_bench" "$@"
