//! The elementwise losses on the fast CPU backend: one monomorphised, vectorisable loop per
//! loss over parallel tasks of whole last-axis rows (rayon), with the branch-free exp and
//! ln of `cpu::simd`.

use rayon::prelude::*;

use crate::api::kinds::ElementwiseKind;
use crate::cpu::simd::{exp_any, exp_neg, ln_nonneg};

use super::spec::ElementSpec;

/// One elementwise loss value, as `elementwise.wgsl` and PyTorch compute it.
#[inline(always)]
fn element_loss(kind: ElementwiseKind, x: f32, y: f32, w: f32, pw: f32, log_target: bool) -> f32 {
    match kind {
        ElementwiseKind::Mse => (x - y) * (x - y),
        ElementwiseKind::Bce => {
            // log1p(-p) through ln(1 - p): exact enough in f32 away from p ≈ 0 where -p is
            // what matters; use the reference for p < 1e-4 (below).
            -w * (y * ln_nonneg(x).max(-100.0) + (1.0 - y) * ln_nonneg(1.0 - x).max(-100.0))
        }
        ElementwiseKind::BceWithLogits => {
            let m = (-x).max(0.0);
            let lw = 1.0 + (pw - 1.0) * y;
            w * ((1.0 - y) * x + lw * (ln_nonneg(exp_neg(-m) + exp_neg(-x - m)) + m))
        }
        ElementwiseKind::KlDiv if log_target => exp_any(y) * (y - x),
        ElementwiseKind::KlDiv => (if y == 0.0 { 0.0 } else { y * ln_nonneg(y) }) - y * x,
    }
}

/// One elementwise derivative before the upstream scale (PyTorch's backward formulas).
#[inline(always)]
fn element_grad(kind: ElementwiseKind, x: f32, y: f32, w: f32, pw: f32, log_target: bool) -> f32 {
    match kind {
        ElementwiseKind::Mse => 2.0 * (x - y),
        ElementwiseKind::Bce => w * (x - y) / ((1.0 - x) * x).max(1e-12),
        ElementwiseKind::BceWithLogits => {
            let e = exp_neg(-x.abs());
            let sigma = if x >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
            w * (sigma * (1.0 + (pw - 1.0) * y) - pw * y)
        }
        ElementwiseKind::KlDiv if log_target => -exp_any(y),
        ElementwiseKind::KlDiv => -y,
    }
}

/// Elements per parallel task (a multiple of any small last axis does not matter: the
/// class index is computed from the global position).
const CHUNK: usize = 1 << 15;

/// Applies `f(x, y, w, pw)` to every element, in parallel tasks of whole last-axis rows, so
/// the class index is the position in the row (no modulo) and `f` is known to the loop
/// (one monomorphised, vectorisable loop per loss).
fn map_rows(
    input: &[f32],
    target: &[f32],
    weight: Option<&[f32]>,
    pos_weight: Option<&[f32]>,
    last_dim: usize,
    f: impl Fn(f32, f32, f32, f32) -> f32 + Sync,
) -> Vec<f32> {
    let last_dim = last_dim.max(1);
    let rows_per_task = (CHUNK / last_dim).max(1);
    let ones = vec![1.0_f32; last_dim];
    let w = weight.unwrap_or(&ones);
    let pw = pos_weight.unwrap_or(&ones);
    let mut out = vec![0.0_f32; input.len()];
    out.par_chunks_mut(rows_per_task * last_dim)
        .zip(
            input
                .par_chunks(rows_per_task * last_dim)
                .zip(target.par_chunks(rows_per_task * last_dim)),
        )
        .for_each(|(o, (x, y))| {
            for ((o, x), y) in o.chunks_mut(last_dim).zip(x.chunks(last_dim)).zip(y.chunks(last_dim)) {
                for c in 0..o.len() {
                    o[c] = f(x[c], y[c], w[c], pw[c]);
                }
            }
        });
    out
}

/// Every element's loss (or derivative, with `grad`), in parallel. BCE inputs below 1e-4 or
/// above 1 - 1e-4 take `ln_1p` exactly, as PyTorch's `log1p` does.
pub(crate) fn elementwise(spec: &ElementSpec<'_>, grad: bool, input: &[f32], target: &[f32]) -> Vec<f32> {
    let ElementSpec {
        kind,
        weight,
        pos_weight,
        log_target,
        last_dim,
        ..
    } = *spec;
    macro_rules! each {
        ($k:expr, $lt:expr) => {
            if grad {
                map_rows(input, target, weight, pos_weight, last_dim, |x, y, w, pw| {
                    element_grad($k, x, y, w, pw, $lt)
                })
            } else if $k == ElementwiseKind::Bce {
                // The vectorised formula everywhere (a branch in the loop stopped LLVM
                // vectorising it: 10× slower), then the few p outside [1e-4, 1 - 1e-4]
                // again with libm's ln and ln_1p, as PyTorch's log1p.
                let mut values = map_rows(input, target, weight, pos_weight, last_dim, |x, y, w, _| {
                    element_loss(ElementwiseKind::Bce, x, y, w, 1.0, false)
                });
                let w_of = |i: usize| weight.map_or(1.0, |w| w[i % last_dim.max(1)]);
                values.par_iter_mut().enumerate().for_each(|(i, v)| {
                    let (x, y) = (input[i], target[i]);
                    if !(1e-4..=1.0 - 1e-4).contains(&x) {
                        *v = -w_of(i) * (y * x.ln().max(-100.0) + (1.0 - y) * (-x).ln_1p().max(-100.0));
                    }
                });
                values
            } else {
                map_rows(input, target, weight, pos_weight, last_dim, |x, y, w, pw| {
                    element_loss($k, x, y, w, pw, $lt)
                })
            }
        };
    }
    match (kind, log_target) {
        (ElementwiseKind::Mse, _) => each!(ElementwiseKind::Mse, false),
        (ElementwiseKind::Bce, _) => each!(ElementwiseKind::Bce, false),
        (ElementwiseKind::BceWithLogits, _) => each!(ElementwiseKind::BceWithLogits, false),
        (ElementwiseKind::KlDiv, true) => each!(ElementwiseKind::KlDiv, true),
        (ElementwiseKind::KlDiv, false) => each!(ElementwiseKind::KlDiv, false),
    }
}
