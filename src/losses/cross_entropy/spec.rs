//! A validated cross-entropy call as every backend sees it (never the builder itself): the
//! options, and for a recording the positions of its inputs.

use crate::api::buffers::BufferAt;
use crate::api::kinds::{InputFormat, InputKind};
use crate::api::reduction::Reduction;
use crate::gpu::kernels::{CeFlags, TargetLayout};

/// The options of one call, PyTorch's plus z-loss, soft-cap and the row outputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec<'a> {
    /// Per-class weights.
    pub weight: Option<&'a [f32]>,
    /// The ignored class index.
    pub ignore_index: i64,
    /// Label smoothing ε.
    pub label_smoothing: f64,
    /// What the input holds.
    pub kind: InputKind,
    /// Added to probabilities before the log.
    pub epsilon: f64,
    /// `cap` of `cap·tanh(x / cap)` applied to logits first.
    pub softcap: Option<f64>,
    /// `z` of the z-loss `z·lse²` added to each row that is not ignored.
    pub z_loss: f64,
    /// The reduction.
    pub reduction: Reduction,
    /// Each row's lse and argmax and the accuracy are wanted.
    pub row_outputs: bool,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Self {
            weight: None,
            ignore_index: -100,
            label_smoothing: 0.0,
            kind: InputKind::Logits,
            epsilon: 1e-7,
            softcap: None,
            z_loss: 0.0,
            reduction: Reduction::Mean,
            row_outputs: false,
        }
    }
}

/// The inputs of one recording.
pub(crate) struct Inputs<'a> {
    pub input: BufferAt<'a>,
    pub format: InputFormat,
    /// Positions: `N`, or `N·d1·…·dk` for `[N, C, d1, …]`.
    pub rows: usize,
    pub classes: usize,
    /// Elements between a position's classes (`d1·…·dk`; 1 for `[N, C]`): see `ClassAxis`.
    pub inner: usize,
    pub targets: (BufferAt<'a>, TargetLayout),
    /// A vocabulary shard's recording: `classes` is then the shard's own class count.
    pub shard: Option<ShardView<'a>>,
}

/// A vocabulary shard's recording (vocab-parallel, `losses::cross_entropy::shard`): the
/// input `[N, classes]` holds classes `[start, start + classes)` of `total`, and the
/// recording is one of a shard's two GPU steps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardView<'a> {
    pub start: usize,
    pub total: usize,
    pub step: ShardStep<'a>,
}

/// The GPU steps of a shard; the merge between them is the caller's (collectives).
#[derive(Debug, Clone, Copy)]
pub(crate) enum ShardStep<'a> {
    /// Write each row's partial record (8 words, `cross_entropy_partials`) here.
    Partials(BufferAt<'a>),
    /// Finish from the merged records here (8 words a row): the loss, the row outputs and
    /// the shard's slice of the gradient.
    Finish(BufferAt<'a>),
}

impl Inputs<'_> {
    /// The classes of the whole row: V for a shard, else `classes`.
    pub(crate) fn total_classes(&self) -> usize {
        self.shard.map_or(self.classes, |s| s.total)
    }

    /// The global index of the input's class 0: a shard's start, else 0.
    pub(crate) fn class_base(&self) -> usize {
        self.shard.map_or(0, |s| s.start)
    }
}

impl Spec<'_> {
    /// The kernel flags of a recording of `inputs` with these options.
    pub(crate) fn flags(&self, inputs: &Inputs<'_>) -> CeFlags {
        CeFlags {
            targets: inputs.targets.1,
            weighted: self.weight.is_some(),
            smoothing: self.label_smoothing > 0.0,
            input: self.kind,
            softcap: self.softcap.is_some(),
            z_loss: self.z_loss != 0.0,
            format: inputs.format,
        }
    }
}
