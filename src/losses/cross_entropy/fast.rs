//! Cross-entropy on the fast CPU backend: f32, two passes per row while it is in cache
//! (max, then Σ exp and the weighted dot products) with the vectorised math of
//! `cpu::simd`, rows in parallel (rayon), row losses summed in f64 in row order
//! (deterministic). Rows whose max is NaN or ±inf, soft-capped logits and probability /
//! log-probability inputs use the f64 reference for those rows, also in parallel.

use rayon::prelude::*;

use crate::api::kinds::InputKind;
use crate::cpu::short_rows::{stats8, LANES, MAX_CLASSES};
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
            Some(indexed_row(opts, classes, y, (m, s, t), row[y]))
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

/// A class-index row's (loss, weight, lse, A) from its max `m`, `s` = Σ exp(x - m), `t` =
/// Σ w_c (x_c - m) (used with smoothing only) and its target's logit `x_y`.
fn indexed_row(
    opts: &Spec<'_>,
    classes: usize,
    y: usize,
    (m, s, t): (f32, f32, f32),
    x_y: f32,
) -> (f64, f64, f32, f32) {
    let eps = opts.label_smoothing as f32;
    let w_y = opts.weight.map_or(1.0, |w| w[y]);
    let log_s = s.ln();
    let lse = m + log_s;
    let nll = log_s - (x_y - m);
    let mut loss = f64::from(w_y) * f64::from(nll);
    let mut a_sum = w_y;
    if eps > 0.0 {
        let w_sum: f32 = opts.weight.map_or(classes as f32, |w| w.iter().sum());
        let smooth = w_sum * log_s - t; // Σ_c w_c (lse - x_c)
        loss = (1.0 - opts.label_smoothing) * loss + opts.label_smoothing / classes as f64 * f64::from(smooth);
        a_sum = (1.0 - eps) * w_y + eps / classes as f32 * w_sum;
    }
    loss += opts.z_loss * f64::from(lse) * f64::from(lse);
    (loss, f64::from(w_y), lse, a_sum)
}

/// Whether a block's rows may go eight at a time (`cpu::short_rows`): logits without a
/// soft-cap, class-index targets, at most 32 classes, and no weighted smoothing (whose
/// dot product the eight-row statistics do not carry).
fn eight_at_a_time(opts: &Spec<'_>, classes: usize, targets: FastTargets<'_>) -> bool {
    covers(opts)
        && classes <= MAX_CLASSES
        && matches!(targets, FastTargets::Indices(_))
        && !(opts.label_smoothing > 0.0 && opts.weight.is_some())
}

