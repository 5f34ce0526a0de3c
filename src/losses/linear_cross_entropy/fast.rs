//! The fast CPU backend: the GPU's algorithm in f32 on the host. Tiles of rows in order:
//! each tile's logits by the packed matmul, the cross-entropy's fast path turning them
//! into their gradient, then `∂h` of the tile's rows and `∂W`, `∂b` added tile by tile
//! (in tile order: deterministic). Host memory beyond the outputs is one tile plus O(N),
//! and a transposed copy of W when `∂h` is wanted.

use crate::api::host::Upstream;
use crate::api::linear::{Grads, LinearForwardBackward};
use crate::api::reduction::Reduction;
use crate::cpu::matmul::{column_sums, matmul32, MatRef, Write};
use crate::cpu::{self, RowLosses};
use crate::losses::cross_entropy::cpu::{accuracy_of, reduce_rows};
use crate::losses::cross_entropy::fast::{row_values, rows_and_grad, FastTargets};
use crate::losses::cross_entropy::spec::Spec;

use super::data::HostLinear;
use super::plan::tiles;

/// Each row's weight in the mean (`w[y]`, 1 unweighted, 0 ignored), from the targets.
pub(crate) fn row_weights(spec: &Spec<'_>, targets: &[i64]) -> Vec<f64> {
    let weight = |y: i64| spec.weight.map_or(1.0, |w| f64::from(w[y as usize]));
    targets
        .iter()
        .map(|&y| if y == spec.ignore_index { 0.0 } else { weight(y) })
        .collect()
}

/// Each row's upstream scale g_n, known before any logits: the scalar over the mean's
/// divisor (Σ w as an f32 sum), the scalar, or the row's own value.
pub(crate) fn scales(spec: &Spec<'_>, weights: &[f64], upstream: Upstream<&[f32]>) -> Vec<f64> {
    match (upstream, spec.reduction) {
        (Upstream::Values(v), _) => v.iter().map(|&g| f64::from(g)).collect(),
        (Upstream::Scalar(g), Reduction::Mean) => {
            vec![f64::from(g) / cpu::f32_sum(weights.iter().copied()); weights.len()]
        }
        (Upstream::Scalar(g), _) => vec![f64::from(g); weights.len()],
    }
}

/// The outputs a call accumulates over its tiles.
struct Totals {
    loss: Vec<f64>,
    lse: Vec<f32>,
    argmax: Vec<u32>,
    grad_h: Option<Vec<f32>>,
    grad_w: Option<Vec<f32>>,
    grad_b: Option<Vec<f32>>,
}

/// What the cross-entropy of one tile of logits gives: each row's loss, with scales the
/// gradient of the logits (`[len, V]`), with row outputs each row's lse and argmax.
#[derive(Default)]
pub(crate) struct TileLoss {
    pub loss: Vec<f64>,
    pub grad: Vec<f32>,
    pub lse: Vec<f32>,
    pub argmax: Vec<u32>,
}

/// Rows `[first, first + len)` of the logits `h·Wᵀ + b` into `logits`.
pub(crate) fn tile_logits(data: &HostLinear<'_>, (first, len): (usize, usize), logits: &mut Vec<f32>) {
    let (hidden, classes) = (data.shape.hidden, data.shape.classes);
    logits.resize(len * classes, 0.0);
    let h = &data.h[first * hidden..(first + len) * hidden];
    let write = Write {
        accumulate: false,
        bias: data.b,
    };
    let operands = (MatRef::rows(h, hidden), MatRef::rows(data.w, hidden).t());
    matmul32(operands, (len, classes, hidden), (logits, classes), write);
}

/// The loss, the gradients asked for and the row outputs, `per_tile` rows at a time.
pub(crate) fn fast(
    spec: &Spec<'_>,
    data: &HostLinear<'_>,
    upstream: Option<Upstream<&[f32]>>,
    grads: Grads,
    per_tile: usize,
) -> LinearForwardBackward {
    let classes = data.shape.classes;
    over_tiles(spec, data, (upstream, grads), per_tile, |logits, (first, len), g| {
        let mut out = TileLoss::default();
        if spec.row_outputs {
            row_outputs(spec, logits, classes, &mut out);
        }
        let targets = FastTargets::Indices(&data.targets[first..first + len]);
        match g {
            None => {
                out.loss = row_values(logits, classes, targets, spec)
                    .into_iter()
                    .map(f64::from)
                    .collect()
            }
            Some(g) => {
                let (losses, grad) = rows_and_grad(logits, classes, targets, spec, |_| g.to_vec());
                (out.loss, out.grad) = (losses.loss, grad);
            }
        }
        out
    })
}

