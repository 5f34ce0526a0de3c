#!/usr/bin/env bash
# The vocab-parallel tests over MPI: installs the system's MPI (Debian: openmpi-bin
# libopenmpi-dev, and libclang-dev for rsmpi's bindings) when missing, then lints and runs
# the tests built with `--features mpi` (`tests/vocab_mpi.rs` launches `mpirun -np 2` and
# `-np 3`, as root with --allow-run-as-root --oversubscribe). No MPI, no skip: it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if ! command -v mpirun >/dev/null || ! command -v mpicc >/dev/null || ! compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null; then
    echo "test_mpi: installing openmpi-bin libopenmpi-dev libclang-dev" >&2
    apt_install test_mpi openmpi-bin libopenmpi-dev libclang-dev
fi
cargo clippy --all-targets --features mpi --quiet -- -D warnings
cargo test --features mpi --quiet --test vocab_mpi --test vocab_cli --test vocab_parallel "$@"
# The library's MPI module example compiles (it is `no_run`: one process is not a job).
cargo test --features mpi --quiet --doc mpi
