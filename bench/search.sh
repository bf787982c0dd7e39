#!/usr/bin/env bash
# bench/search.sh: the sweep's search algorithms side by side in one run, on
# three "small VM" workers of half a core each (cgroup CPU quotas, as in
# bench/sweep.sh) and one scheduler:
#   1. random: the shipped sweep as it is (every trial, every fold);
#   2. asha: the same trials (same seed) under asynchronous successive
#      halving ("scheduler": "asha", eta 3) with trees as a second budget
#      ("tree_budget": true: rung r of 2 trains 1/3^(2-r) of the trees):
#      goal best within 0.003 of random's in at most 0.35 of its wall
#      time; beside it ASHA with folds as the only budget (asha_folds);
#   3. the shipped TPE + ASHA sweep over the wider space (--tuned FILE,
#      deploy/sweeps/forest-cover-tpe.json): goal best >= 0.880 in no more
#      wall time than run 1;
#   4. tpe vs random with the same number of trials for seeds 1..N: goal TPE's
#      best >= random's in at least 4 of 5 seeds.
# Prints the CPU model and the load average beside every figure, writes
# results/search.json, and ends with
#   search: random_best=A random_s=T asha_best=B asha_s=U tpe_best=C tpe_wins=K/N
#   bench/search.sh [--cores 0.5] [--workers 3] [--seeds 5] [--samples N]
#                   [--sweep FILE] [--tuned FILE|none] [--quick]
# --samples overrides the sweep's number of drawn trials (a shorter run);
# --quick runs only 1 and 2 (--tuned none --seeds 0: tpe_best=None).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cores=0.5 workers=3 seeds=5 samples="" sweep=deploy/sweeps/forest-cover.json
tuned=deploy/sweeps/forest-cover-tpe.json
while [ $# -gt 0 ]; do
  case $1 in
    --cores) cores=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    --sweep) sweep=$2; shift 2 ;;
    --tuned) tuned=$2; shift 2 ;;
    --quick) tuned=none seeds=0; shift ;;
    *) echo "usage: bench/search.sh [--cores X] [--workers N] [--seeds N] [--samples N] [--sweep FILE] [--tuned FILE|none] [--quick]" >&2
       exit 2 ;;
  esac
done

[ -f build-bench/build.ninja ] || meson setup build-bench -Dbuildtype=release >/dev/null
ninja -C build-bench -j2 >/dev/null
canopy=$root/build-bench/cli/canopy

. deploy/sim/cgroup.sh
if ! cg_available; then
  echo "bench/search.sh: CPU cgroups are not writable here (root needed); cannot limit workers" >&2
  exit 1
fi

out=$root/results/search
rm -rf "$out"
mkdir -p "$out"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  cg_destroy_all
}
trap cleanup EXIT INT TERM

export CANOPY_TOKEN=search-$$
url=tcp://127.0.0.1:$(( 18000 + ($$ % 1000) * 2 ))
"$canopy" scheduler --listen "$url" --state-dir "$out/state" --log-level warn 2>"$out/scheduler.log" &
pids+=($!)
for i in $(seq 1 "$workers"); do
  cg_create "search-w$i" "$cores"
  ( cg_exec "search-w$i" "$canopy" worker --scheduler "$url" --name "small-vm-$i" --threads 1 \
      --cache-dir "$out/cache-$i" --log-level warn ) 2>"$out/worker-$i.log" &
  pids+=($!)
done
until "$canopy" status --scheduler "$url" --json 2>/dev/null |
    grep -o '"role":"worker"' | wc -l | grep -qx "$workers"; do sleep 0.1; done

# variant NAME KEY=VALUE...: writes the sweep with search keys replaced
# (from $src, the sweep unless set).
variant() {
  local name=$1; shift
  /usr/bin/python3 - "${src:-$sweep}" "$out/$name.json" "$name" "$samples" "$@" <<'PY'
import json, os, sys
src, dst, name, samples, sets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
s = json.load(open(src))
s["name"] = name
s["data"]["path"] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(src)), s["data"]["path"]))
s.setdefault("search", {})
if samples:
    s["search"]["samples"] = int(samples)
