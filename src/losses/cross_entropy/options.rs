//! Cross-entropy's options: the builder and its public fields.

use crate::api::kinds::InputKind;
use crate::api::reduction::Reduction;

/// Cross-entropy between `[N, C]` inputs and class indices `[N]` or probabilities `[N, C]`,
/// with PyTorch's options and defaults (`ignore_index = -100`, no smoothing, no weights,
/// mean). The input holds logits by default (`F.cross_entropy`); [`CrossEntropy::nll`]
/// takes log-probabilities (`F.nll_loss`), and [`InputKind::Probabilities`] takes
/// probabilities, whose log is taken of `p + epsilon` (the seeds' `-Σ t·log(y + 1e-7)`;
/// Keras' `from_logits=False` clips to `[1e-7, 1 - 1e-7]` instead).
///
/// Options are set with builder methods and read from the public fields of the same
/// names; they are validated when the loss is computed. Compute with the [`crate::Loss`] trait.
///
/// ```
/// # fn main() -> Result<(), wgpu_loss::LossError> {
/// use wgpu_loss::{Backend, Batch, CrossEntropy, GpuContext, Loss, Reduction};
/// let ctx = GpuContext::new_blocking()?;
/// let logits = [2.0_f32, 0.5, -1.0, 0.0, 3.0, 0.1]; // 2 rows × 3 classes
/// let batch = Batch::new(&logits, [2, 3], &[0_i64, 1]);
/// let loss = CrossEntropy::default().label_smoothing(0.1).reduction(Reduction::Mean);
/// let gpu = loss.forward(Backend::Gpu(&ctx), &batch)?;
/// let reference = loss.forward(Backend::Reference, &batch)?;
/// assert!((gpu.scalar().unwrap() - reference.scalar().unwrap()).abs() < 1e-5);
/// assert_eq!(loss.label_smoothing, 0.1);
/// # Ok(()) }
/// ```
///
/// Recording into an app's own encoder and buffers (nothing copied, nothing submitted):
///
/// ```
/// # fn main() -> Result<(), wgpu_loss::LossError> {
/// use wgpu_loss::wgpu::{self, util::DeviceExt};
/// use wgpu_loss::{BatchAt, CrossEntropy, GpuContext, Loss, Outputs, TargetsAt};
/// let ctx = GpuContext::new_blocking()?;
/// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
/// let make = |bytes: &[u8]| ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: bytes, usage });
/// let logits = make(bytemuck::cast_slice(&[2.0_f32, 0.5, -1.0, 0.0, 3.0, 0.1]));
/// let targets = make(bytemuck::cast_slice(&[0_i64, 1]));
/// let result = make(&[0; 8]); // [loss, divisor]
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// let batch = BatchAt::new(&logits, [2, 3], TargetsAt::I64((&targets).into()));
/// CrossEntropy::default().encode(&ctx, &mut encoder, &batch, &Outputs::loss(&result))?;
/// ctx.queue().submit(Some(encoder.finish()));
/// let loss = wgpu_loss::read::<f32>(&ctx, (&result).into(), 1)?[0];
/// assert!((loss - 0.170_492_47).abs() < 1e-5); // (0.24131 + 0.09967) / 2
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropy {
    /// Per-class weights `[C]` (finite, non-negative).
    pub weight: Option<Vec<f32>>,
    /// The target value whose rows are skipped (default -100).
    pub ignore_index: i64,
    /// Label smoothing ε in `[0, 1]` (default 0).
    pub label_smoothing: f64,
    /// The reduction (default [`Reduction::Mean`]).
    pub reduction: Reduction,
    /// What the input holds (default [`InputKind::Logits`]).
    pub input_kind: InputKind,
    /// The `epsilon` added to probabilities before the log ([`InputKind::Probabilities`]).
    pub epsilon: f64,
    /// The z-loss scale (0: none).
    pub z_loss: f64,
    /// The soft-cap of the logits, if any.
    pub softcap: Option<f64>,
    /// Whether `forward_backward` also gives each row's lse and argmax and the accuracy.
    pub row_outputs: bool,
}

/// The default `epsilon` added to probabilities before the log (Keras' and the seeds').
pub const DEFAULT_EPSILON: f64 = 1e-7;

impl Default for CrossEntropy {
    fn default() -> Self {
        Self {
            weight: None,
            ignore_index: -100,
            label_smoothing: 0.0,
            reduction: Reduction::Mean,
            input_kind: InputKind::Logits,
            epsilon: DEFAULT_EPSILON,
            z_loss: 0.0,
            softcap: None,
            row_outputs: false,
        }
    }
}

impl CrossEntropy {
    /// `F.nll_loss`: the input holds log-probabilities (no smoothing).
    pub fn nll() -> Self {
        Self::default().input_kind(InputKind::LogProbabilities)
    }

    /// What the input holds (default [`InputKind::Logits`]).
    pub fn input_kind(mut self, input_kind: InputKind) -> Self {
        self.input_kind = input_kind;
        self
    }

    /// The `epsilon` added to probabilities before the log (default 1e-7; must be finite
    /// as an f32 and non-negative). Only used with [`InputKind::Probabilities`].
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Adds the z-loss `scale · lse²` to each row that is not ignored (PaLM; logits only).
    /// The mean divides it by the same denominator as the cross-entropy.
    pub fn z_loss(mut self, scale: f64) -> Self {
        self.z_loss = scale;
        self
    }

    /// Soft-caps the logits, `cap · tanh(x / cap)`, before the softmax (Gemma 2; logits
    /// only). `cap` must be finite and positive as an f32.
    pub fn softcap(mut self, cap: f64) -> Self {
        self.softcap = Some(cap);
        self
    }

    /// Also returns each row's lse and argmax and the batch accuracy from the same pass
    /// (logits only; [`crate::Loss::forward_backward`]).
    pub fn row_outputs(mut self, on: bool) -> Self {
        self.row_outputs = on;
        self
    }

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
}
