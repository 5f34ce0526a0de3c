//! The softmax family on the fast CPU backend: f32 with the vectorised exp of `cpu::simd`,
//! rows in parallel (rayon); rows with a NaN or infinite max use the f64 reference.

use rayon::prelude::*;

use crate::api::kinds::RowOutput;
use crate::cpu::simd::{exp_neg, Kernels};

use super::reference;

/// Softmax, log-softmax (`[N, C]`) or entropy (`[N]`) of every row, in parallel; rows with
/// a NaN or infinite max use the f64 reference.
pub(crate) fn row_op(op: RowOutput, input: &[f32], classes: usize) -> Vec<f32> {
    let k = Kernels::detect();
    let per_row = if op == RowOutput::Entropy { 1 } else { classes };
    let mut out = vec![0.0_f32; input.len() / classes.max(1) * per_row];
    out.par_chunks_mut(per_row)
        .zip(input.par_chunks(classes))
        .for_each(|(o, row)| {
            let (m, nan) = k.max(row);
            if nan || !m.is_finite() {
                let row64: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
                for (v, r) in o.iter_mut().zip(reference::row_op(op, &row64)) {
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
                    let acc = p_d_sum(row, m);
                    o[0] = log_s - acc / s;
                }
            }
        });
    out
}

/// The vector-Jacobian product of a row operation, every row in parallel (f32, vectorised
/// exp); rows with a NaN or infinite max use the f64 reference.
pub(crate) fn row_op_vjp(op: RowOutput, input: &[f32], classes: usize, upstream: &[f32]) -> Vec<f32> {
    let k = Kernels::detect();
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
                for (v, r) in o.iter_mut().zip(reference::row_op_vjp(op, &row64, &u64)) {
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
                    let acc = p_d_sum(row, m);
                    let h = log_s - acc * inv;
                    for (v, &x) in o.iter_mut().zip(row) {
                        let d = x - m;
                        *v = if d < NEGLIGIBLE {
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

/// Below this x - max, a class's probability is 0 to f32 (exp_neg stops at exp(-87)).
const NEGLIGIBLE: f32 = -87.0;

/// Σ exp(d)·d over the row, d = x - m: the entropy's Σ p·(x - m) times Σ exp(d). Classes
/// with d below `NEGLIGIBLE` add 0, as in PyTorch's p·log p (Categorical clamps log p, so a
/// d of -inf or -2e38 adds 0 rather than exp(-87)·d).
fn p_d_sum(row: &[f32], m: f32) -> f32 {
    let mut acc = 0.0_f32;
    for &x in row {
        let d = x - m;
        let term = exp_neg(d) * d;
        acc += if d < NEGLIGIBLE { 0.0 } else { term };
    }
    acc
}
