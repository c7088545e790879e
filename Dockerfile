# egressfwd on Debian 12 with DPDK from Debian. Kept in step with scripts/setup.sh (same
# packages). Not built in development: that machine has no Docker engine.
#
# The binary is built for x86-64-v3 CPUs (.cargo/config.toml); for an older host CPU, set
# `rustflags = ["-C", "target-cpu=x86-64"]` there before building.
#
#   docker build -t egressfwd .
#   docker run --rm --privileged -v /dev/hugepages:/dev/hugepages -v /etc/egressfwd:/etc/egressfwd \
#       egressfwd run --config /etc/egressfwd/config.toml

FROM rust:1-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libdpdk-dev dpdk pkg-config clang libclang-dev binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The Debian package of scripts/package.sh: binary, unit, example config, man page, completions.
RUN scripts/package.sh > /deb-path && cp "$(cat /deb-path)" /egressfwd.deb

FROM debian:12-slim
COPY --from=build /egressfwd.deb /tmp/egressfwd.deb
# apt resolves the package's dependencies: DPDK's runtime libraries and poll-mode drivers.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /tmp/egressfwd.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/egressfwd.deb
ENTRYPOINT ["/usr/bin/egressfwd"]
CMD ["check", "--config", "/etc/egressfwd/config.toml"]
