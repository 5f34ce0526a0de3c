//! Validation of cross-entropy calls: shapes, options and host targets, before anything
//! is dispatched. Every error names the offending shape or value.

use crate::api::buffers::{BatchAt, TargetsAt};
use crate::api::host::{Batch, Targets, Upstream};
use crate::api::kinds::{InputKind, TargetWidth};
use crate::api::reduction::Reduction;
use crate::error::{LossError, Result};
use crate::gpu::kernels::TargetLayout;
use crate::losses::validate::{check_weights, ClassAxis};

use super::options::CrossEntropy;
use super::spec::{Inputs, Spec};

/// Whether `value` is finite once rounded to f32, as the kernels and the fast CPU path
/// use it (1e300 is finite in f64 but infinite in f32): options must be, on every backend.
fn finite_f32(value: f64) -> bool {
    (value as f32).is_finite()
}

/// The lengths of a call's targets and upstream.
pub(crate) struct Lens {
    pub targets: usize,
    pub probabilities: bool,
    pub upstream: Option<usize>,
}

impl CrossEntropy {
    /// The name errors and the CLI use.
    pub(crate) fn loss_name(&self) -> &'static str {
        if self.input_kind == InputKind::LogProbabilities {
            "nll"
        } else {
            "cross-entropy"
        }
    }

    /// The options as every backend sees them (after validation).
    pub(crate) fn spec(&self) -> Spec<'_> {
        Spec {
            weight: self.weight.as_deref(),
            ignore_index: self.ignore_index,
            label_smoothing: self.label_smoothing,
            kind: self.input_kind,
            epsilon: self.epsilon,
            softcap: self.softcap,
            z_loss: self.z_loss,
            reduction: self.reduction,
            row_outputs: self.row_outputs,
        }
    }

    /// A host batch: shapes, options, the upstream and the class indices, before anything
    /// is dispatched. Returns the input's class axis (`[N, C]` or unbatched `[C]`).
    pub(crate) fn check_batch(&self, batch: &Batch<'_>, upstream: Option<Upstream<&[f32]>>) -> Result<ClassAxis> {
        let axis = ClassAxis::of(&batch.shape, batch.input.len())?;
        let lens = Lens {
            targets: batch.targets.len(),
            probabilities: matches!(batch.targets, Targets::F32(_)),
            upstream: upstream.and_then(|u| match u {
                Upstream::Values(v) => Some(v.len()),
                Upstream::Scalar(_) => None,
            }),
        };
        self.check_call(&axis, &lens)?;
        self.check_targets(axis.classes, &batch.targets)?;
        Ok(axis)
    }

    /// A recorded batch: shapes and options (targets are checked on the GPU, buffer sizes
    /// by the encoder).
    pub(crate) fn check_batch_at<'a>(&self, batch: &BatchAt<'a>) -> Result<Inputs<'a>> {
        let elements = batch.shape.iter().fold(1_usize, |acc, &d| acc.saturating_mul(d));
        let axis = ClassAxis::of(&batch.shape, elements)?;
        let (rows, classes, inner) = (axis.rows, axis.classes, axis.inner);
        let (targets, layout, len) = match batch.targets {
            TargetsAt::I64(at) => (at, TargetLayout::Indices(TargetWidth::I64), rows),
            TargetsAt::I32(at) => (at, TargetLayout::Indices(TargetWidth::I32), rows),
            TargetsAt::F32(at) => (at, TargetLayout::Probabilities, elements),
            TargetsAt::None => {
                return Err(LossError::Unsupported {
                    loss: self.loss_name(),
                    option: "a batch without targets (TargetsAt::None)",
                })
            }
        };
        let lens = Lens {
            targets: len,
            probabilities: layout == TargetLayout::Probabilities,
            upstream: None,
        };
        self.check_call(&axis, &lens)?;
        Ok(Inputs {
            input: batch.input.at,
            format: batch.input.format,
            rows,
            classes,
            inner,
            targets: (targets, layout),
            shard: None,
        })
    }

    /// Target and upstream lengths against the input's axis (already checked), then the
    /// options.
    pub(crate) fn check_call(&self, axis: &ClassAxis, lens: &Lens) -> Result<()> {
        let loss = self.loss_name();
        let (rows, classes) = (axis.rows, axis.classes);
        let input = axis.input_shape();
        let (target_shape, target_len) = match (lens.probabilities, axis.unbatched) {
            (true, _) => (format!("{input} (probabilities, like the input)"), rows * classes),
            (false, true) => (format!("[] (one class index for the unbatched input {input})"), 1),
            (false, false) => (
                format!(
                    "{:?} (one class index per position of the input {input})",
                    axis.row_shape()
                ),
                rows,
            ),
        };
        if lens.targets != target_len {
            return Err(LossError::LengthMismatch {
                what: "targets",
                shape: target_shape,
                expected: target_len,
                actual: lens.targets,
            });
        }
        self.check_options(&input, classes, lens.probabilities)?;
        match lens.upstream {
            Some(_) if self.reduction != Reduction::None => Err(LossError::Unsupported {
                loss,
                option: "a per-row upstream gradient with a reduced loss (use Upstream::Scalar)",
            }),
            Some(len) if len != rows => Err(LossError::LengthMismatch {
                what: "upstream",
                shape: format!("{:?} (one per row of the input {input})", axis.row_shape()),
                expected: rows,
                actual: len,
            }),
            _ => Ok(()),
        }
    }

    /// The options, for an input of shape `input` with `classes` classes (with probability
    /// targets or not).
    pub(crate) fn check_options(&self, input: &str, classes: usize, probabilities: bool) -> Result<()> {
        let loss = self.loss_name();
        if let Some(weight) = &self.weight {
            check_weights("weight", weight, classes, input)?;
        }
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(LossError::LabelSmoothing(self.label_smoothing));
        }
        if self.label_smoothing > 0.0 && self.input_kind == InputKind::LogProbabilities {
            return Err(LossError::Unsupported {
                loss,
                option: "label smoothing",
            });
        }
        if probabilities && self.input_kind == InputKind::LogProbabilities {
            return Err(LossError::Unsupported {
                loss,
                option: "probability targets",
            });
        }
        if self.reduction == Reduction::BatchMean {
            return Err(LossError::Unsupported {
                loss,
                option: "reduction batchmean",
            });
        }
        if self.input_kind == InputKind::Probabilities && !(finite_f32(self.epsilon) && self.epsilon >= 0.0) {
            return Err(LossError::BadEpsilon(self.epsilon));
        }
        let logits_only = [
            (self.z_loss != 0.0, "z-loss"),
            (self.softcap.is_some(), "softcap"),
            (self.row_outputs, "row outputs (lse, argmax, accuracy)"),
        ];
        for (on, option) in logits_only {
            if on && self.input_kind != InputKind::Logits {
                return Err(LossError::Unsupported { loss, option });
            }
        }
        if !finite_f32(self.z_loss) {
            return Err(LossError::BadOption {
                option: "z_loss",
                value: self.z_loss,
            });
        }
        if let Some(cap) = self.softcap.filter(|&c| !(finite_f32(c) && c as f32 > 0.0)) {
            return Err(LossError::BadOption {
                option: "softcap",
                value: cap,
            });
        }
        Ok(())
    }

    /// The first class-index target outside `[0, C)` that is not `ignore_index`.
    pub(crate) fn check_targets(&self, classes: usize, targets: &Targets<'_>) -> Result<()> {
        for row in 0..targets.len() {
            let Some(value) = targets.index(row) else { return Ok(()) };
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
