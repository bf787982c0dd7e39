#!/usr/bin/env bash
# deploy/experiments/run.sh: run the part 1.2 experiments and write result
# files for the report:
#   consistency.json  1, 2, 3 workers x BSP, ASP, SSP on 0.4-core "small VMs"
#   model-size.json   ~50k, 0.5M, 5M parameters: compute/communication per step
#   shards.json       1, 2, 4 shards for the largest model
# and for part 2 (federated mode, docs/federated.md):
#   fed-layout.json   the assignment's layout: one shard, two clients, FedAvg
#   fed-skew.json     10 clients, IID / Dirichlet / 2 labels x FedAvg, FedProx, FedAdam
#   fed-system.json   a slow client with and without a deadline; dropouts
#   fl-vs-ps.json     ASP, BSP, FedAvg (1 and 5 local epochs), IID and Dirichlet 0.1
# Each experiment file holds a base job spec and a list of runs (overrides);
# every run gets a fresh cluster. Results: results/experiments/<exp>/<run>/
# (summary.json, results.jsonl, logs) and results/experiments/<exp>.json
# (one row per run).
#   deploy/experiments/run.sh [EXPERIMENT.json ...]   (default: the three of part 1.2)
#   deploy/experiments/run.sh --fed                   the four of part 2
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cd "$EXP_ROOT"
exp_setup "$EXP_ROOT/build-exp"
trap exp_cleanup EXIT INT TERM
files=("$@")
if [ "${1:-}" = --fed ]; then
  files=("$here/fed-layout.json" "$here/fed-skew.json" "$here/fed-system.json" "$here/fl-vs-ps.json")
fi
[ ${#files[@]} -gt 0 ] || files=("$here/consistency.json" "$here/model-size.json" "$here/shards.json")
for f in "${files[@]}"; do
  exp=$(basename "$f" .json)
  out=$EXP_ROOT/results/experiments/$exp
  mkdir -p "$out"
  cores=$(exp_spec_get "$f" cores 0)
  if [ "$cores" != 0 ] && ! cg_available; then
    echo "run.sh: $exp wants CPU quotas but cgroups are not writable here (root needed)" >&2
    exit 1
  fi
  /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['base'] and '')" "$f" >/dev/null
  n=$(/usr/bin/python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['runs']))" "$f")
  for i in $(seq 0 $((n - 1))); do
    run=$(/usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['runs'][int(sys.argv[2])]; print(json.dumps(r))" "$f" "$i")
    name=$(/usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])['name'])" "$run")
    mkdir -p "$out/$name"
    /usr/bin/python3 -c "import json,sys; json.dump(json.load(open(sys.argv[1]))['base'], open(sys.argv[2],'w'))" "$f" "$out/$name/base.json"
    exp_merge "$out/$name/base.json" "$run" "$out/$name/job.json"
    echo "== $exp/$name"
    if exp_run_job "$out/$name" "$out/$name/job.json" "$cores"; then
      tail -4 "$out/$name/train.out" | head -2
    else
      echo "   failed: see $out/$name/train.out" >&2
    fi
  done
  /usr/bin/python3 - "$f" "$out" <<'PY'
import json, os, sys
f, out = sys.argv[1], sys.argv[2]
spec = json.load(open(f))
rows = []
for r in spec["runs"]:
    p = os.path.join(out, r["name"], "summary.json")
    if not os.path.exists(p):
        rows.append({"name": r["name"], "failed": True})
        continue
    s = json.load(open(p))
    steps = s["steps_per_worker"] * s["workers"]
    row = {k: s[k] for k in ("model", "n_params", "consistency", "shards", "workers", "batch",
                             "seconds", "samples_per_s", "test_accuracy", "time_to_target_s",
                             "compute_seconds", "comm_seconds", "compute_comm_ratio",
                             "staleness_hist", "bytes_sent", "bytes_received")}
    row["name"] = r["name"]
    for k in ("mode", "strategy", "rounds", "clients", "local_epochs", "dropout",
              "round_deadline_s", "rounds_to_target", "seconds_to_target", "bytes_to_target",
              "bytes_total", "aggregation_share"):
        if k in s:
            row[k] = s[k]
    job = json.load(open(os.path.join(out, r["name"], "job.json")))
    row["partition"] = job.get("partition", "iid")
    if "alpha" in job:
        row["alpha"] = job["alpha"]
    row["compute_ms_per_step"] = 1000 * s["compute_seconds"] / steps if steps else 0
    row["comm_ms_per_step"] = 1000 * s["comm_seconds"] / steps if steps else 0
    rows.append(row)
json.dump({"experiment": os.path.basename(f), "description": spec.get("description", ""),
           "cores_per_node": spec.get("cores", 0), "runs": rows},
          open(out + ".json", "w"), indent=1)
for row in rows:
    if row.get("failed"):
        print(f"{row['name']:12s} FAILED")
        continue
    tt = row["time_to_target_s"]
    print(f"{row['name']:12s} {row['model']:16s} {row['samples_per_s']:8.0f} samples/s  "
          f"acc {row['test_accuracy']:.4f}  to-target {tt if tt >= 0 else float('nan'):6.1f} s  "
          f"compute {row['compute_ms_per_step']:.2f} ms/step  comm {row['comm_ms_per_step']:.2f} ms/step  "
          f"ratio {row['compute_comm_ratio']:.2f}")
PY
done
