//! Elementwise losses on the GPU (`shaders/elementwise.wgsl`): the loss and gradient passes
//! over binding-sized pieces, the batch reduction, and the host path with its groups.

use bytemuck::{Pod, Zeroable};

use crate::api::buffers::{BufferAt, GradInto, Outputs};
use crate::api::host::{ForwardBackward, Upstream};
use crate::api::reduction::{LossValue, Reduction};
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::dispatch::{bind, KernelPass};
use crate::gpu::driver::{group_reduction, group_upstream, groups, rows_per_group, Combined};
use crate::gpu::io::{constant, placeholder, read_back, storage, upload, Waiting};
use crate::gpu::kernels::Kernel;
use crate::gpu::reduce::{encode_batch_sum, Finish};
use crate::gpu::tiler::spans;
use crate::gpu::window::{items, items_per_binding, window_of, Window};

use super::spec::{ElementSpec, Elements, ElementsAt};

/// Invocations per workgroup of `elementwise_loss` (GROUP_SIZE in WGSL).
const GROUP_SIZE: u64 = 256;
/// Workgroups per dispatch at most; the kernel strides over the rest. 1024 × 256
/// invocations fill a large GPU; fewer partials to write and sum than 4096 (mse at 64 MiB on
/// lavapipe: 57–60 ms against 70 with 4096).
const MAX_GROUPS: u64 = 1024;

/// The uniform of `elementwise.wgsl` (the WGSL `Params`).
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
    vec4_ok: u32,
    _pad: [u32; 3],
}

/// The bytes of optional per-class values; a 4-byte placeholder when absent.
fn bytes_or_placeholder(values: Option<&[f32]>) -> &[u8] {
    values.map_or(&[0_u8; 4][..], bytemuck::cast_slice)
}

/// The binding of f32 elements `[begin, begin + len)` from `at`, and its word shift.
fn span<'b>(
    ctx: &GpuContext,
    what: &'static str,
    at: BufferAt<'b>,
    begin: u64,
    len: u64,
) -> Result<(wgpu::BindingResource<'b>, u32)> {
    let w = items(ctx, what, at, 4, (begin, len))?;
    Ok((w.binding(), w.word_shift))
}

/// The vec4 view of a window whose first wanted element starts a 16-byte unit.
fn aligned_vec4<'b>(w: &Window<'b>) -> Option<Window<'b>> {
    w.vec4_view().filter(|_| w.word_shift.is_multiple_of(4))
}

/// The spans of a pass (each within a binding) with the workgroups each is launched with.
fn launches(ctx: &GpuContext, count: u64) -> impl Iterator<Item = (u64, u64, u64)> {
    spans(count, items_per_binding(ctx, 4)).map(|(begin, len)| (begin, len, len.div_ceil(GROUP_SIZE).min(MAX_GROUPS)))
}

/// Partial sums a reduced loss pass writes: one per invocation of every launch.
fn partials(ctx: &GpuContext, count: u64) -> u64 {
    launches(ctx, count).map(|(_, _, groups)| groups * GROUP_SIZE).sum()
}

