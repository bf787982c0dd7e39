#!/usr/bin/env bash
# bench/sim-sweep.sh: the forest-cover sweep on 1, 2 and 3 simulated VMs
# (deploy/sim/sim.sh): the scheduler and the tune client on host1, one worker
# on each of host2..host(N+1), every host a network namespace with a CPU
# quota of --cores, optionally with --delay added to every host's link. The
# same measurement as bench/sweep.sh (plain cgroup quotas on loopback), so the
# two give the cost of the virtual network; writes
# results/sim-sweep[-TAG]/summary.json and ends with
#   sim-sweep: delay=D t_1=T1 t_2=T2 t_3=T3 speedup_2=S2 speedup_3=S3 load=L
#   bench/sim-sweep.sh [--cores 0.5] [--delay 0ms] [--sweep FILE] [--samples N]
#                      [--workers "1 2 3"] [--canopy PATH] [--tag TAG] [--plain]
#                      [--rounds 3]
# Each VM count runs --rounds times and its median wall time is kept; the
# CPU model, BLAS core and load average are printed beside the figures.
# --samples N rewrites the sweep's search.samples (a shorter sweep). --plain
# runs the same processes with the same quotas (scheduler included) on
# loopback without namespaces, as bench/sweep.sh does, for the comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cores=0.5 delay=0ms sweep=deploy/sweeps/forest-cover.json samples="" counts="1 2 3" canopy="" tag="" plain=0
rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --cores) cores=$2; shift 2 ;;
    --delay) delay=$2; shift 2 ;;
    --sweep) sweep=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    --workers) counts=$2; shift 2 ;;
    --canopy) canopy=$2; shift 2 ;;
    --tag) tag=-$2; shift 2 ;;
    --plain) plain=1; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    *) sed -n '2,19p' "$0" >&2; exit 2 ;;
  esac
done
if [ -z "$canopy" ]; then
  [ -f build-bench/build.ninja ] || meson setup build-bench -Dbuildtype=release >/dev/null
  ninja -C build-bench >/dev/null
  canopy=$root/build-bench/cli/canopy
fi
canopy=$(cd "$(dirname "$canopy")" && pwd)/$(basename "$canopy")
. "$root/bench/lib.sh"
bench_header sim-sweep "$canopy" "$rounds"

