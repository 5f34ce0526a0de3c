//! Losses with one value per element, over inputs of any shape: `F.mse_loss`,
//! `F.binary_cross_entropy`, `F.binary_cross_entropy_with_logits` and `F.kl_div`.

use bytemuck::{Pod, Zeroable};

use crate::binding::{entries, grid, items_per_binding, window, Window};
use crate::context::GpuContext;
use crate::cpu;
use crate::cpu_fast;
use crate::cross_entropy::check_weights;
use crate::cross_entropy::Upstream;
use crate::cross_entropy_gpu::{check_room, BufferAt};
use crate::device_io::{constant, finish_and_read, read_mapped, staging, storage, uniform, upload};
use crate::error::{LossError, Result};
use crate::kernels::{ElementwiseKind, Kernel, Layout};
use crate::reduce::{encode_batch_sum, Finish};
use crate::reduction::{LossValue, Reduction};

/// The upstream gradient of a recorded elementwise backward pass.
#[derive(Debug, Clone, Copy)]
pub enum ElementUpstream<'a> {
    /// `∂L/∂loss` of a reduced loss; for reduction `none`, the same for every element.
    Scalar(f32),
    /// Reduction `none`: one f32 per element, in a GPU buffer.
    PerElement(BufferAt<'a>),
}

