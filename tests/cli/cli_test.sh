#!/usr/bin/env bash
# cli_test.sh: the canopy executable run as a user runs it, checking what it
# prints and its exit codes (docs/cli.md): help that lists only what each
# command takes, a cut gzip file refused as truncated, forest predict
# matching columns by name, whole error messages, one exit code per kind of
# fault (a refused token included), and counts in the singular.
#   tests/cli/cli_test.sh CANOPY SOURCE_ROOT
set -uo pipefail
canopy=$(realpath "$1")
root=$(realpath "$2")
work=$(mktemp -d "${TMPDIR:-/tmp}/canopy-cli-test.XXXXXX")
sched_pid=""
cleanup() {
  if [ -n "$sched_pid" ]; then
    kill "$sched_pid" 2>/dev/null
    wait "$sched_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1 # whatever a command writes by default lands here

checks=0
problems=0
out=""
problem() {
  echo "cli_test: FAIL: $*"
  problems=$((problems + 1))
}
# run CODE ARGS...: run canopy with ARGS (for at most 60 s: a command that
# should refuse must not start a daemon); out holds stdout and stderr; a
# problem unless it exits with CODE.
run() {
  local want=$1 rc=0
  shift
  checks=$((checks + 1))
  out=$(timeout 60 "$canopy" "$@" 2>&1) || rc=$?
  [ "$rc" -eq "$want" ] || problem "canopy $* exited $rc, expected $want; it printed: ${out:0:2000}"
}
# has TEXT / lacks TEXT: the last output contains (does not contain) TEXT.
has() {
  checks=$((checks + 1))
  grep -qF -- "$1" <<<"$out" || problem "expected \"$1\" in: ${out:0:2000}"
}
lacks() {
  checks=$((checks + 1))
  ! grep -qF -- "$1" <<<"$out" || problem "did not expect \"$1\" in: ${out:0:2000}"
}

data=$root/data/covertype-kaggle-train.csv.gz
zcat "$data" | head -301 >"$work/d.csv"

# --- Help lists what is built, and for each role only its options (item 7).
run 0 --help
lacks dashboard
lacks federated
run 0 scheduler --help
lacks "--scheduler "
has "--state-dir"
run 0 ps --help
lacks "--cache-dir"
has "--checkpoint-dir"
run 0 worker --help
lacks "--checkpoint-dir"
has "--cache-dir"
run 2 scheduler --scheduler tcp://127.0.0.1:1
has "canopy scheduler: --scheduler: not an option of this command"
# A daemon refuses a bad directory before it starts anything (it would
# otherwise try to register first: exit 4 after the timeout).
touch "$work/a-file"
run 2 worker --cache-dir "$work/a-file" --scheduler tcp://127.0.0.1:1 --register-timeout-ms 200
has "canopy worker: --cache-dir: \"$work/a-file\" exists and is not a directory"
run 2 worker --data "$work/no-such-dir" --scheduler tcp://127.0.0.1:1 --register-timeout-ms 200
has "canopy worker: --data: \"$work/no-such-dir\" is not a directory"
run 2 ps --checkpoint-dir "$work/a-file" --scheduler tcp://127.0.0.1:1 --register-timeout-ms 200
has "canopy ps: --checkpoint-dir: \"$work/a-file\" exists and is not a directory"

# --- A cut gzip file is refused as truncated wherever data is read (item 2).
gzip -c "$work/d.csv" >"$work/whole.csv.gz"
size=$(stat -c %s "$work/whole.csv.gz")
cuts=0
for ((at = 1; at < size; at += (at < 40 || at > size - 40 ? 1 : 97))); do
  head -c "$at" "$work/whole.csv.gz" >"$work/cut.csv.gz"
  run 3 forest fit "$work/cut.csv.gz" -o "$work/cut.cnf"
  has "cut.csv.gz: the file is truncated"
  cuts=$((cuts + 1))
done
run 0 forest fit "$work/whole.csv.gz" -o "$work/whole.cnf" --set n_estimators=2
python3 - "$work" <<'PY'
import gzip, struct, sys
w = sys.argv[1]
n = 40
img = struct.pack(">IIII", 0x803, n, 4, 4) + bytes((i * 7 + j) % 256 for i in range(n) for j in range(16))
lab = struct.pack(">II", 0x801, n) + bytes(i % 3 for i in range(n))
gzip.open(f"{w}/img.gz", "wb").write(img)
gzip.open(f"{w}/lab.gz", "wb").write(lab)
whole = open(f"{w}/img.gz", "rb").read()
open(f"{w}/img-cut.gz", "wb").write(whole[: len(whole) - 5])
PY
idx=(--train-labels "$work/lab.gz" --test-images "$work/img.gz" --test-labels "$work/lab.gz")
run 3 mlp train --train-images "$work/img-cut.gz" "${idx[@]}" --epochs 1
has "img-cut.gz: the file is truncated"

# --- forest predict matches columns by name with a header (item 3).
run 0 forest fit "$work/d.csv" -o "$work/m.cnf" --set n_estimators=5
python3 - "$work" <<'PY'
import csv, sys
w = sys.argv[1]
rows = list(csv.reader(open(f"{w}/d.csv")))
h = rows[0]
a, b = h.index("Elevation"), h.index("Horizontal_Distance_To_Roadways")
def write(name, rows):
    csv.writer(open(f"{w}/{name}", "w", newline=""), lineterminator="\n").writerows(rows)
swapped = [r[:] for r in rows]
for r in swapped:
    r[a], r[b] = r[b], r[a]
write("swapped.csv", swapped)
write("missing.csv", [[c for i, c in enumerate(r) if i not in (a, b)] for r in rows])
write("extra.csv", [r + (["Remark"] if k == 0 else ["7"]) for k, r in enumerate(rows)])
write("noheader.csv", [r[1:] for r in rows[1:]])  # no Id column: it has no name to drop by
PY
run 0 forest predict "$work/m.cnf" "$work/d.csv" -o "$work/p-plain.csv"
run 0 forest predict "$work/m.cnf" "$work/swapped.csv" -o "$work/p-swapped.csv"
checks=$((checks + 1))
cmp -s "$work/p-plain.csv" "$work/p-swapped.csv" ||
  problem "swapping two columns (header included) changed the predictions"
run 3 forest predict "$work/m.cnf" "$work/missing.csv"
has "missing.csv: no columns named Elevation, Horizontal_Distance_To_Roadways (2 of the 54 needed)"
run 0 forest predict "$work/m.cnf" "$work/extra.csv" -o "$work/p-extra.csv"
has "extra.csv: ignoring columns the model was not trained on: Remark"
checks=$((checks + 1))
cmp -s "$work/p-plain.csv" "$work/p-extra.csv" || problem "an extra column changed the predictions"
run 0 forest predict "$work/m.cnf" "$work/noheader.csv" --no-header --label-col -1 \
  -o "$work/p-noheader.csv"
checks=$((checks + 1))
[ "$(cut -d, -f2 "$work/p-noheader.csv")" = "$(cut -d, -f2 "$work/p-plain.csv")" ] ||
  problem "without a header, columns by position should give the same predictions"
run 0 forest predict "$work/m.cnf" "$work/d.csv" --proba -o "$work/p-proba.csv"
checks=$((checks + 1))
python3 - "$work/p-proba.csv" "$work/p-plain.csv" <<'PY' || problem "--proba output is wrong"
import csv, sys
proba = list(csv.reader(open(sys.argv[1])))
plain = list(csv.reader(open(sys.argv[2])))
head = proba[0]
assert head[:2] == ["Id", "Cover_Type"] and all(c.startswith("p_") for c in head[2:]), head
classes = [int(c[2:]) for c in head[2:]]
for row, ref in zip(proba[1:], plain[1:]):
    assert row[:2] == ref, (row, ref)
    p = [float(x) for x in row[2:]]
    assert abs(sum(p) - 1) < 1e-4, row
    assert classes[p.index(max(p))] == int(row[1]), row
PY
run 2 forest predict "$work/m.cnf" "$work/d.csv" --proba
has "--proba writes the probabilities into the predictions file"

# --- Error messages are whole, and bad data is 3 in every command (item 8).
run 3 forest fit "$data" --label Cover -o "$work/x.cnf"
has "Soil_Type40, Cover_Type (choose the label column by one of these names or by position)"
printf 'a,b,label\n1,2,0\n3,x,1\n' >"$work/bad.csv"
run 3 forest cv "$work/bad.csv"
has 'bad.csv:3:2 (b): "x" is not a number'
run 3 mlp eval "$work/whole.cnf" --images "$work/img.gz" --labels "$work/lab.gz"
run 3 mlp train --train-images "$work/lab.gz" "${idx[@]}" --epochs 1
has "bad IDX magic"

# --- Counts in the singular (item 10).
run 0 forest fit "$work/d.csv" -o "$work/one.cnf" --set n_estimators=1
has "trained 1 tree ("
run 0 mlp train --train-images "$work/img.gz" "${idx[@]}" --epochs 1 --threads 1 --hidden 4
has ", 1 thread"
has "trained 1 epoch in"
lacks "1 threads"

# --- A refused token has its own exit code and says so; an absent
# scheduler is 4 (item 8).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=tcp://127.0.0.1:$port
echo right >"$work/token"
echo wrong >"$work/bad-token"
"$canopy" scheduler --listen "$url" --state-dir "$work/state" --token-file "$work/token" \
  >"$work/scheduler.log" 2>&1 &
sched_pid=$!
run 0 status --scheduler "$url" --token-file "$work/token" --timeout-ms 20000
has "1 node"
lacks "1 nodes"
run 5 status --scheduler "$url" --token-file "$work/bad-token"
has "canopy status: the scheduler at $url refused the cluster token (UNAUTHENTICATED"
has "(--token-file FILE or \$CANOPY_TOKEN)"
run 5 worker --scheduler "$url" --token-file "$work/bad-token" --register-timeout-ms 5000
has "refused the cluster token"
kill "$sched_pid"
wait "$sched_pid"
sched_pid=""
run 4 status --scheduler "$url" --timeout-ms 300
has "canopy status: cannot reach the scheduler at $url"

if [ $problems -gt 0 ]; then
  echo "cli_test: $problems of $checks checks FAILED"
  exit 1
fi
echo "cli_test: $checks checks ok ($cuts cuts of a gzip file)"
