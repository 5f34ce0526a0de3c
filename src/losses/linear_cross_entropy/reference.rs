//! The f64 reference: the whole logits `h·Wᵀ + b` in f64 (one plain loop), the
//! cross-entropy's f64 reference on them, and the three products of the gradient
//! `G = ∂L/∂logits`: `∂h = G·W`, `∂W = Gᵀ·h`, `∂b = Σ_n G[n]`. Obviously right and
//! `[N, V]` in memory: for tests and small calls.

use crate::api::host::Upstream;
use crate::api::linear::{Grads, LinearForwardBackward};
use crate::cpu::matmul::{column_sums, matmul64, MatRef, Write};
use crate::losses::cross_entropy::cpu::{accuracy_of, reduce_rows, row_scale};
use crate::losses::cross_entropy::reference::{logsumexp64, reference_grad, reference_rows, RefTargets};
use crate::losses::cross_entropy::spec::Spec;

use super::data::HostLinear;

/// torch.argmax of one row: NaN counts as the largest, ties go to the first index.
fn argmax64(row: &[f64]) -> u32 {
    let mut best = 0;
    for (c, &x) in row.iter().enumerate() {
        let b = row[best];
        if !b.is_nan() && (x.is_nan() || x > b) {
            best = c;
        }
    }
    best as u32
}

/// The loss, the gradients asked for, and (with `row_outputs`) lse, argmax and accuracy.
pub(crate) fn reference(
    spec: &Spec<'_>,
    data: &HostLinear<'_>,
    upstream: Option<Upstream<&[f32]>>,
    grads: Grads,
) -> LinearForwardBackward {
    let (rows, hidden, classes) = (data.shape.rows, data.shape.hidden, data.shape.classes);
    let widen = |v: &[f32]| -> Vec<f64> { v.iter().map(|&x| f64::from(x)).collect() };
    let (h, w) = (widen(data.h), widen(data.w));
    let b = data.b.map(widen);
    let mut logits = vec![0.0; rows * classes];
    let write = Write {
        accumulate: false,
        bias: b.as_deref(),
    };
    let operands = (MatRef::rows(&h[..], hidden), MatRef::rows(&w[..], hidden).t());
    matmul64(operands, (rows, classes, hidden), (&mut logits, classes), write);
    let targets = RefTargets::Indices(data.targets);
    let losses = reference_rows(&logits, classes, targets, spec);
    let mut out = LinearForwardBackward {
        loss: reduce_rows(spec, rows, &losses),
        grad_h: None,
        grad_w: None,
        grad_b: None,
        lse: None,
        argmax: None,
        accuracy: None,
    };
    if spec.row_outputs {
        let rows_of = || logits.chunks_exact(classes);
        let capped = |row: &[f64]| -> Vec<f64> { row.iter().map(|&x| spec.capped(x)).collect() };
        out.lse = Some(rows_of().map(|row| logsumexp64(&capped(row)) as f32).collect());
        let argmax: Vec<u32> = rows_of().map(argmax64).collect();
        out.accuracy = Some(accuracy_of(&argmax, data.targets, spec.ignore_index));
        out.argmax = Some(argmax);
    }
    let Some(upstream) = upstream.filter(|_| grads.any()) else {
        return out;
    };
    let scale = row_scale(spec, &losses, upstream);
    let g = reference_grad(&logits, classes, targets, spec, &scale);
    let g_view = MatRef::rows(&g[..], classes);
    let plain = Write {
        accumulate: false,
        bias: None,
    };
    let narrow = |v: Vec<f64>| -> Vec<f32> { v.into_iter().map(|x| x as f32).collect() };
    if grads.h {
        let mut dh = vec![0.0; rows * hidden];
        matmul64(
            (g_view, MatRef::rows(&w[..], hidden)),
            (rows, hidden, classes),
            (&mut dh, hidden),
            plain,
        );
        out.grad_h = Some(narrow(dh));
    }
    if grads.w {
        let mut dw = vec![0.0; classes * hidden];
        matmul64(
            (g_view.t(), MatRef::rows(&h[..], hidden)),
            (classes, hidden, rows),
            (&mut dw, hidden),
            plain,
        );
        out.grad_w = Some(narrow(dw));
    }
    if grads.b && data.b.is_some() {
        let mut db = vec![0.0; classes];
        column_sums(g_view, rows, &mut db, false);
        out.grad_b = Some(narrow(db));
    }
    out
}
