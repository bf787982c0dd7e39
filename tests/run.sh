#!/usr/bin/env bash
# tests/run.sh: install what is missing, build (normal and ASan+UBSan) and
# run every test suite; a short libFuzzer smoke run when clang is present.
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
  if command -v clang >/dev/null && [ -f tests/fuzz/fuzz_envelope.c ]; then
    if [ ! -f build-fuzz/build.ninja ] &&
        ! CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false >build-fuzz.setup.log 2>&1; then
      tail -30 build-fuzz.setup.log
      echo "tests/run.sh: FAILED to configure the fuzz build"
      exit 1
    fi
    if ! ninja -C build-fuzz >build-fuzz.build.log 2>&1; then
      grep -E "error|FAILED" -A3 build-fuzz.build.log | head -40
      echo "tests/run.sh: FAILED to build the fuzz targets"
      exit 1
    fi
    echo "== fuzz-smoke: 20 s of fuzz_envelope"
    mkdir -p build-fuzz/corpus
    if ./build-fuzz/tests/fuzz/fuzz_envelope -max_total_time=20 -print_final_stats=1 \
        build-fuzz/corpus tests/fuzz/corpus_envelope 2>build-fuzz/fuzz.log; then
      summaries+=("[fuzz-smoke] fuzz_envelope: $(grep -E 'stat::number_of_executed_units' build-fuzz/fuzz.log | awk '{print $2}') runs, no crash")
    else
      tail -30 build-fuzz/fuzz.log
      echo "tests/run.sh: FAILED in fuzz-smoke"
      exit 1
    fi
  else
    summaries+=("[fuzz-smoke] skipped: clang or the fuzz target is missing")
  fi
fi

# The image and the Swarm stack on a real Docker engine (exit 77: skipped,
# says why). Installs and starts Docker when it can; see tests/deploy/docker.sh.
echo "== docker: tests/deploy/docker.sh"
docker_rc=0
docker_log=$(mktemp)
tests/deploy/docker.sh 2>&1 | tee "$docker_log" || docker_rc=$?
if [ $docker_rc -eq 77 ]; then
  summaries+=("[docker] skipped: $(grep -m1 'SKIP:' "$docker_log" | sed 's/.*SKIP: //')")
elif [ $docker_rc -ne 0 ]; then
  rm -f "$docker_log"
  echo "tests/run.sh: FAILED in docker"
  exit 1
else
  summaries+=("[docker] $(grep -m1 '^deploy: image=' "$docker_log")")
fi
rm -f "$docker_log"

echo
echo "== summary"
for s in "${summaries[@]}"; do echo "$s"; done
