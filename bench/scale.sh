#!/usr/bin/env bash
# bench/scale.sh: how cost grows with size, on this machine.
#  1. Forest fit time (canopy forest fit, all threads, 20 trees) against rows:
#     15k, 60k, 240k, 960k rows made by resampling the forest-cover rows
#     with replacement and adding a small jitter to the continuous columns
#     (bench/scale_data.py says exactly how): not new real data.
#  2. Forest fit time against trees (25, 50, 100, 200) on the 15k real rows.
#  3. Sweep time (canopy local + tune, 3-fold CV of 30-tree forests) against
#     trials (2, 4, 8, plus the default trial) on 1 and 2 workers.
#  4. Parameter-server push-and-pull time (bench/ps_bench, ASP, SGD) against
#     model size (1e3 .. 1e7 floats) on 1, 2 and 4 shards.
# Every point is the median of --rounds runs (default 3). Writes
# results/scale/{measurements.tsv,table.md,scale.svg}; with --docs also
# copies the plot to docs/scale.svg. The last line is
#   scale: forest_rows_exponent=E ps_params_exponent=F
# (the least-squares slope of log time against log rows, and against log
# parameters on one shard). --quick: smaller sizes and 1 round (~2 min);
# the full run takes about 8-10 minutes on 2 cores.
#   bench/scale.sh [--quick] [--rounds R] [--docs]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
quick=0 rounds=3 docs=0
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1; rounds=1; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    --docs) docs=1; shift ;;
    *) sed -n '2,21p' "$0" >&2; exit 2 ;;
    esac
done
PY=/usr/bin/python3
BUILD=$ROOT/build-bench
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" "$ROOT" --buildtype=release >/dev/null
ninja -C "$BUILD" cli/canopy bench/ps_bench >/dev/null
CANOPY=$BUILD/cli/canopy
. bench/lib.sh

out=$ROOT/results/scale
mkdir -p "$out/data"
tsv=$out/measurements.tsv
: >"$tsv"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bench_header scale "$CANOPY" "$rounds"
DATA=$ROOT/data/covertype-kaggle-train.csv.gz

if [ $quick = 1 ]; then
    row_mults="1 4 16" trees_list="25 50 100" trials_list="2 4" params_list="1000 100000 1000000"
    shard_list="1 2"
else
    row_mults="1 4 16 64" trees_list="25 50 100 200" trials_list="2 4 8"
    params_list="1000 10000 100000 1000000 10000000" shard_list="1 2 4"
fi

put() { # put PANEL SERIES X SECONDS: one tab-separated measurement
    printf '%s\t%s\t%s\t%s\n' "$@" >>"$tsv"
}

fit_seconds() { # fit_seconds CSV TREES -> seconds of the fit alone
    "$CANOPY" forest fit --threads 0 --set n_estimators="$2" --set seed=0 "$1" -o "$tmp/m.cnf" |
        sed -n 's/.* in \([0-9.]*\) s$/\1/p'
}

echo "== forest fit time against rows (20 trees; rows resampled from forest cover with jitter)"
for m in $row_mults; do
    n=$((15120 * m))
    csv=$out/data/cover-$n.csv
    if [ "$m" = 1 ]; then
        csv=$DATA
    elif [ ! -s "$csv" ]; then
        $PY bench/scale_data.py "$DATA" "$n" "$csv"
    fi
    for r in $(seq 1 "$rounds"); do
        s=$(fit_seconds "$csv" 20)
        put forest_rows fit "$n" "$s"
        echo "  rows=$n round $r: $s s | load $(bench_load)"
    done
done

echo "== forest fit time against trees (15,120 rows)"
for t in $trees_list; do
    for r in $(seq 1 "$rounds"); do
        s=$(fit_seconds "$DATA" "$t")
        put forest_trees fit "$t" "$s"
        echo "  trees=$t round $r: $s s | load $(bench_load)"
    done
done

echo "== sweep time against trials and workers (canopy local, 3-fold CV, 30 trees)"
for t in $trials_list; do
    cat >"$tmp/sweep.json" <<JSON
{"name": "scale", "data": {"path": "$DATA", "label": "Cover_Type", "drop": "Id"},
 "cv": {"folds": 3, "seed": 0, "shuffle": true},
 "space": {"criterion": {"choice": ["gini", "entropy"]}, "min_samples_leaf": {"choice": [1, 2, 3, 4, 5, 6]},
           "n_estimators": {"choice": [30]}},
 "search": {"algorithm": "random", "samples": $t, "seed": 1}}
JSON
    for w in 1 2; do
        for r in $(seq 1 "$rounds"); do
            rm -rf "$tmp/state"
            j=$("$CANOPY" local --workers "$w" --ps 0 --threads 1 --state-dir "$tmp/state" \
                --log-level warn tune "$tmp/sweep.json" --json 2>/dev/null | tail -n 1)
            s=$(printf '%s\n' "$j" | sed -n 's/.*"elapsed_seconds":\([0-9.]*\).*/\1/p')
            put sweep "$w worker(s)" "$((t + 1))" "$s"
            echo "  trials=$((t + 1)) workers=$w round $r: $s s | load $(bench_load)"
        done
    done
done

echo "== parameter-server push-and-pull against parameters and shards (ASP, SGD, tcp loopback)"
for p in $params_list; do
    iters=$((20000000 / p))
    [ "$iters" -gt 400 ] && iters=400
    [ "$iters" -lt 10 ] && iters=10
    for k in $shard_list; do
        line=$("$BUILD/bench/ps_bench" --params "$p" --shards "$k" --iters "$iters" \
            --rounds "$((rounds * 2 + 1))" 2>/dev/null | tail -n 1)
        us=$(printf '%s\n' "$line" | sed -n 's/.*us_per_step=\([0-9.]*\).*/\1/p')
        label="$k shard"
        [ "$k" -gt 1 ] && label="$k shards"
        put ps "$label" "$p" "$(awk -v u="$us" 'BEGIN { printf "%.9f", u / 1e6 }')"
        echo "  params=$p shards=$k: $line | load $(bench_load)"
    done
done

legend="canopy bench/scale.sh on $(bench_cpu), $(bench_blas_core "$CANOPY") BLAS core, load $(bench_load), $(date -u +%Y-%m-%d)"
$PY bench/scale_plot.py "$tsv" "$out/table.md" "$out/scale.svg" "$legend" >"$tmp/summary"
head -n -1 "$tmp/summary"
if [ $docs = 1 ]; then
    cp "$out/scale.svg" docs/scale.svg
    echo "wrote docs/scale.svg; the table is in $out/table.md"
fi
echo "load at end: $(bench_load)"
tail -n 1 "$tmp/summary"
