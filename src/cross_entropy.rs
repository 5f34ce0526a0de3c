//! Class-index cross-entropy (`torch.nn.functional.cross_entropy` with integer targets):
//! the options, input validation, and the CPU and GPU entry points.

use crate::context::GpuContext;
use crate::cpu;
use crate::cross_entropy_gpu::{self, BufferAt, GpuTargets};
use crate::error::{LossError, Result};
use crate::kernels::TargetWidth;
use crate::reduction::{LossValue, Reduction};

/// Class-index targets on the host: `i64` (PyTorch's `long`) or `i32`.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// 64-bit class indices.
    I64(&'a [i64]),
    /// 32-bit class indices.
    I32(&'a [i32]),
}

impl Targets<'_> {
    /// The number of targets.
    pub fn len(&self) -> usize {
        match self {
            Targets::I64(t) => t.len(),
            Targets::I32(t) => t.len(),
        }
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Target `row` widened to `i64`.
    pub fn get(&self, row: usize) -> i64 {
        match self {
            Targets::I64(t) => t[row],
            Targets::I32(t) => i64::from(t[row]),
        }
    }

    /// All targets widened to `i64`.
    pub fn to_i64(&self) -> Vec<i64> {
        (0..self.len()).map(|row| self.get(row)).collect()
    }

    pub(crate) fn width(&self) -> TargetWidth {
        match self {
            Targets::I64(_) => TargetWidth::I64,
            Targets::I32(_) => TargetWidth::I32,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Targets::I64(t) => bytemuck::cast_slice(t),
            Targets::I32(t) => bytemuck::cast_slice(t),
        }
    }
}

impl<'a> From<&'a [i64]> for Targets<'a> {
    fn from(t: &'a [i64]) -> Self {
        Targets::I64(t)
    }
}

impl<'a> From<&'a Vec<i64>> for Targets<'a> {
    fn from(t: &'a Vec<i64>) -> Self {
        Targets::I64(t)
    }
}

impl<'a> From<&'a [i32]> for Targets<'a> {
    fn from(t: &'a [i32]) -> Self {
        Targets::I32(t)
    }
}

impl<'a> From<&'a Vec<i32>> for Targets<'a> {
    fn from(t: &'a Vec<i32>) -> Self {
        Targets::I32(t)
    }
}

/// Cross-entropy between `[N, C]` logits and `N` class indices, with PyTorch's options
/// and defaults (`ignore_index = -100`, no smoothing, no weights, mean).
///
/// ```no_run
/// # fn main() -> Result<(), wgpu_loss::LossError> {
/// use wgpu_loss::{CrossEntropy, GpuContext, Reduction};
/// let ctx = GpuContext::new_blocking()?;
/// let logits = [2.0_f32, 0.5, -1.0, 0.0, 3.0, 0.1]; // 2 rows × 3 classes
/// let targets: Vec<i64> = vec![0, 1];
/// let loss = CrossEntropy::default()
///     .label_smoothing(0.1)
///     .reduction(Reduction::Mean)
///     .forward(&ctx, &logits, 2, 3, &targets)?;
/// println!("{}", loss.scalar().unwrap());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropy {
    weight: Option<Vec<f32>>,
    ignore_index: i64,
    label_smoothing: f64,
    reduction: Reduction,
}

impl Default for CrossEntropy {
    fn default() -> Self {
        Self {
            weight: None,
            ignore_index: -100,
            label_smoothing: 0.0,
            reduction: Reduction::Mean,
        }
    }
}

impl CrossEntropy {
    /// Per-class weights `[C]` (finite, non-negative); checked when the loss is computed.
    pub fn weight(mut self, weight: &[f32]) -> Self {
        self.weight = Some(weight.to_vec());
        self
    }

    /// The target value whose rows are skipped (default -100).
    pub fn ignore_index(mut self, ignore_index: i64) -> Self {
        self.ignore_index = ignore_index;
        self
    }

    /// Label smoothing ε in `[0, 1]` (default 0). An `f64`, like PyTorch's Python float;
    /// the GPU kernels use it rounded to `f32`.
    pub fn label_smoothing(mut self, epsilon: f64) -> Self {
        self.label_smoothing = epsilon;
        self
    }

    /// The reduction (default [`Reduction::Mean`]).
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The class weights, if set.
    pub fn weights(&self) -> Option<&[f32]> {
        self.weight.as_deref()
    }

