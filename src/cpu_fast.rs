//! The fast CPU backend: f32 with a branch-free vectorisable exp and ln; cross-entropy and
//! the softmax family in two passes per row while it is in cache (max, then Σ exp and the
//! weighted dot products), rows in parallel with rayon; elementwise losses in parallel chunks. Row losses are summed in f64 in row order, so results are the same
//! from run to run. Rows whose max is NaN or ±inf, and the soft-cap and probability /
//! log-probability input kinds, use the f64 reference for those rows (PyTorch's exact
//! semantics), also in parallel.

use rayon::prelude::*;

use crate::cpu::{self, RefOptions, RefTargets, RowLosses};
use crate::kernels::{ElementwiseKind, InputKind, RowOutput};

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5·2^23: adding it rounds to the nearest integer, and its bits then hold that integer.
const ROUND: f32 = 12_582_912.0;

/// exp(x) for x ≤ 0 (x - max or x - lse), relative error ~2e-7 (Cephes' expf polynomial).
/// Below -87 it returns exp(-87) ≈ 1.6e-38 instead of less: where the true value is ~0
/// (masked classes), that adds nothing visible to a sum of terms ≥ exp(0) = 1.
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    let x = x.max(-87.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let exponent = (t.to_bits() as i32 - 0x4b40_0000 + 127) as u32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    p = p * r * r + r + 1.0;
    p * f32::from_bits(exponent << 23)
}

const LANES: usize = 8;

/// The row's max, and whether a NaN is in it.
#[inline(always)]
fn row_max(row: &[f32]) -> (f32, bool) {
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut nan = [false; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            max[i] = max[i].max(chunk[i]);
            nan[i] |= chunk[i].is_nan();
        }
    }
    let mut m = max.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut has_nan = nan.iter().any(|&b| b);
    for &x in tail {
        m = m.max(x);
        has_nan |= x.is_nan();
    }
    (m, has_nan)
}

/// Σ exp(x - m) and Σ a_c (x_c - m) (without `coefficients`, the dot is 0). Two loops, so
/// that neither carries a branch: a branch in the lane loop stops LLVM vectorising it.
#[inline(always)]
fn exp_sum_and_dot(row: &[f32], m: f32, coefficients: Option<&[f32]>) -> (f32, f32) {
    match coefficients {
        None => (exp_sum(row, m), 0.0),
        Some(a) => exp_sum_dot(row, a, m),
    }
}

#[inline(always)]
fn exp_sum(row: &[f32], m: f32) -> f32 {
    let mut sum = [0.0_f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            sum[i] += exp_neg(chunk[i] - m);
        }
    }
    sum.iter().sum::<f32>() + tail.iter().map(|&x| exp_neg(x - m)).sum::<f32>()
}

#[inline(always)]
fn exp_sum_dot(row: &[f32], a: &[f32], m: f32) -> (f32, f32) {
    let mut sum = [0.0_f32; LANES];
    let mut dot = [0.0_f32; LANES];
    let chunks = row.chunks_exact(LANES).zip(a.chunks_exact(LANES));
    for (x, w) in chunks {
        for i in 0..LANES {
            let d = x[i] - m;
            sum[i] += exp_neg(d);
            dot[i] += w[i] * d;
        }
    }
    let n = row.len() - row.len() % LANES;
    let (mut s, mut t): (f32, f32) = (sum.iter().sum(), dot.iter().sum());
    for j in n..row.len() {
        let d = row[j] - m;
        s += exp_neg(d);
        t += a[j] * d;
    }
    (s, t)
}

/// grad_c = g (A p_c - a_c) (+ g 2 z lse p_c), p_c = exp(x_c - lse).
#[inline(always)]
fn row_grad(row: &[f32], out: &mut [f32], lse: f32, g: f32, a_sum: f32, a: &dyn Fn(usize) -> f32, z_term: f32) {
    for (c, (o, &x)) in out.iter_mut().zip(row).enumerate() {
        let p = exp_neg(x - lse);
        *o = g * ((a_sum + z_term) * p - a(c));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_sum_and_dot_avx2(row: &[f32], m: f32, coefficients: Option<&[f32]>) -> (f32, f32) {
    exp_sum_and_dot(row, m, coefficients)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_max_avx2(row: &[f32]) -> (f32, bool) {
    row_max(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_grad_avx2(
    row: &[f32],
    out: &mut [f32],
    lse: f32,
    g: f32,
    a_sum: f32,
    a: &dyn Fn(usize) -> f32,
    z_term: f32,
) {
    row_grad(row, out, lse, g, a_sum, a, z_term)
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The kernels, with AVX2 + FMA where the CPU has them.
#[derive(Clone, Copy)]
struct Kernels {
    avx2: bool,
}

impl Kernels {
    fn max(self, row: &[f32]) -> (f32, bool) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: the CPU has AVX2 and FMA (checked by `has_avx2`).
            return unsafe { row_max_avx2(row) };
        }
        row_max(row)
    }

    fn exp_sum(self, row: &[f32], m: f32, coefficients: Option<&[f32]>) -> (f32, f32) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: as above.
            return unsafe { exp_sum_and_dot_avx2(row, m, coefficients) };
        }
        exp_sum_and_dot(row, m, coefficients)
    }

    #[allow(clippy::too_many_arguments)]
    fn grad(self, row: &[f32], out: &mut [f32], lse: f32, g: f32, a_sum: f32, a: &dyn Fn(usize) -> f32, z_term: f32) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: as above.
            return unsafe { row_grad_avx2(row, out, lse, g, a_sum, a, z_term) };
        }
        row_grad(row, out, lse, g, a_sum, a, z_term)
    }
}

