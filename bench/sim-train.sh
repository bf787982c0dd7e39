#!/usr/bin/env bash
# bench/sim-train.sh: ASP training throughput on simulated VMs, with and
# without added link latency. host1 runs the scheduler, host2 the ps shard,
# host3.. the workers (one each); every host has --cores of CPU. The job is
# deploy/jobs/fashion-mlp.json with shards=1 and the given worker count.
# Prints samples/s and test accuracy per delay, writes
# results/sim-train.json, and ends with
#   sim-train: workers=W delay_0=S0 delay_D=SD ratio=R load=L
#   bench/sim-train.sh [--cores 0.5] [--delay 20ms] [--workers 2] [--canopy PATH] [--rounds 3]
# Each delay runs --rounds times and its median samples/s is kept; the CPU
# model, BLAS core and load average are printed beside the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cores=0.5 delay=20ms workers=2 canopy="" rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --cores) cores=$2; shift 2 ;;
    --delay) delay=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --canopy) canopy=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: bench/sim-train.sh [--cores X] [--delay D] [--workers W] [--canopy PATH] [--rounds R]" >&2; exit 2 ;;
  esac
done
if [ -z "$canopy" ]; then
  [ -f build-bench/build.ninja ] || meson setup build-bench -Dbuildtype=release >/dev/null
  ninja -C build-bench >/dev/null
  canopy=$root/build-bench/cli/canopy
fi
. "$root/bench/lib.sh"
bench_header sim-train "$canopy" "$rounds"
export CANOPY_SIM_PREFIX=cnst CANOPY_SIM_SUBNET=10.217.0
export CANOPY_SIM_STATE=${TMPDIR:-/tmp}/canopy-sim-train.$$
sim=$root/deploy/sim/sim.sh
out=$root/results/sim-train
mkdir -p "$out"
trap '"$sim" down >/dev/null 2>&1 || true' EXIT
export CANOPY_TOKEN=simtrain-$$
job=$out/job.json
/usr/bin/python3 - "$root/deploy/jobs/fashion-mlp.json" "$job" "$workers" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j.update({"shards": 1, "workers": int(sys.argv[3]), "epochs": 2, "name": "sim-train"})
json.dump(j, open(sys.argv[2], "w"))
PY

run() { # delay round -> prints samples/s and accuracy
  local d=$1 r=$2 hosts=$((workers + 2)) sched
  "$sim" up "$hosts" --cores "$cores" --delay "$d" >/dev/null
  sched=tcp://$("$sim" addr host1):7070
  "$sim" spawn host1 scheduler "$canopy" scheduler --insecure --listen "$sched" --state-dir "$out/state-$d-$r" --log-level warn >/dev/null
  "$sim" spawn host2 ps "$canopy" ps --insecure --scheduler "$sched" --listen "tcp://$("$sim" addr host2):7071" --log-level warn >/dev/null
  for i in $(seq 1 "$workers"); do
    local h=host$((i + 2))
    "$sim" spawn "$h" worker "$canopy" worker --insecure --scheduler "$sched" --threads 1 \
      --listen "tcp://$("$sim" addr "$h"):7072" --log-level warn >/dev/null
  done
  until "$sim" run host1 "$canopy" status --insecure --scheduler "$sched" --json 2>/dev/null |
      /usr/bin/python3 -c "import json,sys; n=json.load(sys.stdin)['nodes']; sys.exit(0 if sum(x['state']=='alive' for x in n)>=$((workers+2)) else 1)"; do
    sleep 0.2
  done
  "$sim" run host1 "$canopy" train --insecure "$job" --scheduler "$sched" --quiet >"$out/train-$d-$r.txt" 2>&1
  "$sim" down >/dev/null
  rm -rf "$out/state-$d-$r"
  grep -o 'done: test accuracy [0-9.]*, loss [0-9.]*, [0-9]* samples/s' "$out/train-$d-$r.txt"
}
s0s="" sds=""
for r in $(seq 1 "$rounds"); do
  r0=$(run 0ms "$r")
  rd=$(run "$delay" "$r")
  echo "round $r: delay 0ms: $r0 | delay $delay: $rd | load $(bench_load)"
  s0s="$s0s $(echo "$r0" | awk '{print $(NF-1)}')"
  sds="$sds $(echo "$rd" | awk '{print $(NF-1)}')"
done
s0=$(printf '%s\n' $s0s | median)
sd=$(printf '%s\n' $sds | median)
printf '{"workers": %s, "cores": %s, "delay": "%s", "samples_per_s_0": %s, "samples_per_s_delay": %s}\n' \
  "$workers" "$cores" "$delay" "$s0" "$sd" >"$out/../sim-train.json"
echo "sim-train: workers=$workers delay_0=$s0 delay_$delay=$sd ratio=$(awk -v a="$sd" -v b="$s0" 'BEGIN{printf "%.2f", a/b}') load=$(cut -d' ' -f1 /proc/loadavg)"
