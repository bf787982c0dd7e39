#!/usr/bin/env bash
# quickstart.sh: the main job on the embedded default cluster.
# Installs what is missing, builds canopy (release), then starts a scheduler,
# a parameter-server shard and two workers on loopback with `canopy local`
# and runs the job against them.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh
if [ ! -f build-release/build.ninja ]; then
  meson setup build-release -Dbuildtype=release >/dev/null
fi
ninja -C build-release >/dev/null
canopy=./build-release/cli/canopy
echo "== canopy $($canopy version | cut -d' ' -f2): embedded cluster on loopback"
$canopy local --ps 1 --workers 2 --state-dir state/quickstart status --ping
