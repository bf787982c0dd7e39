#!/usr/bin/env bash
# selftest.sh: the simulator end to end, in under two minutes. Brings up
# three simulated VMs (2 ms of added latency on each link, so the shaping
# path is exercised too), runs a tiny forest sweep with the scheduler on
# host1 and workers on host2 and host3, and while it runs: stops host3 (every
# process SIGKILLed) and starts it again, cuts host2's link and heals it, and
# slows host2 down and back. Waits by polling `canopy status --json`, never by
# sleeping a fixed time. Checks the sweep finished with every unit done, tears
# everything down, checks nothing is left, and ends with
#   sim: hosts=3 faults=N ok
#   deploy/sim/selftest.sh [--canopy PATH]   (default: build-sim/cli/canopy,
#                                             built if missing)
# Exit status 77 (skip) when this machine cannot make namespaces.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
canopy=""
while [ $# -gt 0 ]; do
  case $1 in
    --canopy) canopy=$2; shift 2 ;;
    *) echo "usage: selftest.sh [--canopy PATH]" >&2; exit 2 ;;
  esac
done
t0=$(date +%s)

# Own prefix, subnet and state, so a selftest never meets a user's sim.
export CANOPY_SIM_PREFIX=cnst CANOPY_SIM_SUBNET=10.214.0
export CANOPY_SIM_STATE=${TMPDIR:-/tmp}/canopy-sim-selftest.$$
sim="$here/sim.sh"

