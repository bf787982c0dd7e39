#!/usr/bin/env bash
# sim.sh: simulated VMs on one machine. Each host is a network namespace with
# its own address on a shared bridge, a CPU quota (a cgroup; a "small" VM is
# one core on a cloud, scaled to half a core here so three fit on 2 cores),
# an optional memory limit, and optional latency, jitter, loss and bandwidth
# on its link. Processes run with `sim.sh run` listen on their host's address,
# so traffic between hosts crosses the virtual network.
#
#   sim.sh up N [--cores 0.5] [--mem 512M] [--delay 20ms] [--jitter 2ms]
#               [--loss 1%] [--rate 100mbit] [--link auto|veth|tap]
#   sim.sh run HOST CMD...        run CMD on HOST (foreground; use & for daemons)
#   sim.sh spawn HOST NAME CMD... run CMD on HOST in the background as service
#                                 NAME (log in the state dir); `start` reruns it
#   sim.sh stop HOST              power off: link down, SIGKILL every process
#   sim.sh start HOST             power on: link up, rerun HOST's services
#   sim.sh cut HOST | heal HOST   take HOST's link down / up
#   sim.sh slow HOST DELAY [JITTER]  set HOST's added latency (0 = none)
#   sim.sh addr HOST              print HOST's address
#   sim.sh status                 the hosts, their links, limits and processes
#   sim.sh down                   remove everything this sim made
#   sim.sh leftovers              list namespaces, links, cgroups, iptables rules
#                                 with our prefix
#
# HOST is host1..hostN (or 1..N). Addresses are $CANOPY_SIM_SUBNET.(10+i)
# (default 10.213.0.11, .12, ...); the bridge, in the root namespace, has .1.
# Latency is added on packets leaving a host, as `tc netem` on each VM's own
# interface would: a round trip between two hosts with --delay 20ms gains
# 40 ms. Where the kernel has no netem (sch_netem), links that need shaping
# are TAP pairs joined by deploy/sim/linkem.py, a user-space emulator; plain
# rate limits use tbf. Everything made is named with the prefix
# $CANOPY_SIM_PREFIX (default cnsim) and listed in a state file
# ($CANOPY_SIM_STATE, default /run/canopy-sim/PREFIX); `down` removes only
# what that file lists, and `up` refuses to reuse names it did not make.
# Needs root (network namespaces, links, tc and cgroups).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/cgroup.sh
. "$here/cgroup.sh"

P=${CANOPY_SIM_PREFIX:-cnsim}
SUBNET=${CANOPY_SIM_SUBNET:-10.213.0}
if [ -n "${CANOPY_SIM_STATE:-}" ]; then
  STATE=$CANOPY_SIM_STATE
elif [ -d /run ] && [ -w /run ]; then
  STATE=/run/canopy-sim/$P
else
  STATE=${TMPDIR:-/tmp}/canopy-sim-$P
fi
MADE=$STATE/made

die() { echo "sim: $*" >&2; exit 1; }
say() { echo "sim: $*" >&2; }

