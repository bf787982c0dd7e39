#!/usr/bin/env bash
# tests/run.sh: install what is missing, build (normal and ASan+UBSan) and
# run every test suite; the simulated VMs where namespaces are allowed; a
# short run of every libFuzzer target when clang is present.
#
# Every suite runs, whatever happened to the ones before it. The summary at
# the end lists each suite with its result (ok, skipped, FAILED) and time,
# and the exit status is 1 if any suite failed. A failing integration test or
# simulator run prints the last lines of each daemon's log before it cleans
# up (tests/support/support.c, deploy/sim/selftest.sh).
#   tests/run.sh [--quick]   --quick skips the sanitizer build and fuzzing
#
# Adding a suite is one line: `suite NAME COMMAND [ARGS...]` (tests/suites.sh).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc 2>/dev/null || echo 2)
# shellcheck source=tests/suites.sh
. tests/suites.sh

# meson_build DIR [SETUP-ARGS...]: configure DIR once, then build it.
meson_build() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ] && ! meson setup "$dir" "$@" >"$dir.setup.log" 2>&1; then
    tail -30 "$dir.setup.log"
    suite_note="configure failed (log: $dir.setup.log)"
    return 1
  fi
  if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
    grep -E "error|FAILED" -A3 "$dir.build.log" | head -40
    suite_note="build failed (log: $dir.build.log)"
    return 1
  fi
}

# meson_suites DIR: the test suites the build in DIR registers.
meson_suites() {
  meson introspect "$1" --tests 2>/dev/null | python3 -c '
import json, sys
print(" ".join(sorted({s.split(":")[-1] for t in json.load(sys.stdin) for s in t["suite"]})))'
}

# meson_tests DIR SUITE: run one meson test suite of the build in DIR.
meson_tests() {
  local log rc
  log=$(mktemp)
  meson test -C "$1" --suite "$2" --print-errorlogs --num-processes "$jobs" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  suite_note=$(grep -E '^(Ok|Fail|Unexpected Pass|Skipped|Timeout):' "$log" | tr -s ' \n' ' ' | sed 's/ $//')
  rm -f "$log"
  return "$rc"
}

# sim_selftest: the simulated VMs (exit 77 where namespaces or cgroups are
# not allowed), then a check that nothing of them is left behind.
sim_selftest() {
  local rc=0 left
  deploy/sim/selftest.sh --canopy build/cli/canopy || rc=$?
  [ $rc -eq 0 ] || return $rc
  if ! left=$(CANOPY_SIM_PREFIX=cnst deploy/sim/sim.sh leftovers) || [ -n "$left" ]; then
    echo "$left"
    suite_note="namespaces, links or cgroups left behind"
    return 1
  fi
  suite_note="no namespace, link or cgroup left"
}

# fuzz_smoke: every libFuzzer target for 8 s (bench/fuzz.sh; six targets,
# under a minute). Skipped without clang.
fuzz_smoke() {
  local out rc=0
  out=$(bench/fuzz.sh --seconds 8) || rc=$?
  echo "$out"
  if [ $rc -eq 77 ]; then
    echo "fuzz-smoke: skipped: clang is not installed"
    return 77
  fi
  if [ $rc -ne 0 ]; then
    suite_note="a target crashed (logs in build-fuzz/)"
    return 1
  fi
  suite_note="$(echo "$out" | tail -1 | cut -d' ' -f2-4), no crash"
}

suite deps ./deploy/install-deps.sh
suite build meson_build build
for s in $(meson_suites build); do
  suite "$s" meson_tests build "$s"
done
suite sim sim_selftest
if [ $quick -eq 0 ]; then
  suite asan-build meson_build build-asan -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fno-sanitize-recover=all
  for s in $(meson_suites build-asan); do
    suite "asan/$s" meson_tests build-asan "$s"
  done
  suite fuzz-smoke fuzz_smoke
fi

suite_summary
