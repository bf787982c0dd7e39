#!/usr/bin/env bash
# failure_logs.sh: a failing test prints the last lines of its children's
# logs and leaves no directory behind (tests/support/support.c).
#   failure_logs.sh FAILING_DEMO
set -euo pipefail
demo=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/canopy-failure-logs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rc=0
TMPDIR=$tmp "$demo" >"$tmp.out" 2>&1 || rc=$?
out=$(cat "$tmp.out")
rm -f "$tmp.out"
fail() { echo "failure_logs: FAIL: $*"; echo "$out"; exit 1; }
[ "$rc" -ne 0 ] || fail "the failing demo exited 0"
grep -q -- "--- last lines of $tmp/canopy-test-.*/daemon.log" <<<"$out" || fail "no log header"
grep -q "^daemon said: ready$" <<<"$out" || fail "the child's log line was not printed"
[ -z "$(ls -A "$tmp")" ] || fail "left behind: $(ls -A "$tmp")"
echo "failure_logs: ok"
