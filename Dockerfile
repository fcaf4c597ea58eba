# minifinn in a container: the same environment and the same `make` targets as a bare Debian machine.
#   docker build -t minifinn .
#   docker run --rm -it -v $PWD/out:/opt/minifinn/out minifinn make run
# Vendor tools (Vivado / Vitis HLS / Vitis) are not in the image: mount them from the host, as FINN's docker
# does, and point FINN_XILINX_PATH / FINN_XILINX_VERSION at them; the entrypoint sources their settings script.
#   docker run --rm -it -v /tools/Xilinx:/tools/Xilinx -e FINN_XILINX_PATH=/tools/Xilinx \
#       -e FINN_XILINX_VERSION=2022.2 minifinn make run
FROM debian:bookworm

ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev make git ca-certificates \
        g++ yosys verilator iverilog dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/minifinn
COPY . .
# Same set-up as `make run` / `make test` (creates .venv, installs the Python packages).
RUN make setup

COPY scripts/docker_entrypoint.sh /usr/local/bin/minifinn-entrypoint
ENTRYPOINT ["/usr/local/bin/minifinn-entrypoint"]
CMD ["make", "run"]
