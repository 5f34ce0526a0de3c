//! The f64 reference of the softmax family: softmax, log-softmax and entropy of one row,
//! and their vector-Jacobian products.

use crate::api::kinds::RowOutput;

/// A row operation of f64 values (for finite differences): softmax, log-softmax, or the
/// entropy (one value).
pub(crate) fn row_op(op: RowOutput, row: &[f64]) -> Vec<f64> {
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
pub(crate) fn row_op_vjp(op: RowOutput, row: &[f64], upstream: &[f64]) -> Vec<f64> {
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
