#!/usr/bin/env bash
# suites_test.sh: the suite runner of tests/run.sh (tests/suites.sh) runs
# every suite after a failing one, lists each with its result, and fails
# overall when one failed.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/suites.sh
. "$here/../suites.sh"

fails() { echo "first: something broke"; return 3; }
passes() { suite_note="note two"; }
skips() { echo "third: skipped: not here"; return 77; }

problems=0
check() { # DESCRIPTION COMMAND...: count a problem when COMMAND fails
  local what=$1
  shift
  "$@" || { echo "suites_test: FAIL: $what"; problems=$((problems + 1)); }
}

out=$(suite one fails; suite two passes; suite three skips; suite_summary; echo "rc=$?")
check "every suite ran after the failing one" grep -q "^== three$" <<<"$out"
check "the failure is listed with its exit code" grep -qE "^one +FAILED \(exit 3\)" <<<"$out"
check "the passing suite is listed with its note" grep -qE "^two +ok +[0-9]+s  note two$" <<<"$out"
check "the skipped suite is listed" grep -qE "^three +skipped" <<<"$out"
check "the count names the failed suite" grep -q "1 of 3 suites FAILED: one$" <<<"$out"
check "the summary fails" grep -q "^rc=1$" <<<"$out"

out=$(suite two passes; suite three skips; suite_summary; echo "rc=$?")
check "all ok or skipped succeeds" grep -q "^rc=0$" <<<"$out"

if [ $problems -gt 0 ]; then
  echo "$out"
  exit 1
fi
echo "suites_test: ok"
