//! Cross-entropy on the fast CPU backend: f32, two passes per row while it is in cache
//! (max, then Σ exp and the weighted dot products) with the vectorised math of
//! `cpu::simd`, rows in parallel (rayon), row losses summed in f64 in row order
//! (deterministic). Rows whose max is NaN or ±inf, soft-capped logits and probability /
//! log-probability inputs use the f64 reference for those rows, also in parallel.

use rayon::prelude::*;

use crate::api::kinds::InputKind;
use crate::cpu::simd::{Coefficients, GradScale, Kernels};
use crate::cpu::RowLosses;

use super::reference::{reference_grad, reference_rows, RefTargets};
use super::spec::Spec;

/// Whether the fast path covers these options (else the reference runs, in parallel).
pub(crate) fn covers(opts: &Spec<'_>) -> bool {
    opts.kind == InputKind::Logits && opts.softcap.is_none()
}

/// One row: (loss, weight in the mean, lse, A = Σ a_c) or None to use the reference.
fn fast_row(
    k: Kernels,
    row: &[f32],
    target: Result<i64, &[f32]>,
    opts: &Spec<'_>,
    coefficients: &mut Vec<f32>,
) -> Option<(f64, f64, f32, f32)> {
    let classes = row.len();
    let (m, nan) = k.max(row);
    if nan || !m.is_finite() {
        return None;
    }
    let eps = opts.label_smoothing as f32;
    let weight = |c: usize| opts.weight.map_or(1.0, |w| w[c]);
    match target {
        Ok(y) if y == opts.ignore_index => Some((0.0, 0.0, f32::NAN, 0.0)),
        Ok(y) => {
            let y = y as usize;
            let w_y = weight(y);
            let smoothing = eps > 0.0;
            let dot_coefficients = match (smoothing, opts.weight) {
                (true, Some(w)) => Some(w),
                (true, None) => {
                    coefficients.clear();
                    coefficients.resize(classes, 1.0);
                    Some(&coefficients[..])
                }
                _ => None,
            };
            let (s, t) = k.exp_sum(row, m, dot_coefficients);
            let log_s = s.ln();
            let lse = m + log_s;
            let nll = log_s - (row[y] - m);
            let mut loss = f64::from(w_y) * f64::from(nll);
            let mut a_sum = w_y;
            if smoothing {
                let w_sum: f32 = opts.weight.map_or(classes as f32, |w| w.iter().sum());
                let smooth = w_sum * log_s - t; // Σ_c w_c (lse - x_c)
                loss = (1.0 - opts.label_smoothing) * loss + opts.label_smoothing / classes as f64 * f64::from(smooth);
                a_sum = (1.0 - eps) * w_y + eps / classes as f32 * w_sum;
            }
            loss += opts.z_loss * f64::from(lse) * f64::from(lse);
            Some((loss, f64::from(w_y), lse, a_sum))
        }
        Err(t) => {
            coefficients.clear();
            coefficients.extend((0..classes).map(|c| weight(c) * (t[c] * (1.0 - eps) + eps / classes as f32)));
            let a_sum: f32 = coefficients.iter().sum();
            let (s, dot) = k.exp_sum(row, m, Some(coefficients));
            let log_s = s.ln();
            let lse = m + log_s;
            let loss = f64::from(a_sum * log_s - dot) + opts.z_loss * f64::from(lse) * f64::from(lse);
            Some((loss, 1.0, lse, a_sum))
        }
    }
}

/// Targets of the fast path: class indices, or f32 probabilities `[N, C]`.
#[derive(Clone, Copy)]
pub(crate) enum FastTargets<'a> {
    Indices(&'a [i64]),
    Probabilities(&'a [f32]),
}

impl<'a> FastTargets<'a> {
    fn row(&self, n: usize, classes: usize) -> Result<i64, &'a [f32]> {
        match self {
            FastTargets::Indices(t) => Ok(t[n]),
            FastTargets::Probabilities(t) => Err(&t[n * classes..(n + 1) * classes]),
        }
    }
}

/// The reference for one row (f64), with the same options.
fn reference_row(row: &[f32], target: Result<i64, &[f32]>, opts: &Spec<'_>) -> (f64, f64) {
    let classes = row.len();
    let losses = match target {
        Ok(y) => reference_rows(row, classes, RefTargets::Indices(&[y]), opts),
        Err(t) => {
            let t64: Vec<f64> = t.iter().map(|&v| f64::from(v)).collect();
            reference_rows(row, classes, RefTargets::Probabilities(&t64), opts)
        }
    };
    (losses.loss[0], losses.weight[0])
}

/// NLL and probability inputs with class indices and no smoothing need only the target's
/// element: `-w_y·x_y` or `-w_y·ln(p_y + ε)`, O(1) a row.
fn gather_rows(input: &[f32], classes: usize, targets: &[i64], opts: &Spec<'_>) -> RowLosses {
    let per_row: Vec<(f64, f64)> = targets
        .par_iter()
        .enumerate()
        .map(|(n, &y)| {
            if y == opts.ignore_index {
                return (0.0, 0.0);
            }
            let w_y = f64::from(opts.weight.map_or(1.0, |w| w[y as usize]));
            let x = f64::from(input[n * classes + y as usize]);
            let lp = if opts.kind == InputKind::Probabilities {
                (x + opts.epsilon).ln()
            } else {
                x
            };
            (-w_y * lp, w_y)
        })
        .collect();
    RowLosses {
        loss: per_row.iter().map(|r| r.0).collect(),
        weight: per_row.iter().map(|r| r.1).collect(),
    }
}

