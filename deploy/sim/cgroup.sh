# cgroup.sh: CPU quotas for "small VM" processes on one machine (sourced).
#
#   cg_create NAME CORES     make a CPU cgroup limited to CORES (e.g. 0.5)
#   cg_exec NAME CMD...      run CMD inside it (exec; use with &)
#   cg_destroy NAME          kill what is left in it and remove it
#   cg_destroy_all           remove every group this shell made
#
# Works with cgroup v2 (cpu.max) and v1 (cpu.cfs_quota_us). Groups are made
# under canopy-sim/ so teardown only touches what canopy created. Needs root
# (or a delegated cgroup); cg_available says whether quotas can be used.
CG_MADE=()

cg_root() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
    echo "v2 /sys/fs/cgroup/canopy-sim"
  elif [ -d /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
    echo "v1 /sys/fs/cgroup/cpu/canopy-sim"
  else
    echo "none"
  fi
}

cg_available() {
  local r
  r=$(cg_root)
  [ "$r" != none ] || return 1
  set -- $r
  mkdir -p "$2" 2>/dev/null && [ -w "$2" ]
}

cg_create() {
  local name=$1 cores=$2 r dir quota
  r=$(cg_root)
  set -- $r
  dir="$2/$name"
  mkdir -p "$dir" || { echo "cg_create: cannot create $dir (root needed)" >&2; return 1; }
  quota=$(awk -v c="$cores" 'BEGIN { printf "%d", c * 100000 }')
  if [ "$1" = v2 ]; then
    echo "+cpu" > "$2/../cgroup.subtree_control" 2>/dev/null || true
    echo "+cpu" > "$2/cgroup.subtree_control" 2>/dev/null || true
    echo "$quota 100000" > "$dir/cpu.max"
  else
    echo 100000 > "$dir/cpu.cfs_period_us"
    echo "$quota" > "$dir/cpu.cfs_quota_us"
  fi
  CG_MADE+=("$dir")
}

cg_exec() {
  local name=$1 r
  shift
  r=$(cg_root)
  set -- $(echo "$r") "$@"
  local dir="$2/$name"
  shift 2
  echo "$BASHPID" > "$dir/cgroup.procs"
  exec "$@"
}

cg_destroy() {
  local dir=$1 pid
  [ -d "$dir" ] || return 0
  for pid in $(cat "$dir/cgroup.procs" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    rmdir "$dir" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "cg_destroy: could not remove $dir" >&2
}

cg_destroy_all() {
  local d
  for d in "${CG_MADE[@]}"; do cg_destroy "$d"; done
  CG_MADE=()
}
