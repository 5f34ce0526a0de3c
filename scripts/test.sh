#!/usr/bin/env bash
# The test suite: formatting, lints, then every test (unit, integration, doctests). The GPU
# tests run on whatever adapter wgpu finds (lavapipe on a machine without a GPU); with no
# adapter they fail, they never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --quiet "$@"