skip() { echo "sim: SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root for network namespaces, links and cgroups"
command -v ip >/dev/null || skip "the ip command (iproute2) is missing"
probe=cnst-probe$$
ip netns add "$probe" 2>/dev/null || skip "this machine does not allow network namespaces (ip netns add failed)"
ip netns del "$probe"
if ! ip link add "cnst-pv$$" type veth peer name "cnst-pw$$" 2>/dev/null; then
  skip "this machine does not allow virtual ethernet links (ip link add type veth failed)"
fi
ip link del "cnst-pv$$" 2>/dev/null || true
if ! ip link add "cnst-pb$$" type bridge 2>/dev/null; then
  skip "this machine does not allow bridges (ip link add type bridge failed)"
fi
ip link del "cnst-pb$$" 2>/dev/null || true
# shellcheck source=SCRIPTDIR/cgroup.sh
. "$here/cgroup.sh"
cg_available || skip "CPU cgroups are not writable here"
[ -z "$("$sim" leftovers)" ] || { echo "sim: leftovers of an earlier selftest:" >&2; "$sim" leftovers >&2; exit 1; }

if [ -z "$canopy" ]; then
  if [ ! -x "$root/build-sim/cli/canopy" ]; then
    [ -f "$root/build-sim/build.ninja" ] || meson setup "$root/build-sim" "$root" -Dbuildtype=release >/dev/null
    ninja -C "$root/build-sim" >/dev/null
  fi
  canopy=$root/build-sim/cli/canopy
fi
canopy=$(cd "$(dirname "$canopy")" && pwd)/$(basename "$canopy")
[ -x "$canopy" ] || { echo "sim: no canopy executable at $canopy" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/canopy-selftest.XXXXXX")
tune_pid=""
finish() {
  local rc=$?
  [ -z "$tune_pid" ] || kill "$tune_pid" 2>/dev/null || true
  # The daemons' logs live in the simulator's state, which `down` removes:
  # show them first.
  if [ $rc -ne 0 ]; then
    echo "sim: selftest FAILED (rc $rc); logs:" >&2
    for f in "$CANOPY_SIM_STATE"/logs/*.log "$work"/*.log; do
      [ -f "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }
    done
  fi
  "$sim" down >/dev/null 2>&1 || "$sim" down || rc=1
  rm -rf "$work"
  exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM

fail() { echo "sim: FAIL: $*" >&2; exit 1; }
elapsed() { echo $(( $(date +%s) - t0 )); }

"$sim" up 3 --cores 0.5 --delay 2ms
a1=$("$sim" addr host1)
sched=tcp://$a1:7070
export CANOPY_TOKEN=selftest-$$

# Every status call goes from host1, the scheduler's own host.
status_json() { "$sim" run host1 "$canopy" status --insecure --scheduler "$sched" --json --timeout-ms 1000 2>/dev/null; }
# state_of NAME: the state of the newest node called NAME ("" if none).
state_of() {
  status_json | python3 -c '
import json, sys
try:
    nodes = json.load(sys.stdin)["nodes"]
except Exception:
    sys.exit(0)
alive = [n for n in nodes if n["name"] == sys.argv[1]]
states = [n["state"] for n in alive]
print("alive" if "alive" in states else (states[-1] if states else ""))' "$1"
}
wait_for() { # DESCRIPTION SECONDS COMMAND...: poll COMMAND until it succeeds
  local what=$1 limit=$2 end
  shift 2
  end=$(( $(date +%s) + limit ))
  until "$@"; do
    [ "$(date +%s)" -lt "$end" ] || fail "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}
is_state() { [ "$(state_of "$1")" = "$2" ]; }
busy() { # some worker is running a unit
  status_json | python3 -c '
import json, sys
nodes = json.load(sys.stdin)["nodes"]
sys.exit(0 if any(n["role"] == "worker" and n["status"] not in ("idle", "") for n in nodes) else 1)' 2>/dev/null
}
not_alive() { [ "$(state_of "$1")" != alive ]; }

"$sim" spawn host1 scheduler "$canopy" scheduler --insecure --listen "$sched" --state-dir "$work/state" \
  --heartbeat-ms 200 --dead-after-ms 1500 --log-level warn >/dev/null
for h in 2 3; do
  a=$("$sim" addr host$h)
  "$sim" spawn host$h worker "$canopy" worker --insecure --scheduler "$sched" --listen "tcp://$a:7072" \
    --name "w$h" --threads 1 --cache-dir "$work/cache-$h" --log-level warn >/dev/null
done
wait_for "the scheduler on host1" 20 is_state scheduler alive
wait_for "worker w2 on host2" 20 is_state w2 alive
wait_for "worker w3 on host3" 20 is_state w3 alive
status_json | grep -q "\"address\":\"tcp://$("$sim" addr host3):7072\"" ||
  fail "w3 does not advertise its host's address"
echo "sim: cluster up across 3 hosts after $(elapsed)s"

cat > "$work/tiny.json" <<EOF
{
  "name": "sim-selftest",
  "data": {"path": "$root/data/covertype-kaggle-train.csv.gz", "label": "Cover_Type", "drop": "Id"},
  "cv": {"folds": 3, "seed": 0, "shuffle": true},
  "fixed": {"n_estimators": 100},
  "space": {"max_features": {"choice": ["sqrt", 0.5]}, "min_samples_leaf": {"choice": [1, 2, 4]}},
  "search": {"algorithm": "random", "samples": 12, "seed": 1},
  "limits": {"unit_timeout_s": 60, "retries": 3}
}
EOF
"$sim" run host1 "$canopy" tune --insecure "$work/tiny.json" --scheduler "$sched" --fresh --json \
  --best-out "$work/best.json" --csv "$work/trials.csv" >"$work/tune.json" 2>"$work/tune.log" &
tune_pid=$!

faults=0
# Fault 1: power off host3 mid-sweep, see its worker declared dead, power on.
wait_for "the sweep to start" 30 busy
"$sim" stop host3
faults=$((faults + 1))
wait_for "w3 declared dead" 15 not_alive w3
"$sim" start host3
wait_for "w3 back after restart" 20 is_state w3 alive
echo "sim: host3 stopped and restarted, w3 alive again after $(elapsed)s"

# Fault 2: cut host2's link; the scheduler loses it; heal; it comes back.
"$sim" cut host2
faults=$((faults + 1))
wait_for "w2 declared dead after the cut" 15 not_alive w2
"$sim" heal host2
wait_for "w2 alive after the heal" 20 is_state w2 alive
echo "sim: host2 link cut and healed, w2 alive again after $(elapsed)s"

# Fault 3: slow host2 by 50 ms, still alive; then back to 2 ms.
"$sim" slow host2 50ms
faults=$((faults + 1))
wait_for "w2 alive while slowed" 10 is_state w2 alive
"$sim" slow host2 2ms
running=0
kill -0 "$tune_pid" 2>/dev/null && running=1
echo "sim: faults done after $(elapsed)s, sweep still running: $([ $running = 1 ] && echo yes || echo no)"

wait "$tune_pid" || fail "canopy tune failed: $(tail -5 "$work/tune.log")"
tune_pid=""
python3 - "$work/tune.json" <<'PY' || fail "the sweep did not finish cleanly: $(cat "$work/tune.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["state"] == "done", r["state"]
assert r["units_failed"] == 0, r["units_failed"]
assert r["units"] == 13 * 3, r["units"]
print(f"sim: sweep {r['units']} units in {r['elapsed_seconds']:.1f}s, best cv acc {r['best_cv_acc']:.3f}")
PY
if ! is_state w2 alive || ! is_state w3 alive; then fail "a worker is not alive after the sweep"; fi

trap - EXIT
"$sim" down
left=$("$sim" leftovers || true)
[ -z "$left" ] || { echo "$left" >&2; fail "teardown left namespaces, links or cgroups behind"; }
rm -rf "$work"
t=$(elapsed)
[ "$t" -lt 120 ] || fail "took ${t}s (limit 120s)"
echo "sim: selftest took ${t}s"
echo "sim: hosts=3 faults=$faults ok"
