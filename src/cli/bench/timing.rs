//! Timing: the median of repeated runs, and the machine's single-thread memory-read
//! bandwidth that throughputs are compared with.

use std::time::{Duration, Instant};

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The median time of `repeat` calls of `f`; the first error ends it.
pub fn time<T>(repeat: u32, mut f: impl FnMut() -> Result<T, String>) -> Result<Duration, String> {
    let mut times = Vec::new();
    for _ in 0..repeat {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    Ok(median(times))
}

/// Single-thread memory-read bandwidth: a plain sum over a 256 MiB f32 array, best of 3.
pub fn read_bandwidth() -> f64 {
    let data = vec![1.0_f32; 64 << 20];
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let mut acc = [0.0_f32; 16];
        for chunk in data.chunks_exact(16) {
            for i in 0..16 {
                acc[i] += chunk[i];
            }
        }
        std::hint::black_box(acc);
        best = best.min(start.elapsed().as_secs_f64());
    }
    (data.len() * 4) as f64 / best / 1e9
}
