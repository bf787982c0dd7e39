#!/usr/bin/env bash
# bench/faults.sh: fault campaigns with real processes on loopback. Each run
# starts a fresh cluster, runs a job, and SIGKILLs processes at random times
# (restarting them), then checks the job's results:
#   sweep:  a worker killed mid-unit and restarted, the scheduler killed and
#           restarted on its state directory; the sweep completes, every
#           (trial, fold) is recorded exactly once, and the best trial equals
#           the fault-free run's;
#   train:  a worker, a shard and the scheduler killed and restarted during a
#           BSP job; the job finishes once, its accuracy within 0.01 of the
#           fault-free run's;
#   fed:    a client's worker killed mid-round and a shard killed and
#           restarted during a federated job; every round recorded once.
# It prints what it did and what it checked, repeats runs for a bounded time,
# and ends with
#   faults: runs=N survived=N lost_results=0 duplicates=0
#   bench/faults.sh [--seconds 600] [--seed N]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
budget=600
seed=$RANDOM
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) budget=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    *) echo "usage: bench/faults.sh [--seconds N] [--seed N]" >&2; exit 2 ;;
  esac
done
RANDOM=$seed
. bench/lib.sh
[ -f build-bench/build.ninja ] || meson setup build-bench -Dbuildtype=release >/dev/null
ninja -C build-bench >/dev/null
canopy=$root/build-bench/cli/canopy
bench_header faults "$canopy" "as many as fit in $budget s"
echo "  seed $seed"
out=$root/results/bench-faults
rm -rf "$out"
mkdir -p "$out"
export CANOPY_TOKEN=faults-$$
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  pids=()
}
trap cleanup EXIT INT TERM

# A cluster: scheduler S, shard P, workers W[i]; each restartable.
start_sched() { "$canopy" scheduler --listen "$url" --state-dir "$dir/state" \
    --heartbeat-ms 100 --dead-after-ms 1000 --log-level warn 2>>"$dir/scheduler.log" &
  S=$!; pids+=("$S"); }
start_ps() { "$canopy" ps --scheduler "$url" --listen "$ps_url" --name ps-0 \
    --checkpoint-dir "$dir/ckpt" --log-level warn 2>>"$dir/ps.log" &
  P=$!; pids+=("$P"); }
start_worker() { # INDEX [--data DIR]
  local i=$1
  shift
  "$canopy" worker --scheduler "$url" --name "w$i" --threads 1 --cache-dir "$dir/cache-$i" \
    --log-level warn "$@" 2>>"$dir/worker-$i.log" &
  W[$i]=$!; pids+=("${W[$i]}"); }
