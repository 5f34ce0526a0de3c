//! Validation of elementwise-loss calls: shapes, options and values, before anything is
//! dispatched. Every error names the offending shape or value.

use crate::api::buffers::{BatchAt, GradInto, Outputs, TargetsAt};
use crate::api::host::{Batch, Targets, Upstream};
use crate::api::kinds::ElementwiseKind;
use crate::api::reduction::Reduction;
use crate::error::{LossError, Result};
use crate::gpu::window::{check_room, check_room_aligned};
use crate::losses::validate::check_weights;

use super::options::ElementwiseLoss;
use super::spec::{ElementSpec, Elements, ElementsAt};

impl ElementwiseLoss {
    /// The options as the backends see them, for an input of `shape`.
    pub(crate) fn spec(&self, shape: &[usize]) -> ElementSpec<'_> {
        ElementSpec {
            kind: self.kind,
            weight: self.weight.as_deref(),
            pos_weight: self.pos_weight.as_deref(),
            log_target: self.log_target,
            last_dim: shape.last().copied().unwrap_or(1),
            reduction: self.reduction,
        }
    }

    /// A recorded batch and the caller's buffers: the shape, the options, and room in
    /// every buffer. Returns the element positions and the element count.
    pub(crate) fn check_batch_at<'a>(
        &self,
        batch: &'a BatchAt<'a>,
        outputs: &Outputs<'_>,
    ) -> Result<(ElementsAt<'a>, usize)> {
        let loss = self.loss_name();
        let count = self.check_shape(&batch.shape, None)?;
        let TargetsAt::F32(target) = batch.targets else {
            return Err(LossError::Unsupported {
                loss,
                option: "targets other than f32 values of the input's shape",
            });
        };
        let unsupported = [
            (outputs.status.is_some(), "a status output"),
            (outputs.row_stats.is_some() || outputs.argmax.is_some(), "row outputs"),
            (
                matches!(outputs.grad, Some((GradInto::InPlace, _))),
                "an in-place gradient",
            ),
            (
                matches!(outputs.grad, Some((_, Upstream::Values(_)))) && self.reduction != Reduction::None,
                "a per-element upstream gradient with a reduced loss",
            ),
        ];
        if let Some((_, option)) = unsupported.into_iter().find(|(on, _)| *on) {
            return Err(LossError::Unsupported { loss, option });
        }
        let text = format!("{:?}", batch.shape);
        let bytes = count as u64 * 4;
        let element = batch.input.format.bytes();
        check_room_aligned("input", batch.input.at, count as u64 * element, &text, element)?;
        check_room("target", target, bytes, &text)?;
        if let Some(at) = outputs.loss {
            let loss_bytes = if self.reduction == Reduction::None { bytes } else { 8 };
            check_room("loss", at, loss_bytes, &text)?;
        }
        if let Some((GradInto::Buffer(at), upstream)) = outputs.grad {
            check_room("grad", at, bytes, &text)?;
            if let Upstream::Values(u) = upstream {
                check_room("upstream", u, bytes, &text)?;
            }
        }
        let at = ElementsAt {
            input: batch.input,
            target,
            shape: &batch.shape,
        };
        Ok((at, count))
    }

    /// The f32 targets of a batch, or an error naming what was given.
    pub(crate) fn targets_of<'a>(&self, batch: &Batch<'a>) -> Result<&'a [f32]> {
        match batch.targets {
            Targets::F32(target) => Ok(target),
            _ => Err(LossError::Unsupported {
                loss: self.loss_name(),
                option: "targets other than f32 values of the input's shape",
            }),
        }
    }

    /// Shapes, options and values; returns the element count.
    pub(crate) fn check(&self, data: &Elements<'_>, upstream: Option<Upstream<&[f32]>>) -> Result<usize> {
        let Elements { input, target, shape } = *data;
        let count = self.check_shape(shape, upstream)?;
        for (what, len) in [("input", input.len()), ("target", target.len())] {
            if len != count {
                return Err(LossError::LengthMismatch {
                    what,
                    shape: format!("{shape:?}"),
                    expected: count,
                    actual: len,
                });
            }
        }
        if self.kind == ElementwiseKind::Bce {
            // PyTorch refuses inputs outside [0, 1] (NaN included); targets must be too.
            for (what, values) in [("input", input), ("target", target)] {
                if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
                    return Err(LossError::NotAProbability { what, index, value });
                }
            }
        }
        Ok(count)
    }

    /// Shape and options (values on the GPU are not inspected); returns the element count.
    pub(crate) fn check_shape(&self, shape: &[usize], upstream: Option<Upstream<&[f32]>>) -> Result<usize> {
        let loss = self.loss_name();
        let shape_text = format!("{shape:?}");
        let count = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| LossError::TooLarge {
                what: "input",
                detail: format!("shape {shape_text} overflows usize"),
            })?;
        let last_dim = shape.last().copied().unwrap_or(1);
        let takes_weight = matches!(self.kind, ElementwiseKind::Bce | ElementwiseKind::BceWithLogits);
        if let Some(weight) = &self.weight {
            if !takes_weight {
                return Err(LossError::Unsupported { loss, option: "weight" });
            }
            check_weights("weight", weight, last_dim, &shape_text)?;
        }
        if let Some(pos_weight) = &self.pos_weight {
            if self.kind != ElementwiseKind::BceWithLogits {
                return Err(LossError::Unsupported {
                    loss,
                    option: "pos_weight",
                });
            }
            check_weights("pos_weight", pos_weight, last_dim, &shape_text)?;
        }
        if self.log_target && self.kind != ElementwiseKind::KlDiv {
            return Err(LossError::Unsupported {
                loss,
                option: "log_target",
            });
        }
        if self.reduction == Reduction::BatchMean && self.kind != ElementwiseKind::KlDiv {
            return Err(LossError::Unsupported {
                loss,
                option: "reduction batchmean",
            });
        }
        match upstream {
            Some(Upstream::Values(_)) if self.reduction != Reduction::None => Err(LossError::Unsupported {
                loss,
                option: "a per-element upstream gradient with a reduced loss (use Upstream::Scalar)",
            }),
            Some(Upstream::Values(v)) if v.len() != count => Err(LossError::LengthMismatch {
                what: "upstream",
                shape: shape_text,
                expected: count,
                actual: v.len(),
            }),
            _ => Ok(count),
        }
    }
}