/// One row's result: its loss, its weight in the mean, and — when the fast path computed
/// it — the row's (lse, A = Σ a_c), which is all its gradient needs.
struct RowResult {
    loss: f64,
    weight: f64,
    stats: Option<(f32, f32)>,
}

/// Every row's result, in parallel.
fn row_results(input: &[f32], classes: usize, targets: FastTargets<'_>, opts: &Spec<'_>) -> Vec<RowResult> {
    if let (FastTargets::Indices(t), false, true) =
        (targets, opts.kind == InputKind::Logits, opts.label_smoothing == 0.0)
    {
        let gathered = gather_rows(input, classes, t, opts);
        return gathered
            .loss
            .into_iter()
            .zip(gathered.weight)
            .map(|(loss, weight)| RowResult {
                loss,
                weight,
                stats: None,
            })
            .collect();
    }
    let k = Kernels::detect();
    let fast = covers(opts);
    input
        .par_chunks(classes)
        .enumerate()
        .map_init(Vec::new, |scratch, (n, row)| {
            let target = targets.row(n, classes);
            let quick = if fast {
                fast_row(k, row, target, opts, scratch)
            } else {
                None
            };
            match quick {
                Some((loss, weight, lse, a_sum)) => RowResult {
                    loss,
                    weight,
                    stats: Some((lse, a_sum)),
                },
                None => {
                    let (loss, weight) = reference_row(row, target, opts);
                    RowResult {
                        loss,
                        weight,
                        stats: None,
                    }
                }
            }
        })
        .collect()
}

fn row_losses(results: &[RowResult]) -> RowLosses {
    RowLosses {
        loss: results.iter().map(|r| r.loss).collect(),
        weight: results.iter().map(|r| r.weight).collect(),
    }
}

/// Row losses (and mean weights) of every row, in parallel.
pub(crate) fn rows(input: &[f32], classes: usize, targets: FastTargets<'_>, opts: &Spec<'_>) -> RowLosses {
    row_losses(&row_results(input, classes, targets, opts))
}

/// Row losses and `∂(Σ g_n l_n)/∂input` with `scale(losses)` giving each row's g_n. The
/// gradient pass reuses each row's (lse, A) from the loss pass.
pub(crate) fn rows_and_grad(
    input: &[f32],
    classes: usize,
    targets: FastTargets<'_>,
    opts: &Spec<'_>,
    scale: impl Fn(&RowLosses) -> Vec<f64>,
) -> (RowLosses, Vec<f32>) {
    let k = Kernels::detect();
    let results = row_results(input, classes, targets, opts);
    let losses = row_losses(&results);
    let g = scale(&losses);
    let mut grad = vec![0.0_f32; input.len()];
    let eps = opts.label_smoothing as f32;
    let weight = |c: usize| opts.weight.map_or(1.0, |w| w[c]);
    let base = eps / classes as f32;
    let grad_scale = |lse: f32, g: f32, a_sum: f32| GradScale {
        lse,
        g,
        a_sum,
        z_term: 2.0 * opts.z_loss as f32 * lse,
    };
    grad.par_chunks_mut(classes)
        .zip(input.par_chunks(classes))
        .enumerate()
        .for_each_init(Vec::new, |dense, (n, (out, row))| {
            let target = targets.row(n, classes);
            let gn = g[n] as f32;
            match (results[n].stats, target) {
                (_, Ok(y)) if y == opts.ignore_index => out.fill(0.0),
                (Some((lse, a_sum)), Ok(y)) => {
                    let y = y as usize;
                    let a = Coefficients::Indexed {
                        y,
                        hit: (1.0 - eps) * weight(y),
                        base,
                        weight: opts.weight,
                    };
                    k.grad(row, out, &grad_scale(lse, gn, a_sum), &a);
                }
                (Some((lse, a_sum)), Err(t)) => {
                    dense.clear();
                    dense.extend((0..classes).map(|c| weight(c) * (t[c] * (1.0 - eps) + base)));
                    k.grad(row, out, &grad_scale(lse, gn, a_sum), &Coefficients::Dense(dense));
                }
                (None, _) => reference_row_grad(row, out, target, opts, g[n]),
            }
        });
    (losses, grad)
}

/// One row's gradient with the f64 reference (rows the fast path does not cover).
fn reference_row_grad(row: &[f32], out: &mut [f32], target: Result<i64, &[f32]>, opts: &Spec<'_>, g: f64) {
    let classes = row.len();
    let row_targets;
    let t64: Vec<f64>;
    let targets = match target {
        Ok(y) => {
            row_targets = [y];
            RefTargets::Indices(&row_targets)
        }
        Err(t) => {
            t64 = t.iter().map(|&v| f64::from(v)).collect();
            RefTargets::Probabilities(&t64)
        }
    };
    let g64 = reference_grad(row, classes, targets, opts, &[g]);
    for (o, v) in out.iter_mut().zip(g64) {
        *o = v as f32;
    }
}