/// The results of a block of rows starting at row `first`, eight at a time where it may
/// (rows with a NaN or an infinite max, and the last rows of a block, one at a time).
fn block_results(
    k: Kernels,
    first: usize,
    block: &[f32],
    classes: usize,
    (targets, opts): (FastTargets<'_>, &Spec<'_>),
    scratch: &mut Vec<f32>,
    mut each: impl FnMut(RowResult),
) {
    let rows = block.len() / classes;
    let mut done = 0;
    if let (true, FastTargets::Indices(t)) = (eight_at_a_time(opts, classes, targets), targets) {
        for (e, eight) in block.chunks_exact(LANES * classes).enumerate() {
            let stats = stats8(eight, classes, k.avx2);
            for (r, row) in eight.chunks(classes).enumerate() {
                let n = first + e * LANES + r;
                let y = t[n];
                if stats.special[r] || y == opts.ignore_index {
                    each(row_result(k, n, row, targets, opts, scratch));
                    continue;
                }
                let m = stats.max[r];
                let st = (m, stats.exp_sum[r], stats.shifted_sum[r]);
                let (loss, weight, lse, a_sum) = indexed_row(opts, classes, y as usize, st, row[y as usize]);
                each(RowResult {
                    loss,
                    weight,
                    stats: Some((lse, a_sum)),
                });
            }
        }
        done = rows / LANES * LANES;
    }
    for (i, row) in block.chunks(classes).enumerate().skip(done) {
        each(row_result(k, first + i, row, targets, opts, scratch));
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

/// One row's result: its loss, its weight in the mean, and — when the fast path computed
/// it — the row's (lse, A = Σ a_c), which is all its gradient needs.
struct RowResult {
    loss: f64,
    weight: f64,
    stats: Option<(f32, f32)>,
}

/// Row `n`: NLL and probability inputs with class indices and no smoothing need only the
/// target's column; logits go through `fast_row`; whatever it does not cover (NaN or
/// infinite maxima, soft-cap, other inputs with smoothing) through the f64 reference.
fn row_result(
    k: Kernels,
    n: usize,
    row: &[f32],
    targets: FastTargets<'_>,
    opts: &Spec<'_>,
    scratch: &mut Vec<f32>,
) -> RowResult {
    let target = targets.row(n, row.len());
    if let (Ok(y), false, true) = (target, opts.kind == InputKind::Logits, opts.label_smoothing == 0.0) {
        if y == opts.ignore_index {
            return RowResult {
                loss: 0.0,
                weight: 0.0,
                stats: None,
            };
        }
        let w_y = f64::from(opts.weight.map_or(1.0, |w| w[y as usize]));
        let x = f64::from(row[y as usize]);
        let lp = if opts.kind == InputKind::Probabilities {
            (x + opts.epsilon).ln()
        } else {
            x
        };
        return RowResult {
            loss: -w_y * lp,
            weight: w_y,
            stats: None,
        };
    }
    match covers(opts).then(|| fast_row(k, row, target, opts, scratch)).flatten() {
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
}

/// Rows per parallel task: short rows are worth a task only by the thousand.
const BLOCK_ROWS: usize = 1024;

/// Every row's result, in parallel (for the gradient, which needs each row's statistics).
fn row_results(input: &[f32], classes: usize, targets: FastTargets<'_>, opts: &Spec<'_>) -> Vec<RowResult> {
    let k = Kernels::detect();
    let blocks: Vec<Vec<RowResult>> = input
        .par_chunks(BLOCK_ROWS * classes)
        .enumerate()
        .map_init(Vec::new, |scratch, (b, block)| {
            let mut results = Vec::with_capacity(BLOCK_ROWS);
            block_results(k, b * BLOCK_ROWS, block, classes, (targets, opts), scratch, |r| {
                results.push(r)
            });
            results
        })
        .collect();
    blocks.into_iter().flatten().collect()
}

/// The forward alone, without a per-row record: each row's loss as f32 (`none`).
pub(crate) fn row_values(input: &[f32], classes: usize, targets: FastTargets<'_>, opts: &Spec<'_>) -> Vec<f32> {
    let k = Kernels::detect();
    let mut out = vec![0.0_f32; input.len() / classes];
    out.par_chunks_mut(BLOCK_ROWS)
        .zip(input.par_chunks(BLOCK_ROWS * classes))
        .enumerate()
        .for_each_init(Vec::new, |scratch, (b, (out, block))| {
            let mut out = out.iter_mut();
            block_results(k, b * BLOCK_ROWS, block, classes, (targets, opts), scratch, |r| {
                if let Some(o) = out.next() {
                    *o = r.loss as f32;
                }
            });
        });
    out
}

/// The forward alone, reduced: (Σ loss, Σ weight) as PyTorch's float32 holds them (each
/// term an f32, the totals rounded to f32; blocks summed in f64 in block order, so the
/// result does not depend on the threads).
pub(crate) fn sums(input: &[f32], classes: usize, targets: FastTargets<'_>, opts: &Spec<'_>) -> (f64, f64) {
    let k = Kernels::detect();
    let blocks: Vec<(f64, f64)> = input
        .par_chunks(BLOCK_ROWS * classes)
        .enumerate()
        .map_init(Vec::new, |scratch, (b, block)| {
            let mut sums = (0.0, 0.0);
            block_results(k, b * BLOCK_ROWS, block, classes, (targets, opts), scratch, |r| {
                sums.0 += f64::from(r.loss as f32);
                sums.1 += f64::from(r.weight as f32);
            });
            sums
        })
        .collect();
    let total = |f: fn(&(f64, f64)) -> f64| f64::from(blocks.iter().map(f).sum::<f64>() as f32);
    (total(|b| b.0), total(|b| b.1))
}

fn row_losses(results: &[RowResult]) -> RowLosses {
    RowLosses {
        loss: results.iter().map(|r| r.loss).collect(),
        weight: results.iter().map(|r| r.weight).collect(),
    }
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
