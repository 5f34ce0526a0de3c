//! The CPU reference: f64 accumulation, max-shifted, one plain loop per formula, written
//! to be obviously right rather than fast. Every GPU result is checked against it.
//! Definitions: `shared/SEMANTICS.md` (PyTorch's).

mod cross_entropy;
mod elementwise;

use crate::kernels::RowOutput;

pub use cross_entropy::{reference_grad, reference_rows, Real, RefOptions, RefTargets};
pub use elementwise::{bce, bce_with_logits, elementwise_grad, elementwise_losses, kl_div, mse};

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
    /// `Σ l_n`.
    pub fn sum(&self) -> f64 {
        self.loss.iter().sum()
    }

    /// `Σ l_n / Σ w[y_n]` over rows not ignored; `0/0 = NaN` when every row is ignored.
    pub fn mean(&self) -> f64 {
        self.sum() / self.weight.iter().sum::<f64>()
    }
}

/// Class-index cross-entropy of `[rows, classes]` logits, as
/// `torch.nn.functional.cross_entropy(x, y, weight, ignore_index=..., label_smoothing=...,
/// reduction='none')`, plus the mean's denominators: [`reference_rows`] with those options.
/// Inputs must already be valid (targets in `[0, C)` or `ignore_index`).
pub fn cross_entropy_rows(
    logits: &[f32],
    classes: usize,
    targets: &[i64],
    weight: Option<&[f32]>,
    ignore_index: i64,
    label_smoothing: f64,
) -> RowLosses {
    let opts = RefOptions {
        weight,
        ignore_index,
        label_smoothing,
        ..RefOptions::default()
    };
    reference_rows(logits, classes, RefTargets::Indices(targets), &opts)
}

/// A row operation of f64 values (for finite differences): softmax, log-softmax, or the
/// entropy (one value).
pub fn row_op(op: RowOutput, row: &[f64]) -> Vec<f64> {
    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = row.iter().map(|x| (x - max).exp()).sum();
    let logp: Vec<f64> = row.iter().map(|x| x - max - z.ln()).collect();
    match op {
        RowOutput::Softmax => logp.iter().map(|l| l.exp()).collect(),
        RowOutput::LogSoftmax => logp,
        // Masked (-inf) classes add 0; a NaN propagates, as in Categorical.entropy().
        RowOutput::Entropy => vec![-logp
            .iter()
            .filter(|&&l| l != f64::NEG_INFINITY)
            .map(|l| l.exp() * l)
            .sum::<f64>()],
    }
}

/// The vector-Jacobian product of [`row_op`] with `upstream` (the output's length).
pub fn row_op_vjp(op: RowOutput, row: &[f64], upstream: &[f64]) -> Vec<f64> {
    let logp = row_op(RowOutput::LogSoftmax, row);
    let p: Vec<f64> = logp.iter().map(|l| l.exp()).collect();
    match op {
        RowOutput::Softmax => {
            let s: f64 = upstream.iter().zip(&p).map(|(u, p)| u * p).sum();
            p.iter().zip(upstream).map(|(p, u)| p * (u - s)).collect()
        }
        RowOutput::LogSoftmax => {
            let s: f64 = upstream.iter().sum();
            upstream.iter().zip(&p).map(|(u, p)| u - p * s).collect()
        }
        RowOutput::Entropy => {
            let h = row_op(RowOutput::Entropy, row)[0];
            p.iter()
                .zip(&logp)
                .map(|(p, l)| {
                    if *l != f64::NEG_INFINITY {
                        -upstream[0] * p * (l + h)
                    } else {
                        0.0
                    }
                })
                .collect()
        }
    }
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

/// Mean squared error summed over all elements: `Σ (x - y)²`. The seeds' textbook
/// `E = ½ Σ (y - t)²` is `0.5 * mse_sum`.
pub fn mse_sum(input: &[f32], target: &[f32]) -> f64 {
    let mut sum = 0.0;
    for (&x, &y) in input.iter().zip(target) {
        let d = f64::from(x) - f64::from(y);
        sum += d * d;
    }
    sum
}

/// Cross-entropy of a row of probabilities (not logits) against a target distribution:
/// `-Σ t log(p + epsilon)`, the seeds' form (Keras `from_logits=False` uses 1e-7).
pub fn cross_entropy_of_probabilities(probabilities: &[f32], target: &[f32], epsilon: f64) -> f64 {
    let mut sum = 0.0;
    for (&p, &t) in probabilities.iter().zip(target) {
        sum += -f64::from(t) * (f64::from(p) + epsilon).ln();
    }
    sum
}
