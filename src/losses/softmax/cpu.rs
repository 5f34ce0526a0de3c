//! The softmax family on the CPU: the f64 reference and the fast f32 backend, each giving
//! the output and, with an upstream, the vector-Jacobian product.

use crate::api::host::ForwardBackward;
use crate::api::kinds::RowOutput as RowOp;
use crate::api::reduction::LossValue;
use crate::cpu;

use super::fast;
use super::reference;

use super::spec::RowsIn;

/// The f64 reference (rounded to f32 at the end).
pub(crate) fn reference(op: RowOp, data: &RowsIn<'_>) -> ForwardBackward {
    let input = data.input.to_f32();
    let classes = data.classes;
    let mut values = Vec::with_capacity(data.rows * op.per_row(classes));
    for row in input.chunks_exact(classes) {
        match op {
            RowOp::Softmax => values.extend(cpu::softmax(row).iter().map(|&v| v as f32)),
            RowOp::LogSoftmax => values.extend(cpu::log_softmax(row).iter().map(|&v| v as f32)),
            RowOp::Entropy => values.push(cpu::entropy(row) as f32),
        }
    }
    let grad = match data.upstream {
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
    ForwardBackward::plain(output(op, data, values), grad)
}

/// The fast CPU backend (f32, vectorised exp, rows in parallel).
pub(crate) fn fast(op: RowOp, data: &RowsIn<'_>) -> ForwardBackward {
    let input = data.input.to_f32();
    let values = fast::row_op(op, &input, data.classes);
    let grad = data.upstream.map_or_else(Vec::new, |upstream| {
        fast::row_op_vjp(op, &input, data.classes, upstream)
    });
    ForwardBackward::plain(output(op, data, values), grad)
}

fn output(op: RowOp, data: &RowsIn<'_>, values: Vec<f32>) -> LossValue {
    LossValue::Tensor {
        shape: op.shape(data.rows, data.classes),
        values,
    }
}
