//! The fused linear cross-entropy's options: the cross-entropy's own, plus how large a
//! tile of logits may be and whether the logits are fused away at all.

use crate::losses::cross_entropy::CrossEntropy;

/// The default bound on the bytes of the logits tile one step holds (8 MiB): rows of the
/// batch are taken as many at a time as their `[rows, V]` f32 logits fit in it.
pub const DEFAULT_TILE_BYTES: u64 = 8 << 20;

/// Whether the logits are ever stored whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinearMode {
    /// Tiles of rows: each tile's logits `[rows, V]` are computed, turned into their
    /// gradient in place and multiplied back, then the next tile reuses the memory. Extra
    /// device memory is one tile plus O(N).
    #[default]
    Fused,
    /// The whole `[N, V]` logits at once (our matmul writing them, then our cross-entropy,
    /// then the products): what a program without the fused loss does, for comparison.
    Unfused,
}

/// `F.cross_entropy(F.linear(h, W, b), y, …)` without storing the `[N, V]` logits: every
/// option of [`CrossEntropy`] (class weights, `ignore_index`, label smoothing, z-loss,
/// soft-cap, reductions `none` / `sum` / `mean`, row outputs) on the logits `h·Wᵀ + b`, with
/// `∂L/∂h`, `∂L/∂W` and `∂L/∂b` on request. Class-index targets and logits only (the
/// cross-entropy's `input_kind` must be [`crate::InputKind::Logits`]).
///
/// ```
/// # fn main() -> Result<(), wgpu_loss::LossError> {
/// use wgpu_loss::{Backend, CrossEntropy, GpuContext, Grads, LinearBatch, LinearCrossEntropy, Upstream};
/// let ctx = GpuContext::new_blocking()?;
/// let (rows, hidden, classes) = (3, 4, 5);
/// let h: Vec<f32> = (0..rows * hidden).map(|i| (i as f32 * 0.37).sin()).collect();
/// let w: Vec<f32> = (0..classes * hidden).map(|i| (i as f32 * 0.11).cos()).collect();
/// let batch = LinearBatch::new(&h, &w, [rows, hidden, classes], &[0_i64, 4, 2]);
/// let loss = LinearCrossEntropy::new(CrossEntropy::default().label_smoothing(0.1));
/// let gpu = loss.forward_backward(Backend::Gpu(&ctx), &batch, Upstream::Scalar(1.0), Grads::ALL)?;
/// let reference = loss.forward_backward(Backend::Reference, &batch, Upstream::Scalar(1.0), Grads::ALL)?;
/// assert!((gpu.loss.scalar().unwrap() - reference.loss.scalar().unwrap()).abs() < 1e-5);
/// assert_eq!(gpu.grad_w.unwrap().len(), classes * hidden);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LinearCrossEntropy {
    /// The cross-entropy taken of the logits, with its options.
    pub loss: CrossEntropy,
    /// The most bytes one tile of f32 logits may take (default [`DEFAULT_TILE_BYTES`]); a
    /// tile holds at least one row.
    pub tile_bytes: u64,
    /// Fused (default) or unfused.
    pub mode: LinearMode,
}

impl Default for LinearCrossEntropy {
    fn default() -> Self {
        Self::new(CrossEntropy::default())
    }
}

impl LinearCrossEntropy {
    /// The cross-entropy `loss` of the logits `h·Wᵀ + b`, fused, with the default tile.
    pub fn new(loss: CrossEntropy) -> Self {
        Self {
            loss,
            tile_bytes: DEFAULT_TILE_BYTES,
            mode: LinearMode::Fused,
        }
    }

    /// The most bytes one tile of logits may take (at least one row is always taken).
    pub fn tile_bytes(mut self, bytes: u64) -> Self {
        self.tile_bytes = bytes;
        self
    }

    /// Fused (default) or unfused.
    pub fn mode(mut self, mode: LinearMode) -> Self {
        self.mode = mode;
        self
    }
}
