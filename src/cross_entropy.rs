//! Class-index cross-entropy (`torch.nn.functional.cross_entropy` with integer targets):
//! the options, input validation, and the CPU and GPU entry points.

use crate::context::GpuContext;
use crate::cpu;
use crate::cpu_fast;
use crate::cross_entropy_gpu::{
    self, BufferAt, CrossEntropyOutputs, GpuTargets, GpuUpstream, GradInto, HalfInput, HostInput, InputAt,
};
use crate::device_io::Waiting;
use crate::error::{LossError, Result};
use crate::kernels::{InputKind, TargetLayout, TargetWidth};
use crate::reduction::{LossValue, Reduction};

/// Cross-entropy targets on the host: class indices (`i64`, PyTorch's `long`, or `i32`),
/// one per row, or probabilities `[N, C]`.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// 64-bit class indices.
    I64(&'a [i64]),
    /// 32-bit class indices.
    I32(&'a [i32]),
    /// Probabilities, `[N, C]` in row order (one-hot gives the class-index result).
    Probabilities(&'a [f32]),
}

impl Targets<'_> {
    /// The number of elements (N for class indices, N·C for probabilities).
    pub fn len(&self) -> usize {
        match self {
            Targets::I64(t) => t.len(),
            Targets::I32(t) => t.len(),
            Targets::Probabilities(t) => t.len(),
        }
    }

    /// Whether these are probabilities rather than class indices.
    pub fn is_probabilities(&self) -> bool {
        matches!(self, Targets::Probabilities(_))
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Class-index target `row` widened to `i64` (`None` for probabilities).
    pub fn index(&self, row: usize) -> Option<i64> {
        match self {
            Targets::I64(t) => Some(t[row]),
            Targets::I32(t) => Some(i64::from(t[row])),
            Targets::Probabilities(_) => None,
        }
    }

    pub(crate) fn layout(&self) -> TargetLayout {
        match self {
            Targets::I64(_) => TargetLayout::Indices(TargetWidth::I64),
            Targets::I32(_) => TargetLayout::Indices(TargetWidth::I32),
            Targets::Probabilities(_) => TargetLayout::Probabilities,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Targets::I64(t) => bytemuck::cast_slice(t),
            Targets::I32(t) => bytemuck::cast_slice(t),
            Targets::Probabilities(t) => bytemuck::cast_slice(t),
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

impl<'a> From<&'a [f32]> for Targets<'a> {
    fn from(t: &'a [f32]) -> Self {
        Targets::Probabilities(t)
    }
}

impl<'a> From<&'a Vec<f32>> for Targets<'a> {
    fn from(t: &'a Vec<f32>) -> Self {
        Targets::Probabilities(t)
    }
}

/// Cross-entropy between `[N, C]` inputs and class indices `[N]` or probabilities `[N, C]`,
/// with PyTorch's options and defaults (`ignore_index = -100`, no smoothing, no weights,
/// mean). The input holds logits by default (`F.cross_entropy`); [`CrossEntropy::nll`]
/// takes log-probabilities (`F.nll_loss`), and [`InputKind::Probabilities`] takes
/// probabilities, whose log is taken of `p + epsilon` (the seeds' `-Σ t·log(y + 1e-7)`;
/// Keras' `from_logits=False` clips to `[1e-7, 1 - 1e-7]` instead).
///
/// ```
/// # fn main() -> Result<(), wgpu_loss::LossError> {
/// use wgpu_loss::{CrossEntropy, GpuContext, Reduction};
/// let ctx = GpuContext::new_blocking()?;
/// let logits = [2.0_f32, 0.5, -1.0, 0.0, 3.0, 0.1]; // 2 rows × 3 classes
/// let targets: Vec<i64> = vec![0, 1];
/// let loss = CrossEntropy::default()
///     .label_smoothing(0.1)
///     .reduction(Reduction::Mean)
///     .forward(&ctx, &logits, 2, 3, &targets)?;
/// let reference = CrossEntropy::default().label_smoothing(0.1).forward_cpu(&logits, 2, 3, &targets)?;
/// assert!((loss.scalar().unwrap() - reference.scalar().unwrap()).abs() < 1e-5);
/// # Ok(()) }
/// ```
///
/// Recording into an app's own encoder and buffers (nothing copied, nothing submitted):
///
/// ```
/// # fn main() -> Result<(), wgpu_loss::LossError> {
/// use wgpu_loss::wgpu::{self, util::DeviceExt};
/// use wgpu_loss::{CrossEntropy, CrossEntropyOutputs, GpuContext, GpuTargets, TargetWidth};
/// let ctx = GpuContext::new_blocking()?;
/// let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
/// let make = |bytes: &[u8]| ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: bytes, usage });
/// let logits = make(bytemuck::cast_slice(&[2.0_f32, 0.5, -1.0, 0.0, 3.0, 0.1]));
/// let targets = make(bytemuck::cast_slice(&[0_i64, 1]));
/// let result = make(&[0; 8]); // [loss, divisor]
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// let targets_at = GpuTargets { at: (&targets).into(), width: TargetWidth::I64 };
/// CrossEntropy::default().encode(&ctx, &mut encoder, &logits, 2, 3, targets_at, &CrossEntropyOutputs::loss(&result))?;
/// ctx.queue().submit(Some(encoder.finish()));
/// let loss = wgpu_loss::read_f32(&ctx, (&result).into(), 1)?[0];
/// assert!((loss - 0.170_492_47).abs() < 1e-5); // (0.24131 + 0.09967) / 2
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropy {
    weight: Option<Vec<f32>>,
    ignore_index: i64,
    label_smoothing: f64,
    reduction: Reduction,
    input: InputKind,
    epsilon: f64,
    z_loss: f64,
    softcap: Option<f64>,
    row_outputs: bool,
}

/// The upstream gradient of a backward call: a scalar (default 1) for any reduction, or,
/// for reduction `none`, one value per row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Upstream<'a> {
    /// `∂L/∂loss` for a reduced loss; for `none`, the same value for every row.
    Scalar(f32),
    /// `∂L/∂l_n` per row (reduction `none` only).
    Values(&'a [f32]),
}

impl Default for Upstream<'_> {
    fn default() -> Self {
        Upstream::Scalar(1.0)
    }
}

/// The result of a fused forward + backward call.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardBackward {
    /// The loss, as `forward` gives it.
    pub loss: LossValue,
    /// `∂loss/∂input`, `[N, C]` (empty when it was written in place into a GPU buffer).
    pub grad: Vec<f32>,
    /// With [`CrossEntropy::row_outputs`]: each row's logsumexp (of the soft-capped logits).
    pub lse: Option<Vec<f32>>,
    /// With [`CrossEntropy::row_outputs`]: each row's argmax (first index on ties, NaN wins).
    pub argmax: Option<Vec<u32>>,
    /// With [`CrossEntropy::row_outputs`] and class-index targets: the fraction of rows not
    /// ignored whose argmax is the target (NaN when every row is ignored).
    pub accuracy: Option<f32>,
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
            input: InputKind::Logits,
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
    pub fn input_kind(mut self, input: InputKind) -> Self {
        self.input = input;
        self
    }

    /// The `epsilon` added to probabilities before the log (default 1e-7; must be finite
    /// and non-negative). Only used with [`InputKind::Probabilities`].
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
    /// only). `cap` must be finite and positive.
    pub fn softcap(mut self, cap: f64) -> Self {
        self.softcap = Some(cap);
        self
    }

    /// Also returns each row's lse and argmax and the batch accuracy from the same pass
    /// (logits only).
    pub fn row_outputs(mut self, on: bool) -> Self {
        self.row_outputs = on;
        self
    }

    /// The z-loss scale in force (0: none).
    pub fn z_loss_value(&self) -> f64 {
        self.z_loss
    }

    /// The soft-cap in force.
    pub fn softcap_value(&self) -> Option<f64> {
        self.softcap
    }

    /// Whether per-row outputs are computed.
    pub fn wants_row_outputs(&self) -> bool {
        self.row_outputs
    }

    /// The input kind in force.
    pub fn input(&self) -> InputKind {
        self.input
    }

    /// The epsilon in force.
    pub fn epsilon_value(&self) -> f64 {
        self.epsilon
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

    /// Computes the loss on the GPU: uploads the input, targets and weights, runs the
    /// kernels, and reads back only the scalar (or the N row losses for `none`).
    /// Everything is validated before anything is dispatched.
    pub fn forward<'t>(
        &self,
        ctx: &GpuContext,
        input: &[f32],
        rows: usize,
        classes: usize,
        targets: impl Into<Targets<'t>>,
    ) -> Result<LossValue> {
        let targets = targets.into();
        self.validate(input.len(), rows, classes, &targets, None)?;
        let run = cross_entropy_gpu::forward_host(
            ctx,
            self,
            HostInput::F32(input),
            rows,
            classes,
            &targets,
            None,
            Waiting::Block,
        );
        Ok(pollster::block_on(run)?.loss)
    }

    /// [`CrossEntropy::forward`] without blocking: the upload and the kernels are submitted,
    /// and the result's mapping completes through a futures-intrusive channel when the
    /// device is polled — by the app (its frame loop or a polling thread). Use `forward`
    /// in programs that do not poll.
    pub async fn forward_async<'t>(
        &self,
        ctx: &GpuContext,
        input: &[f32],
        rows: usize,
        classes: usize,
        targets: impl Into<Targets<'t>>,
    ) -> Result<LossValue> {
        let targets = targets.into();
        self.validate(input.len(), rows, classes, &targets, None)?;
        let run = cross_entropy_gpu::forward_host(
            ctx,
            self,
            HostInput::F32(input),
            rows,
            classes,
            &targets,
            None,
            Waiting::AppPolls,
        );
        Ok(run.await?.loss)
    }

    /// [`CrossEntropy::forward`] on f16 or bf16 input (raw bits). The GPU reads the halves
    /// and accumulates in f32; compare with [`CrossEntropy::forward_cpu`] on
    /// [`HalfInput::to_f32`], the same rounded values.
    pub fn forward_half<'t>(
        &self,
        ctx: &GpuContext,
        input: HalfInput<'_>,
        rows: usize,
        classes: usize,
        targets: impl Into<Targets<'t>>,
    ) -> Result<LossValue> {
        let targets = targets.into();
        self.validate(input.len(), rows, classes, &targets, None)?;
        let run = cross_entropy_gpu::forward_host(
            ctx,
            self,
            HostInput::Half(input),
            rows,
            classes,
            &targets,
            None,
            Waiting::Block,
        );
        Ok(pollster::block_on(run)?.loss)
    }

    /// [`CrossEntropy::forward_backward`] on f16 or bf16 input; the gradient is f32.
    pub fn forward_backward_half<'t>(
        &self,
        ctx: &GpuContext,
        input: HalfInput<'_>,
        rows: usize,
        classes: usize,
        targets: impl Into<Targets<'t>>,
        upstream: Upstream<'_>,
    ) -> Result<ForwardBackward> {
        let targets = targets.into();
        self.validate(input.len(), rows, classes, &targets, Some(upstream))?;
        let run = cross_entropy_gpu::forward_host(
            ctx,
            self,
            HostInput::Half(input),
            rows,
            classes,
            &targets,
            Some(upstream),
            Waiting::Block,
        );
        pollster::block_on(run)
    }

    /// The loss and `∂loss/∂input` on the GPU in one call: pass 1 computes the row
    /// statistics and losses, pass 2 the gradient, reading the input once more. The
    /// uploaded input is overwritten by the gradient on the device (no second `[N, C]`
    /// buffer) and read back.
    pub fn forward_backward<'t>(
        &self,
        ctx: &GpuContext,
        input: &[f32],
        rows: usize,
        classes: usize,
        targets: impl Into<Targets<'t>>,
        upstream: Upstream<'_>,
    ) -> Result<ForwardBackward> {
        let targets = targets.into();
        self.validate(input.len(), rows, classes, &targets, Some(upstream))?;
        pollster::block_on(cross_entropy_gpu::forward_host(
            ctx,
            self,
            HostInput::F32(input),
            rows,
            classes,
            &targets,
            Some(upstream),
            Waiting::Block,
        ))
    }

    /// Computes the loss on an input and class-index targets already in GPU buffers.
    /// Targets are checked on the GPU: an out-of-range one comes back as
    /// [`LossError::TargetOutOfRange`], and nothing is read out of bounds.
    pub fn forward_buffers<'b>(
        &self,
        ctx: &GpuContext,
        input: impl Into<InputAt<'b>>,
        rows: usize,
        classes: usize,
        targets: GpuTargets<'_>,
    ) -> Result<LossValue> {
        self.validate_shape(rows.saturating_mul(classes), rows, classes, rows, false, None)?;
        Ok(cross_entropy_gpu::forward_buffers(ctx, self, input.into(), rows, classes, targets, None)?.loss)
    }

    /// Loss and gradient on buffers the caller owns, writing `∂loss/∂input` in place over
    /// the input: forward + backward needs the input plus O(N) of device memory. Nothing
    /// `[N, C]` is read back. A target found out of range on the GPU is reported as
    /// [`LossError::TargetOutOfRange`]; that row's gradient is then NaN.
    pub fn forward_backward_in_place<'b>(
        &self,
        ctx: &GpuContext,
        input: impl Into<InputAt<'b>>,
        rows: usize,
        classes: usize,
        targets: GpuTargets<'_>,
        upstream: GpuUpstream<'_>,
    ) -> Result<ForwardBackward> {
        self.validate_shape(rows.saturating_mul(classes), rows, classes, rows, false, None)?;
        let grad = Some((GradInto::InPlace, upstream));
        cross_entropy_gpu::forward_buffers(ctx, self, input.into(), rows, classes, targets, grad)
    }

    /// Records the loss (and, if `outputs.grad` says so, the gradient) into the caller's
    /// `encoder`, reading the caller's buffers and writing `outputs`; submits nothing and
    /// copies nothing to the host. Class-index targets are checked on the GPU: read
    /// `outputs.status` after the submission to learn of a bad one. Validates shapes and
    /// buffer sizes first.
    #[allow(clippy::too_many_arguments)]
    pub fn encode<'b>(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: impl Into<InputAt<'b>>,
        rows: usize,
        classes: usize,
        targets: GpuTargets<'_>,
        outputs: &CrossEntropyOutputs<'_>,
    ) -> Result<()> {
        self.validate_shape(rows.saturating_mul(classes), rows, classes, rows, false, None)?;
        let input: InputAt<'_> = input.into();
        let inputs = cross_entropy_gpu::Inputs {
            input: input.at,
            format: input.format,
            rows,
            classes,
            targets: (targets.at, TargetLayout::Indices(targets.width)),
        };
        if rows == 0 {
            return Ok(());
        }
        cross_entropy_gpu::encode(ctx, encoder, self, &inputs, outputs)
    }

    /// [`CrossEntropy::encode`] with probability targets `[N, C]` (f32) in a GPU buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_with_probabilities<'b>(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: impl Into<InputAt<'b>>,
        rows: usize,
        classes: usize,
        targets: BufferAt<'_>,
        outputs: &CrossEntropyOutputs<'_>,
    ) -> Result<()> {
        let elements = rows.saturating_mul(classes);
        self.validate_shape(elements, rows, classes, elements, true, None)?;
        let input: InputAt<'_> = input.into();
        let inputs = cross_entropy_gpu::Inputs {
            input: input.at,
            format: input.format,
            rows,
            classes,
            targets: (targets, TargetLayout::Probabilities),
        };
        if rows == 0 {
            return Ok(());
        }
        cross_entropy_gpu::encode(ctx, encoder, self, &inputs, outputs)
    }

    /// Computes the loss with the f64 CPU reference (rounded to f32 at the end).
    pub fn forward_cpu<'t>(
        &self,
        input: &[f32],
        rows: usize,
        classes: usize,
        targets: impl Into<Targets<'t>>,
    ) -> Result<LossValue> {
        let targets = targets.into();
        self.validate(input.len(), rows, classes, &targets, None)?;
        let targets64 = widen_targets(&targets);
        let losses = cpu::reference_rows(input, classes, targets64.as_ref(), &self.reference_options());
        Ok(self.reduce_rows(rows, &losses))
    }

    /// Loss and gradient with the f64 CPU reference (rounded to f32 at the end), with the
    /// per-row outputs when asked for.
    pub fn forward_backward_cpu<'t>(
        &self,
        input: &[f32],
        rows: usize,
        classes: usize,
        targets: impl Into<Targets<'t>>,
        upstream: Upstream<'_>,
    ) -> Result<ForwardBackward> {
        let targets = targets.into();
        self.validate(input.len(), rows, classes, &targets, Some(upstream))?;
        let targets64 = widen_targets(&targets);
        let opts = self.reference_options();
        let losses = cpu::reference_rows(input, classes, targets64.as_ref(), &opts);
        let scale = self.row_scale(&losses, upstream);
        let grad = cpu::reference_grad(input, classes, targets64.as_ref(), &opts, &scale);
        let (lse, argmax, accuracy) = if self.row_outputs {
            let lse: Vec<f32> = input
                .chunks_exact(classes.max(1))
                .map(|row| {
                    let capped: Vec<f32> = row
                        .iter()
                        .map(|&x| opts.softcap.map_or(f64::from(x), |c| c * (f64::from(x) / c).tanh()) as f32)
                        .collect();
                    cpu::logsumexp(&capped) as f32
                })
                .collect();
            let argmax: Vec<u32> = input.chunks_exact(classes.max(1)).map(cpu::argmax).collect();
            let accuracy = cross_entropy_gpu::accuracy_of(&argmax, &widen_indices(&targets), self.ignore_index);
            (
                Some(lse),
                Some(argmax),
                (!targets.is_probabilities()).then_some(accuracy),
            )
        } else {
            (None, None, None)
        };
        Ok(ForwardBackward {
            loss: self.reduce_rows(rows, &losses),
            grad: grad.iter().map(|&g| g as f32).collect(),
            lse,
            argmax,
            accuracy,
        })
    }

    /// The loss with the fast CPU backend: f32, vectorised exp, rows in parallel (rayon),
    /// deterministic. Within the GPU's tolerances of [`CrossEntropy::forward_cpu`]. Soft-cap
    /// and non-logit inputs use the reference per row (in parallel).
    pub fn forward_cpu_fast<'t>(
        &self,
        input: &[f32],
        rows: usize,
        classes: usize,
        targets: impl Into<Targets<'t>>,
    ) -> Result<LossValue> {
        let targets = targets.into();
        self.validate(input.len(), rows, classes, &targets, None)?;
        if rows == 0 {
            return Ok(self.reduce_rows(
                0,
                &cpu::RowLosses {
                    loss: Vec::new(),
                    weight: Vec::new(),
                },
            ));
        }
        let indices = widen_indices(&targets);
        let fast_targets = fast_targets(&targets, &indices);
        let losses = cpu_fast::rows(input, classes, fast_targets, &self.reference_options());
        Ok(self.reduce_rows(rows, &losses))
    }

    /// Loss and gradient with the fast CPU backend (see [`CrossEntropy::forward_cpu_fast`]).
    pub fn forward_backward_cpu_fast<'t>(
        &self,
        input: &[f32],
        rows: usize,
        classes: usize,
        targets: impl Into<Targets<'t>>,
        upstream: Upstream<'_>,
    ) -> Result<ForwardBackward> {
        let targets = targets.into();
        self.validate(input.len(), rows, classes, &targets, Some(upstream))?;
        let indices = widen_indices(&targets);
        let fast_targets = fast_targets(&targets, &indices);
        let opts = self.reference_options();
        let (losses, grad) = cpu_fast::rows_and_grad(input, classes.max(1), fast_targets, &opts, |l| {
            self.row_scale(l, upstream)
        });
        Ok(ForwardBackward {
            loss: self.reduce_rows(rows, &losses),
            grad,
            lse: None,
            argmax: None,
            accuracy: None,
        })
    }

    /// The reference's view of these options.
    pub fn reference_options(&self) -> cpu::RefOptions<'_> {
        cpu::RefOptions {
            weight: self.weights(),
            ignore_index: self.ignore_index,
            label_smoothing: self.label_smoothing,
            kind: self.input,
            epsilon: self.epsilon,
            softcap: self.softcap,
            z_loss: self.z_loss,
        }
    }

    /// Each row's upstream scale g_n: upstream, upstream / Σ weights (mean), or per row.
    fn row_scale(&self, losses: &cpu::RowLosses, upstream: Upstream<'_>) -> Vec<f64> {
        let rows = losses.loss.len();
        match (upstream, self.reduction) {
            (Upstream::Values(v), _) => v.iter().map(|&g| f64::from(g)).collect(),
            (Upstream::Scalar(g), Reduction::Mean) => {
                let divisor: f64 = losses.weight.iter().sum();
                vec![f64::from(g) / divisor; rows]
            }
            (Upstream::Scalar(g), _) => vec![f64::from(g); rows],
        }
    }

    fn reduce_rows(&self, rows: usize, losses: &cpu::RowLosses) -> LossValue {
        match self.reduction {
            Reduction::None => LossValue::Tensor {
                shape: vec![rows],
                values: losses.loss.iter().map(|&l| l as f32).collect(),
            },
            Reduction::Sum => LossValue::Scalar(losses.sum() as f32),
            _ => LossValue::Scalar(losses.mean() as f32),
        }
    }

    /// Shapes, options and host targets, before anything is dispatched.
    fn validate(
        &self,
        input_len: usize,
        rows: usize,
        classes: usize,
        targets: &Targets<'_>,
        upstream: Option<Upstream<'_>>,
    ) -> Result<()> {
        let probabilities = targets.is_probabilities();
        self.validate_shape(input_len, rows, classes, targets.len(), probabilities, upstream)?;
        self.check_targets(classes, targets)
    }

    /// Shapes and options, before anything is dispatched.
    fn validate_shape(
        &self,
        input_len: usize,
        rows: usize,
        classes: usize,
        targets_len: usize,
        probabilities: bool,
        upstream: Option<Upstream<'_>>,
    ) -> Result<()> {
        let loss = if self.input == InputKind::LogProbabilities {
            "nll"
        } else {
            "cross-entropy"
        };
        if classes == 0 {
            return Err(LossError::ZeroClasses { rows });
        }
        let expected = rows.checked_mul(classes).ok_or_else(|| LossError::TooLarge {
            what: "input",
            detail: format!("[{rows}, {classes}] overflows usize"),
        })?;
        if input_len != expected {
            return Err(LossError::LengthMismatch {
                what: "input",
                shape: format!("[{rows}, {classes}]"),
                expected,
                actual: input_len,
            });
        }
        let (target_shape, target_len) = if probabilities {
            (format!("[{rows}, {classes}] (probabilities, like the input)"), expected)
        } else {
            (
                format!("[{rows}] (one class index per row of the input [{rows}, {classes}])"),
                rows,
            )
        };
        if targets_len != target_len {
            return Err(LossError::LengthMismatch {
                what: "targets",
                shape: target_shape,
                expected: target_len,
                actual: targets_len,
            });
        }
        if let Some(weight) = &self.weight {
            check_weights("weight", weight, classes, &format!("[{rows}, {classes}]"))?;
        }
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(LossError::LabelSmoothing(self.label_smoothing));
        }
        if self.label_smoothing > 0.0 && self.input == InputKind::LogProbabilities {
            return Err(LossError::Unsupported {
                loss,
                option: "label smoothing",
            });
        }
        if probabilities && self.input == InputKind::LogProbabilities {
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
        if self.input == InputKind::Probabilities && !(self.epsilon.is_finite() && self.epsilon >= 0.0) {
            return Err(LossError::BadEpsilon(self.epsilon));
        }
        let logits_only = [
            (self.z_loss != 0.0, "z-loss"),
            (self.softcap.is_some(), "softcap"),
            (self.row_outputs, "row outputs (lse, argmax, accuracy)"),
        ];
        for (on, option) in logits_only {
            if on && self.input != InputKind::Logits {
                return Err(LossError::Unsupported { loss, option });
            }
        }
        if !self.z_loss.is_finite() {
            return Err(LossError::BadOption {
                option: "z_loss",
                value: self.z_loss,
            });
        }
        if let Some(cap) = self.softcap.filter(|c| !(c.is_finite() && *c > 0.0)) {
            return Err(LossError::BadOption {
                option: "softcap",
                value: cap,
            });
        }
        match upstream {
            Some(Upstream::Values(_)) if self.reduction != Reduction::None => Err(LossError::Unsupported {
                loss,
                option: "a per-row upstream gradient with a reduced loss (use Upstream::Scalar)",
            }),
            Some(Upstream::Values(values)) if values.len() != rows => Err(LossError::LengthMismatch {
                what: "upstream",
                shape: format!("[{rows}] (one per row)"),
                expected: rows,
                actual: values.len(),
            }),
            _ => Ok(()),
        }
    }

    /// The first class-index target outside `[0, C)` that is not `ignore_index`.
    fn check_targets(&self, classes: usize, targets: &Targets<'_>) -> Result<()> {
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

/// Per-class (or per-last-axis) weights: one per class, finite and non-negative.
pub(crate) fn check_weights(what: &'static str, weight: &[f32], classes: usize, input_shape: &str) -> Result<()> {
    if weight.len() != classes {
        return Err(LossError::LengthMismatch {
            what,
            shape: format!("[{classes}] (one per class of the input {input_shape})"),
            expected: classes,
            actual: weight.len(),
        });
    }
    if let Some((index, &value)) = weight.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
        return Err(LossError::BadWeight { what, index, value });
    }
    Ok(())
}

