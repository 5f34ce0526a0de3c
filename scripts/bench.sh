#!/usr/bin/env bash
# The main job: cross-entropy of generated batches on the GPU and the CPU, each GPU result
# checked against the CPU reference, then timed. Extra arguments go to `wgpu-loss bench`
# (e.g. --rows 4096 --classes 4096 --repeat 10).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo run --release --quiet -- bench "$@"
