//! A validated elementwise call's options, as every backend sees them (never the builder).

use crate::api::buffers::{BufferAt, InputAt};
use crate::api::kinds::ElementwiseKind;
use crate::api::reduction::Reduction;

/// The loss and its options for one call; `weight` and `pos_weight` index the last axis,
/// of length `last_dim`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ElementSpec<'a> {
    pub kind: ElementwiseKind,
    pub weight: Option<&'a [f32]>,
    pub pos_weight: Option<&'a [f32]>,
    pub log_target: bool,
    pub last_dim: usize,
    pub reduction: Reduction,
}

impl ElementSpec<'_> {
    /// `(weight, pos_weight)` of flat element `i` (1 where absent), in f64: the weights
    /// broadcast over the last axis.
    pub(crate) fn weights_at(&self, i: usize) -> (f64, f64) {
        let at = |v: Option<&[f32]>| v.map_or(1.0, |v| f64::from(v[i % self.last_dim.max(1)]));
        (at(self.weight), at(self.pos_weight))
    }

    /// What the sum is divided by (1 for a sum, the element count for a mean, N =
    /// `shape[0]` for batchmean), or `None` for reduction `none`.
    pub(crate) fn divisor(&self, shape: &[usize], count: usize) -> Option<f64> {
        match self.reduction {
            Reduction::None => None,
            Reduction::Sum => Some(1.0),
            Reduction::Mean => Some(count as f64),
            Reduction::BatchMean => Some(shape.first().copied().unwrap_or(1) as f64),
        }
    }
}

/// The validated host data of one call (f32: half input is widened first).
#[derive(Clone, Copy)]
pub(crate) struct Elements<'a> {
    pub input: &'a [f32],
    pub target: &'a [f32],
    pub shape: &'a [usize],
}

/// The GPU data of one recording: input (f32, f16 or bf16) and target (f32) of `shape`.
#[derive(Clone, Copy)]
pub(crate) struct ElementsAt<'a> {
    pub input: InputAt<'a>,
    pub target: BufferAt<'a>,
    pub shape: &'a [usize],
}
