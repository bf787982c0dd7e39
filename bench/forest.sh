#!/bin/bash
# bench/forest.sh: canopy's random forest side by side with scikit-learn
# (RandomForestClassifier, n_jobs=-1) and R ranger (100 trees, all threads).
#
# Covertype (always): 5-fold shuffled stratified CV of a default forest on the
# Kaggle forest-cover train set with Id dropped; accuracy and wall time of
# the CV loop (data loading excluded for every tool). Each round runs the
# three tools back to back; times are the median over rounds.
# Fashion-MNIST (--fashion, slow: scikit-learn needs several minutes): one
# default fit on the 60,000 training images, test accuracy on the 10,000;
# --fashion-rounds N (default 1) repeats it and keeps the median times.
# The CPU model, canopy's BLAS line and the load average are printed beside
# the figures (bench/lib.sh).
#
# usage: bench/forest.sh [--rounds N] [--fashion] [--fashion-rounds N]
# The last line is:
#   forest: cv_acc=A sklearn_cv_acc=B time_ratio_vs_sklearn=R time_ratio_vs_ranger=Q load=L
# (ratio = canopy time / other tool's time; below 1 means canopy is faster;
# L the 1-minute load average at the end).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build-bench"
PY=/usr/bin/python3
DATA="$ROOT/data/covertype-kaggle-train.csv.gz"
FASHION_DIR=/usr/share/datasets/fashion-mnist
ROUNDS=3
FASHION=0
FROUNDS=1
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --fashion) FASHION=1; shift ;;
    --fashion-rounds) FASHION=1; FROUNDS=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "forest.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

# --- anchors -----------------------------------------------------------------
need=()
$PY -c 'import sklearn' 2>/dev/null || need+=(python3-sklearn)
Rscript -e 'suppressMessages(library(ranger))' >/dev/null 2>&1 || need+=(r-cran-ranger)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} from Debian"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO=sudo; fi
    $SUDO apt-get install -y "${need[@]}" >/dev/null
fi

# --- canopy, optimized --------------------------------------------------------
if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" "$ROOT" --buildtype=release >/dev/null
fi
ninja -C "$BUILD" cli/canopy >/dev/null
CANOPY="$BUILD/cli/canopy"

. "$ROOT/bench/lib.sh"
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
json_field() { $PY -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

bench_header forest "$CANOPY" "$ROUNDS"
echo "covertype: 5-fold shuffled stratified CV, 100 trees, defaults, Id dropped"
ct=() st=() rt=()
for r in $(seq 1 "$ROUNDS"); do
    out=$("$CANOPY" forest cv --json --folds 5 --seed 0 --threads 0 "$DATA")
    c_acc=$(echo "$out" | json_field mean_accuracy)
    c_t=$(echo "$out" | json_field wall_seconds)
    out=$($PY "$ROOT/bench/forest_sklearn.py" cv "$DATA" 5)
    s_acc=$(echo "$out" | field acc)
    s_t=$(echo "$out" | field seconds)
    out=$(Rscript "$ROOT/bench/forest_ranger.R" "$DATA" 5)
    r_acc=$(echo "$out" | field acc)
    r_t=$(echo "$out" | field seconds)
    printf "  round %d: canopy %.4f in %6.2f s | sklearn %.4f in %6.2f s | ranger %.4f in %6.2f s | load %s\n" \
        "$r" "$c_acc" "$c_t" "$s_acc" "$s_t" "$r_acc" "$r_t" "$(bench_load)"
    ct+=("$c_t") st+=("$s_t") rt+=("$r_t")
done
c_med=$(printf "%s\n" "${ct[@]}" | median)
s_med=$(printf "%s\n" "${st[@]}" | median)
r_med=$(printf "%s\n" "${rt[@]}" | median)
ratio_s=$(awk -v a="$c_med" -v b="$s_med" 'BEGIN {printf "%.2f", a / b}')
ratio_r=$(awk -v a="$c_med" -v b="$r_med" 'BEGIN {printf "%.2f", a / b}')
printf "  median wall: canopy %.2f s, sklearn %.2f s, ranger %.2f s\n" "$c_med" "$s_med" "$r_med"

if [ "$FASHION" -eq 1 ]; then
    echo "fashion-mnist: one default fit on 60,000 images, accuracy on the 10,000 test images"
    $PY "$ROOT/bench/forest_fashion_csv.py" "$FASHION_DIR" "$BUILD/fashion"
    ft=() fst=()
    for r in $(seq 1 "$FROUNDS"); do
        out=$("$CANOPY" forest fit --threads 0 "$BUILD/fashion/fashion-train.csv" -o "$BUILD/fashion/model.cnf")
        f_t=$(echo "$out" | sed -n 's/.* in \([0-9.]*\) s$/\1/p')
        f_acc=$("$CANOPY" forest predict "$BUILD/fashion/model.cnf" "$BUILD/fashion/fashion-test.csv" |
            sed -n 's/^accuracy: //p')
        out=$($PY "$ROOT/bench/forest_sklearn.py" fashion "$FASHION_DIR")
        fs_acc=$(echo "$out" | field acc)
        fs_t=$(echo "$out" | field seconds)
        printf "  round %d: canopy %.4f in %.2f s | sklearn %.4f in %.2f s | load %s\n" "$r" \
            "$f_acc" "$f_t" "$fs_acc" "$fs_t" "$(bench_load)"
        ft+=("$f_t") fst+=("$fs_t")
    done
    f_t=$(printf "%s\n" "${ft[@]}" | median)
    fs_t=$(printf "%s\n" "${fst[@]}" | median)
    printf "fashion: acc=%.3f sklearn_acc=%.3f time_ratio_vs_sklearn=%.2f load=%s\n" "$f_acc" "$fs_acc" \
        "$(awk -v a="$f_t" -v b="$fs_t" 'BEGIN {print a / b}')" "$(cut -d' ' -f1 /proc/loadavg)"
fi

printf "forest: cv_acc=%.3f sklearn_cv_acc=%.3f time_ratio_vs_sklearn=%s time_ratio_vs_ranger=%s load=%s\n" \
    "$c_acc" "$s_acc" "$ratio_s" "$ratio_r" "$(cut -d' ' -f1 /proc/loadavg)"
