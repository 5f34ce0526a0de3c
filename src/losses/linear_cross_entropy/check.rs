//! Validation of linear cross-entropy calls before anything is dispatched: the lengths of
//! `h`, `W`, `b` against `[N, D]`, `[V, D]`, `[V]`, then the cross-entropy's own checks on
//! the logits `[N, V]` (targets, upstream, options). Every error names the shape or value.

use crate::api::buffers::TargetsAt;
use crate::api::host::{Targets, Upstream};
use crate::api::kinds::{InputKind, TargetWidth};
use crate::api::linear::{LinearBatch, LinearBatchAt, LinearShape};
use crate::api::shard::VocabShard;
use crate::error::{LossError, Result};
use crate::losses::cross_entropy::check::Lens;
use crate::losses::validate::ClassAxis;

use super::options::LinearCrossEntropy;

const LOSS: &str = "linear cross-entropy";

/// `a · b` or an error naming the product.
fn product(what: &'static str, a: usize, b: usize, shape: &str) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| LossError::TooLarge {
        what,
        detail: format!("{shape} has more elements than this machine can index"),
    })
}

/// Fails unless `actual` elements are what `what`'s shape needs.
fn length(what: &'static str, shape: String, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        return Ok(());
    }
    Err(LossError::LengthMismatch {
        what,
        shape,
        expected,
        actual,
    })
}

impl LinearCrossEntropy {
    /// The sizes, the options that only the linear form restricts, and the cross-entropy's
    /// checks on the logits `[N, V]`; returns the logits' class axis.
    fn check_shape(&self, shape: LinearShape, targets: usize, upstream: Option<usize>) -> Result<ClassAxis> {
        let LinearShape { rows, hidden, classes } = shape;
        if classes == 0 {
            return Err(LossError::ZeroClasses { rows });
        }
        let logits = product("logits", rows, classes, &format!("[{rows}, {classes}] (N, V)"))?;
        product("h", rows, hidden, &format!("[{rows}, {hidden}] (N, D)"))?;
        product("W", classes, hidden, &format!("[{classes}, {hidden}] (V, D)"))?;
        if self.loss.input_kind != InputKind::Logits {
            return Err(LossError::Unsupported {
                loss: LOSS,
                option: "an input kind other than logits (h·Wᵀ + b are logits)",
            });
        }
        let axis = ClassAxis::of(&[rows, classes], logits)?;
        let lens = Lens {
            targets,
            probabilities: false,
            upstream,
        };
        self.loss.check_call(&axis, &lens)?;
        Ok(axis)
    }

    /// A host batch: sizes, options, the upstream and the class indices.
    pub(crate) fn check_batch(&self, batch: &LinearBatch<'_>, upstream: Option<Upstream<&[f32]>>) -> Result<ClassAxis> {
        let classes = batch.shape.classes;
        if matches!(batch.targets, Targets::F32(_) | Targets::None) {
            return Err(LossError::Unsupported {
                loss: LOSS,
                option: "targets other than class indices (Targets::I64 or I32)",
            });
        }
        let upstream_len = match upstream {
            Some(Upstream::Values(v)) => Some(v.len()),
            _ => None,
        };
        let axis = self.check_shape(batch.shape, batch.targets.len(), upstream_len)?;
        check_lengths(batch)?;
        self.loss.check_targets(classes, &batch.targets)?;
        Ok(axis)
    }

    /// A vocabulary shard's host batch: `W` and `b` the shard's rows (`batch.shape.classes`
    /// is `shard.len()`), the options and targets against the whole vocabulary V.
    pub(crate) fn check_shard_batch(
        &self,
        shard: VocabShard,
        batch: &LinearBatch<'_>,
        upstream: Option<Upstream<&[f32]>>,
    ) -> Result<()> {
        self.check_shard_shape(shard, batch.shape)?;
        if matches!(batch.targets, Targets::F32(_) | Targets::None) {
            return Err(LossError::Unsupported {
                loss: LOSS,
                option: "targets other than class indices (Targets::I64 or I32)",
            });
        }
        let rows = batch.shape.rows;
        length("targets", format!("[{rows}] (N)"), rows, batch.targets.len())?;
        match upstream {
            Some(Upstream::Values(_)) if self.loss.reduction != crate::api::reduction::Reduction::None => {
                return Err(LossError::Unsupported {
                    loss: LOSS,
                    option: "a per-row upstream gradient with a reduced loss (use Upstream::Scalar)",
                })
            }
            Some(Upstream::Values(v)) => length("upstream", format!("[{rows}] (N)"), rows, v.len())?,
            _ => {}
        }
        check_lengths(batch)?;
        self.loss.check_targets(shard.classes(), &batch.targets)
    }

    /// A vocabulary shard's recorded batch; returns the targets' width.
    pub(crate) fn check_shard_batch_at(&self, shard: VocabShard, batch: &LinearBatchAt<'_>) -> Result<TargetWidth> {
        self.check_shard_shape(shard, batch.shape)?;
        match batch.targets {
            TargetsAt::I64(_) => Ok(TargetWidth::I64),
            TargetsAt::I32(_) => Ok(TargetWidth::I32),
            _ => Err(LossError::Unsupported {
                loss: LOSS,
                option: "targets other than class indices (TargetsAt::I64 or I32)",
            }),
        }
    }

    /// The shard's sizes, and the options against V (`CrossEntropy::vocab_merge`).
    fn check_shard_shape(&self, shard: VocabShard, shape: LinearShape) -> Result<()> {
        let LinearShape { rows, hidden, classes } = shape;
        if classes != shard.len() || shard.is_empty() {
            return Err(LossError::BadShard {
                detail: format!(
                    "W [{classes}, {hidden}] for classes [{}, {}) of {} (a shard's W holds its {} classes, at least one)",
                    shard.start(),
                    shard.end(),
                    shard.classes(),
                    shard.len()
                ),
            });
        }
        product("h", rows, hidden, &format!("[{rows}, {hidden}] (N, D)"))?;
        product(
            "logits",
            rows,
            classes,
            &format!("[{rows}, {classes}] (N, the shard's V)"),
        )?;
        self.loss.vocab_merge(shard.classes()).map(|_| ())
    }
}

/// The lengths of `h`, `W` and `b` against the batch's shape.
fn check_lengths(batch: &LinearBatch<'_>) -> Result<()> {
    let LinearShape { rows, hidden, classes } = batch.shape;
    length("h", format!("[{rows}, {hidden}] (N, D)"), rows * hidden, batch.h.len())?;
    length(
        "W",
        format!("[{classes}, {hidden}] (V, D)"),
        classes * hidden,
        batch.w.len(),
    )?;
    if let Some(b) = batch.b {
        length("b", format!("[{classes}] (V)"), classes, b.len())?;
    }
    Ok(())
}

impl LinearCrossEntropy {
    /// A recorded batch: sizes and options (targets are checked on the GPU, buffer room by
    /// the encoder). Returns the targets' width.
    pub(crate) fn check_batch_at(&self, batch: &LinearBatchAt<'_>) -> Result<TargetWidth> {
        let width = match batch.targets {
            TargetsAt::I64(_) => TargetWidth::I64,
            TargetsAt::I32(_) => TargetWidth::I32,
            _ => {
                return Err(LossError::Unsupported {
                    loss: LOSS,
                    option: "targets other than class indices (TargetsAt::I64 or I32)",
                })
            }
        };
        self.check_shape(batch.shape, batch.shape.rows, None)?;
        Ok(width)
    }
}