[[ $P =~ ^[a-z][a-z0-9]{0,6}$ ]] || die "CANOPY_SIM_PREFIX must be 1-7 lowercase letters/digits, starting with a letter"
[[ $SUBNET =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "CANOPY_SIM_SUBNET must be the first three octets, e.g. 10.213.0"

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    die "root is needed: network namespaces, veth/bridge links, tc and cgroups need CAP_NET_ADMIN and CAP_SYS_ADMIN; run it with sudo"
  fi
  command -v ip >/dev/null || die "the ip command is missing (apt-get install iproute2)"
}

need_up() { [ -f "$MADE" ] || die "no simulation is up (state file $MADE missing); run: sim.sh up N"; }

# host1 | h1 | 1 -> 1, checked against the number of hosts.
host_index() {
  local h=${1#host}
  h=${h#h}
  [[ $h =~ ^[0-9]+$ ]] || die "bad host '$1' (want host1..host$(nhosts))"
  if [ "$h" -lt 1 ] || [ "$h" -gt "$(nhosts)" ]; then die "no host '$1' (hosts are host1..host$(nhosts))"; fi
  echo "$h"
}
nhosts() { cat "$STATE/nhosts" 2>/dev/null || echo 0; }
ns_of() { echo "$P-host$1"; }            # network namespace
cg_of() { echo "$P-host$1"; }            # cgroup name under canopy-sim/
dev_of() { echo "$P-l$1"; }              # the host's link, bridge side
hdir() { echo "$STATE/hosts/host$1"; }
addr_of() { echo "$SUBNET.$((10 + $1))"; }
record() { echo "$*" >> "$MADE"; }

# Docker's engine sets the iptables FORWARD policy to DROP and turns bridge
# netfilter on, so frames crossing our bridge would meet that policy and be
# dropped. The sim adds its own ACCEPT rule for traffic within its bridge at
# `up` (recorded, so `down` removes it); without iptables there is no such
# firewall to get past.
fw_rule() { echo "FORWARD -i $P-br -o $P-br -j ACCEPT"; }

# Time like 20ms, 1.5s, 500us or a bare number of ms -> milliseconds.
to_ms() {
  awk -v t="$1" 'BEGIN {
    if (t ~ /^[0-9.]+us$/) { sub(/us$/, "", t); print t / 1000; exit }
    if (t ~ /^[0-9.]+ms$/) { sub(/ms$/, "", t); print t + 0; exit }
    if (t ~ /^[0-9.]+s$/)  { sub(/s$/, "", t);  print t * 1000; exit }
    if (t ~ /^[0-9.]+$/)   { print t + 0; exit }
    exit 1 }' || die "bad time '$1' (e.g. 20ms)"
}
# Rate like 100mbit, 1gbit, 512kbit -> kbit/s.
to_kbit() {
  awk -v r="$1" 'BEGIN {
    if (r ~ /^[0-9.]+kbit$/) { sub(/kbit$/, "", r); print int(r); exit }
    if (r ~ /^[0-9.]+mbit$/) { sub(/mbit$/, "", r); print int(r * 1000); exit }
    if (r ~ /^[0-9.]+gbit$/) { sub(/gbit$/, "", r); print int(r * 1000000); exit }
    exit 1 }' || die "bad rate '$1' (e.g. 100mbit)"
}

netem_works() { # probe in a namespace we made: netem on its loopback
  ip netns exec "$1" tc qdisc add dev lo root netem delay 1ms 2>/dev/null || return 1
  ip netns exec "$1" tc qdisc del dev lo root 2>/dev/null || true
}

# Shaping of host I from its shape file (delay_ms jitter_ms loss_pct rate_kbit).
apply_shape() {
  local i=$1 d j l r mode ns pid
  read -r d j l r < "$(hdir "$i")/shape"
  mode=$(cat "$(hdir "$i")/link")
  ns=$(ns_of "$i")
  if [ "$mode" = tap ]; then
    printf '{"delay_ms": %s, "jitter_ms": %s, "loss_pct": %s, "rate_kbit": %s}\n' "$d" "$j" "$l" "$r" \
      > "$(hdir "$i")/shape.json"
    pid=$(cat "$(hdir "$i")/linkem.pid")
    kill -HUP "$pid"
    return 0
  fi
  local zero
  zero=$(awk -v d="$d" -v j="$j" -v l="$l" -v r="$r" 'BEGIN { print (d + j + l + r == 0) ? 1 : 0 }')
  if [ "$zero" = 1 ]; then
    ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
  elif [ "$(cat "$STATE/netem")" = yes ]; then
    local args=(delay "${d}ms")
    awk -v j="$j" 'BEGIN { exit !(j > 0) }' && args+=("${j}ms")
    awk -v l="$l" 'BEGIN { exit !(l > 0) }' && args+=(loss "${l}%")
    [ "$r" != 0 ] && args+=(rate "${r}kbit")
    ip netns exec "$ns" tc qdisc replace dev eth0 root netem "${args[@]}"
  elif awk -v d="$d" -v j="$j" -v l="$l" 'BEGIN { exit !(d + j + l == 0) }'; then
    ip netns exec "$ns" tc qdisc replace dev eth0 root tbf rate "${r}kbit" burst 64kb latency 200ms
  else
    die "host$i: this kernel has no netem qdisc and host$i has a veth link; bring the sim up with --link tap (or any --delay/--jitter/--loss) to shape it"
  fi
}

set_link() { # I up|down
  local i=$1 state=$2
  ip link set "$(dev_of "$i")" "$state"
}

host_pids() { # every process in host I: its cgroups and its network namespace
  { cg_pids "$(cg_of "$1")"; ip netns pids "$(ns_of "$1")" 2>/dev/null || true; } | sort -un
}

kill_host() {
  local i=$1 pids
  for _ in $(seq 1 50); do
    pids=$(host_pids "$i")
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    sleep 0.1
  done
  die "host$i: processes survived SIGKILL: $(host_pids "$i" | tr '\n' ' ')"
}

launch_service() { # I NAME: start a recorded service in the background
  local i=$1 name=$2 d cmd
  d=$(hdir "$i")
  cmd=$(cat "$d/services/$name.cmd")
  (
    cg_join "$(cg_of "$i")" "$BASHPID"
    exec ip netns exec "$(ns_of "$i")" env CANOPY_SIM_HOST="host$i" CANOPY_SIM_ADDR="$(addr_of "$i")" \
      bash -c "exec $cmd"
  ) >> "$STATE/logs/host$i-$name.log" 2>&1 < /dev/null &
  echo $! > "$d/services/$name.pid"
  echo $!
}

# Names this prefix could have made, whoever made them.
leftovers() {
  local n
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$P-host[0-9]+$" | sed 's/^/netns /' || true
  ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
    grep -E "^$P-(br|l[0-9]+|t[0-9]+)$" | sed 's/^/link /' || true
  for n in "$(cg_root)" "$(cg_mem_root)"; do
    [ "$n" != none ] || continue
    n=${n#* }
    [ -d "$n" ] || continue
    find "$n" -mindepth 1 -maxdepth 1 -type d -name "$P-host*" | sed 's/^/cgroup /'
  done
  if command -v iptables >/dev/null; then
    if iptables -w -S FORWARD 2>/dev/null | grep -Fxq -- "-A $(fw_rule)"; then echo "iptables $(fw_rule)"; fi
  fi
}

teardown() {
  local kind name i n
  [ -f "$MADE" ] || return 0
  n=$(nhosts)
  for i in $(seq 1 "$n"); do
    ip netns list 2>/dev/null | grep -qw "$(ns_of "$i")" || continue
    kill_host "$i" || true
  done
  # Undo in reverse order of making.
  tac "$MADE" | while read -r kind name; do
    case $kind in
      linkem)
        if [ -r "/proc/$name/cmdline" ] && tr '\0' ' ' < "/proc/$name/cmdline" | grep -q linkem.py; then
          kill "$name" 2>/dev/null || true
          for _ in $(seq 1 50); do [ -d "/proc/$name" ] || break; sleep 0.1; done
        fi ;;
      netns)
        [[ $name == "$P-host"* ]] || { say "not touching netns $name (not ours)"; continue; }
        ip netns del "$name" 2>/dev/null || true ;;
      link)
        [[ $name == "$P-"* ]] || { say "not touching link $name (not ours)"; continue; }
        ip link del "$name" 2>/dev/null || true ;;
      iptables)
        [ "$name" = "$(fw_rule)" ] || { say "not touching iptables rule $name (not ours)"; continue; }
        # shellcheck disable=SC2086
        iptables -w -D $name 2>/dev/null || true ;;
      cgroup)
        [[ $name == */canopy-sim/"$P-host"* ]] || { say "not touching cgroup $name (not ours)"; continue; }
        cg_destroy "$name" || true ;;
    esac
  done
  local left
  left=$(leftovers)
  if [ -n "$left" ]; then
    say "teardown left these behind:"
    echo "$left" >&2
    return 1
  fi
  rm -rf "$STATE"
}