    /// The ignore index in force.
    pub fn ignored_index(&self) -> i64 {
        self.ignore_index
    }

    /// The label smoothing in force.
    pub fn smoothing(&self) -> f64 {
        self.label_smoothing
    }

    /// The reduction in force.
    pub fn reduction_kind(&self) -> Reduction {
        self.reduction
    }

    /// Computes the loss on the GPU: uploads the logits, targets and weights, runs the
    /// kernels, and reads back only the scalar (or the N row losses for `none`).
    /// Everything is validated before anything is dispatched.
    pub fn forward<'t>(
        &self,
        ctx: &GpuContext,
        logits: &[f32],
        rows: usize,
        classes: usize,
        targets: impl Into<Targets<'t>>,
    ) -> Result<LossValue> {
        let targets = targets.into();
        self.validate(logits.len(), rows, classes, targets.len())?;
        self.check_targets(classes, &targets)?;
        cross_entropy_gpu::forward_host(ctx, self, logits, rows, classes, &targets)
    }

    /// Computes the loss on logits and targets already in GPU buffers. Targets are
    /// checked on the GPU: an out-of-range one comes back as
    /// [`LossError::TargetOutOfRange`], and nothing is read out of bounds.
    pub fn forward_buffers<'b>(
        &self,
        ctx: &GpuContext,
        logits: impl Into<BufferAt<'b>>,
        rows: usize,
        classes: usize,
        targets: GpuTargets<'_>,
    ) -> Result<LossValue> {
        self.validate(rows.saturating_mul(classes), rows, classes, rows)?;
        cross_entropy_gpu::forward_buffers(ctx, self, logits.into(), rows, classes, targets)
    }

    /// Computes the loss with the f64 CPU reference (rounded to f32 at the end).
    pub fn forward_cpu<'t>(
        &self,
        logits: &[f32],
        rows: usize,
        classes: usize,
        targets: impl Into<Targets<'t>>,
    ) -> Result<LossValue> {
        let targets = targets.into();
        self.validate(logits.len(), rows, classes, targets.len())?;
        self.check_targets(classes, &targets)?;
        let losses = cpu::cross_entropy_rows(
            logits,
            classes,
            &targets.to_i64(),
            self.weights(),
            self.ignore_index,
            self.label_smoothing,
        );
        Ok(match self.reduction {
            Reduction::None => LossValue::PerRow(losses.loss.iter().map(|&l| l as f32).collect()),
            Reduction::Sum => LossValue::Scalar(losses.sum() as f32),
            Reduction::Mean => LossValue::Scalar(losses.mean() as f32),
        })
    }

    /// Shapes and options, before anything is dispatched.
    fn validate(&self, logits_len: usize, rows: usize, classes: usize, targets_len: usize) -> Result<()> {
        if classes == 0 {
            return Err(LossError::ZeroClasses { rows });
        }
        let expected = rows.checked_mul(classes).ok_or_else(|| LossError::TooLarge {
            what: "logits",
            detail: format!("[{rows}, {classes}] overflows usize"),
        })?;
        if logits_len != expected {
            return Err(LossError::LengthMismatch {
                what: "logits",
                shape: format!("[{rows}, {classes}]"),
                expected,
                actual: logits_len,
            });
        }
        if targets_len != rows {
            return Err(LossError::LengthMismatch {
                what: "targets",
                shape: format!("[{rows}] (one per row of logits [{rows}, {classes}])"),
                expected: rows,
                actual: targets_len,
            });
        }
        if let Some(weight) = &self.weight {
            if weight.len() != classes {
                return Err(LossError::LengthMismatch {
                    what: "weight",
                    shape: format!("[{classes}] (one per class of logits [{rows}, {classes}])"),
                    expected: classes,
                    actual: weight.len(),
                });
            }
            if let Some((index, &value)) = weight.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
                return Err(LossError::BadWeight { index, value });
            }
        }
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(LossError::LabelSmoothing(self.label_smoothing));
        }
        Ok(())
    }

    /// The first target outside `[0, C)` that is not `ignore_index`.
    fn check_targets(&self, classes: usize, targets: &Targets<'_>) -> Result<()> {
        for row in 0..targets.len() {
            let value = targets.get(row);
            if value != self.ignore_index && !(0..classes as i64).contains(&value) {
                return Err(LossError::TargetOutOfRange {
                    row,
                    value,
                    classes,
                    ignore_index: self.ignore_index,
                });
            }
        }
        Ok(())
    }
}
