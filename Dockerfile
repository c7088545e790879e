# egressfwd on Debian 12 with DPDK from Debian. Kept in step with scripts/setup.sh (same
# packages). Not built in development: that machine has no Docker engine.
#
# The binary is built for x86-64-v3 CPUs (.cargo/config.toml); for an older host CPU, set
# `rustflags = ["-C", "target-cpu=x86-64"]` there before building.
#
#   docker build -t egressfwd .
#   docker run --rm --privileged -v /dev/hugepages:/dev/hugepages -v /etc/egressfwd:/etc/egressfwd \
#       egressfwd run --config /etc/egressfwd/egressfwd.toml

FROM rust:1-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libdpdk-dev pkg-config clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p egressfwd

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dpdk \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/egressfwd /usr/local/bin/egressfwd
COPY topology/examples /usr/share/egressfwd/examples
ENTRYPOINT ["/usr/local/bin/egressfwd"]
CMD ["check", "/usr/share/egressfwd/examples/fleet.toml"]
