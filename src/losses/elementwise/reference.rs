//! The f64 reference of the elementwise losses: one value per element, as PyTorch
//! defines them, and the derivatives of its backward formulas.

use crate::api::kinds::ElementwiseKind;

use super::spec::ElementSpec;

/// `(x - y)²` (`F.mse_loss`).
pub(crate) fn mse(x: f64, y: f64) -> f64 {
    (x - y) * (x - y)
}

/// `-w (y log p + (1-y) log(1-p))` with each log clamped at -100 (`F.binary_cross_entropy`).
pub(crate) fn bce(p: f64, y: f64, w: f64) -> f64 {
    let log_p = p.ln().max(-100.0);
    let log_1mp = (-p).ln_1p().max(-100.0);
    -w * (y * log_p + (1.0 - y) * log_1mp)
}

/// `w ((1-y) x + lw (log(e^-m + e^(-x-m)) + m))`, `m = max(-x, 0)`,
/// `lw = 1 + (pos_weight - 1) y` (`F.binary_cross_entropy_with_logits`).
pub(crate) fn bce_with_logits(x: f64, y: f64, w: f64, pos_weight: f64) -> f64 {
    let m = (-x).max(0.0);
    let lw = 1.0 + (pos_weight - 1.0) * y;
    w * ((1.0 - y) * x + lw * (((-m).exp() + (-x - m).exp()).ln() + m))
}

/// `xlogy(t, t) - t x` (0 where t = 0 and x is finite); with `log_target`,
/// `exp(t) (t - x)` (`F.kl_div`, input log-probabilities).
pub(crate) fn kl_div(x: f64, t: f64, log_target: bool) -> f64 {
    if log_target {
        return t.exp() * (t - x);
    }
    let t_log_t = if t == 0.0 { 0.0 } else { t * t.ln() };
    t_log_t - t * x
}

/// The loss of every element; `weight` and `pos_weight` broadcast over the last axis of
/// length `last_dim`.
pub(crate) fn elementwise_losses(spec: &ElementSpec<'_>, input: &[f64], target: &[f64]) -> Vec<f64> {
    input
        .iter()
        .zip(target)
        .enumerate()
        .map(|(i, (&x, &y))| {
            let (w, pw) = spec.weights_at(i);
            match spec.kind {
                ElementwiseKind::Mse => mse(x, y),
                ElementwiseKind::Bce => bce(x, y, w),
                ElementwiseKind::BceWithLogits => bce_with_logits(x, y, w, pw),
                ElementwiseKind::KlDiv => kl_div(x, y, spec.log_target),
            }
        })
        .collect()
}

/// `∂loss/∂input` of every element before the upstream scale, with PyTorch's backward
/// formulas (BCE: `w (p - y) / max((1 - p) p, 1e-12)`).
pub(crate) fn elementwise_grad(spec: &ElementSpec<'_>, input: &[f64], target: &[f64]) -> Vec<f64> {
    input
        .iter()
        .zip(target)
        .enumerate()
        .map(|(i, (&x, &y))| {
            let (w, pw) = spec.weights_at(i);
            match spec.kind {
                ElementwiseKind::Mse => 2.0 * (x - y),
                ElementwiseKind::Bce => w * (x - y) / ((1.0 - x) * x).max(1e-12),
                ElementwiseKind::BceWithLogits => {
                    let sigma = 1.0 / (1.0 + (-x).exp());
                    w * (sigma * (1.0 + (pw - 1.0) * y) - pw * y)
                }
                ElementwiseKind::KlDiv if spec.log_target => -y.exp(),
                ElementwiseKind::KlDiv => -y,
            }
        })
        .collect()
}

#[cfg(test)]
/// Mean squared error summed over all elements: `Σ (x - y)²`. The seeds' textbook
/// `E = ½ Σ (y - t)²` is `0.5 * mse_sum`.
pub(crate) fn mse_sum(input: &[f32], target: &[f32]) -> f64 {
    let mut sum = 0.0;
    for (&x, &y) in input.iter().zip(target) {
        let d = f64::from(x) - f64::from(y);
        sum += d * d;
    }
    sum
}
