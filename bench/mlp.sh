#!/bin/sh
# bench/mlp.sh: single-worker MLP training throughput, canopy against
# PyTorch (CPU) and against the GEMM-only bound, side by side in one run.
#
# Same model (784-256-128-10), data (Fashion-MNIST), batch (64), optimizer
# (Adam, lr 1e-3, cosine schedule) for both; each at its best of 1 and 2
# threads. Training time only (no evaluation) for both.
#
# usage: bench/mlp.sh            (from the repository root)
# env:   BUILD (default build-bench-mlp), CANOPY_BIN (use this canopy binary),
#        EPOCHS (canopy, default 10), TORCH_EPOCHS (default 2), THREADS ("1 2")
# last line: mlp: samples_per_s=N torch_ratio=R gemm_bound_ratio=G test_acc=A
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-bench-mlp}
EPOCHS=${EPOCHS:-10}
TORCH_EPOCHS=${TORCH_EPOCHS:-2}
THREADS=${THREADS:-"1 2"}
PY=/usr/bin/python3

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

c_best=0 c_acc=0 t_best=0 g_best=0
for t in $THREADS; do
    g=$("$BUILD/bench/gemm_bound" --threads "$t" --seconds 2)
    echo "$g"
    g_best=$(best "$g_best" "$(printf '%s\n' "$g" | sed -n 's/.*samples_per_s=\([0-9.]*\).*/\1/p')")

    j=$("$CANOPY" mlp train --threads "$t" --epochs "$EPOCHS" --json | tail -n 1)
    echo "canopy threads=$t: $j"
    s=$(field samples_per_s "$j")
    if [ "$(best "$s" "$c_best")" = "$s" ]; then c_best=$s; c_acc=$(field test_acc "$j"); fi

    j=$($PY bench/mlp_torch.py --threads "$t" --epochs "$TORCH_EPOCHS" | tail -n 1)
    echo "torch  threads=$t: $j"
    t_best=$(best "$t_best" "$(field samples_per_s "$j")")
done

awk -v c="$c_best" -v t="$t_best" -v g="$g_best" -v a="$c_acc" 'BEGIN {
    printf "mlp: samples_per_s=%d torch_ratio=%.2f gemm_bound_ratio=%.2f test_acc=%.3f\n",
        c, c / t, c / g, a }'