/// One pass of `elementwise.wgsl` over every piece: the loss or the gradient.
struct ElementPass<'a> {
    kernel: Kernel,
    data: &'a ElementsAt<'a>,
    weights: [&'a wgpu::Buffer; 2],
    /// Per-element upstream (or a placeholder) and the scalar scale of a reduced loss.
    upstream: (bool, BufferAt<'a>, f32),
    out: BufferAt<'a>,
    /// Bound where a launch has no vec4 views.
    placeholder: &'a wgpu::Buffer,
}

impl ElementPass<'_> {
    fn record(&self, ctx: &GpuContext, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        let count: u64 = self.data.shape.iter().product::<usize>() as u64;
        let last_dim = self.data.shape.last().copied().unwrap_or(1) as u64;
        let (per_element, upstream_at, scale) = self.upstream;
        let reduced = matches!(self.kernel, Kernel::Elementwise { reduced: true, .. });
        let mut partials_before = 0;
        let mut pass = KernelPass::begin(ctx, encoder, self.kernel)?;
        for (begin, len, groups) in launches(ctx, count) {
            let at = self.data.input.at;
            let eb = self.data.input.format.bytes();
            let input_w = window_of(ctx, "input", at.buffer, at.offset + begin * eb, len * eb, eb)?;
            let (input, input_offset) = (input_w.binding(), input_w.word_shift);
            let target_w = items(ctx, "target", self.data.target, 4, (begin, len))?;
            let (target, target_offset) = (target_w.binding(), target_w.word_shift);
            // Whole vec4s of f32 input and target where both start a 16-byte unit.
            let views = match (eb, aligned_vec4(&input_w), aligned_vec4(&target_w)) {
                (4, Some(i), Some(t)) => Some((i.binding(), t.binding())),
                _ => None,
            };
            let (upstream, upstream_offset) = if per_element {
                span(ctx, "upstream", upstream_at, begin, len)?
            } else {
                span(ctx, "upstream", upstream_at, 0, 1)?
            };
            let (out, out_offset) = if reduced {
                // One partial per invocation, after those of the previous spans.
                let at = span(ctx, "partials", self.out, partials_before, groups * GROUP_SIZE)?;
                partials_before += groups * GROUP_SIZE;
                at
            } else {
                span(ctx, "output", self.out, begin, len)?
            };
            let params = Params {
                count: len as u32,
                last_dim: last_dim as u32,
                phase: (begin % last_dim) as u32,
                input_offset,
                target_offset,
                out_offset,
                upstream_offset,
                scale,
                vec4_ok: u32::from(views.is_some()),
                _pad: [0; 3],
            };
            let [weight, pos_weight] = self.weights;
            let resources = vec![
                input,
                target,
                weight.as_entire_binding(),
                pos_weight.as_entire_binding(),
                upstream,
            ];
            let (input4, target4) = views.unwrap_or_else(|| {
                (
                    self.placeholder.as_entire_binding(),
                    self.placeholder.as_entire_binding(),
                )
            });
            let resources = [resources, vec![input4, target4, out]].concat();
            pass.launch(&bind(ctx, self.kernel, &params, resources)?, groups)?;
        }
        Ok(())
    }
}

/// Records the loss pass (when `outputs.loss` is given), the gradient pass (when
/// `outputs.grad` is) and the reduction, over pieces whose bindings fit.
pub(crate) fn encode(
    spec: &ElementSpec<'_>,
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    data: &ElementsAt<'_>,
    outputs: &Outputs<'_>,
) -> Result<()> {
    let count: usize = data.shape.iter().product();
    let empty = wgpu::BufferUsages::empty();
    // Recorded for later submission: host data only in immutable (content-cached) buffers.
    let weight = constant(ctx, "elementwise.weight", bytes_or_placeholder(spec.weight), empty)?;
    let pos_weight = constant(
        ctx,
        "elementwise.pos_weight",
        bytes_or_placeholder(spec.pos_weight),
        empty,
    )?;
    let placeholder = placeholder(ctx)?;
    let divisor = spec.divisor(data.shape, count);
    let upstream = match outputs.grad.map(|(_, u)| u) {
        Some(Upstream::Values(at)) => (true, at, 0.0),
        Some(Upstream::Scalar(g)) => (
            false,
            (&placeholder).into(),
            (f64::from(g) / divisor.unwrap_or(1.0)) as f32,
        ),
        None => (false, (&placeholder).into(), 0.0),
    };
    // Losses per element into the caller's output for `none`; for a reduced loss, partial
    // sums per invocation into an own buffer, which the batch sum reduces.
    let reduced = outputs.loss.is_some() && divisor.is_some();
    let partial_count = partials(ctx, count as u64);
    let own = reduced
        .then(|| storage(ctx, "elementwise.partials", partial_count * 4))
        .transpose()?;
    let values_at = own.as_ref().map(BufferAt::from).or(outputs.loss);
    let grad_at = match outputs.grad {
        Some((GradInto::Buffer(at), _)) => Some(at),
        _ => None,
    };
    let passes = values_at
        .map(|at| (false, at))
        .into_iter()
        .chain(grad_at.map(|at| (true, at)));
    for (grad, out) in passes {
        let kernel = Kernel::Elementwise {
            loss: spec.kind,
            weighted: spec.weight.is_some(),
            pos_weighted: spec.pos_weight.is_some(),
            log_target: spec.log_target,
            grad,
            per_element_upstream: grad && upstream.0,
            format: data.input.format,
            reduced: reduced && !grad,
        };
        let pass = ElementPass {
            kernel,
            data,
            weights: [&weight, &pos_weight],
            upstream,
            out,
            placeholder: &placeholder,
        };
        pass.record(ctx, encoder)?;
    }
    if let (Some(values), Some(at), Some(d)) = (&own, outputs.loss, divisor) {
        encode_batch_sum(ctx, encoder, values, None, partial_count, Finish::Divide(d), at)?;
    }
    Ok(())
}

