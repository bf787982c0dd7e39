#!/usr/bin/env bash
# bench/fuzz.sh: run every libFuzzer target for a bounded time each and
# print what it did: the RPC frame decoder (fuzz_envelope), every request
# type of the ParameterServer and scheduler services (fuzz_ps, fuzz_scheduler,
# in-process servers), the CSV and IDX loaders (fuzz_csv, fuzz_idx) and the
# JSON spec parsers (fuzz_specs). Builds build-fuzz (clang, -Dfuzz=true:
# every library instrumented, ASan and UBSan) if needed. Seeds come from
# tests/fuzz/corpus_<name> (never written); what a run discovers goes to
# build-fuzz/corpus/<name>, a crashing input to build-fuzz/artifacts/.
# One line per target, then a total:
#   fuzz: target=fuzz_ps seconds=60 execs=N execs_per_s=R crashes=0
#   fuzz: targets=6 execs=N crashes=0 cpu="..." load="..."
# Exits 1 if any target crashed.
#   bench/fuzz.sh [--seconds 60] [--target NAME]...
set -euo pipefail
cd "$(dirname "$0")/.."
secs=60
only=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) secs=$2; shift 2 ;;
    --target) only+=("$2"); shift 2 ;;
    *) echo "usage: bench/fuzz.sh [--seconds N] [--target NAME]..." >&2; exit 2 ;;
  esac
done
command -v clang >/dev/null || { echo "bench/fuzz.sh: clang is not installed" >&2; exit 77; }
targets=(fuzz_envelope fuzz_ps fuzz_scheduler fuzz_csv fuzz_idx fuzz_specs)
[ ${#only[@]} -gt 0 ] && targets=("${only[@]}")
if [ ! -f build-fuzz/build.ninja ] &&
    ! CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false >build-fuzz.setup.log 2>&1; then
  tail -20 build-fuzz.setup.log
  echo "bench/fuzz.sh: cannot configure build-fuzz" >&2
  exit 1
fi
if ! ninja -C build-fuzz -j2 "${targets[@]/#/tests/fuzz/}" >build-fuzz.build.log 2>&1; then
  grep -E "error|FAILED" -A3 build-fuzz.build.log | head -30
  echo "bench/fuzz.sh: cannot build the fuzz targets" >&2
  exit 1
fi
mkdir -p build-fuzz/artifacts
total=0
crashed=0
for t in "${targets[@]}"; do
  seeds=tests/fuzz/corpus_${t#fuzz_}
  work=build-fuzz/corpus/${t#fuzz_}
  mkdir -p "$work"
  log=build-fuzz/$t.log
  rc=0
  # Leaks are checked (detect_leaks=1); an input may take at most 10 s.
  ASAN_OPTIONS=detect_leaks=1 "build-fuzz/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t-" "$work" "$seeds" \
    >"$log" 2>&1 || rc=$?
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  execs=${execs:-0}
  crashes=0
  if [ $rc -ne 0 ]; then
    crashes=1
    crashed=1
    grep -E "ERROR|SUMMARY|artifact|Test unit written" "$log" | head -8 >&2
  fi
  total=$((total + execs))
  echo "fuzz: target=$t seconds=$secs execs=$execs execs_per_s=$((execs / secs)) crashes=$crashes"
done
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
echo "fuzz: targets=${#targets[@]} execs=$total crashes=$crashed cpu=\"$cpu\" load=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
exit $crashed
