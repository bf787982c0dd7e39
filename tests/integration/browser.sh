#!/usr/bin/env bash
# tests/integration/browser.sh: the dashboard in a real browser. Starts a
# small cluster (a scheduler with --http, a ps shard, two workers), runs a
# short training job, opens the dashboard in headless Chromium and checks,
# in the rendered DOM, that the cluster page lists the nodes and the
# training page shows charts with data points; saves a screenshot.
# Exit 77 (skipped) only where Chromium is missing or cannot start.
#   browser.sh CANOPY SCREENSHOT.png
set -euo pipefail
canopy=$1
shot=$2
chrome=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chrome" ]; then
  echo "browser.sh: SKIPPED: chromium is not installed (deploy/install-deps.sh installs it)"
  exit 77
fi
# Chromium refuses its sandbox as root and in most containers.
chrome_args=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars)
if ! timeout 60 "$chrome" "${chrome_args[@]}" --dump-dom about:blank >/dev/null 2>&1; then
  echo "browser.sh: SKIPPED: chromium is installed but cannot start headless here"
  exit 77
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)
http_port=$(free_port)
url=tcp://127.0.0.1:$port
dash=http://127.0.0.1:$http_port
export CANOPY_TOKEN=browser-$$
log=$tmp/cluster.log
"$canopy" scheduler --listen "$url" --state-dir "$tmp/state" --http "127.0.0.1:$http_port" \
  >>"$log" 2>&1 &
pids+=($!)
"$canopy" ps --scheduler "$url" --name ps-0 --checkpoint-dir "$tmp/ckpt" >>"$log" 2>&1 &
pids+=($!)
for i in 0 1; do
  "$canopy" worker --scheduler "$url" --name "worker-$i" --threads 1 \
    --cache-dir "$tmp/cache-$i" >>"$log" 2>&1 &
  pids+=($!)
done
# Wait until every node is registered and alive (the API says so).
for _ in $(seq 1 300); do
  n=$(python3 - "$dash/api/nodes" <<'PY' 2>/dev/null || echo 0
import json, sys, urllib.request
d = json.load(urllib.request.urlopen(sys.argv[1], timeout=2))
print(sum(1 for n in d["nodes"] if n["state"] == "alive"))
PY
)
  [ "$n" = 3 ] && break
  sleep 0.1
done
[ "$n" = 3 ] || { echo "browser.sh: the cluster did not come up"; cat "$log"; exit 1; }

fm=/usr/share/datasets/fashion-mnist
cat >"$tmp/job.json" <<JSON
{"name": "browser", "train_rows": 3000, "test_rows": 1000, "hidden": [32],
 "train_images": "$fm/train-images-idx3-ubyte.gz", "train_labels": "$fm/train-labels-idx1-ubyte.gz",
 "test_images": "$fm/t10k-images-idx3-ubyte.gz", "test_labels": "$fm/t10k-labels-idx1-ubyte.gz",
 "optimizer": "momentum", "lr": 0.05, "batch": 32, "epochs": 2, "consistency": "asp",
 "shards": 1, "workers": 2, "seed": 4, "eval_every_s": 0.3, "report_every_s": 0.2}
JSON
"$canopy" train "$tmp/job.json" --scheduler "$url" >"$tmp/train.out" 2>&1 ||
  { echo "browser.sh: the training job failed"; cat "$tmp/train.out"; exit 1; }

dom() { # page -> rendered DOM after the script ran
  timeout 120 "$chrome" "${chrome_args[@]}" --virtual-time-budget=8000 --dump-dom "$dash$1" 2>/dev/null
}
cluster=$(dom /cluster)
nodes=$(grep -o '<tr class="node">' <<<"$cluster" | wc -l)
if [ "$nodes" -ne 4 ]; then
  echo "browser.sh: FAIL: the cluster page shows $nodes node rows, expected 4 (scheduler, ps, 2 workers)"
  echo "$cluster" | head -50
  exit 1
fi
for want in '>ps-0<' '>worker-0<' '>worker-1<' 'class="state-alive">alive<'; do
  grep -q "$want" <<<"$cluster" || { echo "browser.sh: FAIL: the cluster page lacks $want"; exit 1; }
done
training=$(dom /training)
charts=$(grep -o '<div class="figure" data-figure="[a-z-]*"><svg' <<<"$training" | wc -l)
points=$(grep -o 'class="series" data-points="[0-9]*"' <<<"$training" | grep -cv 'data-points="0"' || true)
if [ "$charts" -lt 4 ] || [ "$points" -lt 4 ]; then
  echo "browser.sh: FAIL: the training page shows $charts charts and $points series with data points"
  echo "$training" | head -80
  exit 1
fi
grep -q 'data-figure="accuracy-time"' <<<"$training" ||
  { echo "browser.sh: FAIL: no accuracy chart on the training page"; exit 1; }
rm -f "$shot"
timeout 120 "$chrome" "${chrome_args[@]}" --virtual-time-budget=8000 --window-size=1400,1100 \
  --screenshot="$shot" "$dash/training" >/dev/null 2>&1
[ -s "$shot" ] || { echo "browser.sh: FAIL: no screenshot written to $shot"; exit 1; }
echo "browser.sh: ok: $nodes nodes on /cluster, $charts charts ($points series with points) on /training; screenshot $shot"
