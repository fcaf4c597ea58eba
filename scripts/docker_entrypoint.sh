#!/usr/bin/env bash
# Source the mounted Xilinx tools (if any), then run the given command (default: make run).
set -e
if [ -n "${FINN_XILINX_PATH:-}" ] && [ -n "${FINN_XILINX_VERSION:-}" ]; then
  for tool in Vivado Vitis_HLS Vitis; do
    s="$FINN_XILINX_PATH/$tool/$FINN_XILINX_VERSION/settings64.sh"
    # shellcheck disable=SC1090
    [ -f "$s" ] && source "$s"
  done
fi
exec "$@"
