#!/usr/bin/env bash
# bench/sim-fed.sh: the assignment's part 2 layout on three simulated VMs.
# FEDn's layout puts the base services and reducer on one VM, a combiner on
# the second and two clients on the third; here host1 runs the scheduler,
# host2 one ps shard (the combiner: it aggregates the round) and host3 two
# workers (the clients), every host with --cores of CPU. The job is
# deploy/experiments/fed-layout.json's: FEDn's MNIST example model
# (784-64-32-10) on Fashion-MNIST, FedAvg, 1 local epoch, 10 rounds.
# Each client holds its own copy of the IDX files (`canopy worker --data`),
# as a FEDn client does. The job's directory is kept under
# results/experiments/fed-layout-sim/ for the report; prints every round and
# ends with
#   sim-fed: rounds_to_085=N seconds_to_085=T accuracy=A seconds=S load=L
#   bench/sim-fed.sh [--cores 0.5] [--delay 0ms] [--rounds 10] [--canopy PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cores=0.5 delay=0ms rounds=10 canopy=""
while [ $# -gt 0 ]; do
  case $1 in
    --cores) cores=$2; shift 2 ;;
    --delay) delay=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --canopy) canopy=$2; shift 2 ;;
    *) echo "usage: bench/sim-fed.sh [--cores X] [--delay D] [--rounds N] [--canopy PATH]" >&2; exit 2 ;;
  esac
done
if [ -z "$canopy" ]; then
  [ -f build-bench/build.ninja ] || meson setup build-bench -Dbuildtype=release >/dev/null
  ninja -C build-bench >/dev/null
  canopy=$root/build-bench/cli/canopy
fi
. "$root/bench/lib.sh"
bench_header sim-fed "$canopy" 1
fm=/usr/share/datasets/fashion-mnist
[ -f "$fm/train-images-idx3-ubyte.gz" ] || { echo "bench/sim-fed.sh: Fashion-MNIST is missing from $fm (run deploy/install-deps.sh)" >&2; exit 1; }
export CANOPY_SIM_PREFIX=cnsf CANOPY_SIM_SUBNET=10.219.0
export CANOPY_SIM_STATE=${TMPDIR:-/tmp}/canopy-sim-fed.$$
sim=$root/deploy/sim/sim.sh
out=$root/results/experiments/fed-layout-sim
rm -rf "$out"
mkdir -p "$out/client-1" "$out/client-2"
trap '"$sim" down >/dev/null 2>&1 || true' EXIT
export CANOPY_TOKEN=simfed-$$
job=$out/job.json
/usr/bin/python3 - "$root/deploy/experiments/fed-layout.json" "$job" "$rounds" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
j = dict(spec["base"], **spec["runs"][0])
j.update({"rounds": int(sys.argv[3]), "client_data": "local", "name": "fed-layout-sim"})
json.dump(j, open(sys.argv[2], "w"), indent=1)
PY
for c in 1 2; do cp "$fm"/train-*.gz "$out/client-$c/"; done

"$sim" up 3 --cores "$cores" --delay "$delay" >/dev/null
sched=tcp://$("$sim" addr host1):7070
"$sim" spawn host1 scheduler "$canopy" scheduler --insecure --listen "$sched" \
  --state-dir "$out/state" --log-level warn >/dev/null
"$sim" spawn host2 ps "$canopy" ps --insecure --scheduler "$sched" --name combiner \
  --listen "tcp://$("$sim" addr host2):7071" --checkpoint-dir "$out/checkpoints" \
  --log-level warn >/dev/null
for c in 1 2; do
  "$sim" spawn host3 "client$c" "$canopy" worker --insecure --scheduler "$sched" \
    --name "client-$c" --threads 1 --data "$out/client-$c" \
    --listen "tcp://$("$sim" addr host3):$((7071 + c))" --log-level warn >/dev/null
done
until "$sim" run host1 "$canopy" status --insecure --scheduler "$sched" --json 2>/dev/null |
    /usr/bin/python3 -c "import json,sys; n=json.load(sys.stdin)['nodes']; sys.exit(0 if sum(x['state']=='alive' for x in n)>=3 else 1)"; do
  sleep 0.2
done
"$sim" run host1 "$canopy" train --insecure "$job" --scheduler "$sched" | tee "$out/train.out"
"$sim" down >/dev/null
/usr/bin/python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
s = json.load(open(glob.glob(os.path.join(out, "state/train/*/summary.json"))[0]))
print(f"sim-fed: rounds_to_085={s['rounds_to_target']:g} seconds_to_085={s['seconds_to_target']:.1f} "
      f"accuracy={s['test_accuracy']:.4f} seconds={s['seconds']:.1f} load={open('/proc/loadavg').read().split()[0]}")
PY
