//! The ceilings the bench states speeds against run on the adapter and the host and give a
//! plausible rate (positive, finite, below 10 TB/s), at a size smaller than a binding and at
//! one that is not a multiple of 16 bytes (rounded down); so do the loads-only and exp-rate
//! kernels that say why a loss stays below them.

mod common;

use common::gpu;
use wgpu_loss::ceiling;

fn plausible(what: &str, gb_per_s: f64) {
    assert!(
        gb_per_s.is_finite() && gb_per_s > 0.0 && gb_per_s < 10_000.0,
        "{what}: {gb_per_s} GB/s"
    );
}

#[test]
fn ceilings_are_measured() {
    for bytes in [1 << 20, (3 << 20) + 4] {
        plausible("gpu read", ceiling::gpu_read(gpu(), bytes).expect("gpu read"));
        plausible("gpu copy", ceiling::gpu_copy(gpu(), bytes).expect("gpu copy"));
        plausible("host read", ceiling::host_read(bytes as usize));
    }
}

#[test]
fn the_why_twins_are_measured() {
    // Loads alone over rows of every kind the kernels read: whole vec4s, packs of rows for a
    // team of one, scalars for rows off 16 bytes; and more rows than a binding holds.
    for (rows, classes, team) in [(1000, 128, 1), (999, 10, 1), (300, 1001, 8), (64, 4096, 64)] {
        plausible(
            "gpu rows read",
            ceiling::gpu_rows_read(gpu(), rows, classes, team).expect("rows read"),
        );
    }
    plausible(
        "gpu loss loads",
        ceiling::gpu_loss_loads(gpu(), 1 << 40, 10).expect("loss loads"),
    );
    // exp and log rates in 10^9 per second: plausible too (below 10^13 a second).
    plausible("gpu exp rate", ceiling::gpu_exp_rate(gpu()).expect("exp rate"));
    plausible("gpu log rate", ceiling::gpu_log_rate(gpu()).expect("log rate"));
    plausible("host exp rate", ceiling::host_exp_rate());
    plausible("host log rate", ceiling::host_log_rate());
}
