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

/// The host's exp rate in 10^9 exps per second with all threads: the fast CPU backend's own
/// vectorised Σ exp(x - max) over a row that stays in cache (so that memory is not what is
/// timed), best of 5 passes. Against a loss's exp count this bounds its time from below.
pub fn host_exp_rate() -> f64 {
    let kernels = crate::cpu::simd::Kernels::detect();
    math_rate(-1.0, |row| kernels.exp_sum(row, 0.0, None).0)
}

/// The host's log rate in 10^9 logs per second, as [`host_exp_rate`]: the fast CPU
/// backend's vectorisable ln.
pub fn host_log_rate() -> f64 {
    math_rate(1.0, |row| {
        // Eight independent sums, as the backend's loops keep them (one chain would time
        // the adds' latency, not ln).
        let mut acc = [0.0_f32; 8];
        for chunk in row.chunks_exact(8) {
            for i in 0..8 {
                acc[i] += crate::cpu::simd::ln_nonneg(chunk[i]);
            }
        }
        acc.iter().sum()
    })
}

/// The host's multiply-add rate in GFLOP/s (two flops each) with all threads: sixteen
/// independent chains of `x·a + b` over an in-cache row, the fast CPU matmul's inner step.
pub fn host_fma_rate() -> f64 {
    const STEPS: usize = 64;
    2.0 * STEPS as f64
        * math_rate(1.0, |row| {
            let mut acc = [0.0_f32; 16];
            for chunk in row.chunks_exact(16) {
                acc.copy_from_slice(chunk);
                for _ in 0..STEPS {
                    for a in &mut acc {
                        *a = *a * 0.999_023_4 + 0.000_976_562_5;
                    }
                }
            }
            acc.iter().sum()
        })
}

/// Values per second (10^9) `f` takes over an in-cache row of values of `sign` (exp takes
/// x ≤ 0, ln x > 0), with every thread.
fn math_rate(sign: f32, f: impl Fn(&[f32]) -> f32 + Sync) -> f64 {
    const ROW: usize = 4096;
    const ROWS_PER_TASK: usize = 64;
    let row: Vec<f32> = (0..ROW).map(|i| sign * (0.05 + (i % 97) as f32 * 0.1)).collect();
    let tasks = 4 * rayon::current_num_threads();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let total: f32 = (0..tasks)
            .into_par_iter()
            .map(|_| {
                (0..ROWS_PER_TASK)
                    .map(|_| f(std::hint::black_box(&row[..])))
                    .sum::<f32>()
            })
            .sum();
        std::hint::black_box(total);
        best = best.min(start.elapsed().as_secs_f64());
    }
    (tasks * ROWS_PER_TASK * ROW) as f64 / best / 1e9
}