cmd_up() {
  local n=${1:-} cores=0.5 mem="" delay=0 jitter=0 loss=0 rate=0 link=auto
  if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 200 ]; then
    die "usage: sim.sh up N [options] (N from 1 to 200)"
  fi
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --cores) cores=$2; shift 2 ;;
      --mem) mem=$2; shift 2 ;;
      --delay) delay=$(to_ms "$2"); shift 2 ;;
      --jitter) jitter=$(to_ms "$2"); shift 2 ;;
      --loss) loss=${2%\%}; shift 2 ;;
      --rate) rate=$(to_kbit "$2"); shift 2 ;;
      --link) link=$2; shift 2 ;;
      *) die "up: unknown option '$1'" ;;
    esac
  done
  [[ $cores =~ ^[0-9]*\.?[0-9]+$ ]] || die "bad --cores '$cores'"
  [[ $loss =~ ^[0-9]*\.?[0-9]+$ ]] || die "bad --loss '$loss' (e.g. 1%)"
  case $link in auto|veth|tap) ;; *) die "--link is auto, veth or tap" ;; esac
  local membytes=""
  if [ -n "$mem" ]; then
    membytes=$(numfmt --from=iec "${mem%B}" 2>/dev/null) || die "bad --mem '$mem' (e.g. 512M)"
  fi
  need_root
  [ ! -e "$MADE" ] || die "a simulation is already up (state $STATE); run: sim.sh down"
  local clash
  clash=$(leftovers)
  [ -z "$clash" ] || die "these exist but were not made by this sim (no state file); remove them or pick another CANOPY_SIM_PREFIX:
$clash"
  cg_available || die "CPU cgroups are not writable here; root (or a delegated cgroup) is needed for the CPU quotas"

  mkdir -p "$STATE/logs"
  : > "$MADE"
  echo "$n" > "$STATE/nhosts"
  trap 'say "up failed: removing what was made"; teardown || true' ERR
  trap 'say "interrupted: removing what was made"; teardown || true; exit 130' INT TERM

  local br=$P-br i ns
  for i in $(seq 1 "$n"); do
    ns=$(ns_of "$i")
    ip netns add "$ns"
    record netns "$ns"
    ip netns exec "$ns" ip link set lo up
  done
  if netem_works "$(ns_of 1)"; then echo yes > "$STATE/netem"; else echo no > "$STATE/netem"; fi
  local shaped=0
  awk -v d="$delay" -v j="$jitter" -v l="$loss" 'BEGIN { exit !(d + j + l > 0) }' && shaped=1
  if [ "$link" = auto ]; then
    link=veth
    [ "$shaped" = 1 ] && [ "$(cat "$STATE/netem")" = no ] && link=tap
  fi
  if [ "$link" = tap ]; then
    [ -c /dev/net/tun ] || die "--link tap needs /dev/net/tun"
    command -v python3 >/dev/null || die "--link tap needs python3"
  fi

  ip link add "$br" type bridge
  record link "$br"
  ip addr add "$SUBNET.1/24" dev "$br"
  ip link set "$br" up
  if command -v iptables >/dev/null; then
    # shellcheck disable=SC2046
    if iptables -w -I $(fw_rule); then
      record iptables "$(fw_rule)"
    else
      say "could not add the iptables rule $(fw_rule); a firewall with a DROP policy (Docker's) would cut the hosts off"
    fi
  fi

  for i in $(seq 1 "$n"); do
    ns=$(ns_of "$i")
    local d dev inner
    d=$(hdir "$i")
    mkdir -p "$d/services"
    dev=$(dev_of "$i") inner=$P-t$i
    echo "$link" > "$d/link"
    echo "$delay $jitter $loss $rate" > "$d/shape"
    if [ "$link" = veth ]; then
      ip link add "$dev" type veth peer name "$inner"
      record link "$dev"
    else
      echo '{}' > "$d/shape.json"
      rm -f "$d/linkem.ready"
      setsid python3 "$here/linkem.py" "$inner" "$dev" "$d/shape.json" "$d/linkem.ready" \
        >> "$STATE/logs/host$i-linkem.log" 2>&1 < /dev/null &
      local lp=$!
      record linkem "$lp"
      echo "$lp" > "$d/linkem.pid"
      for _ in $(seq 1 100); do [ -s "$d/linkem.ready" ] && break; kill -0 "$lp" 2>/dev/null || break; sleep 0.05; done
      [ -s "$d/linkem.ready" ] || die "host$i: linkem did not start (see $STATE/logs/host$i-linkem.log)"
    fi
    ip link set "$inner" netns "$ns"
    ip netns exec "$ns" ip link set "$inner" name eth0
    ip netns exec "$ns" ip addr add "$(addr_of "$i")/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    ip link set "$dev" master "$br"
    ip link set "$dev" up

    cg_create "$(cg_of "$i")" "$cores"
    record cgroup "$(cg_dirs "$(cg_of "$i")" | head -1)"
    if [ -n "$membytes" ]; then
      cg_set_mem "$(cg_of "$i")" "$membytes"
      record cgroup "${CG_MADE[-1]}"
    fi
    echo "$cores" > "$d/cores"
    echo "${mem:-none}" > "$d/mem"
    if [ "$shaped" = 1 ] || [ "$rate" != 0 ]; then apply_shape "$i"; fi
  done
  trap - ERR INT TERM
  # Wait until every link has carrier and its bridge port forwards.
  for i in $(seq 1 "$n"); do
    local ok=0
    for _ in $(seq 1 50); do
      if [ "$(cat "/sys/class/net/$(dev_of "$i")/brport/state" 2>/dev/null)" = 3 ] &&
        ip netns exec "$(ns_of "$i")" ip link show eth0 | grep -q LOWER_UP; then
        ok=1; break
      fi
      sleep 0.1
    done
    [ $ok = 1 ] || { teardown || true; die "host$i: its link did not come up"; }
  done
  say "up: $n host(s) at $(addr_of 1)..$(addr_of "$n"), $cores core(s) each, memory ${mem:-unlimited}, link $link (netem $(cat "$STATE/netem")), delay ${delay}ms jitter ${jitter}ms loss ${loss}% rate ${rate}kbit; state $STATE"
}

