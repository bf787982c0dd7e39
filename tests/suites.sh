# shellcheck shell=bash
# suites.sh: the suite runner of tests/run.sh, sourced by it (and by the test
# of the runner itself, tests/support/suites_test.sh).
#
# `suite NAME COMMAND [ARGS...]` runs COMMAND and records NAME with its
# result: exit 0 is ok, 77 skipped (COMMAND says why on its output), anything
# else FAILED. COMMAND may set suite_note to a short text for the summary.
# A failed suite does not stop the ones after it. `suite_summary` prints one
# line per suite and returns 1 if any failed.

results=()
failed=()
suite_note=""

suite() {
  local name=$1 rc=0 t0=$SECONDS status
  shift
  echo "== $name"
  suite_note=""
  "$@" || rc=$?
  case $rc in
    0) status="ok" ;;
    77) status="skipped" ;;
    *)
      status="FAILED (exit $rc)"
      failed+=("$name")
      ;;
  esac
  results+=("$(printf '%-22s %-17s %5ss  %s' "$name" "$status" $((SECONDS - t0)) "$suite_note")")
}

suite_summary() {
  echo
  echo "== summary"
  local r
  for r in "${results[@]}"; do echo "$r"; done
  if [ ${#failed[@]} -gt 0 ]; then
    echo "tests/run.sh: ${#failed[@]} of ${#results[@]} suites FAILED: ${failed[*]}"
    return 1
  fi
  echo "tests/run.sh: all ${#results[@]} suites ok or skipped"
}
