//! Losses with one value per element, over inputs of any shape: `F.mse_loss`,
//! `F.binary_cross_entropy`, `F.binary_cross_entropy_with_logits` and `F.kl_div`.

use bytemuck::{Pod, Zeroable};

use crate::binding::{entries, grid, items_per_binding, window};
use crate::context::GpuContext;
use crate::cpu;
use crate::cross_entropy::check_weights;
use crate::cross_entropy::Upstream;
use crate::device_io::{finish_and_read, read_mapped, staging, storage, uniform, upload};
use crate::error::{LossError, Result};
use crate::kernels::{ElementwiseKind, Kernel, Layout};
use crate::reduce::{encode_batch_sum, Finish};
use crate::reduction::{LossValue, Reduction};

/// The bytes of optional per-class values; a 4-byte placeholder when absent.
fn bytes_or_placeholder(values: &Option<Vec<f32>>) -> &[u8] {
    values.as_deref().map_or(&[0_u8; 4][..], bytemuck::cast_slice)
}

/// Invocations per workgroup of `elementwise_loss` (GROUP_SIZE in WGSL).
const GROUP_SIZE: u64 = 256;
/// Workgroups per dispatch at most; the kernel strides over the rest.
const MAX_GROUPS: u64 = 4096;

/// An elementwise loss with its options. `weight` and `pos_weight` have one entry per
/// index of the last axis and broadcast over the others.
///
/// The seeds' textbook `E = ½ Σ (y - t)²` is `0.5 ×` [`ElementwiseLoss::mse`] with
/// [`Reduction::Sum`].
///
/// ```
/// # fn main() -> Result<(), wgpu_loss::LossError> {
/// use wgpu_loss::{ElementwiseLoss, Reduction};
/// let e = ElementwiseLoss::mse().reduction(Reduction::Sum).forward_cpu(&[0.1, 0.05, 0.05, 0.8], &[0.0, 1.0, 0.0, 0.0], &[4])?;
/// assert!((0.5 * e.scalar().unwrap() - 0.7775).abs() < 1e-6);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ElementwiseLoss {
    kind: ElementwiseKind,
    weight: Option<Vec<f32>>,
    pos_weight: Option<Vec<f32>>,
    log_target: bool,
    reduction: Reduction,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    count: u32,
    last_dim: u32,
    phase: u32,
    input_offset: u32,
    target_offset: u32,
    out_offset: u32,
    upstream_offset: u32,
    scale: f32,
}

impl ElementwiseLoss {
    fn new(kind: ElementwiseKind) -> Self {
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

    /// Which loss this is.
    pub fn kind(&self) -> ElementwiseKind {
        self.kind
    }

    fn name(&self) -> &'static str {
        match self.kind {
            ElementwiseKind::Mse => "mse",
            ElementwiseKind::Bce => "bce",
            ElementwiseKind::BceWithLogits => "bce-with-logits",
            ElementwiseKind::KlDiv => "kl-div",
        }
    }

    /// Computes the loss on the GPU over `input` and `target` of `shape`.
    pub fn forward(&self, ctx: &GpuContext, input: &[f32], target: &[f32], shape: &[usize]) -> Result<LossValue> {
        let count = self.validate(input, target, shape, None)?;
        if count == 0 {
            return Ok(self.empty(shape));
        }
        Ok(self.run(ctx, input, target, shape, None)?.0)
    }

    /// The loss and `∂loss/∂input` on the GPU in one submission. `upstream` is a scalar
    /// (default 1) or, for reduction `none`, one value per element.
    pub fn forward_backward(
        &self,
        ctx: &GpuContext,
        input: &[f32],
        target: &[f32],
        shape: &[usize],
        upstream: Upstream<'_>,
    ) -> Result<(LossValue, Vec<f32>)> {
        let count = self.validate(input, target, shape, Some(upstream))?;
        if count == 0 {
            return Ok((self.empty(shape), Vec::new()));
        }
        self.run(ctx, input, target, shape, Some(upstream))
    }

    /// Loss and gradient with the f64 CPU reference (rounded to f32 at the end).
    pub fn forward_backward_cpu(
        &self,
        input: &[f32],
        target: &[f32],
        shape: &[usize],
        upstream: Upstream<'_>,
    ) -> Result<(LossValue, Vec<f32>)> {
        let count = self.validate(input, target, shape, Some(upstream))?;
        let loss = self.forward_cpu(input, target, shape)?;
        let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        let last_dim = shape.last().copied().unwrap_or(1);
        let d = cpu::elementwise_grad(
            self.kind,
            &widen(input),
            &widen(target),
            self.weight.as_deref(),
            self.pos_weight.as_deref(),
            self.log_target,
            last_dim,
        );
        let grad = d
            .iter()
            .enumerate()
            .map(|(i, g)| (g * self.element_scale(shape, count, upstream, i)) as f32)
            .collect();
        Ok((loss, grad))
    }

