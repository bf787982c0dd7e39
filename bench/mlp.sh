#!/bin/sh
# bench/mlp.sh: single-worker MLP training throughput, canopy against
# PyTorch (CPU) and against the GEMM-only bound, side by side in one run.
#
# Same model (784-256-128-10), data (Fashion-MNIST), batch (64), optimizer
# (Adam, lr 1e-3, cosine schedule) for both; each at its best of 1 and 2
# threads. Training time only (no evaluation) for both. Each figure is the
# median of ROUNDS runs.
#
# BLAS: canopy picks the OpenBLAS core the CPU supports (re-executing itself
# with OPENBLAS_CORETYPE when OpenBLAS fell back to a generic one; see
# `canopy version`). Debian's PyTorch calls sgemm in the same system
# OpenBLAS, so it runs with the same core, and each side prints the kernels
# it used.
#
# PyTorch gets its best thread setting: at N > 1 threads it runs with every
# split of the N cores between its own intra-op threads (torch.set_num_threads)
# and OpenBLAS's threads that does not oversubscribe them, plus N of each
# (the default a user gets), and the best median counts. Its intra-op pool
# and OpenBLAS's pool both spin, so N of each on N cores can be 5-10x slower
# than one of them alone.
#
# usage: bench/mlp.sh            (from the repository root)
# env:   BUILD (default build-bench-mlp), CANOPY_BIN (use this canopy binary),
#        EPOCHS (canopy, default 10), TORCH_EPOCHS (default 2), THREADS ("1 2"),
#        ROUNDS (default 3)
# last line: mlp: samples_per_s=N torch_ratio=R gemm_bound_ratio=G test_acc=A load=L
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-bench-mlp}
EPOCHS=${EPOCHS:-10}
TORCH_EPOCHS=${TORCH_EPOCHS:-2}
THREADS=${THREADS:-"1 2"}
ROUNDS=${ROUNDS:-3}
PY=/usr/bin/python3
. bench/lib.sh

if [ ! -d "$BUILD" ]; then
    meson setup "$BUILD" --buildtype=release >/dev/null
fi
ninja -C "$BUILD" bench/gemm_bound >/dev/null
CANOPY=${CANOPY_BIN:-$BUILD/cli/canopy}
if [ -z "${CANOPY_BIN:-}" ]; then
    ninja -C "$BUILD" cli/canopy >/dev/null
fi

if ! $PY -c 'import torch' 2>/dev/null; then
    echo "installing python3-torch (Debian)" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y python3-torch >&2
    else sudo apt-get install -y python3-torch >&2; fi
fi

field() { # field NAME JSON -> value of a numeric JSON field
    printf '%s\n' "$2" | sed -n "s/.*\"$1\":\([0-9.eE+-]*\).*/\1/p"
}
best() { # best A B -> the larger
    awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0) ? a : b }'
}

bench_header mlp "$CANOPY" "$ROUNDS"
# The core canopy runs on (its own choice, or the user's OPENBLAS_CORETYPE);
# gemm_bound and PyTorch get the same. gemm_bound does not re-execute
# itself, so it needs the variable to see the same kernels.
CORE=$(bench_blas_core "$CANOPY")
echo "  OpenBLAS core for every side: ${CORE:-default}"
blas_env() { # blas_env THREADS CMD...: run CMD with the shared BLAS settings
    t=$1
    shift
    if [ -n "$CORE" ]; then
        OPENBLAS_CORETYPE=$CORE OPENBLAS_NUM_THREADS=$t "$@"
    else
        OPENBLAS_NUM_THREADS=$t "$@"
    fi
}

# torch_settings N: the "BLAS_THREADS:TORCH_THREADS" settings PyTorch runs
# with at N threads.
torch_settings() {
    if [ "$1" = 1 ]; then
        echo 1:1
    else
        echo "$1:1 1:$1 $1:$1"
    fi
}

TORCH_RUNS=$(mktemp)
trap 'rm -f "$TORCH_RUNS"' EXIT
c_best=0 c_acc=0 t_best=0 g_best=0
for t in $THREADS; do
    gs="" cs="" accs=""
    : >"$TORCH_RUNS" # one line per torch run: SETTING SAMPLES_PER_S
    for r in $(seq 1 "$ROUNDS"); do
        g=$(blas_env "$t" "$BUILD/bench/gemm_bound" --threads "$t" --seconds 2)
        gs="$gs $(printf '%s\n' "$g" | sed -n 's/.*samples_per_s=\([0-9.]*\).*/\1/p')"
        gsplit=$(printf '%s\n' "$g" | sed -n 's/.*split=\([a-z]*\).*/\1/p')
        j=$("$CANOPY" mlp train --threads "$t" --epochs "$EPOCHS" --json | tail -n 1)
        cs="$cs $(field samples_per_s "$j")"
        accs="$accs $(field test_acc "$j")"
        tline=""
        for ts_set in $(torch_settings "$t"); do
            jt=$(blas_env "${ts_set%%:*}" $PY bench/mlp_torch.py --threads "${ts_set#*:}" \
                --epochs "$TORCH_EPOCHS" | tail -n 1)
            echo "$ts_set $(field samples_per_s "$jt")" >>"$TORCH_RUNS"
            tline="$tline torch[blas $(echo "$ts_set" | sed 's/:/, torch /')] $(field samples_per_s "$jt")"
        done
        echo "  threads=$t round $r: gemm_bound $(echo "$gs" | awk '{print $NF}') (split ${gsplit:-blas}) canopy $(field samples_per_s "$j")$tline samples/s | load $(bench_load)"
    done
    g=$(printf '%s\n' $gs | median)
    c=$(printf '%s\n' $cs | median)
    tt=0 tbest=""
    for ts_set in $(torch_settings "$t"); do
        m=$(awk -v k="$ts_set" '$1 == k { print $2 }' "$TORCH_RUNS" | median)
        if [ "$(best "$m" "$tt")" = "$m" ]; then
            tt=$m
            tbest=$ts_set
        fi
    done
    echo "threads=$t medians: gemm_bound $g canopy $c torch $tt samples/s (torch best at $(echo "$tbest" | sed 's/\(.*\):\(.*\)/BLAS threads \1, torch threads \2/'))"
    echo "  kernels: canopy sgemm in $(bench_blas "$CANOPY")"
    echo "  kernels: torch $(printf '%s\n' "$jt" | sed -n 's/.*"torch":"\([^"]*\)".*/\1/p') sgemm in $(printf '%s\n' "$jt" | sed -n 's/.*"blas":"\([^"]*\)".*/\1/p')"
    g_best=$(best "$g_best" "$g")
    t_best=$(best "$t_best" "$tt")
    if [ "$(best "$c" "$c_best")" = "$c" ]; then
        c_best=$c
        c_acc=$(printf '%s\n' $accs | median)
    fi
done

awk -v c="$c_best" -v t="$t_best" -v g="$g_best" -v a="$c_acc" -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
    printf "mlp: samples_per_s=%d torch_ratio=%.2f gemm_bound_ratio=%.2f test_acc=%.3f load=%s\n",
        c, c / t, c / g, a, l }'