/// The targets as the reference takes them (indices as i64, probabilities as f64).
fn widen_targets(targets: &Targets<'_>) -> OwnedTargets {
    match targets {
        Targets::Probabilities(t) => OwnedTargets::Probabilities(t.iter().map(|&v| f64::from(v)).collect()),
        _ => OwnedTargets::Indices((0..targets.len()).filter_map(|r| targets.index(r)).collect()),
    }
}

/// Owned reference targets.
enum OwnedTargets {
    Indices(Vec<i64>),
    Probabilities(Vec<f64>),
}

impl OwnedTargets {
    fn as_ref(&self) -> cpu::RefTargets<'_> {
        match self {
            OwnedTargets::Indices(t) => cpu::RefTargets::Indices(t),
            OwnedTargets::Probabilities(t) => cpu::RefTargets::Probabilities(t),
        }
    }
}

/// Class-index targets widened to i64 (empty for probabilities).
fn widen_indices(targets: &Targets<'_>) -> Vec<i64> {
    (0..targets.len()).filter_map(|r| targets.index(r)).collect()
}

/// The fast backend's view of the targets (`indices` from [`widen_indices`]).
fn fast_targets<'a>(targets: &Targets<'a>, indices: &'a [i64]) -> cpu_fast::FastTargets<'a> {
    match targets {
        Targets::Probabilities(t) => cpu_fast::FastTargets::Probabilities(t),
        _ => cpu_fast::FastTargets::Indices(indices),
    }
}
