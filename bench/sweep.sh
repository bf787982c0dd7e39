#!/usr/bin/env bash
# bench/sweep.sh: the shipped forest-cover sweep on 1, 2 and 3 workers, each
# a "small VM" limited to half a core by a cgroup CPU quota (so three fit on
# a 2-core machine), with the scheduler unconstrained. Prints the wall times,
# the speedups, the best and default CV accuracy and the scheduler's overhead
# per unit, writes results/sweep-scaling.json, and ends with
#   sweep: best_cv_acc=A default_cv_acc=B speedup_2=S2 speedup_3=S3 load=L
# where S_n = T_1 / T_n (goals: T_2 <= 0.55 T_1, T_3 <= 0.40 T_1, i.e.
# S2 >= 1.82, S3 >= 2.50). Each worker count runs --rounds times (default
# 3) and its median wall time is kept; the CPU model, BLAS core and load
# average are printed beside the figures.
#   bench/sweep.sh [--cores 0.5] [--sweep FILE] [--workers "1 2 3"] [--rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cores=0.5
sweep=deploy/sweeps/forest-cover.json
counts="1 2 3"
rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --cores) cores=$2; shift 2 ;;
    --sweep) sweep=$2; shift 2 ;;
    --workers) counts=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: bench/sweep.sh [--cores X] [--sweep FILE] [--workers \"1 2 3\"] [--rounds R]" >&2; exit 2 ;;
  esac
done

./deploy/install-deps.sh >/dev/null
[ -f build-bench/build.ninja ] || meson setup build-bench -Dbuildtype=release >/dev/null
ninja -C build-bench >/dev/null
canopy=$root/build-bench/cli/canopy
. bench/lib.sh
bench_header sweep "$canopy" "$rounds"

. deploy/sim/cgroup.sh
if ! cg_available; then
  echo "bench/sweep.sh: CPU cgroups are not writable here (root needed); cannot limit workers" >&2
  exit 1
fi

out=$root/results/sweep-scaling
rm -rf "$out"
mkdir -p "$out"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  cg_destroy_all
}
trap cleanup EXIT INT TERM

export CANOPY_TOKEN=bench-$$
for n in $counts; do
 for r in $(seq 1 "$rounds"); do
  port=$(( 17000 + n + ($$ % 1000) * 4 ))
  url=tcp://127.0.0.1:$port
  "$canopy" scheduler --listen "$url" --state-dir "$out/state-$n" --log-level warn \
    2>"$out/scheduler-$n.log" &
  pids+=($!)
  for i in $(seq 1 "$n"); do
    cg_create "bench-w$i" "$cores"
    ( cg_exec "bench-w$i" "$canopy" worker --scheduler "$url" --name "small-vm-$i" --threads 1 \
        --cache-dir "$out/cache-$n-$i" --log-level warn ) 2>"$out/worker-$n-$i.log" &
    pids+=($!)
  done
  until "$canopy" status --scheduler "$url" --json 2>/dev/null |
      grep -o '"role":"worker"' | wc -l | grep -qx "$n"; do sleep 0.1; done
  echo "== $n worker(s) of $cores core, round $r: running $sweep (load $(bench_load))"
  "$canopy" tune "$sweep" --scheduler "$url" --fresh --json --best-out "$out/best-$n-$r.json" \
    --csv "$out/trials-$n-$r.csv" >"$out/tune-$n-$r.json" 2>"$out/tune-$n-$r.log"
  cat "$out/tune-$n-$r.json"
  cleanup
  pids=()
  rm -rf "$out/state-$n"
 done
 cp "$(bench_median_json elapsed_seconds "$out"/tune-"$n"-*.json)" "$out/tune-$n.json"
done

CORES=$cores /usr/bin/python3 - "$out" $counts <<'PY'
import json, os, sys
out, counts = sys.argv[1], [int(c) for c in sys.argv[2:]]
runs = {n: json.load(open(f"{out}/tune-{n}.json")) for n in counts}
t1 = runs[counts[0]]["elapsed_seconds"]
res = {"workers": {}, "cores_per_worker": float(os.environ["CORES"])}
for n in counts:
    r = runs[n]
    res["workers"][n] = {"elapsed_seconds": r["elapsed_seconds"],
                         "ratio_to_1": r["elapsed_seconds"] / t1,
                         "speedup": t1 / r["elapsed_seconds"],
                         "dispatch_overhead_ms": r["dispatch_overhead_ms"],
                         "best_cv_acc": r["best_cv_acc"], "default_cv_acc": r["default_cv_acc"]}
    print(f"{n} worker(s): {r['elapsed_seconds']:.1f} s  ratio {r['elapsed_seconds']/t1:.2f}  "
          f"speedup {t1/r['elapsed_seconds']:.2f}  overhead {r['dispatch_overhead_ms']:.2f} ms/unit")
last = runs[counts[-1]]
res["best_params"] = last.get("best_params")
json.dump(res, open(f"{out}/../sweep-scaling.json", "w"), indent=2)
s = lambda n: t1 / runs[n]["elapsed_seconds"] if n in runs else float("nan")
load = open("/proc/loadavg").read().split()[0]
print(f"sweep: best_cv_acc={last['best_cv_acc']:.3f} default_cv_acc={last['default_cv_acc']:.3f} "
      f"speedup_2={s(2):.2f} speedup_3={s(3):.2f} load={load}")
PY