/// Where a recorded elementwise loss writes (caller's buffers, 4-aligned byte offsets).
#[derive(Debug, Clone, Copy)]
pub struct ElementwiseOutputs<'a> {
    /// Reduced: two f32, `[loss, divisor]`; `none`: one f32 per element.
    pub loss: BufferAt<'a>,
    /// The gradient (one f32 per element) and its upstream.
    pub grad: Option<(BufferAt<'a>, ElementUpstream<'a>)>,
}

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

    /// The loss with the fast CPU backend: f32 with a vectorisable exp and ln, elements in
    /// parallel chunks (rayon), summed in f64 in a fixed order (deterministic).
    pub fn forward_cpu_fast(&self, input: &[f32], target: &[f32], shape: &[usize]) -> Result<LossValue> {
        let count = self.validate(input, target, shape, None)?;
        Ok(self.reduce_f32(shape, count, self.fast_values(input, target, shape, false)))
    }

    /// Loss and gradient with the fast CPU backend.
    pub fn forward_backward_cpu_fast(
        &self,
        input: &[f32],
        target: &[f32],
        shape: &[usize],
        upstream: Upstream<'_>,
    ) -> Result<(LossValue, Vec<f32>)> {
        let loss = self.forward_cpu_fast(input, target, shape)?;
        let count = input.len();
        let mut grad = self.fast_values(input, target, shape, true);
        for (i, g) in grad.iter_mut().enumerate() {
            *g *= self.element_scale(shape, count, upstream, i) as f32;
        }
        Ok((loss, grad))
    }

    /// Every element's loss (or, with `grad`, derivative) on the fast CPU backend.
    fn fast_values(&self, input: &[f32], target: &[f32], shape: &[usize], grad: bool) -> Vec<f32> {
        let last_dim = shape.last().copied().unwrap_or(1);
        let (weight, pos_weight) = (self.weight.as_deref(), self.pos_weight.as_deref());
        cpu_fast::elementwise(
            self.kind,
            input,
            target,
            weight,
            pos_weight,
            self.log_target,
            last_dim,
            grad,
        )
    }

    /// Per-element f32 values reduced as the reduction says (sums in f64, fixed order).
    fn reduce_f32(&self, shape: &[usize], count: usize, values: Vec<f32>) -> LossValue {
        match self.finish(shape, count) {
            None => LossValue::Tensor {
                shape: shape.to_vec(),
                values,
            },
            Some(Finish::Sum) => LossValue::Scalar(cpu_fast::sum_fixed(&values) as f32),
            Some(Finish::Divide(d)) => LossValue::Scalar((cpu_fast::sum_fixed(&values) / d) as f32),
            Some(Finish::WeightedMean) => unreachable!("elementwise losses have no row weights"),
        }
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

    /// Records the loss (and, with `outputs.grad`, the gradient) into the caller's
    /// `encoder`, reading `input` and `target` (f32, `shape`) from the caller's buffers and
    /// writing `outputs`; submits nothing and copies nothing to the host.
    pub fn encode(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: BufferAt<'_>,
        target: BufferAt<'_>,
        shape: &[usize],
        outputs: &ElementwiseOutputs<'_>,
    ) -> Result<()> {
        let count = self.validate_shape(shape, None)?;
        let text = format!("{shape:?}");
        let bytes = count as u64 * 4;
        check_room("input", input, bytes, &text)?;
        check_room("target", target, bytes, &text)?;
        let loss_bytes = if self.reduction == Reduction::None { bytes } else { 8 };
        check_room("loss", outputs.loss, loss_bytes, &text)?;
        if let Some((at, upstream)) = outputs.grad {
            check_room("grad", at, bytes, &text)?;
            if let ElementUpstream::PerElement(u) = upstream {
                if self.reduction != Reduction::None {
                    return Err(LossError::Unsupported {
                        loss: self.name(),
                        option: "a per-element upstream gradient with a reduced loss",
                    });
                }
                check_room("upstream", u, bytes, &text)?;
            }
        }
        if count == 0 {
            return Ok(());
        }
        self.encode_unchecked(ctx, encoder, input, target, shape, outputs)
    }

    fn encode_unchecked(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: BufferAt<'_>,
        target: BufferAt<'_>,
        shape: &[usize],
        outputs: &ElementwiseOutputs<'_>,
    ) -> Result<()> {
        let count: usize = shape.iter().product();
        let last_dim = shape.last().copied().unwrap_or(1);
        let device = &ctx.device;
        let empty = wgpu::BufferUsages::empty();
        // Recorded for later submission: host data only in immutable (content-cached) buffers.
        let weight_buf = constant(ctx, "elementwise.weight", bytes_or_placeholder(&self.weight), empty)?;
        let pos_buf = constant(
            ctx,
            "elementwise.pos_weight",
            bytes_or_placeholder(&self.pos_weight),
            empty,
        )?;
        let placeholder = storage(ctx, "elementwise.placeholder", 4)?;
        let (per_element, upstream_at, scale) = match outputs.grad.map(|(_, u)| u) {
            Some(ElementUpstream::PerElement(at)) => (true, at, 0.0),
            Some(ElementUpstream::Scalar(g)) => (
                false,
                BufferAt::from(&placeholder),
                self.element_scale(shape, count, Upstream::Scalar(g), 0) as f32,
            ),
            None => (false, BufferAt::from(&placeholder), 0.0),
        };
        // Losses per element: the caller's output for `none`, else an own buffer to reduce.
        let own = (self.reduction != Reduction::None)
            .then(|| storage(ctx, "elementwise.out", count as u64 * 4))
            .transpose()?;
        let values_at = own.as_ref().map_or(outputs.loss, BufferAt::from);
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
            fn span<'b>(
                ctx: &GpuContext,
                what: &'static str,
                at: BufferAt<'b>,
                begin: u64,
                len: u64,
            ) -> Result<Window<'b>> {
                window(ctx, what, at.buffer, at.offset + begin * 4, len * 4)
            }
            let input_w = span(ctx, "input", input, begin, len)?;
            let target_w = span(ctx, "target", target, begin, len)?;
            let upstream_w = if per_element {
                span(ctx, "upstream", upstream_at, begin, len)?
            } else {
                window(ctx, "upstream", upstream_at.buffer, upstream_at.offset, 4)?
            };
            let destinations = std::iter::once((false, values_at)).chain(outputs.grad.map(|(at, _)| (true, at)));
            for (is_grad, destination) in destinations {
                let out_w = span(ctx, "output", destination, begin, len)?;
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
        if let (Some(values), Some(finish)) = (&own, self.finish(shape, count)) {
            encode_batch_sum(ctx, encoder, values, None, count as u64, finish, outputs.loss)?;
        }
        Ok(())
    }

    /// Uploads, records, submits and reads back (the host-slice path).
    fn run(
        &self,
        ctx: &GpuContext,
        input: &[f32],
        target: &[f32],
        shape: &[usize],
        grad: Option<Upstream<'_>>,
    ) -> Result<(LossValue, Vec<f32>)> {
        let count = input.len() as u64;
        if count * 4 > ctx.max_buffer_bytes() && count > 1 {
            return self.run_groups(ctx, input, target, shape, grad);
        }
        let empty = wgpu::BufferUsages::empty();
        let input_buf = upload(ctx, "elementwise.input", bytemuck::cast_slice(input), empty)?;
        let target_buf = upload(ctx, "elementwise.target", bytemuck::cast_slice(target), empty)?;
        let upstream_buf = match grad {
            Some(Upstream::Values(v)) => Some(upload(ctx, "elementwise.upstream", bytemuck::cast_slice(v), empty)?),
            _ => None,
        };
        let loss_bytes = if self.reduction == Reduction::None {
            count * 4
        } else {
            8
        };
        let loss_out = storage(ctx, "elementwise.loss", loss_bytes)?;
        let grad_out = grad.map(|_| storage(ctx, "elementwise.grad", count * 4)).transpose()?;
        let upstream = match (grad, &upstream_buf) {
            (Some(Upstream::Scalar(g)), _) => Some(ElementUpstream::Scalar(g)),
            (Some(_), Some(b)) => Some(ElementUpstream::PerElement(b.into())),
            _ => None,
        };
        let outputs = ElementwiseOutputs {
            loss: (&loss_out).into(),
            grad: grad_out.as_ref().zip(upstream).map(|(b, u)| (b.into(), u)),
        };
        let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("elementwise"),
        });
        self.encode_unchecked(
            ctx,
            &mut encoder,
            (&input_buf).into(),
            (&target_buf).into(),
            shape,
            &outputs,
        )?;
        let grad_stage = match &grad_out {
            Some(g) => {
                let stage = staging(ctx, "elementwise.grad_readback", count * 4)?;
                encoder.copy_buffer_to_buffer(g, 0, &stage, 0, count * 4);
                Some(stage)
            }
            None => None,
        };
        let loss_len = if self.reduction == Reduction::None {
            count * 4
        } else {
            4
        };
        let bytes = finish_and_read(ctx, encoder, &loss_out, 0, loss_len)?;
        let grad_values = match grad_stage {
            Some(stage) => {
                bytemuck::pod_collect_to_vec(&pollster::block_on(read_mapped(&ctx.device, &stage, count * 4))?)
            }
            None => Vec::new(),
        };
        let loss = LossValue::from_gpu(self.reduction, shape.to_vec(), bytemuck::pod_collect_to_vec(&bytes));
        Ok((loss, grad_values))
    }

    /// [`Self::run`] for inputs larger than the device's largest buffer: groups of whole
    /// last-axis rows (weights index that axis), each its own batch, in order. Per-element
    /// outputs are concatenated; a reduced loss adds the groups' sums (f64, on the host) and
    /// applies the finish, and its gradient scales the upstream by the finish's divisor.
    fn run_groups(
        &self,
        ctx: &GpuContext,
        input: &[f32],
        target: &[f32],
        shape: &[usize],
        grad: Option<Upstream<'_>>,
    ) -> Result<(LossValue, Vec<f32>)> {
        let count = input.len();
        let last_dim = shape.last().copied().unwrap_or(1).max(1);
        let per_buffer = (ctx.max_buffer_bytes() / 4) as usize;
        let unweighted = self.weight.is_none() && self.pos_weight.is_none();
        let group = match (per_buffer / last_dim, unweighted) {
            (0, true) => per_buffer.max(1),
            (0, false) => {
                return Err(LossError::TooLarge {
                    what: "input",
                    detail: format!(
                        "one weighted row of {last_dim} elements is {} bytes; the device's largest buffer is {} bytes",
                        last_dim * 4,
                        ctx.max_buffer_bytes()
                    ),
                })
            }
            (rows, _) => rows * last_dim,
        };
        let finish = self.finish(shape, count);
        let mut part_loss = self.clone();
        part_loss.reduction = if finish.is_some() {
            Reduction::Sum
        } else {
            Reduction::None
        };
        let (mut values, mut total, mut grads) = (Vec::new(), 0.0_f64, Vec::new());
        for begin in (0..count).step_by(group) {
            let end = count.min(begin + group);
            let part_shape = if (end - begin) % last_dim == 0 {
                vec![(end - begin) / last_dim, last_dim]
            } else {
                vec![end - begin]
            };
            let part_grad = match (grad, finish) {
                (Some(Upstream::Values(v)), _) => Some(Upstream::Values(&v[begin..end])),
                (Some(Upstream::Scalar(g)), Some(Finish::Divide(d))) => {
                    Some(Upstream::Scalar((f64::from(g) / d) as f32))
                }
                (other, _) => other,
            };
            let (loss, g) = part_loss.run(ctx, &input[begin..end], &target[begin..end], &part_shape, part_grad)?;
            match loss {
                LossValue::Scalar(v) => total += f64::from(v),
                LossValue::Tensor { values: v, .. } => values.extend(v),
            }
            grads.extend(g);
        }
        let loss = match finish {
            None => LossValue::Tensor {
                shape: shape.to_vec(),
                values,
            },
            Some(Finish::Divide(d)) => LossValue::Scalar((total / d) as f32),
            Some(_) => LossValue::Scalar(total as f32),
        };
        Ok((loss, grads))
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
        let count = self.validate_shape(shape, upstream)?;
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
    fn validate_shape(&self, shape: &[usize], upstream: Option<Upstream<'_>>) -> Result<usize> {
        let loss = self.name();
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
