#!/usr/bin/env bash
# Make sure the Debian packages minifinn needs are installed.
# As root: installs what is missing with apt-get. Otherwise: prints the exact apt line and fails.
set -euo pipefail
PKGS="g++ yosys verilator iverilog dataset-fashion-mnist"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ]; then
  echo "minifinn: installing system packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing
else
  echo "minifinn: missing system packages:$missing" >&2
  echo "minifinn: run as root:  sudo apt-get install -y$missing" >&2
  exit 1
fi