export CANOPY_SIM_PREFIX=cnbench CANOPY_SIM_SUBNET=10.216.0
export CANOPY_SIM_STATE=${TMPDIR:-/tmp}/canopy-sim-bench.$$
sim=$root/deploy/sim/sim.sh
out=$root/results/sim-sweep$tag
rm -rf "$out"
mkdir -p "$out"
# shellcheck source=SCRIPTDIR/../deploy/sim/cgroup.sh
. "$root/deploy/sim/cgroup.sh"
pids=()
cleanup() {
  local p
  if [ $plain = 1 ]; then
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    pids=()
    cg_destroy_all
  else
    "$sim" down >/dev/null 2>&1 || "$sim" down
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

spec=$out/sweep.json
python3 - "$root/$sweep" "$spec" "$samples" <<'PY'
import json, os, sys
src, dst, samples = sys.argv[1], sys.argv[2], sys.argv[3]
s = json.load(open(src))
p = s["data"]["path"]
if not os.path.isabs(p):
    p = os.path.normpath(os.path.join(os.path.dirname(src), p))
s["data"]["path"] = p
if samples:
    s["search"]["samples"] = int(samples)
json.dump(s, open(dst, "w"), indent=2)
PY

export CANOPY_TOKEN=bench-$$
# Plain mode: the same roles on loopback, each in a CPU cgroup of its own.
plain_up() { # N (round r)
  local n=$1 i port=$((17100 + ($$ % 800) * 4))
  sched=tcp://127.0.0.1:$port
  cg_create "simb-$$-s" "$cores"
  ( cg_exec "simb-$$-s" "$canopy" scheduler --insecure --listen "$sched" --state-dir "$out/state-$n" --log-level warn ) \
    2>"$out/scheduler-$n-$r.log" &
  pids+=($!)
  for i in $(seq 1 "$n"); do
    cg_create "simb-$$-w$i" "$cores"
    ( cg_exec "simb-$$-w$i" "$canopy" worker --insecure --scheduler "$sched" --name "small-vm-$i" --threads 1 \
        --cache-dir "$out/cache-$n-$i" --log-level warn ) 2>"$out/worker-$n-$r-$i.log" &
    pids+=($!)
  done
  until "$canopy" status --insecure --scheduler "$sched" --json --timeout-ms 1000 2>/dev/null |
      grep -o '"role":"worker"' | wc -l | grep -qx "$n"; do sleep 0.2; done
  echo "== $n plain quota worker(s) of $cores core, round $r: running $(basename "$sweep")${samples:+ (samples=$samples)} (load $(bench_load))"
  "$canopy" tune --insecure "$spec" --scheduler "$sched" --fresh --json --best-out "$out/best-$n-$r.json" \
    --csv "$out/trials-$n-$r.csv" >"$out/tune-$n-$r.json" 2>"$out/tune-$n-$r.log"
  cat "$out/tune-$n-$r.json"
  rm -rf "$out/state-$n"
  echo
  cleanup
}

for n in $counts; do
 for r in $(seq 1 "$rounds"); do
  if [ $plain = 1 ]; then plain_up "$n"; continue; fi
  "$sim" up $((n + 1)) --cores "$cores" --delay "$delay"
  sched=tcp://$("$sim" addr host1):7070
  "$sim" spawn host1 scheduler "$canopy" scheduler --insecure --listen "$sched" --state-dir "$out/state-$n" \
    --log-level warn >/dev/null
  for i in $(seq 1 "$n"); do
    h=host$((i + 1))
    "$sim" spawn "$h" worker "$canopy" worker --insecure --scheduler "$sched" --listen "tcp://$("$sim" addr "$h"):7072" \
      --name "small-vm-$i" --threads 1 --cache-dir "$out/cache-$n-$i" --log-level warn >/dev/null
  done
  until "$sim" run host1 "$canopy" status --insecure --scheduler "$sched" --json --timeout-ms 1000 2>/dev/null |
      grep -o '"role":"worker","rank":[0-9]*,"address":"[^"]*","name":"[^"]*","state":"alive"' |
      wc -l | grep -qx "$n"; do sleep 0.2; done
  echo "== $n simulated VM(s) of $cores core, delay $delay, round $r: running $(basename "$sweep")${samples:+ (samples=$samples)} (load $(bench_load))"
  "$sim" run host1 "$canopy" tune --insecure "$spec" --scheduler "$sched" --fresh --json --best-out "$out/best-$n-$r.json" \
    --csv "$out/trials-$n-$r.csv" >"$out/tune-$n-$r.json" 2>"$out/tune-$n-$r.log"
  cat "$out/tune-$n-$r.json"
  echo
  "$sim" down
  rm -rf "$out/state-$n"
 done
 cp "$(bench_median_json elapsed_seconds "$out"/tune-"$n"-*.json)" "$out/tune-$n.json"
done

[ $plain = 0 ] || delay=plain
read -ra cnt <<< "$counts"
DELAY=$delay CORES=$cores python3 - "$out" "${cnt[@]}" <<'PY'
import json, os, sys
out, counts = sys.argv[1], [int(c) for c in sys.argv[2:]]
runs = {n: json.load(open(f"{out}/tune-{n}.json")) for n in counts}
t1 = runs[counts[0]]["elapsed_seconds"]
res = {"delay": os.environ["DELAY"], "cores_per_vm": float(os.environ["CORES"]), "vms": {}}
for n in counts:
    r = runs[n]
    res["vms"][n] = {"elapsed_seconds": r["elapsed_seconds"], "speedup": t1 / r["elapsed_seconds"],
                     "units": r["units"], "units_failed": r["units_failed"],
                     "dispatch_overhead_ms": r["dispatch_overhead_ms"], "best_cv_acc": r["best_cv_acc"]}
    print(f"{n} VM(s): {r['elapsed_seconds']:.1f} s  speedup {t1 / r['elapsed_seconds']:.2f}  "
          f"overhead {r['dispatch_overhead_ms']:.2f} ms/unit  failed {r['units_failed']}")
json.dump(res, open(f"{out}/summary.json", "w"), indent=2)
t = " ".join(f"t_{n}={runs[n]['elapsed_seconds']:.1f}" for n in counts)
s = " ".join(f"speedup_{n}={t1 / runs[n]['elapsed_seconds']:.2f}" for n in counts[1:])
load = open("/proc/loadavg").read().split()[0]
print(f"sim-sweep: delay={os.environ['DELAY']} {t} {s} load={load}")
PY