/// Whether the fast path covers these options (else the reference runs, in parallel).
pub(crate) fn covers(opts: &RefOptions<'_>) -> bool {
    opts.kind == InputKind::Logits && opts.softcap.is_none()
}

/// One row: (loss, weight in the mean, lse, A = Σ a_c) or None to use the reference.
fn fast_row(
    k: Kernels,
    row: &[f32],
    target: Result<i64, &[f32]>,
    opts: &RefOptions<'_>,
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
fn reference_row(row: &[f32], target: Result<i64, &[f32]>, opts: &RefOptions<'_>) -> (f64, f64) {
    let classes = row.len();
    let losses = match target {
        Ok(y) => cpu::reference_rows(row, classes, RefTargets::Indices(&[y]), opts),
        Err(t) => {
            let t64: Vec<f64> = t.iter().map(|&v| f64::from(v)).collect();
            cpu::reference_rows(row, classes, RefTargets::Probabilities(&t64), opts)
        }
    };
    (losses.loss[0], losses.weight[0])
}

/// NLL and probability inputs with class indices and no smoothing need only the target's
/// element: `-w_y·x_y` or `-w_y·ln(p_y + ε)`, O(1) a row.
fn gather_rows(input: &[f32], classes: usize, targets: &[i64], opts: &RefOptions<'_>) -> RowLosses {
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
fn row_results(input: &[f32], classes: usize, targets: FastTargets<'_>, opts: &RefOptions<'_>) -> Vec<RowResult> {
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
    let k = Kernels { avx2: has_avx2() };
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
pub(crate) fn rows(input: &[f32], classes: usize, targets: FastTargets<'_>, opts: &RefOptions<'_>) -> RowLosses {
    row_losses(&row_results(input, classes, targets, opts))
}

/// Row losses and `∂(Σ g_n l_n)/∂input` with `scale(losses)` giving each row's g_n. The
/// gradient pass reuses each row's (lse, A) from the loss pass.
pub(crate) fn rows_and_grad(
    input: &[f32],
    classes: usize,
    targets: FastTargets<'_>,
    opts: &RefOptions<'_>,
    scale: impl Fn(&RowLosses) -> Vec<f64>,
) -> (RowLosses, Vec<f32>) {
    let k = Kernels { avx2: has_avx2() };
    let results = row_results(input, classes, targets, opts);
    let losses = row_losses(&results);
    let g = scale(&losses);
    let mut grad = vec![0.0_f32; input.len()];
    let eps = opts.label_smoothing as f32;
    let weight = |c: usize| opts.weight.map_or(1.0, |w| w[c]);
    grad.par_chunks_mut(classes)
        .zip(input.par_chunks(classes))
        .enumerate()
        .for_each(|(n, (out, row))| {
            let target = targets.row(n, classes);
            let gn = g[n] as f32;
            match (results[n].stats, target) {
                (_, Ok(y)) if y == opts.ignore_index => out.fill(0.0),
                (Some((lse, a_sum)), Ok(y)) => {
                    let y = y as usize;
                    let w_y = weight(y);
                    let a = |c: usize| {
                        let hit = if c == y { w_y } else { 0.0 };
                        if eps > 0.0 {
                            (1.0 - eps) * hit + eps / classes as f32 * weight(c)
                        } else {
                            hit
                        }
                    };
                    k.grad(row, out, lse, gn, a_sum, &a, 2.0 * opts.z_loss as f32 * lse);
                }
                (Some((lse, a_sum)), Err(t)) => {
                    let a = |c: usize| weight(c) * (t[c] * (1.0 - eps) + eps / classes as f32);
                    k.grad(row, out, lse, gn, a_sum, &a, 2.0 * opts.z_loss as f32 * lse);
                }
                (None, _) => {
                    // The reference gradient of this row.
                    let row_targets;
                    let t64: Vec<f64>;
                    let r = match target {
                        Ok(y) => {
                            row_targets = [y];
                            RefTargets::Indices(&row_targets)
                        }
                        Err(t) => {
                            t64 = t.iter().map(|&v| f64::from(v)).collect();
                            RefTargets::Probabilities(&t64)
                        }
                    };
                    let g64 = cpu::reference_grad(row, classes, r, opts, &[g[n]]);
                    for (o, v) in out.iter_mut().zip(g64) {
                        *o = v as f32;
                    }
                }
            }
        });
    (losses, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_is_accurate_on_its_range() {
        // Above -80 every result is a normal f32; below, results near 2^-126 lose precision
        // (they only ever add ~1e-35 to sums that are ≥ 1).
        let mut worst = 0.0_f64;
        for i in 0..=80_000 {
            let x = -(i as f32) * 1e-3;
            let want = f64::from(x).exp();
            let got = f64::from(exp_neg(x));
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(exp_neg(0.0), 1.0);
        assert!(exp_neg(f32::NEG_INFINITY) < 2e-38);
    }
}

// ---------------------------------------------------------------------------------------
// Elementwise losses and the softmax family.

/// ln(x) for x ≥ 0, branch-free (Cephes' logf polynomial, coefficients as published),
/// relative error ~1e-7; 0 gives
/// -inf and subnormals are rescaled first, so every finite non-negative input is exact to
/// f32 precision.
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn ln_nonneg(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let tiny = x < f32::MIN_POSITIVE;
    let y = if tiny { x * 16_777_216.0 } else { x }; // 2^24
    let bits = y.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000); // [0.5, 1)
    let small = m < SQRT_HALF;
    e -= i32::from(small);
    let f = if small { m + m - 1.0 } else { m - 1.0 };
    let z = f * f;
    let mut p = 7.037_683_6e-2_f32;
    p = p * f - 1.151_461e-1;
    p = p * f + 1.167_699_9e-1;
    p = p * f - 1.242_014_1e-1;
    p = p * f + 1.424_932_3e-1;
    p = p * f - 1.666_805_8e-1;
    p = p * f + 2.000_071_4e-1;
    p = p * f - 2.499_999_4e-1;
    p = p * f + 3.333_333_1e-1;
    let ef = e as f32 - if tiny { 24.0 } else { 0.0 };
    let r = f + (p * f * z - 0.5 * z) + ef * LN2_LO + ef * LN2_HI;
    if x == 0.0 {
        f32::NEG_INFINITY
    } else if x.is_finite() {
        r
    } else {
        x // inf or NaN
    }
}

/// exp(x) for any x: exp_neg of -|x| inverted for x > 0 (inf above ~88).
#[inline(always)]
fn exp_any(x: f32) -> f32 {
    let e = exp_neg(-x.abs());
    if x > 0.0 {
        if x > 88.7 {
            f32::INFINITY
        } else {
            1.0 / e
        }
    } else {
        e
    }
}

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
#[allow(clippy::too_many_arguments)]
pub(crate) fn elementwise(
    kind: ElementwiseKind,
    input: &[f32],
    target: &[f32],
    weight: Option<&[f32]>,
    pos_weight: Option<&[f32]>,
    log_target: bool,
    last_dim: usize,
    grad: bool,
) -> Vec<f32> {
    macro_rules! each {
        ($k:expr, $lt:expr) => {
            if grad {
                map_rows(input, target, weight, pos_weight, last_dim, |x, y, w, pw| {
                    element_grad($k, x, y, w, pw, $lt)
                })
            } else if $k == ElementwiseKind::Bce {
                map_rows(input, target, weight, pos_weight, last_dim, |x, y, w, _| {
                    if (1e-4..=1.0 - 1e-4).contains(&x) {
                        element_loss(ElementwiseKind::Bce, x, y, w, 1.0, false)
                    } else {
                        -w * (y * x.ln().max(-100.0) + (1.0 - y) * (-x).ln_1p().max(-100.0))
                    }
                })
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

/// Σ of f32 values in f64, in a fixed order (chunk sums in chunk order): deterministic.
pub(crate) fn sum_fixed(values: &[f32]) -> f64 {
    let partial: Vec<f64> = values
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|&v| f64::from(v)).sum::<f64>())
        .collect();
    partial.iter().sum()
}

/// Softmax, log-softmax (`[N, C]`) or entropy (`[N]`) of every row, in parallel; rows with
/// a NaN or infinite max use the f64 reference.
pub(crate) fn row_op(op: RowOutput, input: &[f32], classes: usize) -> Vec<f32> {
    let k = Kernels { avx2: has_avx2() };
    let per_row = if op == RowOutput::Entropy { 1 } else { classes };
    let mut out = vec![0.0_f32; input.len() / classes.max(1) * per_row];
    out.par_chunks_mut(per_row)
        .zip(input.par_chunks(classes))
        .for_each(|(o, row)| {
            let (m, nan) = k.max(row);
            if nan || !m.is_finite() {
                let row64: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
                for (v, r) in o.iter_mut().zip(cpu::row_op(op, &row64)) {
                    *v = r as f32;
                }
                return;
            }
            let (s, _) = k.exp_sum(row, m, None);
            let log_s = s.ln();
            match op {
                RowOutput::Softmax => {
                    let inv = 1.0 / s;
                    for (v, &x) in o.iter_mut().zip(row) {
                        *v = exp_neg(x - m) * inv;
                    }
                }
                RowOutput::LogSoftmax => {
                    for (v, &x) in o.iter_mut().zip(row) {
                        *v = x - m - log_s;
                    }
                }
                RowOutput::Entropy => {
                    let mut acc = 0.0_f32;
                    for &x in row {
                        let d = x - m;
                        if d != f32::NEG_INFINITY {
                            acc += exp_neg(d) * d;
                        }
                    }
                    o[0] = log_s - acc / s;
                }
            }
        });
    out
}

#[cfg(test)]
mod elementwise_tests {
    use super::*;

    #[test]
    fn ln_nonneg_is_accurate_everywhere() {
        // Every 997th bit pattern from the smallest subnormal to the largest finite f32.
        let mut worst = 0.0_f64;
        for bits in (1..0x7f80_0000_u32).step_by(997) {
            let x = f32::from_bits(bits);
            let want = f64::from(x).ln();
            let got = f64::from(ln_nonneg(x));
            worst = worst.max((got - want).abs() / want.abs().max(1.0));
        }
        assert!(worst < 3e-7, "worst error {worst}");
        assert_eq!(ln_nonneg(0.0), f32::NEG_INFINITY);
        assert_eq!(ln_nonneg(1.0), 0.0);
        assert!(ln_nonneg(f32::NAN).is_nan() && ln_nonneg(f32::INFINITY) == f32::INFINITY);
    }
}

/// The vector-Jacobian product of a row operation, every row in parallel (f32, vectorised
/// exp); rows with a NaN or infinite max use the f64 reference.
pub(crate) fn row_op_vjp(op: RowOutput, input: &[f32], classes: usize, upstream: &[f32]) -> Vec<f32> {
    let k = Kernels { avx2: has_avx2() };
    let per_row = if op == RowOutput::Entropy { 1 } else { classes };
    let mut out = vec![0.0_f32; input.len()];
    out.par_chunks_mut(classes)
        .zip(input.par_chunks(classes))
        .zip(upstream.par_chunks(per_row))
        .for_each(|((o, row), u)| {
            let (m, nan) = k.max(row);
            if nan || !m.is_finite() {
                let row64: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
                let u64: Vec<f64> = u.iter().map(|&x| f64::from(x)).collect();
                for (v, r) in o.iter_mut().zip(cpu::row_op_vjp(op, &row64, &u64)) {
                    *v = r as f32;
                }
                return;
            }
            let (s, _) = k.exp_sum(row, m, None);
            let (inv, log_s) = (1.0 / s, s.ln());
            match op {
                RowOutput::Softmax => {
                    let dot: f32 = row.iter().zip(u).map(|(&x, &u)| u * exp_neg(x - m) * inv).sum();
                    for ((v, &x), &u) in o.iter_mut().zip(row).zip(u) {
                        *v = exp_neg(x - m) * inv * (u - dot);
                    }
                }
                RowOutput::LogSoftmax => {
                    let total: f32 = u.iter().sum();
                    for ((v, &x), &u) in o.iter_mut().zip(row).zip(u) {
                        *v = u - exp_neg(x - m) * inv * total;
                    }
                }
                RowOutput::Entropy => {
                    let mut acc = 0.0_f32;
                    for &x in row {
                        let d = x - m;
                        if d != f32::NEG_INFINITY {
                            acc += exp_neg(d) * d;
                        }
                    }
                    let h = log_s - acc * inv;
                    for (v, &x) in o.iter_mut().zip(row) {
                        let d = x - m;
                        *v = if d == f32::NEG_INFINITY {
                            0.0
                        } else {
                            -u[0] * exp_neg(d) * inv * ((d - log_s) + h)
                        };
                    }
                }
            }
        });
    out
}
