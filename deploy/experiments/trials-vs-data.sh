#!/usr/bin/env bash
# deploy/experiments/trials-vs-data.sh: question 1.2 by measurement: when to
# distribute the trials of a tuning pipeline, and when the training of each
# network. The same 12 MLP configurations (lr in 6 values x sgd|momentum)
# are trained on three "small VM" workers of --cores each (cgroup quotas),
# for a small model (784-64-32-10) and a large one (784-1024-1024-10):
#   trial  (a) trial-parallel: one MLP sweep (model "mlp", grid, FIFO): each
#              worker trains one configuration at a time on its own and
#              scores it on a validation split (10% of the training rows);
#   data   (b) data-parallel: each configuration a training job on all three
#              workers through one parameter-server shard (BSP), one after
#              another, scored on the test rows;
#   mix    (c) each configuration a training job on two workers, one after
#              another (the third worker idles: three workers do not split
#              into pairs).
# For each: the time until all are done, the time until the best is known,
# and the best accuracy. The sweep also runs a 13th trial, its default
# (sgd, lr 0.05: a copy of one grid point), which (a) pays for.
# Writes results/experiments/trials-vs-data.json (one row per model and
# mode; the report reads it) and the runs' files under
# results/experiments/trials-vs-data/.
#   deploy/experiments/trials-vs-data.sh [--cores 0.5] [--rows 6000]
#       [--epochs 2] [--configs 12] [--models "small large"]
# --configs N keeps the first N configurations (a shorter run): 1 to 6 (sgd
# only) or 12.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cd "$EXP_ROOT"
cores=0.5 rows=6000 epochs=2 configs=12 models="small large"
while [ $# -gt 0 ]; do
  case $1 in
    --cores) cores=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    *) echo "usage: trials-vs-data.sh [--cores X] [--rows N] [--epochs N] [--configs N] [--models \"small large\"]" >&2
       exit 2 ;;
  esac
done
if [ "$configs" -gt 6 ] && [ "$configs" -ne 12 ]; then
  echo "trials-vs-data.sh: --configs is 1 to 6 (sgd) or 12 (sgd and momentum)" >&2
  exit 2
fi
if ! cg_available; then
  echo "trials-vs-data.sh: CPU cgroups are not writable here (root needed); cannot limit workers" >&2
  exit 1
fi
exp_setup "$EXP_ROOT/build-exp"
trap exp_cleanup EXIT INT TERM
out=$EXP_ROOT/results/experiments/trials-vs-data
rm -rf "$out"
mkdir -p "$out"
fm=/usr/share/datasets/fashion-mnist
lrs=(0.005 0.01 0.02 0.05 0.1 0.2)
config() { # config I: "lr optimizer" of configuration I
  echo "${lrs[$(($1 % 6))]} $([ "$1" -lt 6 ] && echo sgd || echo momentum)"
}
hidden_of() { [ "$1" = small ] && echo "[64, 32]" || echo "[1024, 1024]"; }

# trial_parallel MODEL: one sweep of the configurations, three workers.
trial_parallel() {
  local model=$1 dir=$out/$1-trial
  mkdir -p "$dir"
  local n_lr=$(( configs > 6 ? 6 : configs )) lr_list opt_list='"sgd"'
  lr_list=$(printf '%s, ' "${lrs[@]:0:$n_lr}" | sed 's/, $//')
  [ "$configs" -gt 6 ] && opt_list='"sgd", "momentum"'
  cat >"$dir/sweep.json" <<JSON
{"name": "tvd-$model", "model": "mlp",
 "data": {"train_images": "$fm/train-images-idx3-ubyte.gz",
          "train_labels": "$fm/train-labels-idx1-ubyte.gz",
          "train_rows": $rows, "validation": 0.1},
 "fixed": {"hidden": $(hidden_of "$model"), "batch": 128, "epochs": $epochs, "momentum": 0.9},
 "space": {"lr": {"grid": [$lr_list]}, "optimizer": {"grid": [$opt_list]}},
 "search": {"algorithm": "grid"}}
JSON
  local port=$(( 19000 + (RANDOM % 20000) )) w
  local url=tcp://127.0.0.1:$port
  export CANOPY_TOKEN=tvd-$$
  "$EXP_CANOPY" scheduler --listen "$url" --state-dir "$dir/state" --log-level warn \
    2>"$dir/scheduler.log" &
  EXP_PIDS+=($!)
  for w in 1 2 3; do
    exp_start "w$w" "$cores" "$EXP_CANOPY" worker --scheduler "$url" --name "small-vm-$w" \
      --threads 1 --cache-dir "$dir/cache-$w" --log-level warn 2>>"$dir/workers.log"
  done
  until "$EXP_CANOPY" status --scheduler "$url" --json 2>/dev/null |
      grep -o '"role":"worker"' | wc -l | grep -qx 3; do sleep 0.05; done
  "$EXP_CANOPY" tune "$dir/sweep.json" --scheduler "$url" --fresh --json \
    --best-out "$dir/best.json" --csv "$dir/trials.csv" >"$dir/tune.json" 2>"$dir/tune.log"
  cp "$dir"/state/sweeps/*/results.jsonl "$dir/" 2>/dev/null || true
  cp "$dir"/state/sweeps/*/summary.json "$dir/" 2>/dev/null || true
  exp_cleanup
  rm -rf "$dir/state" "$dir"/cache-*
}

