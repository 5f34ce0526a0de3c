//! The host-slice driver's shared parts: how a host call larger than the device's largest
//! buffer is cut into groups of whole rows, the upstream each group gets, and how the
//! groups' results are put back together (in order, sums in f64 on the host).
//!
//! A family's host path uploads, records, submits and reads back one group (`gpu::io`'s
//! [`read_back`](crate::gpu::io::read_back)); with more than one group it runs each with
//! reduction `sum` and divides the combined sum by the whole call's divisor.

use std::ops::Range;

use crate::api::host::{ForwardBackward, Upstream};
use crate::api::reduction::{LossValue, Reduction};
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;

/// Rows per group when `rows` rows of `row_bytes` each (the largest array of a row) do not
/// fit one buffer, `None` when they do; an error naming the sizes when one row does not.
pub(crate) fn rows_per_group(ctx: &GpuContext, rows: usize, row_bytes: u64, what: &str) -> Result<Option<usize>> {
    let max_buffer = ctx.max_buffer_bytes();
    if row_bytes.saturating_mul(rows as u64) <= max_buffer {
        return Ok(None);
    }
    match max_buffer / row_bytes.max(1) {
        0 => Err(LossError::TooLarge {
            what: "input",
            detail: format!(
                "one row of {what} needs {row_bytes} bytes; the device's largest buffer is {max_buffer} bytes"
            ),
        }),
        per_group => Ok(Some(per_group as usize)),
    }
}

/// The row ranges of the groups, in order.
pub(crate) fn groups(rows: usize, per_group: usize) -> impl Iterator<Item = Range<usize>> {
    (0..rows)
        .step_by(per_group.max(1))
        .map(move |begin| begin..rows.min(begin + per_group.max(1)))
}

/// The reduction each group runs with: `sum` when the call reduces (the combined sum is
/// divided once, by `divisor`), else `none`.
pub(crate) fn group_reduction(divisor: Option<f64>) -> Reduction {
    if divisor.is_some() {
        Reduction::Sum
    } else {
        Reduction::None
    }
}

/// The upstream of the group `rows`: per-element values sliced (`per_row` values a row), a
/// scalar divided by the divisor the combined sum will be divided by.
pub(crate) fn group_upstream<'a>(
    upstream: Option<Upstream<&'a [f32]>>,
    rows: &Range<usize>,
    per_row: usize,
    divisor: Option<f64>,
) -> Option<Upstream<&'a [f32]>> {
    match upstream {
        Some(Upstream::Values(v)) => Some(Upstream::Values(&v[rows.start * per_row..rows.end * per_row])),
        Some(Upstream::Scalar(g)) => Some(Upstream::Scalar(match divisor {
            Some(d) => (f64::from(g) / d) as f32,
            None => g,
        })),
        None => None,
    }
}

/// The groups' results put back together.
#[derive(Default)]
pub(crate) struct Combined {
    values: Vec<f32>,
    total: f64,
    grad: Vec<f32>,
    lse: Option<Vec<f32>>,
    argmax: Option<Vec<u32>>,
}

impl Combined {
    /// Adds the next group's result.
    pub(crate) fn push(&mut self, part: ForwardBackward) {
        match part.loss {
            LossValue::Scalar(v) => self.total += f64::from(v),
            LossValue::Tensor { values, .. } => self.values.extend(values),
        }
        self.grad.extend(part.grad);
        if let Some(lse) = part.lse {
            self.lse.get_or_insert_with(Vec::new).extend(lse);
        }
        if let Some(argmax) = part.argmax {
            self.argmax.get_or_insert_with(Vec::new).extend(argmax);
        }
    }

    /// The whole call's result: the values in `shape` (reduction `none`), or the summed
    /// group sums over `divisor`.
    pub(crate) fn finish(self, divisor: Option<f64>, shape: Vec<usize>) -> ForwardBackward {
        let loss = match divisor {
            None => LossValue::Tensor {
                shape,
                values: self.values,
            },
            Some(d) => LossValue::Scalar((self.total / d) as f32),
        };
        ForwardBackward {
            loss,
            grad: self.grad,
            lse: self.lse,
            argmax: self.argmax,
            accuracy: None,
        }
    }
}
