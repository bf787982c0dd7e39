#!/usr/bin/env bash
# install-deps.sh: install the Debian 12 packages canopy needs to build, test
# and run, skipping those already installed. Uses sudo when not root.
#   deploy/install-deps.sh            build + test dependencies
#   deploy/install-deps.sh --bench    also the side-by-side anchors (sklearn, torch, ranger)
set -euo pipefail

pkgs=(
  gcc pkg-config meson ninja-build cmake
  libnng-dev libmbedtls-dev libprotobuf-c-dev protobuf-c-compiler
  libopenblas-dev libcsv-dev libcjson-dev check zlib1g-dev
  dataset-fashion-mnist openssl python3 iproute2 python3-yaml shellcheck
  clang libclang-rt-14-dev chromium
)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(python3-sklearn python3-torch r-cran-ranger python3-numpy)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    sudo="sudo"
  else
    echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