    /// g for element `i`: the upstream over the reduction's divisor, or the element's own.
    fn element_scale(&self, shape: &[usize], count: usize, upstream: Upstream<'_>, i: usize) -> f64 {
        match upstream {
            Upstream::Values(v) => f64::from(v[i]),
            Upstream::Scalar(g) => match self.finish(shape, count) {
                Some(Finish::Divide(d)) => f64::from(g) / d,
                _ => f64::from(g),
            },
        }
    }

    /// Records the loss (and gradient) kernels chunk by chunk, reduces, reads back.
    fn run(
        &self,
        ctx: &GpuContext,
        input: &[f32],
        target: &[f32],
        shape: &[usize],
        grad: Option<Upstream<'_>>,
    ) -> Result<(LossValue, Vec<f32>)> {
        let count = input.len();
        let last_dim = shape.last().copied().unwrap_or(1);
        let device = &ctx.device;
        let empty = wgpu::BufferUsages::empty();
        let input_buf = upload(ctx, "elementwise.input", bytemuck::cast_slice(input), empty)?;
        let target_buf = upload(ctx, "elementwise.target", bytemuck::cast_slice(target), empty)?;
        let weight_buf = upload(ctx, "elementwise.weight", bytes_or_placeholder(&self.weight), empty)?;
        let pos_buf = upload(
            ctx,
            "elementwise.pos_weight",
            bytes_or_placeholder(&self.pos_weight),
            empty,
        )?;
        let upstream_buf = match grad {
            Some(Upstream::Values(v)) => upload(ctx, "elementwise.upstream", bytemuck::cast_slice(v), empty)?,
            _ => storage(ctx, "elementwise.upstream", 4)?,
        };
        let per_element = matches!(grad, Some(Upstream::Values(_)));
        let scale = grad.map_or(0.0, |u| self.element_scale(shape, count, u, 0) as f32);
        let out = storage(ctx, "elementwise.out", count as u64 * 4)?;
        let grad_buf = match grad {
            Some(_) => Some(storage(ctx, "elementwise.grad", count as u64 * 4)?),
            None => None,
        };
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("elementwise"),
        });
        let kernel = |grad: bool| Kernel::Elementwise {
            loss: self.kind,
            weighted: self.weight.is_some(),
            pos_weighted: self.pos_weight.is_some(),
            log_target: self.log_target,
            grad,
            per_element_upstream: grad && per_element,
        };
        let layout = ctx.pipelines.bind_group_layout(Layout::Elementwise);
        let per_chunk = items_per_binding(ctx, 4);
        let mut begin = 0_u64;
        while begin < count as u64 {
            let len = per_chunk.min(count as u64 - begin);
            let input_w = window(ctx, "input", &input_buf, begin * 4, len * 4)?;
            let target_w = window(ctx, "target", &target_buf, begin * 4, len * 4)?;
            let upstream_w = if per_element {
                window(ctx, "upstream", &upstream_buf, begin * 4, len * 4)?
            } else {
                window(ctx, "upstream", &upstream_buf, 0, 4)?
            };
            let outputs = std::iter::once((false, &out)).chain(grad_buf.as_ref().map(|g| (true, g)));
            for (is_grad, destination) in outputs {
                let out_w = window(ctx, "output", destination, begin * 4, len * 4)?;
                let params = Params {
                    count: len as u32,
                    last_dim: last_dim as u32,
                    phase: (begin % last_dim as u64) as u32,
                    input_offset: input_w.word_shift,
                    target_offset: target_w.word_shift,
                    out_offset: out_w.word_shift,
                    upstream_offset: upstream_w.word_shift,
                    scale,
                };
                let params = uniform(ctx, "elementwise.params", bytemuck::bytes_of(&params))?;
                let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("elementwise"),
                    layout,
                    entries: &entries(vec![
                        params.as_entire_binding(),
                        input_w.binding(),
                        target_w.binding(),
                        weight_buf.as_entire_binding(),
                        pos_buf.as_entire_binding(),
                        upstream_w.binding(),
                        out_w.binding(),
                    ]),
                });
                let pipeline = ctx.pipelines.get(kernel(is_grad))?;
                let (x, y) = grid(ctx, len.div_ceil(GROUP_SIZE).min(MAX_GROUPS))?;
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("elementwise"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(x, y, 1);
            }
            begin += len;
        }
        let (loss_source, loss_len) = match self.finish(shape, count) {
            None => (out.clone(), count as u64 * 4),
            Some(finish) => {
                let result = storage(ctx, "elementwise.result", 8)?;
                encode_batch_sum(ctx, &mut encoder, &out, None, count as u64, finish, (&result).into())?;
                (result, 4)
            }
        };
        let grad_stage = match &grad_buf {
            Some(g) => {
                let stage = staging(ctx, "elementwise.grad_readback", count as u64 * 4)?;
                encoder.copy_buffer_to_buffer(g, 0, &stage, 0, count as u64 * 4);
                Some(stage)
            }
            None => None,
        };
        let bytes = finish_and_read(ctx, encoder, &loss_source, 0, loss_len)?;
        let grad_values = match grad_stage {
            Some(stage) => {
                bytemuck::pod_collect_to_vec(&pollster::block_on(read_mapped(device, &stage, count as u64 * 4))?)
            }
            None => Vec::new(),
        };
        let loss = LossValue::from_gpu(self.reduction, shape.to_vec(), bytemuck::pod_collect_to_vec(&bytes));
        Ok((loss, grad_values))
    }

    /// Computes the loss with the f64 CPU reference (rounded to f32 at the end).
    pub fn forward_cpu(&self, input: &[f32], target: &[f32], shape: &[usize]) -> Result<LossValue> {
        let count = self.validate(input, target, shape, None)?;
        let last_dim = shape.last().copied().unwrap_or(1);
        let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        let losses = cpu::elementwise_losses(
            self.kind,
            &widen(input),
            &widen(target),
            self.weight.as_deref(),
            self.pos_weight.as_deref(),
            self.log_target,
            last_dim,
        );
        let sum: f64 = losses.iter().sum();
        Ok(match self.finish(shape, count) {
            None => LossValue::Tensor {
                shape: shape.to_vec(),
                values: losses.iter().map(|&l| l as f32).collect(),
            },
            Some(Finish::Sum) => LossValue::Scalar(sum as f32),
            Some(Finish::Divide(d)) => LossValue::Scalar((sum / d) as f32),
            Some(Finish::WeightedMean) => unreachable!("elementwise losses have no row weights"),
        })
    }

    /// How the sum becomes the result: mean over all elements, batchmean over `shape[0]`.
    fn finish(&self, shape: &[usize], count: usize) -> Option<Finish> {
        match self.reduction {
            Reduction::None => None,
            Reduction::Sum => Some(Finish::Sum),
            Reduction::Mean => Some(Finish::Divide(count as f64)),
            Reduction::BatchMean => Some(Finish::Divide(shape.first().copied().unwrap_or(1) as f64)),
        }
    }

    /// The result over no elements: empty, 0, or 0 over the count (NaN when it is 0).
    fn empty(&self, shape: &[usize]) -> LossValue {
        match self.finish(shape, 0) {
            None => LossValue::Tensor {
                shape: shape.to_vec(),
                values: Vec::new(),
            },
            Some(Finish::Divide(d)) => LossValue::Scalar((0.0 / d) as f32),
            Some(_) => LossValue::Scalar(0.0),
        }
    }

    /// Shapes, options and values; returns the element count.
    fn validate(
        &self,
        input: &[f32],
        target: &[f32],
        shape: &[usize],
        upstream: Option<Upstream<'_>>,
    ) -> Result<usize> {
        let loss = self.name();
        let shape_text = format!("{shape:?}");
        let count = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| LossError::TooLarge {
                what: "input",
                detail: format!("shape {shape_text} overflows usize"),
            })?;
        for (what, len) in [("input", input.len()), ("target", target.len())] {
            if len != count {
                return Err(LossError::LengthMismatch {
                    what,
                    shape: shape_text.clone(),
                    expected: count,
                    actual: len,
                });
            }
        }
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
        if self.kind == ElementwiseKind::Bce {
            // PyTorch refuses inputs outside [0, 1] (NaN included); targets must be too.
            for (what, values) in [("input", input), ("target", target)] {
                if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
                    return Err(LossError::NotAProbability { what, index, value });
                }
            }
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
