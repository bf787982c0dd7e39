#!/usr/bin/env bash
# quickstart.sh: the main job on the embedded default cluster.
# Installs what is missing, builds canopy (release), then on loopback:
#   1. a cluster of a scheduler, a parameter-server shard and two workers,
#      shown with `canopy status --ping`;
#   2. the random forest with scikit-learn's default parameters, 5-fold
#      shuffled stratified cross-validation on the forest-cover data;
#   3. the shipped hyper-parameter sweep (deploy/sweeps/forest-cover-tpe.json:
#      TPE proposals, ASHA stopping poor trials after one fold) distributed
#      over two workers;
#   4. data-parallel MLP training on Fashion-MNIST through two parameter-server
#      shards with two workers (deploy/jobs/fashion-mlp.json, asynchronous);
#   5. federated learning on the same servers (deploy/jobs/fashion-fedavg.json);
#   6. the report (`canopy report`) from everything in state/quickstart/ and
#      results/, with a snapshot of the dashboard.
# Results land in state/quickstart/ (the scheduler's state directory) and in
# results/quickstart/ (best parameters, all trials); the report in report/.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh
if [ ! -f build-release/build.ninja ]; then
  meson setup build-release -Dbuildtype=release >/dev/null
fi
ninja -C build-release >/dev/null
canopy=./build-release/cli/canopy
mkdir -p results/quickstart

echo "== 1. canopy $($canopy version | head -n 1 | cut -d' ' -f2): an embedded cluster on loopback"
$canopy local --ps 1 --workers 2 --state-dir state/quickstart status --ping

echo
echo "== 2. random forest, default parameters, 5-fold shuffled stratified CV"
$canopy forest cv --folds 5 --seed 0 data/covertype-kaggle-train.csv.gz

echo
echo "== 3. distributed sweep: deploy/sweeps/forest-cover-tpe.json on 2 workers"
$canopy local --ps 0 --workers 2 --threads 1 --state-dir state/quickstart \
  tune deploy/sweeps/forest-cover-tpe.json --fresh --top 5 \
  --best-out results/quickstart/best.json --csv results/quickstart/trials.csv

echo
echo "== 4. data-parallel MLP training: deploy/jobs/fashion-mlp.json, 2 ps shards, 2 workers"
$canopy local --ps 2 --workers 2 --threads 1 --state-dir state/quickstart \
  train deploy/jobs/fashion-mlp.json

echo
echo "== 5. federated learning on the same servers: deploy/jobs/fashion-fedavg.json"
echo "   (the assignment's layout: one shard as the combiner, two clients, FedAvg)"
$canopy local --ps 1 --workers 2 --threads 1 --state-dir state/quickstart \
  train deploy/jobs/fashion-fedavg.json

echo
echo "== 6. the report: every answer written from the result files above"
# A scheduler on the quickstart state serves the finished jobs' dashboard
# for the snapshot, then stops.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$canopy scheduler --listen "tcp://127.0.0.1:$port" --state-dir state/quickstart \
  --http "127.0.0.1:$hport" --log-level warn &
dash_pid=$!
trap 'kill $dash_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
    "http://127.0.0.1:$hport/api/jobs" 2>/dev/null && break
  sleep 0.1
done
shot=()
command -v chromium >/dev/null && shot=(--screenshot "http://127.0.0.1:$hport/training")
$canopy report state/quickstart results -o report "${shot[@]}"
kill $dash_pid 2>/dev/null || true
wait $dash_pid 2>/dev/null || true
trap - EXIT
echo "the report: report/index.html (one file, figures inline) and report/REPORT.md"
