//! The softmax family's shapes and the validated data of a host call.

use crate::api::host::Input;
use crate::api::kinds::RowOutput as RowOp;
use crate::error::Result;
use crate::losses::validate::DimAxis;

/// The validated host data of one call: the input (f32: widened for the CPU paths) as
/// `rows` positions of `classes` elements `inner` apart (1: contiguous `[N, C]` rows; see
/// `DimAxis`) and, for a backward pass, the upstream in the output's shape.
pub(crate) struct RowsIn<'a> {
    pub input: Input<'a>,
    pub rows: usize,
    pub classes: usize,
    pub inner: usize,
    pub upstream: Option<&'a [f32]>,
}

impl RowOp {
    /// Output elements per row.
    pub(crate) fn per_row(self, classes: usize) -> usize {
        match self {
            RowOp::Softmax | RowOp::LogSoftmax => classes,
            RowOp::Entropy => 1,
        }
    }

    /// The output's shape.
    pub(crate) fn shape(self, rows: usize, classes: usize) -> Vec<usize> {
        match self {
            RowOp::Softmax | RowOp::LogSoftmax => vec![rows, classes],
            RowOp::Entropy => vec![rows],
        }
    }

    /// The name errors and the CLI use.
    pub(crate) fn op_name(self) -> &'static str {
        match self {
            RowOp::Softmax => "softmax",
            RowOp::LogSoftmax => "log-softmax",
            RowOp::Entropy => "entropy",
        }
    }

    /// The axis `dim` of an input of any rank ≥ 1 (C > 0) whose element count is `len`.
    pub(crate) fn check_input(self, shape: &[usize], len: usize, dim: i64) -> Result<DimAxis> {
        DimAxis::of(shape, len, dim)
    }

    /// The output's shape for an input of `input_shape` along `axis`: the input's (softmax,
    /// log-softmax) or the input's without that axis (entropy; 0-d for a 1-d input).
    pub(crate) fn output_shape(self, input_shape: &[usize], axis: usize) -> Vec<usize> {
        match self {
            RowOp::Softmax | RowOp::LogSoftmax => input_shape.to_vec(),
            RowOp::Entropy => input_shape
                .iter()
                .enumerate()
                .filter(|&(a, _)| a != axis)
                .map(|(_, &d)| d)
                .collect(),
        }
    }
}