for kv in sets:
    k, v = kv.split("=", 1)
    s["search"][k] = json.loads(v)
json.dump(s, open(dst, "w"), indent=1)
PY
}

run() { # run NAME: prints "best seconds"
  echo "== $1 (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "$canopy" tune "$out/$1.json" --scheduler "$url" --fresh --json --best-out "$out/best-$1.json" \
    --csv "$out/trials-$1.csv" >"$out/tune-$1.json" 2>"$out/tune-$1.log"
  /usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["best_cv_acc"], r["elapsed_seconds"])' \
    "$out/tune-$1.json" | tee -a /dev/stderr
}

seed0=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("search",{}).get("seed",0))' "$sweep")
variant random algorithm='"random"'
variant asha-folds algorithm='"random"' scheduler='"asha"' eta=3
variant asha algorithm='"random"' scheduler='"asha"' eta=3 tree_budget=true
read -r random_best random_s < <(run random)
read -r asha_folds_best asha_folds_s < <(run asha-folds)
read -r asha_best asha_s < <(run asha)
tuned_best=None tuned_s=None
if [ "$tuned" != none ]; then
  src=$tuned samples="" variant tuned
  read -r tuned_best tuned_s < <(run tuned)
  echo "tuned ($tuned): best=$tuned_best in $tuned_s s, random's 25-trial sweep $random_s s" \
    "(goal: best >= 0.880 in no more time; load average: $(cut -d' ' -f1-3 /proc/loadavg))"
fi

wins=0 tpe_best=None
: >"$out/seeds.txt"
for k in $(seq 1 "$seeds"); do
  seed=$(( seed0 + k - 1 ))
  if [ "$k" -eq 1 ]; then
    rb=$random_best
  else
    variant "random-s$seed" algorithm='"random"' seed=$seed
    read -r rb _ < <(run "random-s$seed")
  fi
  variant "tpe-s$seed" algorithm='"tpe"' seed=$seed
  read -r tb _ < <(run "tpe-s$seed")
  [ "$k" -gt 1 ] || tpe_best=$tb
  if /usr/bin/python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$tb" "$rb"; then
    wins=$((wins + 1))
  fi
  echo "seed $seed: random_best=$rb tpe_best=$tb (load average: $(cut -d' ' -f1-3 /proc/loadavg))" |
    tee -a "$out/seeds.txt"
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
/usr/bin/python3 - "$out" <<PY
import json, sys
json.dump({"cpu": "$cpu", "cores_per_worker": $cores, "workers": $workers,
           "random": {"best_cv_acc": $random_best, "seconds": $random_s},
           "asha": {"tree_budget": True, "best_cv_acc": $asha_best, "seconds": $asha_s,
                    "time_ratio": $asha_s / $random_s, "best_gap": $random_best - $asha_best},
           "asha_folds": {"best_cv_acc": $asha_folds_best, "seconds": $asha_folds_s,
                          "time_ratio": $asha_folds_s / $random_s,
                          "best_gap": $random_best - $asha_folds_best},
           "tpe": {"best_cv_acc_first_seed": $tpe_best, "wins": $wins, "seeds": $seeds},
           "tuned": {"sweep": "$tuned", "best_cv_acc": $tuned_best, "seconds": $tuned_s},
           "load_average_end": open("/proc/loadavg").read().split()[:3]},
          open(sys.argv[1] + "/../search.json", "w"), indent=2)
PY
echo "CPU: $cpu; BLAS: not used (forests); workers: $workers x $cores core; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'asha (folds only)/random time ratio %.2f, best gap %.4f\n' \
  "$(/usr/bin/python3 -c "print($asha_folds_s / $random_s)")" "$(/usr/bin/python3 -c "print($random_best - $asha_folds_best)")"
printf 'asha (folds and trees)/random time ratio %.2f (goal <= 0.35), best gap %.4f (goal <= 0.003)\n' \
  "$(/usr/bin/python3 -c "print($asha_s / $random_s)")" "$(/usr/bin/python3 -c "print($random_best - $asha_best)")"
echo "search: random_best=$random_best random_s=$random_s asha_best=$asha_best asha_s=$asha_s tpe_best=$tpe_best tpe_wins=$wins/$seeds"
