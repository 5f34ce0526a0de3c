//! Validation of a shard's call: its logits `[N, end - start]`, class-index targets of the
//! whole vocabulary, and the cross-entropy's options against V, before anything runs.

use crate::api::host::{Targets, Upstream};
use crate::api::kinds::InputKind;
use crate::api::merge::VocabMerge;
use crate::api::reduction::Reduction;
use crate::api::shard::VocabShard;
use crate::error::{LossError, Result};
use crate::losses::cross_entropy::options::CrossEntropy;

/// What a shard's call gives: its logits' shape and target count.
pub(crate) struct ShardCall<'a> {
    pub shard: VocabShard,
    pub shape: &'a [usize],
    pub input_len: usize,
    pub targets: Option<&'a Targets<'a>>,
    pub target_len: usize,
    pub upstream: Option<Upstream<&'a [f32]>>,
}

impl CrossEntropy {
    /// How the shards' records of a call over `classes` merge (`classes` is V, the whole
    /// vocabulary): fails on options a shard does not take, and on class weights of
    /// another length than V.
    pub fn vocab_merge(&self, classes: usize) -> Result<VocabMerge> {
        let loss = self.loss_name();
        if self.input_kind != InputKind::Logits {
            return Err(LossError::Unsupported {
                loss,
                option: "vocabulary shards of probabilities or log-probabilities (shards take logits)",
            });
        }
        if classes == 0 {
            return Err(LossError::ZeroClasses { rows: 0 });
        }
        let input = format!("[N, {classes}] (the whole vocabulary)");
        self.check_options(&input, classes, false)?;
        let weight_sum = self
            .weight
            .as_ref()
            .map_or(classes as f64, |w| w.iter().map(|&v| f64::from(v)).sum());
        Ok(VocabMerge {
            argmax: self.row_outputs,
            smoothing: self.label_smoothing > 0.0,
            weight_sum: weight_sum as f32,
        })
    }

    /// A shard's call: `[N, shard.len()]` logits, N class indices (host targets in range
    /// of V or ignored), the upstream; returns N.
    pub(crate) fn check_shard(&self, call: &ShardCall<'_>) -> Result<usize> {
        let shard = call.shard;
        self.vocab_merge(shard.classes())?;
        if let Some(Targets::F32(_) | Targets::None) = call.targets {
            return Err(LossError::Unsupported {
                loss: self.loss_name(),
                option: "vocabulary shards with probability targets (shards take class indices)",
            });
        }
        let &[rows, cols] = call.shape else {
            return Err(LossError::BadShape {
                what: "shard logits",
                shape: call.shape.to_vec(),
                expected: "[N, end - start] (rows × the shard's classes)",
            });
        };
        let shape = format!(
            "[{rows}, {}] (classes [{}, {}) of {})",
            shard.len(),
            shard.start(),
            shard.end(),
            shard.classes()
        );
        if cols != shard.len() {
            return Err(LossError::BadShard {
                detail: format!("logits of shape [{rows}, {cols}] for a shard of shape {shape}"),
            });
        }
        let elements = rows.checked_mul(cols).ok_or_else(|| LossError::TooLarge {
            what: "shard logits",
            detail: format!("{shape} overflows usize"),
        })?;
        let checks = [
            ("logits", elements, call.input_len, shape.clone()),
            (
                "targets",
                rows,
                call.target_len,
                format!("[{rows}] (class indices of 0..{})", shard.classes()),
            ),
        ];
        for (what, expected, actual, shape) in checks {
            if expected != actual {
                return Err(LossError::LengthMismatch {
                    what,
                    shape,
                    expected,
                    actual,
                });
            }
        }
        if let Some(targets) = call.targets {
            self.check_targets(shard.classes(), targets)?;
        }
        match call.upstream {
            Some(Upstream::Values(_)) if self.reduction != Reduction::None => Err(LossError::Unsupported {
                loss: self.loss_name(),
                option: "a per-row upstream gradient with a reduced loss (use Upstream::Scalar)",
            }),
            Some(Upstream::Values(v)) if v.len() != rows => Err(LossError::LengthMismatch {
                what: "upstream",
                shape: format!("[{rows}] (one per row)"),
                expected: rows,
                actual: v.len(),
            }),
            _ => Ok(rows),
        }
    }
}
