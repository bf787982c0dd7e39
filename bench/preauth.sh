#!/usr/bin/env bash
# bench/preauth.sh: the pre-authentication memory attack of issue 12 against
# a real scheduler. Starts `canopy scheduler` on loopback with a cluster
# token, then opens N connections without the token, each announcing a
# message of CLAIM MiB and sending SENT MiB of it (held open), and reports
# how much the scheduler's resident memory grew and how many connections
# it kept. Without the connection caps, eight such peers took the
# scheduler from 7 MB to 807 MB. Ends with
#   preauth: conns=8 claimed_mb=200 sent_mb=100 kept=K rss_before_mb=A rss_after_mb=B
#   bench/preauth.sh [--conns 8] [--claim-mb 200] [--sent-mb 100]
set -euo pipefail
cd "$(dirname "$0")/.."
conns=8
claim=200
sent=100
while [ $# -gt 0 ]; do
  case $1 in
    --conns) conns=$2; shift 2 ;;
    --claim-mb) claim=$2; shift 2 ;;
    --sent-mb) sent=$2; shift 2 ;;
    *) echo "usage: bench/preauth.sh [--conns N] [--claim-mb N] [--sent-mb N]" >&2; exit 2 ;;
  esac
done
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build -j2 cli/canopy >/dev/null
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CANOPY_TOKEN=bench-preauth build/cli/canopy scheduler --listen "tcp://127.0.0.1:$port" \
  --state-dir "$work/state" 2>"$work/scheduler.log" &
pid=$!
for _ in $(seq 100); do
  CANOPY_TOKEN=bench-preauth build/cli/canopy status --scheduler "tcp://127.0.0.1:$port" \
    --timeout-ms 500 >/dev/null 2>&1 && break
  sleep 0.1
done
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$pid/status"; }
before=$(rss)
# Prints "KEPT RSS_KB": connections that took all their bytes, and the
# scheduler's resident memory while they are all still open.
res=$(python3 - "$port" "$conns" "$claim" "$sent" "$pid" <<'PY'
import socket, struct, sys, threading
port, n, claim, sent = (int(x) for x in sys.argv[1:5])
chunk = b"\x5a" * (1 << 20)
socks, ok = [], []
def attack(s):
    try:
        s.sendall(struct.pack(">Q", claim << 20))
        for _ in range(sent):
            s.sendall(chunk)
        ok.append(s)
    except OSError:
        pass
for _ in range(n):  # connect all first: the SP handshake of a req0 peer
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    s.sendall(b"\x00SP\x00\x00\x30\x00\x00")
    try:
        s.recv(8)
    except OSError:
        pass
    socks.append(s)
ts = [threading.Thread(target=attack, args=(s,)) for s in socks]
for t in ts: t.start()
for t in ts: t.join()
with open(f"/proc/{sys.argv[5]}/status") as f:
    rss = [l for l in f if l.startswith("VmRSS")][0].split()[1]
print(len(ok), rss)
for s in socks: s.close()
PY
)
kept=${res% *}
after=$(( ${res#* } / 1024 ))
refused=$(grep -c "refused a connection" "$work/scheduler.log" || true)
echo "cpu=\"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)\" load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" refused_logged=$refused"
echo "preauth: conns=$conns claimed_mb=$claim sent_mb=$sent kept=$kept rss_before_mb=$before rss_after_mb=$after"