# data_parallel MODEL WORKERS MODE: the configurations as training jobs on
# WORKERS workers and one shard, one after another.
data_parallel() {
  local model=$1 workers=$2 mode=$3 i lr opt
  for i in $(seq 0 $((configs - 1))); do
    read -r lr opt < <(config "$i")
    local dir=$out/$model-$mode/c$i
    mkdir -p "$dir"
    cat >"$dir/job.json" <<JSON
{"name": "tvd-$model-$mode-$i",
 "train_images": "$fm/train-images-idx3-ubyte.gz", "train_labels": "$fm/train-labels-idx1-ubyte.gz",
 "test_images": "$fm/t10k-images-idx3-ubyte.gz", "test_labels": "$fm/t10k-labels-idx1-ubyte.gz",
 "train_rows": $rows, "test_rows": 2000, "hidden": $(hidden_of "$model"),
 "optimizer": "$opt", "lr": $lr, "momentum": 0.9, "batch": 128, "epochs": $epochs,
 "consistency": "bsp", "shards": 1, "workers": $workers, "seed": 1,
 "eval_every_s": 3600, "checkpoint_every": 0}
JSON
    [ "$opt" = sgd ] && sed -i 's/"momentum": 0.9, //' "$dir/job.json"
    exp_run_job "$dir" "$dir/job.json" "$cores" || echo "   $model-$mode c$i failed: see $dir/train.out" >&2
  done
}

for model in $models; do
  echo "== $model: trial-parallel (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  trial_parallel "$model"
  echo "== $model: data-parallel on 3 workers (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  data_parallel "$model" 3 data
  echo "== $model: mix, 2 workers per configuration (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  data_parallel "$model" 2 mix
done

/usr/bin/python3 - "$out" "$cores" "$rows" "$epochs" "$configs" $models <<'PY'
import glob, json, os, sys
out, cores, rows, epochs, configs, models = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:]
def model(m):  # the model's name, layer widths and parameter count, from its sweep file
    w = [784] + json.load(open(os.path.join(out, f"{m}-trial", "sweep.json")))["fixed"]["hidden"] + [10]
    return {"model": m, "hidden": "-".join(map(str, w)),
            "n_params": sum(a * b + b for a, b in zip(w, w[1:]))}
res = {"experiment": "trials-vs-data", "command": "deploy/experiments/trials-vs-data.sh",
       "question": "1.2", "cores_per_worker": cores, "workers": 3, "train_rows": rows,
       "epochs": epochs, "configs": configs, "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
       "load_average_end": open("/proc/loadavg").read().split()[:3], "runs": []}
for m in models:
    d = os.path.join(out, f"{m}-trial")
    try:
        summ = json.load(open(os.path.join(d, "summary.json")))
        recs = [json.loads(l) for l in open(os.path.join(d, "results.jsonl")) if '"ok":true' in l]
        t0 = min(r["time_ms"] / 1000 - r["fit_seconds"] - r.get("data_load_seconds", 0) for r in recs)
        best = max(recs, key=lambda r: r["accuracy"])
        res["runs"].append({**model(m), "mode": "trial-parallel", "trials": len(recs),
                            "all_done_s": summ["elapsed_seconds"],
                            "best_known_s": best["time_ms"] / 1000 - t0,
                            "best_accuracy": best["accuracy"], "accuracy_on": "validation"})
    except (OSError, ValueError, KeyError) as e:
        res["runs"].append({**model(m), "mode": "trial-parallel", "failed": str(e)})
    for mode, w in (("data", 3), ("mix", 2)):
        t, best, best_t, done = 0.0, -1.0, 0.0, 0
        for i in range(configs):
            p = os.path.join(out, f"{m}-{mode}", f"c{i}", "summary.json")
            if not os.path.exists(p):
                continue
            s = json.load(open(p))
            t += s["seconds"]
            done += 1
            if s["test_accuracy"] > best:
                best, best_t = s["test_accuracy"], t
        res["runs"].append({**model(m), "mode": "data-parallel" if mode == "data" else "mix",
                            "workers_per_config": w, "configs_done": done, "all_done_s": t,
                            "best_known_s": best_t, "best_accuracy": best,
                            "accuracy_on": "test (2000 rows)"})
json.dump(res, open(out + ".json", "w"), indent=1)
print(f"CPU: {res['cpu']}; BLAS: OpenBLAS, 1 thread per worker; load average: {res['load_average_end']}")
for r in res["runs"]:
    if "failed" in r:
        print(f"{r['model']:6s} {r['mode']:15s} FAILED: {r['failed']}")
        continue
    print(f"{r['model']:6s} {r['mode']:15s} all done {r['all_done_s']:7.1f} s  best known "
          f"{r['best_known_s']:7.1f} s  best accuracy {r['best_accuracy']:.4f} ({r['accuracy_on']})")
PY
