//! The softmax family on the CPU: the f64 reference and the fast f32 backend, each giving
//! the output and, with an upstream, the vector-Jacobian product.

use crate::api::host::ForwardBackward;
use crate::api::kinds::RowOutput as RowOp;
use crate::api::reduction::LossValue;
use crate::cpu::{self, transpose_blocks};

use super::fast;
use super::reference;

use super::spec::RowsIn;

/// The f64 reference (rounded to f32 at the end).
pub(crate) fn reference(op: RowOp, data: &RowsIn<'_>) -> ForwardBackward {
    along(op, data, |input, upstream| {
        let classes = data.classes;
        let mut values = Vec::with_capacity(data.rows * op.per_row(classes));
        for row in input.chunks_exact(classes) {
            match op {
                RowOp::Softmax => values.extend(cpu::softmax(row).iter().map(|&v| v as f32)),
                RowOp::LogSoftmax => values.extend(cpu::log_softmax(row).iter().map(|&v| v as f32)),
                RowOp::Entropy => values.push(cpu::entropy(row) as f32),
            }
        }
        let grad = match upstream {
            None => Vec::new(),
            Some(upstream) => {
                let per_row = op.per_row(classes);
                let mut grad = Vec::with_capacity(input.len());
                for (n, row) in input.chunks_exact(classes).enumerate() {
                    let row64: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
                    let up: Vec<f64> = upstream[n * per_row..(n + 1) * per_row]
                        .iter()
                        .map(|&u| f64::from(u))
                        .collect();
                    grad.extend(reference::row_op_vjp(op, &row64, &up).iter().map(|&g| g as f32));
                }
                grad
            }
        };
        (values, grad)
    })
}

/// The fast CPU backend (f32, vectorised exp, rows in parallel).
pub(crate) fn fast(op: RowOp, data: &RowsIn<'_>) -> ForwardBackward {
    along(op, data, |input, upstream| {
        let values = fast::row_op(op, input, data.classes);
        let grad = upstream.map_or_else(Vec::new, |upstream| fast::row_op_vjp(op, input, data.classes, upstream));
        (values, grad)
    })
}

/// Runs `rows` — (values, gradient) of contiguous `[rows, C]` input and upstream — on
/// `data`: directly along the last axis, else on the positions gathered into rows (each
/// outer slice `[C, inner]` transposed to `[inner, C]`) and the results scattered back.
fn along(
    op: RowOp,
    data: &RowsIn<'_>,
    rows: impl FnOnce(&[f32], Option<&[f32]>) -> (Vec<f32>, Vec<f32>),
) -> ForwardBackward {
    let (classes, inner) = (data.classes, data.inner);
    let input = data.input.to_f32();
    if inner == 1 {
        let (values, grad) = rows(&input, data.upstream);
        return ForwardBackward::plain(output(op, data, values), grad);
    }
    let gathered = transpose_blocks(&input, classes, inner);
    // The softmax / log-softmax upstream has the input's layout; entropy's is per position.
    let upstream = data.upstream.map(|u| match op {
        RowOp::Entropy => u.to_vec(),
        _ => transpose_blocks(u, classes, inner),
    });
    let (values, grad) = rows(&gathered, upstream.as_deref());
    let values = match op {
        RowOp::Entropy => values,
        _ => transpose_blocks(&values, inner, classes),
    };
    let grad = transpose_blocks(&grad, inner, classes);
    ForwardBackward::plain(output(op, data, values), grad)
}

/// The output as computed: the caller shapes it (`AlongDim::run`).
fn output(op: RowOp, data: &RowsIn<'_>, values: Vec<f32>) -> LossValue {
    LossValue::Tensor {
        shape: op.shape(data.rows, data.classes),
        values,
    }
}
