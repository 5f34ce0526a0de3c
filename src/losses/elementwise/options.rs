//! The elementwise losses' options: the builder and its public fields.

use crate::api::kinds::ElementwiseKind;
use crate::api::reduction::Reduction;

/// An elementwise loss with its options. `weight` and `pos_weight` have one entry per
/// index of the last axis and broadcast over the others. Options are set with builder
/// methods and read from the public fields of the same names. Targets are
/// [`crate::Targets::F32`] of the input's shape; f16 / bf16 host input is widened to f32.
///
/// The seeds' textbook `E = ½ Σ (y - t)²` is `0.5 ×` [`ElementwiseLoss::mse`] with
/// [`Reduction::Sum`].
///
/// ```
/// # fn main() -> Result<(), wgpu_loss::LossError> {
/// use wgpu_loss::{Backend, Batch, ElementwiseLoss, Loss, Reduction};
/// let batch = Batch::new(&[0.1_f32, 0.05, 0.05, 0.8], [4], &[0.0_f32, 1.0, 0.0, 0.0]);
/// let e = ElementwiseLoss::mse().reduction(Reduction::Sum).forward(Backend::Reference, &batch)?;
/// assert!((0.5 * e.scalar().unwrap() - 0.7775).abs() < 1e-6);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ElementwiseLoss {
    /// Which loss this is.
    pub kind: ElementwiseKind,
    /// Weights over the last axis (BCE and BCE with logits).
    pub weight: Option<Vec<f32>>,
    /// Weights of positive examples over the last axis (BCE with logits).
    pub pos_weight: Option<Vec<f32>>,
    /// The target holds log-probabilities (KL divergence).
    pub log_target: bool,
    /// The reduction (default mean over all elements; `BatchMean` for KL only).
    pub reduction: Reduction,
}

impl ElementwiseLoss {
    /// The loss `kind` with PyTorch's defaults (no weights, mean).
    pub fn new(kind: ElementwiseKind) -> Self {
        Self {
            kind,
            weight: None,
            pos_weight: None,
            log_target: false,
            reduction: Reduction::Mean,
        }
    }

    /// `F.mse_loss`: `(x - y)²`.
    pub fn mse() -> Self {
        Self::new(ElementwiseKind::Mse)
    }

    /// `F.binary_cross_entropy`: input probabilities in `[0, 1]`, each log clamped at -100.
    pub fn bce() -> Self {
        Self::new(ElementwiseKind::Bce)
    }

    /// `F.binary_cross_entropy_with_logits`: input logits, stable for `|x|` in the thousands.
    pub fn bce_with_logits() -> Self {
        Self::new(ElementwiseKind::BceWithLogits)
    }

    /// `F.kl_div`: input log-probabilities, target probabilities (or log-probabilities with
    /// [`ElementwiseLoss::log_target`]).
    pub fn kl_div() -> Self {
        Self::new(ElementwiseKind::KlDiv)
    }

    /// Weights over the last axis (BCE and BCE with logits).
    pub fn weight(mut self, weight: &[f32]) -> Self {
        self.weight = Some(weight.to_vec());
        self
    }

    /// Weights of positive examples over the last axis (BCE with logits).
    pub fn pos_weight(mut self, pos_weight: &[f32]) -> Self {
        self.pos_weight = Some(pos_weight.to_vec());
        self
    }

    /// The target holds log-probabilities (KL divergence).
    pub fn log_target(mut self, log_target: bool) -> Self {
        self.log_target = log_target;
        self
    }

    /// The reduction (default mean over all elements; `BatchMean` for KL only).
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The name errors and the CLI use.
    pub(crate) fn loss_name(&self) -> &'static str {
        match self.kind {
            ElementwiseKind::Mse => "mse",
            ElementwiseKind::Bce => "bce",
            ElementwiseKind::BceWithLogits => "bce-with-logits",
            ElementwiseKind::KlDiv => "kl-div",
        }
    }
}
