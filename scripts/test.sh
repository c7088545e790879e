#!/usr/bin/env bash
# Sets up whatever is missing, then runs every test of the project:
#   formatting and lints; unit, property and integration tests (the DPDK ones on virtual
#   devices); the golden fixtures are up to date; end-to-end tests moving real packets through
#   the running appliance; and time-boxed fuzz runs of every target.
# This is what CI runs (.ci/run). Needs root (packages, hugepages, network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s\n' "$*" >&2; }

step setup
scripts/setup.sh

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The benchmark-only build (scripts/bench.sh) must keep compiling too.
cargo clippy -p egressfwd --features bench-floor -- -D warnings
# No two modules use each other (docs/architecture.md).
/usr/bin/python3 scripts/module_cycles.py
# Doc links resolve (a renamed item otherwise leaves its mentions dangling).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q

step "unit, property and integration tests"
cargo test --workspace

step "golden fixtures are up to date"
/usr/bin/python3 scripts/gen_fixtures.py --check

step "end-to-end tests"
cargo build --release -p egressfwd
/usr/bin/python3 -m pytest -q tests/e2e

step "fuzz"
scripts/fuzz.sh

step "all tests passed"
