#!/usr/bin/env bash
# bench/ps.sh: the parameter-server goals, side by side in one run.
#  1. A 1M-parameter push-and-pull through canopy's ps (one shard, ASP, the
#     shard applies every gradient) against raw nng req/rep moving the same
#     bytes (bench/ps_bench.c).
#  2. ASP and BSP scaling on "small VMs": every worker and the one shard
#     limited to 0.4 core by a cgroup quota, MLP 784-256-128-10, batch 256
#     per worker, 1 and 3 workers; samples/s is the sum of the workers'
#     training rates (data loading excluded). SSP(3) and the measured
#     compute-to-communication ratio are printed beside them.
# The push-and-pull figure is the median of 7 rounds; each training run is
# repeated --rounds times (default 3) and its median samples/s kept. The CPU
# model, BLAS core and load average are printed beside the figures.
# Writes results/ps-bench.json and ends with
#   ps: push_pull_ratio_vs_nng=R asp_speedup_3=S bsp_speedup_3=B load=L
#   bench/ps.sh [--cores 0.4] [--rows 60000] [--rounds 3]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cores=0.4
rows=60000
rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --cores) cores=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: bench/ps.sh [--cores X] [--rows N] [--rounds R]" >&2; exit 2 ;;
  esac
done
. "$here/../deploy/experiments/lib.sh"
cd "$EXP_ROOT"
exp_setup "$EXP_ROOT/build-exp"
trap exp_cleanup EXIT INT TERM
. "$here/lib.sh"
bench_header ps "$EXP_CANOPY" "$rounds"
if ! cg_available; then
  echo "bench/ps.sh: CPU cgroups are not writable here (root needed); cannot limit the small VMs" >&2
  exit 1
fi
out=$EXP_ROOT/results/ps-bench
rm -rf "$out"
mkdir -p "$out"

echo "== 1M-parameter push-and-pull: canopy ps vs raw nng"
"$EXP_ROOT/build-exp/bench/ps_bench" --params 1000000 --iters 100 --rounds 7 2>/dev/null |
  tee "$out/ps_bench.txt"

cat >"$out/base.json" <<JSON
{"hidden": [256, 128], "optimizer": "sgd", "lr": 0.1, "batch": 256, "epochs": 1,
 "train_rows": $rows, "test_rows": 2000, "shards": 1, "seed": 1, "eval_every_s": 60,
 "checkpoint_every": 0, "report_every_s": 1}
JSON
for mode in asp bsp ssp; do
  for w in 1 3; do
    name=$mode-$w
    extra=""
    [ "$mode" = ssp ] && extra=', "staleness": 3'
    exp_merge "$out/base.json" "{\"name\": \"$name\", \"consistency\": \"$mode\", \"workers\": $w$extra}" \
      "$out/$name.json"
    for r in $(seq 1 "$rounds"); do
      echo "== $name round $r: $w worker(s) of $cores core, shard of $cores core (load $(bench_load))"
      exp_run_job "$out/$name-r$r" "$out/$name.json" "$cores" || echo "   failed: $out/$name-r$r/train.out" >&2
      grep -E '^done|compute' "$out/$name-r$r/train.out" || true
    done
    set -- "$out/$name"-r*/summary.json
    if [ -e "$1" ]; then
      mkdir -p "$out/$name"
      cp "$(bench_median_json samples_per_s "$@")" "$out/$name/summary.json"
    fi
  done
done

/usr/bin/python3 - "$out" "$cores" <<'PY'
import json, os, re, sys
out, cores = sys.argv[1], float(sys.argv[2])
m = re.search(r"ratio=([0-9.]+)", open(f"{out}/ps_bench.txt").read())
ratio = float(m.group(1)) if m else float("nan")
runs = {}
for mode in ("asp", "bsp", "ssp"):
    for w in (1, 3):
        p = f"{out}/{mode}-{w}/summary.json"
        runs[f"{mode}-{w}"] = json.load(open(p)) if os.path.exists(p) else None
def sps(k):
    return runs[k]["samples_per_s"] if runs.get(k) else float("nan")
res = {"push_pull_ratio_vs_nng": ratio, "cores_per_node": cores, "runs": {}}
for k, s in runs.items():
    if s is None:
        continue
    res["runs"][k] = {x: s[x] for x in ("samples_per_s", "test_accuracy", "compute_comm_ratio",
                                         "compute_seconds", "comm_seconds", "staleness_hist")}
    print(f"{k}: {s['samples_per_s']:.0f} samples/s, compute/comm {s['compute_comm_ratio']:.2f}, "
          f"acc {s['test_accuracy']:.4f}")
speed = {m: sps(f"{m}-3") / sps(f"{m}-1") for m in ("asp", "bsp", "ssp")}
res["speedup_3"] = speed
json.dump(res, open(f"{out}/../ps-bench.json", "w"), indent=1)
print(f"ssp(3) speedup_3={speed['ssp']:.2f}")
load = open("/proc/loadavg").read().split()[0]
print(f"ps: push_pull_ratio_vs_nng={ratio:.2f} asp_speedup_3={speed['asp']:.2f} "
      f"bsp_speedup_3={speed['bsp']:.2f} load={load}")
PY
