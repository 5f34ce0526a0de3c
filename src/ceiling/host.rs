//! The host's read ceiling: every thread (rayon) summing its share of a buffer.

use rayon::prelude::*;
use std::time::Instant;

/// Bytes each task sums (a few tasks per thread keep the threads busy to the end).
const TASK_BYTES: usize = 1 << 20;

/// The host's read rate in GB/s with all threads: a plain vectorisable sum over `bytes`
/// (rounded down to whole f32s, at least one), best of 5 passes. Small sizes fit in cache
/// and give the cache's rate, as they would for a loss reading that many bytes.
pub fn host_read(bytes: usize) -> f64 {
    let data = vec![1.0_f32; (bytes / 4).max(1)];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let total: f32 = data
            .par_chunks(TASK_BYTES / 4)
            .map(|chunk| {
                let mut acc = [0.0_f32; 16];
                let lanes = chunk.chunks_exact(16);
                let tail: f32 = lanes.remainder().iter().sum();
                for lane in lanes {
                    for i in 0..16 {
                        acc[i] += lane[i];
                    }
                }
                acc.iter().sum::<f32>() + tail
            })
            .sum();
        std::hint::black_box(total);
        best = best.min(start.elapsed().as_secs_f64());
    }
    (data.len() * 4) as f64 / best / 1e9
}