/// Uploads, records, submits and reads back (the host path); inputs larger than the
/// device's largest buffer run in groups.
pub(crate) async fn run(
    spec: &ElementSpec<'_>,
    ctx: &GpuContext,
    data: &Elements<'_>,
    grad: Option<Upstream<&[f32]>>,
    waiting: Waiting,
) -> Result<ForwardBackward> {
    let count = data.input.len() as u64;
    // Groups of whole last-axis rows (weights index that axis); unweighted elements may
    // be grouped one by one when a row alone is larger than a buffer.
    let last_dim = data.shape.last().copied().unwrap_or(1).max(1);
    let unweighted = spec.weight.is_none() && spec.pos_weight.is_none();
    let row_len = if unweighted && last_dim as u64 * 4 > ctx.max_buffer_bytes() {
        1
    } else {
        last_dim
    };
    let what = format!("{:?} ({row_len} elements a row)", data.shape);
    if let Some(per_group) = rows_per_group(ctx, data.input.len() / row_len, row_len as u64 * 4, &what)? {
        return Box::pin(run_groups(spec, ctx, data, (grad, waiting), per_group * row_len)).await;
    }
    let empty = wgpu::BufferUsages::empty();
    let input_buf = upload(ctx, "elementwise.input", bytemuck::cast_slice(data.input), empty)?;
    let target_buf = upload(ctx, "elementwise.target", bytemuck::cast_slice(data.target), empty)?;
    let upstream_buf = match grad {
        Some(Upstream::Values(v)) => Some(upload(ctx, "elementwise.upstream", bytemuck::cast_slice(v), empty)?),
        _ => None,
    };
    let loss_bytes = if spec.reduction == Reduction::None {
        count * 4
    } else {
        8
    };
    let loss_out = storage(ctx, "elementwise.loss", loss_bytes)?;
    let grad_out = grad.map(|_| storage(ctx, "elementwise.grad", count * 4)).transpose()?;
    let upstream = match (grad, &upstream_buf) {
        (Some(Upstream::Scalar(g)), _) => Some(Upstream::Scalar(g)),
        (Some(_), Some(b)) => Some(Upstream::Values(b.into())),
        _ => None,
    };
    let outputs = Outputs {
        loss: Some((&loss_out).into()),
        grad: grad_out
            .as_ref()
            .zip(upstream)
            .map(|(b, u)| (GradInto::Buffer(b.into()), u)),
        ..Outputs::default()
    };
    let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("elementwise"),
    });
    let at = ElementsAt {
        input: (&input_buf).into(),
        target: (&target_buf).into(),
        shape: data.shape,
    };
    encode(spec, ctx, &mut encoder, &at, &outputs)?;
    let mut sources = vec![(
        &*loss_out,
        0,
        if spec.reduction == Reduction::None {
            count * 4
        } else {
            4
        },
    )];
    if let Some(g) = &grad_out {
        sources.push((g, 0, count * 4));
    }
    let parts = read_back(ctx, encoder, &sources, waiting).await?;
    let loss = LossValue::from_gpu(
        spec.reduction,
        data.shape.to_vec(),
        bytemuck::pod_collect_to_vec(&parts[0]),
    );
    let grad_values = parts.get(1).map_or_else(Vec::new, |g| bytemuck::pod_collect_to_vec(g));
    Ok(ForwardBackward::plain(loss, grad_values))
}

/// [`run`] in groups of `group` elements (whole last-axis rows where weights index that
/// axis), each its own batch, in order; combined by `gpu::driver`.
async fn run_groups(
    spec: &ElementSpec<'_>,
    ctx: &GpuContext,
    data: &Elements<'_>,
    (grad, waiting): (Option<Upstream<&[f32]>>, Waiting),
    group: usize,
) -> Result<ForwardBackward> {
    let count = data.input.len();
    let last_dim = data.shape.last().copied().unwrap_or(1).max(1);
    let divisor = spec.divisor(data.shape, count);
    let part_spec = ElementSpec {
        reduction: group_reduction(divisor),
        ..*spec
    };
    let mut combined = Combined::default();
    for range in groups(count, group) {
        let len = range.len();
        let part_shape = if len % last_dim == 0 {
            vec![len / last_dim, last_dim]
        } else {
            vec![len]
        };
        let part = Elements {
            input: &data.input[range.clone()],
            target: &data.target[range.clone()],
            shape: &part_shape,
        };
        let upstream = group_upstream(grad, &range, 1, divisor);
        combined.push(run(&part_spec, ctx, &part, upstream, waiting).await?);
    }
    Ok(combined.finish(divisor, data.shape.to_vec()))
}
