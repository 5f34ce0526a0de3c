//! Short rows eight at a time: lane r of every 8-wide vector holds row r, so a row's max,
//! Σ exp(x - max) and Σ (x - max) are C vector steps shared by eight rows, where the
//! per-row kernels of `simd` spend a dispatched call, a partial vector and a scalar tail on
//! every row (at 4M rows of 10 classes that overhead was most of the time).

use super::simd::exp_neg;

/// Rows per block.
pub(crate) const LANES: usize = 8;

/// The statistics of eight rows (lane r: row r).
#[derive(Clone, Copy)]
pub(crate) struct Stats8 {
    /// Each row's max.
    pub max: [f32; LANES],
    /// Σ exp(x - max).
    pub exp_sum: [f32; LANES],
    /// Σ (x - max), for unweighted label smoothing.
    pub shifted_sum: [f32; LANES],
    /// The row holds a NaN, or its max is ±inf: its statistics are not to be used.
    pub special: [bool; LANES],
}

/// The most classes a block takes.
pub(crate) const MAX_CLASSES: usize = 32;

#[inline(always)]
fn stats8_generic(rows: &[f32], classes: usize) -> Stats8 {
    // Transposed first (column c of the eight rows is one 8-wide vector): strided loads
    // across rows would be gathers, which are slow on the CPUs seen here.
    let mut columns = [[0.0_f32; LANES]; MAX_CLASSES];
    for (r, row) in rows.chunks_exact(classes).enumerate() {
        for (column, &x) in columns.iter_mut().zip(row) {
            column[r] = x;
        }
    }
    let columns = &columns[..classes];
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut nan = [false; LANES];
    for column in columns {
        for r in 0..LANES {
            max[r] = max[r].max(column[r]);
            nan[r] |= column[r].is_nan();
        }
    }
    let mut exp_sum = [0.0_f32; LANES];
    let mut shifted_sum = [0.0_f32; LANES];
    for column in columns {
        for r in 0..LANES {
            let d = column[r] - max[r];
            exp_sum[r] += exp_neg(d);
            shifted_sum[r] += d;
        }
    }
    let mut special = [false; LANES];
    for r in 0..LANES {
        special[r] = nan[r] || !max[r].is_finite();
    }
    Stats8 {
        max,
        exp_sum,
        shifted_sum,
        special,
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn stats8_avx2(rows: &[f32], classes: usize) -> Stats8 {
    stats8_generic(rows, classes)
}

/// The statistics of `LANES` consecutive rows of `classes` values (`rows.len()` must be
/// `LANES * classes`), with AVX2 + FMA when `avx2`.
pub(crate) fn stats8(rows: &[f32], classes: usize, avx2: bool) -> Stats8 {
    assert!(rows.len() == LANES * classes && classes <= MAX_CLASSES);
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: the caller checked the CPU has AVX2 and FMA (`Kernels::detect`).
        return unsafe { stats8_avx2(rows, classes) };
    }
    let _ = avx2;
    stats8_generic(rows, classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_rows_match_one_at_a_time() {
        for classes in [1, 3, 10, 32] {
            let rows: Vec<f32> = (0..LANES * classes)
                .map(|i| ((i * 37) % 23) as f32 * 0.7 - 8.0)
                .collect();
            let got = stats8(&rows, classes, false);
            for (r, row) in rows.chunks(classes).enumerate() {
                let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let s: f64 = row.iter().map(|&x| (f64::from(x) - f64::from(m)).exp()).sum();
                assert_eq!(got.max[r], m);
                assert!((f64::from(got.exp_sum[r]) - s).abs() < 1e-5 * s, "C={classes} row {r}");
                assert!(!got.special[r]);
            }
        }
        let mut rows = vec![0.0_f32; LANES * 4];
        rows[5] = f32::NAN;
        rows[9] = f32::INFINITY;
        let got = stats8(&rows, 4, false);
        assert!(got.special[1] && got.special[2] && !got.special[0]);
    }
}
