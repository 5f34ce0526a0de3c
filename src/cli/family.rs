//! Which family each loss name belongs to, with the library's loss at PyTorch's defaults:
//! `compute` sets its options from the arguments, `bench` runs it as it is.

use wgpu_loss::{CrossEntropy, ElementwiseLoss, Loss, RowOp};

use super::args::LossName;

/// A loss name's family, holding the loss with its default options.
pub enum Family {
    /// Cross-entropy and NLL: input `[N, C]`, `[N, C, d1, …]` or `[C]`, class-index (or
    /// probability) targets.
    CrossEntropy(CrossEntropy),
    /// Elementwise losses: any shape, an f32 target of the input's shape.
    Elementwise(ElementwiseLoss),
    /// The softmax family: input of any rank along `--dim`, no targets.
    RowOp(RowOp),
}

impl LossName {
    /// The family, with the loss at its defaults.
    pub fn family(self) -> Family {
        match self {
            LossName::CrossEntropy => Family::CrossEntropy(CrossEntropy::default()),
            LossName::Nll => Family::CrossEntropy(CrossEntropy::nll()),
            // Its options are the cross-entropy's; `compute` and `bench` run it on their own
            // path (`compute/linear.rs`, `bench/linear.rs`), h·Wᵀ + b being its input.
            LossName::LinearCrossEntropy => Family::CrossEntropy(CrossEntropy::default()),
            LossName::Bce => Family::Elementwise(ElementwiseLoss::bce()),
            LossName::BceWithLogits => Family::Elementwise(ElementwiseLoss::bce_with_logits()),
            LossName::Mse => Family::Elementwise(ElementwiseLoss::mse()),
            LossName::KlDiv => Family::Elementwise(ElementwiseLoss::kl_div()),
            LossName::Softmax => Family::RowOp(RowOp::Softmax),
            LossName::LogSoftmax => Family::RowOp(RowOp::LogSoftmax),
            LossName::Entropy => Family::RowOp(RowOp::Entropy),
        }
    }

    /// The loss at its defaults (mean reduction), whatever its family.
    pub fn default_loss(self) -> Box<dyn Loss> {
        self.family().into_loss()
    }

    /// Whether the loss takes float16 input from the CLI (the elementwise losses do not).
    pub fn takes_f16(self) -> bool {
        !matches!(self.family(), Family::Elementwise(_))
    }
}

impl Family {
    /// The loss, boxed.
    pub fn into_loss(self) -> Box<dyn Loss> {
        match self {
            Family::CrossEntropy(loss) => Box::new(loss),
            Family::Elementwise(loss) => Box::new(loss),
            Family::RowOp(op) => Box::new(op),
        }
    }
}
