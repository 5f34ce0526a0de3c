//! The ceilings the bench states speeds against run on the adapter and the host and give a
//! plausible rate (positive, finite, below 10 TB/s), at a size smaller than a binding and at
//! one that is not a multiple of 16 bytes (rounded down).

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
