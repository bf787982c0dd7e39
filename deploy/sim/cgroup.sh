# shellcheck shell=bash
# cgroup.sh: CPU (and memory) quotas for "small VM" processes on one machine
# (sourced by bench/sweep.sh and deploy/sim/sim.sh).
#
#   cg_available             can quotas be used here (root or a delegated cgroup)?
#   cg_create NAME CORES     make a CPU cgroup limited to CORES (e.g. 0.5)
#   cg_exec NAME CMD...      run CMD inside it (exec; use with &)
#   cg_destroy DIR           kill what is left in the group at DIR and remove it
#   cg_destroy_all           remove every group this shell made
# Used by the simulator, which runs each verb in a new shell and so cannot
# rely on CG_MADE:
#   cg_set_mem NAME BYTES    make the memory group NAME with a limit (v1 or v2)
#   cg_dirs NAME             print the existing group directories of NAME
#   cg_join NAME PID         move PID into every existing group of NAME
#   cg_pids NAME             print the processes in NAME's groups
#
# Works with cgroup v2 (cpu.max, memory.max) and v1 (cpu.cfs_quota_us,
# memory.limit_in_bytes). Groups are made under canopy-sim/ so teardown only
# touches what canopy created.
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

# The memory hierarchy: the same directory on v2, its own mount on v1.
cg_mem_root() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
    echo "v2 /sys/fs/cgroup/canopy-sim"
  elif [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
    echo "v1 /sys/fs/cgroup/memory/canopy-sim"
  else
    echo "none"
  fi
}

cg_available() {
  local r
  r=$(cg_root)
  [ "$r" != none ] || return 1
  r=${r#* }
  mkdir -p "$r" 2>/dev/null && [ -w "$r" ]
}

cg_create() {
  local name=$1 cores=$2 r ver base dir quota
  r=$(cg_root)
  ver=${r%% *} base=${r#* }
  dir="$base/$name"
  mkdir -p "$dir" || { echo "cg_create: cannot create $dir (root needed)" >&2; return 1; }
  quota=$(awk -v c="$cores" 'BEGIN { printf "%d", c * 100000 }')
  if [ "$ver" = v2 ]; then
    echo "+cpu" > "$base/../cgroup.subtree_control" 2>/dev/null || true
    echo "+cpu" > "$base/cgroup.subtree_control" 2>/dev/null || true
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
  echo "$BASHPID" > "${r#* }/$name/cgroup.procs"
  exec "$@"
}

cg_set_mem() {
  local name=$1 bytes=$2 r ver base dir
  r=$(cg_mem_root)
  [ "$r" != none ] || { echo "cg_set_mem: no memory cgroup controller here" >&2; return 1; }
  ver=${r%% *} base=${r#* }
  dir="$base/$name"
  mkdir -p "$dir" || { echo "cg_set_mem: cannot create $dir (root needed)" >&2; return 1; }
  if [ "$ver" = v2 ]; then
    echo "+memory" > "$base/../cgroup.subtree_control" 2>/dev/null || true
    echo "+memory" > "$base/cgroup.subtree_control" 2>/dev/null || true
    echo "$bytes" > "$dir/memory.max"
    echo 0 > "$dir/memory.swap.max" 2>/dev/null || true
  else
    echo "$bytes" > "$dir/memory.limit_in_bytes"
  fi
  CG_MADE+=("$dir")
}

cg_dirs() {
  local name=$1 r d
  for r in "$(cg_root)" "$(cg_mem_root)"; do
    [ "$r" != none ] || continue
    d="${r#* }/$name"
    [ -d "$d" ] && echo "$d"
  done | sort -u
}

cg_join() {
  local name=$1 pid=$2 d
  for d in $(cg_dirs "$name"); do echo "$pid" > "$d/cgroup.procs"; done
}

cg_pids() {
  local d
  for d in $(cg_dirs "$1"); do cat "$d/cgroup.procs" 2>/dev/null || true; done | sort -un
}

cg_destroy() {
  local dir=$1 pid
  [ -d "$dir" ] || return 0
  while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done < "$dir/cgroup.procs"
  for _ in $(seq 1 50); do
    rmdir "$dir" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "cg_destroy: could not remove $dir" >&2
  return 1
}

cg_destroy_all() {
  local d
  for d in "${CG_MADE[@]}"; do cg_destroy "$d" || true; done
  CG_MADE=()
}
