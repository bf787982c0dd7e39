# shellcheck shell=bash
# lib.sh: run one canopy training job on a fresh cluster of "small VMs" and
# keep its results (sourced by deploy/experiments/run.sh and bench/ps.sh).
#
#   exp_setup BUILD_DIR               build canopy (release) into BUILD_DIR
#   exp_run_job DIR SPEC.json CORES   start a scheduler (no quota), S ps
#                                     shards and W workers (each limited to
#                                     CORES cores by a cgroup when CORES is
#                                     not "0"; 1 BLAS thread each), run
#                                     `canopy train SPEC.json`, copy
#                                     summary.json and results.jsonl to DIR,
#                                     tear everything down
#   exp_merge BASE.json OVERRIDES_JSON OUT.json   spec = base + overrides
# S and W are read from the spec ("shards", "workers").
EXP_PIDS=()
EXP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../sim/cgroup.sh
. "$EXP_ROOT/deploy/sim/cgroup.sh"

exp_setup() {
  local build=$1
  [ -f "$build/build.ninja" ] || meson setup "$build" "$EXP_ROOT" -Dbuildtype=release >/dev/null
  ninja -C "$build" >/dev/null
  EXP_CANOPY=$build/cli/canopy
}

exp_cleanup() {
  local p
  for p in "${EXP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for p in "${EXP_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for p in "${EXP_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  EXP_PIDS=()
  cg_destroy_all 2>/dev/null || true
  CG_MADE=()
}

exp_merge() {
  /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import json, sys
base = json.load(open(sys.argv[1]))
base.update(json.loads(sys.argv[2]))
json.dump(base, open(sys.argv[3], "w"), indent=1)
PY
}

exp_spec_get() {
  /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], sys.argv[3]))" "$1" "$2" "$3"
}

# exp_start NAME CORES CMD...: run CMD in the background, in its own cgroup
# when CORES != 0.
exp_start() {
  local name=$1 cores=$2
  shift 2
  if [ "$cores" != 0 ]; then
    cg_create "exp-$$-$name" "$cores"
    ( cg_exec "exp-$$-$name" "$@" ) &
  else
    "$@" &
  fi
  EXP_PIDS+=($!)
}

exp_run_job() {
  local dir=$1 spec=$2 cores=$3
  local shards workers port url i
  shards=$(exp_spec_get "$spec" shards 1)
  workers=$(exp_spec_get "$spec" workers 1)
  mkdir -p "$dir/checkpoints"
  rm -rf "$dir/state"
  port=$(( 18000 + (RANDOM % 20000) ))
  url=tcp://127.0.0.1:$port
  export CANOPY_TOKEN=exp-$$
  "$EXP_CANOPY" scheduler --listen "$url" --state-dir "$dir/state" --log-level warn \
    2>"$dir/scheduler.log" &
  EXP_PIDS+=($!)
  for i in $(seq 0 $((shards - 1))); do
    exp_start "ps$i" "${EXP_PS_CORES:-$cores}" "$EXP_CANOPY" ps --scheduler "$url" --name "ps-$i" \
      --checkpoint-dir "$dir/checkpoints" --log-level warn 2>>"$dir/ps.log"
    # one at a time, so shard k is the ps of rank k
    until "$EXP_CANOPY" status --scheduler "$url" --json 2>/dev/null |
        grep -o '"role":"ps"' | wc -l | grep -qx "$((i + 1))"; do sleep 0.05; done
  done
  for i in $(seq 1 "$workers"); do
    exp_start "w$i" "$cores" "$EXP_CANOPY" worker --scheduler "$url" --name "small-vm-$i" \
      --threads 1 --log-level warn 2>>"$dir/workers.log"
  done
  until "$EXP_CANOPY" status --scheduler "$url" --json 2>/dev/null |
      grep -o '"role":"worker"' | wc -l | grep -qx "$workers"; do sleep 0.05; done
  local rc=0
  "$EXP_CANOPY" train "$spec" --scheduler "$url" --poll-ms 200 >"$dir/train.out" 2>&1 || rc=$?
  local job
  job=$(ls -d "$dir"/state/train/*/ 2>/dev/null | head -1)
  if [ -n "$job" ]; then
    cp "$job/results.jsonl" "$dir/" 2>/dev/null || true
    cp "$job/summary.json" "$dir/" 2>/dev/null || true
  fi
  exp_cleanup
  rm -rf "$dir/state"
  return $rc
}