/// The tile loop of every CPU form: each tile's logits, `tile_loss` of them (given the
/// tile's upstream scales when gradients are wanted), then `∂h` of its rows and its share
/// of `∂W`, `∂b` — in tile order (deterministic); host memory one tile plus O(N).
pub(crate) fn over_tiles(
    spec: &Spec<'_>,
    data: &HostLinear<'_>,
    (upstream, grads): (Option<Upstream<&[f32]>>, Grads),
    per_tile: usize,
    mut tile_loss: impl FnMut(&[f32], (usize, usize), Option<&[f64]>) -> TileLoss,
) -> LinearForwardBackward {
    let (rows, hidden, classes) = (data.shape.rows, data.shape.hidden, data.shape.classes);
    let weights = row_weights(spec, data.targets);
    let g = upstream.filter(|_| grads.any()).map(|u| scales(spec, &weights, u));
    let wanted = |on: bool, len: usize| (on && g.is_some()).then(|| vec![0.0_f32; len]);
    let mut totals = Totals {
        loss: Vec::with_capacity(rows),
        lse: Vec::new(),
        argmax: Vec::new(),
        grad_h: wanted(grads.h, rows * hidden),
        grad_w: wanted(grads.w, classes * hidden),
        grad_b: wanted(grads.b && data.b.is_some(), classes),
    };
    // `∂h = G·W` reads W by columns: transposed once here, not packed again every tile.
    let w_t = totals
        .grad_h
        .as_ref()
        .map(|_| cpu::transpose_blocks(data.w, classes, hidden));
    let mut logits = Vec::new();
    for (first, len) in tiles(rows, per_tile) {
        tile_logits(data, (first, len), &mut logits);
        let out = tile_loss(&logits, (first, len), g.as_ref().map(|g| &g[first..first + len]));
        totals.loss.extend(out.loss);
        totals.lse.extend(out.lse);
        totals.argmax.extend(out.argmax);
        if g.is_some() {
            backward(data, w_t.as_deref(), (first, len), &out.grad, &mut totals);
        }
    }
    let losses = RowLosses {
        loss: totals.loss,
        weight: weights,
    };
    let argmax = spec.row_outputs.then_some(totals.argmax);
    LinearForwardBackward {
        loss: reduce_rows(spec, rows, &losses),
        grad_h: totals.grad_h,
        grad_w: totals.grad_w,
        grad_b: totals.grad_b,
        lse: spec.row_outputs.then_some(totals.lse),
        accuracy: argmax.as_ref().map(|a| accuracy_of(a, data.targets, spec.ignore_index)),
        argmax,
    }
}

/// Each row's lse of the soft-capped logits and its argmax.
fn row_outputs(spec: &Spec<'_>, logits: &[f32], classes: usize, totals: &mut TileLoss) {
    for row in logits.chunks_exact(classes) {
        let capped: Vec<f32> = row.iter().map(|&x| spec.capped(f64::from(x)) as f32).collect();
        totals.lse.push(cpu::logsumexp(&capped) as f32);
        totals.argmax.push(cpu::argmax(row));
    }
}

/// `∂h` of the tile's rows, and the tile's share of `∂W` and `∂b`, from its gradient `g`
/// (`w_t`: W transposed, `[D, V]`, when `∂h` is wanted).
fn backward(data: &HostLinear<'_>, w_t: Option<&[f32]>, (first, len): (usize, usize), g: &[f32], totals: &mut Totals) {
    let (hidden, classes) = (data.shape.hidden, data.shape.classes);
    let g_view = MatRef::rows(g, classes);
    let accumulate = first > 0;
    if let (Some(dh), Some(w_t)) = (&mut totals.grad_h, w_t) {
        let out = &mut dh[first * hidden..(first + len) * hidden];
        let write = Write {
            accumulate: false,
            bias: None,
        };
        // B = W `[V, D]`, given as the transpose of the contiguous `[D, V]`.
        matmul32(
            (g_view, MatRef::rows(w_t, classes).t()),
            (len, hidden, classes),
            (out, hidden),
            write,
        );
    }
    if let Some(dw) = &mut totals.grad_w {
        let h = MatRef::rows(&data.h[first * hidden..(first + len) * hidden], hidden);
        let write = Write { accumulate, bias: None };
        matmul32((g_view.t(), h), (classes, hidden, len), (dw, hidden), write);
    }
    if let Some(db) = &mut totals.grad_b {
        column_sums(g_view, len, db, accumulate);
    }
}
