#!/usr/bin/env bash
# tests/run.sh: install what is missing, build (normal and ASan+UBSan) and
# run every test suite; a short run of every libFuzzer target when clang is present.
# Ends with the test runners' own summary lines.
#   tests/run.sh [--quick]   --quick skips the sanitizer build and fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1

./deploy/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
summaries=()

run_suite() { # name builddir meson-setup-args...
  local name=$1 dir=$2
  shift 2
  if [ ! -f "$dir/build.ninja" ]; then
    if ! meson setup "$dir" "$@" >"$dir.setup.log" 2>&1; then
      tail -30 "$dir.setup.log"
      echo "tests/run.sh: FAILED to configure $name (log: $dir.setup.log)"
      exit 1
    fi
  fi
  if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
    grep -E "error|FAILED" -A3 "$dir.build.log" | head -40
    echo "tests/run.sh: FAILED to build $name (log: $dir.build.log)"
    exit 1
  fi
  echo "== $name: meson test"
  local log
  log=$(mktemp)
  if meson test -C "$dir" --print-errorlogs --num-processes "$jobs" 2>&1 | tee "$log"; then
    :
  else
    summaries+=("[$name] $(grep -E '^(Ok|Fail|Expected Fail|Unexpected Pass|Skipped|Timeout):' "$log" | tr '\n' ' ')")
    rm -f "$log"
    for s in "${summaries[@]}"; do echo "$s"; done
    echo "tests/run.sh: FAILED in $name (logs in $dir/meson-logs/testlog.txt)"
    exit 1
  fi
  summaries+=("[$name] $(grep -E '^(Ok|Fail|Expected Fail|Unexpected Pass|Skipped|Timeout):' "$log" | tr '\n' ' ')")
  rm -f "$log"
}

run_suite normal build
# Simulated VMs where namespaces are allowed (exit 77: skipped, says why).
echo "== sim: deploy/sim/selftest.sh"
sim_rc=0
deploy/sim/selftest.sh --canopy build/cli/canopy || sim_rc=$?
if [ $sim_rc -eq 77 ]; then
  summaries+=("[sim] skipped: namespaces or cgroups not available here")
elif [ $sim_rc -ne 0 ]; then
  echo "tests/run.sh: FAILED in sim"
  exit 1
elif ! sim_left=$(CANOPY_SIM_PREFIX=cnst deploy/sim/sim.sh leftovers); then
  echo "$sim_left"
  echo "tests/run.sh: FAILED in sim: namespaces, links or cgroups left behind"
  exit 1
else
  summaries+=("[sim] selftest ok, no namespace, link or cgroup left")
fi
if [ $quick -eq 0 ]; then
  run_suite asan+ubsan build-asan -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fno-sanitize-recover=all
  if command -v clang >/dev/null; then
    # Every fuzz target for 8 s (six targets: under a minute).
    echo "== fuzz-smoke: bench/fuzz.sh --seconds 8"
    if fuzz_out=$(bench/fuzz.sh --seconds 8); then
      echo "$fuzz_out"
      summaries+=("[fuzz-smoke] $(echo "$fuzz_out" | tail -1 | cut -d' ' -f2-4), no crash")
    else
      echo "$fuzz_out"
      echo "tests/run.sh: FAILED in fuzz-smoke (logs in build-fuzz/)"
      exit 1
    fi
  else
    summaries+=("[fuzz-smoke] skipped: clang is not installed")
  fi
fi

echo
echo "== summary"
for s in "${summaries[@]}"; do echo "$s"; done
