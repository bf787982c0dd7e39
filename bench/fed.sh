#!/usr/bin/env bash
# bench/fed.sh: federated mode against its goals, side by side with the
# parameter server, on this machine (issue 9):
#   1. the assignment's layout (one shard, two clients, FedAvg, 1 local epoch,
#      784-64-32-10 on Fashion-MNIST): rounds and seconds to 0.85 test
#      accuracy (goal: within 10 rounds, under a minute);
#   2. 10 clients: the share of a round's time spent in aggregation and round
#      bookkeeping (the shards' close, goal < 5%);
#   3. bytes on the wire to reach 0.85: FedAvg against ASP on the same
#      model, data and two workers (eval records carry the bytes moved).
# Prints the CPU, the BLAS core and the load beside the figures, repeats each
# run --rounds times and keeps the median, writes results/bench-fed/, and
# ends with
#   fed: rounds_to_085=N seconds_to_085=T aggregation_share=F fl_vs_ps_bytes_to_085=R
#   bench/fed.sh [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
reps=1
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) reps=$2; shift 2 ;;
    *) echo "usage: bench/fed.sh [--rounds N]" >&2; exit 2 ;;
  esac
done
. bench/lib.sh
. deploy/experiments/lib.sh
exp_setup "$root/build-bench"
trap exp_cleanup EXIT INT TERM
bench_header fed "$EXP_CANOPY" "$reps"
out=$root/results/bench-fed
rm -rf "$out"
mkdir -p "$out"

common='"hidden": [64, 32], "shards": 1, "workers": 2, "seed": 1, "target_accuracy": 0.85, "test_rows": 10000'
layout="{\"name\": \"layout\", \"mode\": \"federated\", $common, \"strategy\": \"fedavg\", \"rounds\": 10,
 \"clients\": 2, \"local_epochs\": 1, \"local_batch\": 32, \"local_lr\": 0.05, \"partition\": \"iid\"}"
ten="{\"name\": \"ten\", \"mode\": \"federated\", $common, \"strategy\": \"fedavg\", \"rounds\": 5,
 \"clients\": 10, \"local_epochs\": 1, \"local_batch\": 32, \"local_lr\": 0.05, \"partition\": \"iid\"}"
asp="{\"name\": \"asp\", $common, \"consistency\": \"asp\", \"optimizer\": \"momentum\", \"lr\": 0.02,
 \"momentum\": 0.9, \"batch\": 64, \"epochs\": 4, \"partition\": \"iid\", \"eval_every_s\": 0.5}"

run() { # NAME SPEC REP
  local d=$out/$1-$3
  mkdir -p "$d"
  echo "$2" >"$d/spec.json"
  exp_run_job "$d" "$d/spec.json" 0 || { echo "bench/fed.sh: $1 failed: see $d/train.out" >&2; exit 1; }
  exp_cleanup
}

for r in $(seq 1 "$reps"); do
  echo "== round $r (load $(bench_load))"
  run layout "$layout" "$r"
  run ten "$ten" "$r"
  run asp "$asp" "$r"
done

/usr/bin/python3 - "$out" "$reps" <<'PY'
import json, os, statistics, sys
out, reps = sys.argv[1], int(sys.argv[2])

def records(d):
    return [json.loads(l) for l in open(os.path.join(d, "results.jsonl"))]

def to_target(d, target=0.85):
    """First eval reaching the target: (t, bytes, step), or None."""
    for r in records(d):
        if r.get("type") == "eval" and r["accuracy"] >= target:
            return r["t"], r.get("bytes", 0.0), r["step"]
    return None

rows = {"layout": [], "ten": [], "asp": []}
for name in rows:
    for k in range(1, reps + 1):
        d = os.path.join(out, f"{name}-{k}")
        s = json.load(open(os.path.join(d, "summary.json")))
        rows[name].append((d, s))

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")

lay = [(to_target(d), s) for d, s in rows["layout"]]
rounds = med([t[2] if t else None for t, s in lay])
secs = med([t[0] if t else None for t, s in lay])
fl_bytes = med([t[1] if t else None for t, s in lay])
acc10 = med([s["test_accuracy"] for d, s in rows["layout"]])
share = med([s["aggregation_share"] for d, s in rows["ten"]])
ps_t = [to_target(d) for d, s in rows["asp"]]
ps_bytes = med([t[1] if t else None for t in ps_t])
ps_secs = med([t[0] if t else None for t in ps_t])
ratio = fl_bytes / ps_bytes if ps_bytes and ps_bytes == ps_bytes else float("nan")
print(f"layout (1 shard, 2 clients, FedAvg): 0.85 at round {rounds:g} after {secs:.1f} s; "
      f"accuracy after 10 rounds {acc10:.4f} (goal: 0.85 within 10 rounds, under 60 s)")
print(f"10 clients: aggregation and round bookkeeping {100 * share:.2f}% of round time (goal < 5%)")
print(f"bytes to 0.85: FedAvg {fl_bytes / 1e6:.1f} MB, ASP {ps_bytes / 1e6:.1f} MB "
      f"(ASP reached it after {ps_secs:.1f} s)")
json.dump({"rounds_to_085": rounds, "seconds_to_085": secs, "accuracy_after_10": acc10,
           "aggregation_share_10_clients": share, "fedavg_bytes_to_085": fl_bytes,
           "asp_bytes_to_085": ps_bytes, "asp_seconds_to_085": ps_secs, "fl_vs_ps_bytes": ratio},
          open(os.path.join(out, "summary.json"), "w"), indent=1)
print(f"fed: rounds_to_085={rounds:g} seconds_to_085={secs:.1f} aggregation_share={share:.4f} "
      f"fl_vs_ps_bytes_to_085={ratio:.3f}")
PY
echo "  load at end: $(bench_load)"
