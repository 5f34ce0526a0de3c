//! The CPU reference: f64 accumulation, max-shifted, one plain loop per formula, written
//! to be obviously right rather than fast. Every GPU result is checked against it.
//! Definitions: `shared/SEMANTICS.md` (PyTorch's).

mod elementwise;

pub use elementwise::{bce, bce_with_logits, elementwise_losses, kl_div, mse};

use crate::kernels::InputKind;

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

/// `log Σ exp(x)` of one row, shifted by its max. All `-inf` gives NaN and a NaN
/// anywhere gives NaN, as `torch.log_softmax` does (`x - max` is `-inf - -inf` there).
pub fn logsumexp(row: &[f32]) -> f64 {
    let max = row_max(row);
    let mut sum = 0.0;
    for &x in row {
        sum += (f64::from(x) - max).exp();
    }
    max + sum.ln()
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

/// The log-probabilities of one row for an input kind: `log_softmax` of logits,
/// `log(p + epsilon)` of probabilities, log-probabilities as they are.
pub fn log_probs(row: &[f32], (kind, epsilon): (InputKind, f64)) -> Vec<f64> {
    match kind {
        InputKind::Logits => log_softmax(row),
        InputKind::Probabilities => row.iter().map(|&p| (f64::from(p) + epsilon).ln()).collect(),
        InputKind::LogProbabilities => row.iter().map(|&x| f64::from(x)).collect(),
    }
}

/// Class-index cross-entropy of `[rows, classes]` logits, as
/// `torch.nn.functional.cross_entropy(x, y, weight, ignore_index=..., label_smoothing=...,
/// reduction='none')`, plus the mean's denominators. Inputs must already be valid
/// (targets in `[0, C)` or `ignore_index`).
pub fn cross_entropy_rows(
    logits: &[f32],
    classes: usize,
    targets: &[i64],
    weight: Option<&[f32]>,
    ignore_index: i64,
    label_smoothing: f64,
) -> RowLosses {
    let kind = (InputKind::Logits, 0.0);
    cross_entropy_rows_of(logits, classes, targets, weight, ignore_index, label_smoothing, kind)
}

/// [`cross_entropy_rows`] for any input kind: `F.nll_loss` for log-probabilities, the
/// seeds' `-log(p + epsilon)` for probabilities.
pub fn cross_entropy_rows_of(
    input: &[f32],
    classes: usize,
    targets: &[i64],
    weight: Option<&[f32]>,
    ignore_index: i64,
    label_smoothing: f64,
    kind: (InputKind, f64),
) -> RowLosses {
    let class_weight = |c: usize| weight.map_or(1.0, |w| f64::from(w[c]));
    let mut out = RowLosses {
        loss: Vec::with_capacity(targets.len()),
        weight: Vec::with_capacity(targets.len()),
    };
    for (row, &target) in input.chunks_exact(classes).zip(targets) {
        if target == ignore_index {
            out.loss.push(0.0);
            out.weight.push(0.0);
            continue;
        }
        let logp = log_probs(row, kind);
        let y = target as usize;
        let w_y = class_weight(y);
        let nll = -w_y * logp[y];
        let loss = if label_smoothing > 0.0 {
            let mut smooth = 0.0;
            for (c, &lp) in logp.iter().enumerate() {
                smooth += -class_weight(c) * lp;
            }
            (1.0 - label_smoothing) * nll + label_smoothing / classes as f64 * smooth
        } else {
            nll
        };
        out.loss.push(loss);
        out.weight.push(w_y);
    }
    out
}

/// Cross-entropy with probability targets `[rows, classes]`:
/// `l_n = -Σ_c w_c t'_c lp_c` with `t' = t(1-ε) + ε/C`; every row weighs 1 (mean over N).
pub fn cross_entropy_probability_rows(
    input: &[f32],
    classes: usize,
    targets: &[f32],
    weight: Option<&[f32]>,
    label_smoothing: f64,
    kind: (InputKind, f64),
) -> RowLosses {
    let class_weight = |c: usize| weight.map_or(1.0, |w| f64::from(w[c]));
    let mut out = RowLosses {
        loss: Vec::new(),
        weight: Vec::new(),
    };
    for (row, t) in input.chunks_exact(classes).zip(targets.chunks_exact(classes)) {
        let logp = log_probs(row, kind);
        let mut loss = 0.0;
        for c in 0..classes {
            let smoothed = f64::from(t[c]) * (1.0 - label_smoothing) + label_smoothing / classes as f64;
            loss += -class_weight(c) * smoothed * logp[c];
        }
        out.loss.push(loss);
        out.weight.push(1.0);
    }
    out
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
