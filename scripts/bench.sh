#!/usr/bin/env bash
# The benchmarks, in one command: builds the product (`dreamos`, which the benchmarks start
# as a node) and `dreamos-bench` in release mode, then runs `dreamos-bench ARGS`.
# usage: scripts/bench.sh queue | agents | discord PATH | index PATH | search PATH | watch PATH ...
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p dreamos-cli -p dreamos-bench
exec "${CARGO_TARGET_DIR:-target}/release/dreamos-bench" "$@"