cmd_status() {
  if [ ! -f "$MADE" ]; then echo "sim: down (no state at $STATE)"; return 0; fi
  local n i d link st procs
  n=$(nhosts)
  printf '%-7s %-14s %-5s %-6s %-5s %-7s %-6s %-6s %s\n' HOST ADDRESS LINK KIND POWER CORES MEM PROCS "DELAY/JITTER/LOSS/RATE"
  for i in $(seq 1 "$n"); do
    d=$(hdir "$i")
    link=up
    if [ -f "$d/cut" ]; then link="cut"; fi
    st=on
    [ -f "$d/stopped" ] && st=off
    procs=$(host_pids "$i" 2>/dev/null | wc -l)
    read -r dl jt ls rt < "$d/shape"
    printf '%-7s %-14s %-5s %-6s %-5s %-7s %-6s %-6s %s\n' "host$i" "$(addr_of "$i")" "$link" \
      "$(cat "$d/link")" "$st" "$(cat "$d/cores")" "$(cat "$d/mem")" "$procs" "${dl}ms/${jt}ms/${ls}%/${rt}kbit"
  done
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case $cmd in
  up) cmd_up "$@" ;;
  run)
    need_root; need_up
    [ $# -ge 2 ] || die "usage: sim.sh run HOST CMD..."
    i=$(host_index "$1"); shift
    [ ! -f "$(hdir "$i")/stopped" ] || die "host$i is stopped; run: sim.sh start host$i"
    cg_join "$(cg_of "$i")" "$$"
    exec ip netns exec "$(ns_of "$i")" env CANOPY_SIM_HOST="host$i" CANOPY_SIM_ADDR="$(addr_of "$i")" "$@" ;;
  spawn)
    need_root; need_up
    [ $# -ge 3 ] || die "usage: sim.sh spawn HOST NAME CMD..."
    i=$(host_index "$1") name=$2; shift 2
    [[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad service name '$name'"
    [ ! -f "$(hdir "$i")/stopped" ] || die "host$i is stopped; run: sim.sh start host$i"
    printf '%q ' "$@" > "$(hdir "$i")/services/$name.cmd"
    launch_service "$i" "$name" ;;
  stop)
    need_root; need_up
    [ $# -eq 1 ] || die "usage: sim.sh stop HOST"
    i=$(host_index "$1")
    set_link "$i" down
    kill_host "$i"
    touch "$(hdir "$i")/stopped"
    say "host$i stopped (link down, every process killed)" ;;
  start)
    need_root; need_up
    [ $# -eq 1 ] || die "usage: sim.sh start HOST"
    i=$(host_index "$1")
    [ -f "$(hdir "$i")/stopped" ] || die "host$i is not stopped"
    rm -f "$(hdir "$i")/stopped"
    [ -f "$(hdir "$i")/cut" ] || set_link "$i" up
    for f in "$(hdir "$i")"/services/*.cmd; do
      [ -e "$f" ] || continue
      s=$(basename "$f" .cmd)
      launch_service "$i" "$s" > /dev/null
      say "host$i: started $s"
    done ;;
  cut|heal)
    need_root; need_up
    [ $# -eq 1 ] || die "usage: sim.sh $cmd HOST"
    i=$(host_index "$1")
    if [ "$cmd" = cut ]; then
      touch "$(hdir "$i")/cut"; set_link "$i" down
    else
      rm -f "$(hdir "$i")/cut"; [ -f "$(hdir "$i")/stopped" ] || set_link "$i" up
    fi
    say "host$i link $([ "$cmd" = cut ] && echo down || echo up)" ;;
  slow)
    need_root; need_up
    if [ $# -lt 2 ] || [ $# -gt 3 ]; then die "usage: sim.sh slow HOST DELAY [JITTER]"; fi
    i=$(host_index "$1")
    ms=$(to_ms "$2") jt=$(to_ms "${3:-0}")
    read -r _ _ ls rt < "$(hdir "$i")/shape"
    echo "$ms $jt $ls $rt" > "$(hdir "$i")/shape"
    apply_shape "$i"
    say "host$i: delay ${ms}ms jitter ${jt}ms" ;;
  addr)
    need_up
    [ $# -eq 1 ] || die "usage: sim.sh addr HOST"
    addr_of "$(host_index "$1")" ;;
  status) cmd_status ;;
  down)
    need_root
    if [ ! -f "$MADE" ]; then
      left=$(leftovers)
      [ -z "$left" ] || die "no state file at $STATE, so nothing here was made by this sim; not touching:
$left"
      say "nothing to tear down"
      exit 0
    fi
    teardown || die "teardown incomplete"
    say "down: removed every namespace, link and cgroup this sim made" ;;
  leftovers)
    left=$(leftovers)
    [ -z "$left" ] || { echo "$left"; exit 1; } ;;
  ""|-h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) die "unknown verb '$cmd' (see sim.sh --help)" ;;
esac
