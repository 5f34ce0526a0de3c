//! The CPU reference: f64 accumulation, max-shifted, one plain loop per formula, written
//! to be obviously right rather than fast. Every GPU result is checked against it.
//! Definitions: `shared/SEMANTICS.md` (PyTorch's).

pub(crate) mod matmul;
pub(crate) mod short_rows;
pub(crate) mod simd;

/// The row maximum, propagating NaN (`f64::max` would drop it).
fn row_max(row: &[f32]) -> f64 {
    let mut max = f64::NEG_INFINITY;
    for &x in row {
        let x = f64::from(x);
        if x.is_nan() {
            return f64::NAN;
        }
        if x > max {
            max = x;
        }
    }
    max
}

/// `log Σ exp(x)` of one row, shifted by its max, as `torch.logsumexp`: all `-inf` gives
/// `-inf`, and a NaN anywhere gives NaN.
pub fn logsumexp(row: &[f32]) -> f64 {
    let max = row_max(row);
    if max == f64::NEG_INFINITY {
        // torch.logsumexp: a row of -inf (or an empty row) has logsumexp -inf.
        return max;
    }
    let mut sum = 0.0;
    for &x in row {
        sum += (f64::from(x) - max).exp();
    }
    max + sum.ln()
}

/// The index of the row's largest value, as `torch.argmax`: NaN counts as the largest,
/// ties go to the first index.
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        let b = row[best];
        let better = if x.is_nan() || b.is_nan() {
            x.is_nan() && !b.is_nan()
        } else {
            x > b
        };
        if better {
            best = i;
        }
    }
    best as u32
}

/// `log_softmax` of one row: `x - max - log Σ exp(x - max)`.
pub fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row_max(row);
    let mut sum = 0.0;
    for &x in row {
        sum += (f64::from(x) - max).exp();
    }
    let log_sum = sum.ln();
    row.iter().map(|&x| f64::from(x) - max - log_sum).collect()
}

/// `softmax` of one row: `exp(x - max) / Σ exp(x - max)`.
pub fn softmax(row: &[f32]) -> Vec<f64> {
    let max = row_max(row);
    let exps: Vec<f64> = row.iter().map(|&x| (f64::from(x) - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// Row losses and the weights that count in the mean denominator.
#[derive(Debug, Clone, PartialEq)]
pub struct RowLosses {
    /// `l_n` for each row (0 for ignored rows).
    pub loss: Vec<f64>,
    /// `w[y_n]` for each row (0 for ignored rows).
    pub weight: Vec<f64>,
}

impl RowLosses {
    /// `Σ l_n`, exact (the f64 reference's own checks need it smooth).
    #[cfg(test)]
    pub fn sum(&self) -> f64 {
        self.loss.iter().sum()
    }

    /// `Σ l_n / Σ w[y_n]` over rows not ignored; `0/0 = NaN` when every row is ignored.
    #[cfg(test)]
    pub fn mean(&self) -> f64 {
        self.sum() / self.weight.iter().sum::<f64>()
    }

    /// `Σ l_n` as a backend returns it: as PyTorch's float32 kernels hold it ([`f32_sum`]).
    pub fn sum_f32(&self) -> f64 {
        f32_sum(self.loss.iter().copied())
    }

    /// The mean's divisor `Σ w[y_n]` as a backend uses it ([`f32_sum`]).
    pub fn divisor_f32(&self) -> f64 {
        f32_sum(self.weight.iter().copied())
    }
}

/// A sum as PyTorch's float32 kernels hold one: each term an f32 value and the total
/// rounded to f32, so a total past 3.4e38 is ±inf before anything divides it (a weighted
/// mean whose Σ w overflows is then `Σ l / inf`, as in PyTorch), while the addition in
/// between is f64 (exact order-free to the f32 result in all but sums of mixed signs).
/// docs/NOTES.md, "Extreme values", states the rule.
pub fn f32_sum(terms: impl Iterator<Item = f64>) -> f64 {
    f64::from(terms.map(|t| f64::from(t as f32)).sum::<f64>() as f32)
}

/// The entropy of `softmax(row)`: `-Σ p log p`, masked (`-inf`) classes adding 0, as
/// `torch.distributions.Categorical(logits=row).entropy()`.
pub fn entropy(row: &[f32]) -> f64 {
    let logp = log_softmax(row);
    let mut h = 0.0;
    for lp in logp {
        if lp != f64::NEG_INFINITY {
            h -= lp.exp() * lp;
        }
    }
    h
}

/// Consecutive `[a, b]` blocks of `values`, each transposed to `[b, a]`: the CPU backends
/// gather an input along a strided axis (`[C, inner]` blocks) into rows, and scatter back.
/// Blocks run in parallel; within one, `TILE` columns at a time, so that the rows being
/// written (`TILE × a` values) stay in cache while the `a` rows are read (column by column
/// the writes were `a·4` bytes apart across a block of megabytes: 5× slower at
/// `[8, 21, 512, 512]`).
pub(crate) fn transpose_blocks(values: &[f32], a: usize, b: usize) -> Vec<f32> {
    use rayon::prelude::*;
    const TILE: usize = 64;
    let mut out = vec![0.0_f32; values.len()];
    if a * b == 0 {
        return out;
    }
    out.par_chunks_exact_mut(a * b)
        .zip(values.par_chunks_exact(a * b))
        .for_each(|(into, block)| {
            for j0 in (0..b).step_by(TILE) {
                let j1 = (j0 + TILE).min(b);
                for (i, row) in block.chunks_exact(b).enumerate() {
                    for (j, &v) in row[j0..j1].iter().enumerate() {
                        into[(j0 + j) * a + i] = v;
                    }
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    /// Every element lands where a plain transpose puts it, across tile boundaries and
    /// blocks, and transposing back restores the input.
    #[test]
    fn transpose_blocks_is_a_transpose_of_each_block() {
        for (a, b, blocks) in [(3, 130, 2), (21, 64, 1), (1, 5, 3), (7, 1, 2)] {
            let values: Vec<f32> = (0..a * b * blocks).map(|v| v as f32).collect();
            let out = super::transpose_blocks(&values, a, b);
            for k in 0..blocks {
                for i in 0..a {
                    for j in 0..b {
                        assert_eq!(out[k * a * b + j * a + i], values[k * a * b + i * b + j], "{a}x{b}");
                    }
                }
            }
            assert_eq!(super::transpose_blocks(&out, b, a), values, "{a}x{b} back");
        }
    }
}
