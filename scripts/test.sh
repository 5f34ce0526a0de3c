#!/usr/bin/env bash
# The test suite: formatting, lints, every test (unit, integration, doctests), the examples. The GPU
# tests run on whatever adapter wgpu finds (lavapipe on a machine without a GPU); with no
# adapter they fail, they never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
cargo test --quiet "$@"
# The examples run too (each checks its own result and fails loudly).
cargo run --quiet --example bring_your_own_device
cargo run --quiet --example train_softmax_regression
# A next-byte model learning from a text every Debian system ships, with the fused linear
# cross-entropy (fails unless the loss falls well below ln 256 and both paths agree).
cargo run --quiet --example train_next_byte -- /usr/share/common-licenses/GPL-3