wait_nodes() { # N
  for _ in $(seq 1 400); do
    [ "$("$canopy" status --scheduler "$url" --json 2>/dev/null | grep -o '"state":"alive"' | wc -l)" -ge "$1" ] && return 0
    sleep 0.05
  done
  return 1
}
rand_ms() { echo $(( $1 + RANDOM % ($2 - $1 + 1) )); }
sleep_ms() { sleep "$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')"; }
kill9() { kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

new_cluster() { # NAME
  dir=$out/$1
  mkdir -p "$dir/ckpt"
  local p0 p1
  p0=$(( 20000 + RANDOM % 20000 )); p1=$(( p0 + 1 ))
  url=tcp://127.0.0.1:$p0
  ps_url=tcp://127.0.0.1:$p1
}

sweep_spec() {
  cat >"$1" <<J
{"name": "faults", "data": {"path": "$root/data/covertype-kaggle-train.csv.gz", "label": "Cover_Type", "drop": "Id"},
 "cv": {"folds": 3, "seed": 2}, "fixed": {"n_estimators": 20},
 "space": {"max_features": {"grid": ["sqrt", 0.3, 0.5]}, "bootstrap": {"grid": [true, false]}},
 "search": {"algorithm": "grid"}, "limits": {"retries": 5}}
J
}
train_spec() { # FILE EXTRA
  cat >"$1" <<J
{"name": "faults", "train_rows": 4000, "test_rows": 2000, "hidden": [32], "optimizer": "momentum",
 "lr": 0.05, "batch": 32, "epochs": 12, "consistency": "bsp", "shards": 1, "workers": 2,
 "seed": 5, "eval_every_s": 1, "checkpoint_every": 20, "report_every_s": 0.2$2}
J
}

runs=0 survived=0 lost=0 dups=0
declare -A baseline

# check_sweep: every (trial, fold) once; the best trial; compared with the baseline.
check_sweep() { # DIR NAME
  /usr/bin/python3 - "$1" "$2" "${baseline[sweep]:-}" <<'PY'
import glob, json, sys
d, name, base = sys.argv[1], sys.argv[2], sys.argv[3]
logs = glob.glob(d + "/state/sweeps/*/results.jsonl")
seen, dup = {}, 0
for l in open(logs[0]):
    r = json.loads(l)
    if r.get("ok"):
        k = (r["trial"], r["fold"])
        dup += k in seen
        seen[k] = r["accuracy"]
best = json.load(open(glob.glob(d + "/state/sweeps/*/best.json")[0]))
units = json.load(open(glob.glob(d + "/state/sweeps/*/summary.json")[0]))["units"]
missing = units - len(seen)
print(f"lost={missing} dup={dup} best={best['trial']}:{best['mean_accuracy']:.4f}"
      + ("" if not base else f" baseline={base}"))
PY
}
check_train() { # DIR
  /usr/bin/python3 - "$1" <<'PY'
import glob, json, sys
d = sys.argv[1]
recs = [json.loads(l) for l in open(glob.glob(d + "/state/train/*/results.jsonl")[0])]
s = [r for r in recs if r["type"] == "summary"]
rounds = [r["round"] for r in recs if r["type"] == "round"]
dup = (len(s) - 1 if s else 0) + len(rounds) - len(set(rounds))
acc = s[-1]["test_accuracy"] if s else -1
print(f"lost={0 if s else 1} dup={dup} acc={acc:.4f} rounds={len(set(rounds))}")
PY
}
tally() { # RESULT LINE, NAME, EXTRA-OK
  local line=$1 ok=$3
  local l d
  l=$(sed -n 's/.*lost=\([0-9]*\).*/\1/p' <<<"$line")
  d=$(sed -n 's/.*dup=\([0-9]*\).*/\1/p' <<<"$line")
  runs=$((runs + 1))
  lost=$((lost + ${l:-1}))
  dups=$((dups + ${d:-0}))
  if [ "${l:-1}" = 0 ] && [ "${d:-0}" = 0 ] && [ "$ok" = 1 ]; then
    survived=$((survived + 1)); echo "   checked: $line: ok"
  else
    echo "   checked: $line: FAILED (see $dir)"
  fi
}

run_sweep() { # baseline|faults
  new_cluster "sweep-$runs"
  sweep_spec "$dir/sweep.json"
  start_sched; start_worker 1; start_worker 2; start_worker 3
  wait_nodes 3 || { echo "   cluster did not start"; return; }
  "$canopy" tune "$dir/sweep.json" --scheduler "$url" --no-follow >/dev/null 2>"$dir/tune.log"
  if [ "$1" = faults ]; then
    local t1 t2
    t1=$(rand_ms 300 2500); t2=$(rand_ms 300 2500)
    sleep_ms "$t1"; kill9 "${W[2]}"; echo "   did: killed worker 2 at +${t1} ms, restarted it"; start_worker 2
    sleep_ms "$t2"; kill9 "$S"; echo "   did: killed the scheduler ${t2} ms later, restarted it on its state"; start_sched
  fi
  "$canopy" tune "$dir/sweep.json" --scheduler "$url" --resume --best-out "$dir/best.json" \
    --csv "$dir/trials.csv" >"$dir/tune.out" 2>>"$dir/tune.log"
  local line
  line=$(check_sweep "$dir" "$1")
  if [ "$1" = baseline ]; then
    baseline[sweep]=$(sed -n 's/.*best=\([^ ]*\).*/\1/p' <<<"$line"); echo "   baseline sweep: $line"
  else
    local ok=0
    [ "$(sed -n 's/.*best=\([^ ]*\).*/\1/p' <<<"$line")" = "${baseline[sweep]}" ] && ok=1
    tally "$line" sweep "$ok"
  fi
  cleanup
}

run_train() { # baseline|faults
  new_cluster "train-$runs"
  train_spec "$dir/job.json" ""
  start_sched; start_ps; start_worker 1; start_worker 2; start_worker 3
  wait_nodes 4 || { echo "   cluster did not start"; return; }
  "$canopy" train "$dir/job.json" --scheduler "$url" --quiet >"$dir/train.out" 2>&1 &
  local follower=$!
  if [ "$1" = faults ]; then
    local t1 t2 t3
    t1=$(rand_ms 500 2000); t2=$(rand_ms 300 1500); t3=$(rand_ms 300 1500)
    sleep_ms "$t1"; kill9 "${W[1]}"; echo "   did: killed worker 1 at +${t1} ms, restarted it"; start_worker 1
    sleep_ms "$t2"; kill9 "$P"; echo "   did: killed the shard ${t2} ms later, restarted it"; start_ps
    sleep_ms "$t3"; kill9 "$S"; kill9 "$follower"; echo "   did: killed the scheduler ${t3} ms later, restarted it"; start_sched
    "$canopy" train "$dir/job.json" --scheduler "$url" --resume --quiet >"$dir/train.out" 2>&1
  else
    wait "$follower"
  fi
  local line acc
  line=$(check_train "$dir")
  acc=$(sed -n 's/.*acc=\([0-9.-]*\).*/\1/p' <<<"$line")
  if [ "$1" = baseline ]; then
    baseline[train]=$acc; echo "   baseline training: $line"
  else
    local ok=0
    awk -v a="$acc" -v b="${baseline[train]}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.01) }' && ok=1
    tally "$line (baseline acc ${baseline[train]})" train "$ok"
  fi
  cleanup
}

run_fed() {
  new_cluster "fed-$runs"
  train_spec "$dir/job.json" ', "mode": "federated", "clients": 4, "rounds": 8, "round_deadline_s": 8'
  start_sched; start_ps; start_worker 1; start_worker 2
  wait_nodes 3 || { echo "   cluster did not start"; return; }
  "$canopy" train "$dir/job.json" --scheduler "$url" --quiet >"$dir/train.out" 2>&1 &
  local follower=$! t1 t2
  t1=$(rand_ms 1500 3000); t2=$(rand_ms 300 1500)
  sleep_ms "$t1"; kill9 "${W[2]}"; echo "   did: killed a client's worker at +${t1} ms, restarted it"; start_worker 2
  sleep_ms "$t2"; kill9 "$P"; echo "   did: killed the shard ${t2} ms later, restarted it"; start_ps
  wait "$follower"
  tally "$(check_train "$dir")" fed 1
  cleanup
}

start=$(date +%s)
echo "== fault-free baselines (load $(bench_load))"
run_sweep baseline
run_train baseline
while [ $(( $(date +%s) - start )) -lt "$budget" ]; do
  case $(( runs % 3 )) in
    0) echo "== run $runs: sweep (load $(bench_load))"; run_sweep faults ;;
    1) echo "== run $runs: training (load $(bench_load))"; run_train faults ;;
    2) echo "== run $runs: federated (load $(bench_load))"; run_fed ;;
  esac
done
echo "faults: runs=$runs survived=$survived lost_results=$lost duplicates=$dups"
[ "$survived" = "$runs" ] && [ "$lost" = 0 ] && [ "$dups" = 0 ]
