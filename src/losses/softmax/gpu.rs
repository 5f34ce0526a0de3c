//! The softmax family on the GPU (`shaders/softmax.wgsl`): the output pass and the
//! vector-Jacobian pass over binding-sized pieces of whole rows, and the host path with its
//! groups.

use bytemuck::{Pod, Zeroable};

use crate::api::buffers::{BatchAt, BufferAt, GradInto, InputAt, Outputs};
use crate::api::host::{ForwardBackward, Upstream};
use crate::api::kinds::{InputFormat, RowOutput as RowOp};
use crate::api::reduction::LossValue;
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::dispatch::{bind, KernelPass};
use crate::gpu::driver::{groups, rows_per_group, Combined};
use crate::gpu::io::{placeholders, read_back, storage, upload, Waiting};
use crate::gpu::kernels::Kernel;
use crate::gpu::plan::Plan;
use crate::gpu::runs::{runs, scatter, Gathered};
use crate::gpu::tiler::spans;
use crate::gpu::window::{check_room, check_room_aligned, items, items_per_binding, window_of, Window};

use super::spec::RowsIn;

/// The uniform of `softmax_rows` (the WGSL `Params`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    in_offset: u32,
    out_offset: u32,
    upstream_offset: u32,
    vec4_ok: u32,
    inner: u32,
    _pad: u32,
}

/// One pass over `rows` positions of `classes` elements `inner` apart: the output (no
/// upstream) or the VJP (with one).
struct RowPass<'a> {
    input: InputAt<'a>,
    rows: usize,
    classes: usize,
    inner: usize,
    upstream: Option<BufferAt<'a>>,
    out: BufferAt<'a>,
}

/// Positions per piece — whole outer slices (`inner` positions each, C·inner elements)
/// whose bindings fit — and the plan: strided positions get one invocation each, so that
/// neighbouring invocations read neighbouring addresses for every class.
fn pieces_and_plan(ctx: &GpuContext, rows: u64, classes: u64, inner: u64) -> Result<(u64, Plan)> {
    let row_bytes = classes * 4 * inner;
    let rows_per_piece = items_per_binding(ctx, row_bytes).min(u64::from(u32::MAX / 2) / inner) * inner;
    if rows_per_piece == 0 {
        return Err(LossError::TooLarge {
            what: "input",
            detail: format!(
                "one slice of {classes} × {inner} elements along the axis is {row_bytes} bytes, more than the device's largest storage binding ({} bytes)",
                ctx.max_binding_bytes()
            ),
        });
    }
    let plan = if inner > 1 {
        Plan::invocation_per_row(ctx)
    } else {
        Plan::choose(ctx, rows, classes, false)
    };
    Ok((rows_per_piece, plan))
}

/// Whether the kernel may read the input (and write the output) as whole vec4s — an f32
/// input, both views present, offsets equal mod 4 — and the two views, or the placeholders
/// (read-only, read-write) where there is none.
fn vec4_views<'w>(
    in_w: &Window<'w>,
    out_w: &Window<'w>,
    fmt: InputFormat,
    [placeholder, placeholder_rw]: [&'w wgpu::Buffer; 2],
) -> (bool, wgpu::BindingResource<'w>, wgpu::BindingResource<'w>) {
    let in4 = in_w.vec4_view().filter(|_| fmt == InputFormat::F32);
    let out4 = out_w.vec4_view();
    let ok = in4.is_some() && out4.is_some() && in_w.word_shift % 4 == out_w.word_shift % 4;
    (
        ok,
        in4.map_or_else(|| placeholder.as_entire_binding(), |w| w.binding()),
        out4.map_or_else(|| placeholder_rw.as_entire_binding(), |w| w.binding()),
    )
}

impl RowOp {
    /// Validates a recorded batch and the caller's buffers, then records the output pass
    /// (`outputs.loss`) and the VJP pass (`outputs.grad`, upstream in the output's shape),
    /// along axis `dim`.
    pub(crate) fn encode_batch(
        self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        batch: &BatchAt<'_>,
        outputs: &Outputs<'_>,
        dim: i64,
    ) -> Result<()> {
        let loss = self.op_name();
        let len = batch.shape.iter().fold(1_usize, |acc, &d| acc.saturating_mul(d));
        let axis = self.check_input(&batch.shape, len, dim)?;
        let (rows, classes) = (axis.rows, axis.classes);
        let unsupported = [
            (
                !matches!(batch.targets, crate::api::buffers::TargetsAt::None),
                "targets",
            ),
            (outputs.status.is_some(), "a status output"),
            (outputs.row_stats.is_some() || outputs.argmax.is_some(), "row outputs"),
            (
                matches!(outputs.grad, Some((GradInto::InPlace, _))),
                "an in-place gradient",
            ),
            (
                matches!(outputs.grad, Some((_, Upstream::Scalar(_)))),
                "a scalar upstream in a recording (give one value per output element)",
            ),
        ];
        if let Some((_, option)) = unsupported.into_iter().find(|(on, _)| *on) {
            return Err(LossError::Unsupported { loss, option });
        }
        let shape = format!("[{rows}, {classes}]");
        let elements = rows as u64 * classes as u64;
        let out_elements = rows as u64 * self.per_row(classes) as u64;
        let element = batch.input.format.bytes();
        check_room_aligned("input", batch.input.at, elements * element, &shape, element)?;
        let mut passes = Vec::new();
        if let Some(out) = outputs.loss {
            check_room("output", out, out_elements * 4, &shape)?;
            passes.push((None, out));
        }
        if let Some((GradInto::Buffer(out), Upstream::Values(upstream))) = outputs.grad {
            check_room("upstream", upstream, out_elements * 4, &shape)?;
            check_room("grad", out, elements * 4, &shape)?;
            passes.push((Some(upstream), out));
        }
        for (upstream, out) in passes {
            if rows > 0 {
                let pass = RowPass {
                    input: batch.input,
                    rows,
                    classes,
                    inner: axis.inner,
                    upstream,
                    out,
                };
                self.encode_pass(ctx, encoder, &pass)?;
            }
        }
        Ok(())
    }

    /// Records one pass over pieces of whole rows whose bindings fit.
    fn encode_pass(self, ctx: &GpuContext, encoder: &mut wgpu::CommandEncoder, pass: &RowPass<'_>) -> Result<()> {
        let RowPass {
            input,
            rows,
            classes,
            inner,
            upstream,
            out,
        } = *pass;
        let fmt = input.format;
        let in_row = classes as u64 * fmt.bytes();
        let grad = upstream.is_some();
        // Output elements per row: the VJP has the input's shape.
        let per_row = if grad {
            classes as u64
        } else {
            self.per_row(classes) as u64
        };
        let per_row_up = self.per_row(classes) as u64;
        let [placeholder, placeholder_rw] = placeholders(ctx)?;
        let upstream_at = upstream.unwrap_or_else(|| BufferAt::from(&placeholder));
        let (rows_per_piece, plan) = pieces_and_plan(ctx, rows as u64, classes as u64, inner as u64)?;
        let inner = inner as u64;
        let kernel = Kernel::SoftmaxRows {
            team: plan.team,
            output: self,
            grad,
            format: fmt,
        };
        let mut compute = KernelPass::begin(ctx, encoder, kernel)?;
        for (begin, piece) in spans(rows as u64, rows_per_piece) {
            let at = input.at;
            let in_w = window_of(
                ctx,
                "input",
                at.buffer,
                at.offset + begin * in_row,
                piece * in_row,
                fmt.bytes(),
            )?;
            let out_w = items(ctx, "output", out, per_row * 4, (begin, piece))?;
            let up_w = if grad {
                items(ctx, "upstream", upstream_at, per_row_up * 4, (begin, piece))?
            } else {
                items(ctx, "upstream", upstream_at, 4, (0, 1))?
            };
            let (vec4_ok, in4, out4) = vec4_views(&in_w, &out_w, fmt, [&placeholder, &placeholder_rw]);
            let vec4_ok = vec4_ok && inner == 1;
            let params = Params {
                rows: piece as u32,
                classes: classes as u32,
                in_offset: in_w.word_shift,
                out_offset: out_w.word_shift,
                upstream_offset: up_w.word_shift,
                vec4_ok: u32::from(vec4_ok),
                inner: inner as u32,
                _pad: 0,
            };
            let resources = vec![in_w.binding(), up_w.binding(), in4, out_w.binding(), out4];
            let bind_group = bind(ctx, kernel, &params, resources)?;
            compute.launch(&bind_group, piece.div_ceil(plan.teams_per_group))?;
        }
        Ok(())
    }

    /// Uploads, records, submits and reads back (the host path): the output and, with an
    /// upstream, the VJP. Rows larger in total than the device's largest buffer run in
    /// groups of whole rows (`gpu::driver`); a slice along the axis larger than a binding
    /// or a buffer, in runs of its positions ([`RowOp::run_runs`]).
    pub(crate) async fn run_gpu(
        self,
        ctx: &GpuContext,
        data: &RowsIn<'_>,
        waiting: Waiting,
    ) -> Result<ForwardBackward> {
        let (rows, classes, inner) = (data.rows, data.classes, data.inner);
        let what = format!("{classes} × {inner} elements (one slice along the axis)");
        let slice_bytes = (classes * inner) as u64 * 4;
        if inner > 1 && items_per_binding(ctx, slice_bytes) == 0 {
            return self.run_runs(ctx, data, waiting).await;
        }
        // Groups of whole outer slices (`inner` positions each).
        let slices = match rows_per_group(ctx, rows / inner, slice_bytes, &what) {
            Err(_) if inner > 1 => return self.run_runs(ctx, data, waiting).await,
            other => other?,
        };
        let Some(slices) = slices else {
            return self.run_group(ctx, data, waiting).await;
        };
        let per_group = slices * inner;
        let per_up = self.per_row(classes);
        let mut combined = Combined::default();
        for range in groups(rows, per_group) {
            let part = RowsIn {
                input: data.input.slice(range.start * classes, range.end * classes),
                rows: range.len(),
                classes,
                inner,
                upstream: data.upstream.map(|u| &u[range.start * per_up..range.end * per_up]),
            };
            combined.push(self.run_group(ctx, &part, waiting).await?);
        }
        Ok(combined.finish(None, self.shape(rows, classes)))
    }

    /// [`RowOp::run_gpu`] for slices larger than a binding or a buffer: runs of each
    /// slice's positions, each gathered into a `[1, C, len]` call (with the upstream, when it
    /// is laid out like the input) whose tensors are scattered back.
    async fn run_runs(self, ctx: &GpuContext, data: &RowsIn<'_>, waiting: Waiting) -> Result<ForwardBackward> {
        let (rows, classes, inner) = (data.rows, data.classes, data.inner);
        let row_bytes = classes as u64 * 4;
        let what = format!("{classes} elements (one position along the axis)");
        let per_run = rows_per_group(ctx, rows, row_bytes, &what)?.unwrap_or(rows);
        let per_run = per_run.min(items_per_binding(ctx, row_bytes) as usize);
        if per_run == 0 {
            return self.run_group(ctx, data, waiting).await; // refused there, naming the row
        }
        let tensor = self.per_row(classes) == classes;
        let mut values = vec![0.0_f32; if tensor { rows * classes } else { 0 }];
        let mut grad = vec![0.0_f32; if data.upstream.is_some() { rows * classes } else { 0 }];
        for group in runs(rows, inner, per_run) {
            let range = group.range();
            let gathered = Gathered::new(data.input, data.upstream.filter(|_| tensor), (classes, inner), range);
            let part = RowsIn {
                input: gathered.input(),
                rows: range.len(),
                classes,
                inner: range.len(),
                upstream: gathered.alike().or(data.upstream.map(|u| &u[range.clone()])),
            };
            let out = self.run_group(ctx, &part, waiting).await?;
            if tensor {
                scatter(&mut values, out.loss.values(), range, classes, inner);
            } else {
                values.extend_from_slice(out.loss.values());
            }
            if !grad.is_empty() {
                scatter(&mut grad, &out.grad, range, classes, inner);
            }
        }
        let output = LossValue::Tensor {
            shape: self.shape(rows, classes),
            values,
        };
        Ok(ForwardBackward::plain(output, grad))
    }

    /// [`RowOp::run_gpu`] for a group that fits one buffer.
    async fn run_group(self, ctx: &GpuContext, data: &RowsIn<'_>, waiting: Waiting) -> Result<ForwardBackward> {
        let (rows, classes) = (data.rows as u64, data.classes as u64);
        let out_bytes = rows * self.per_row(data.classes) as u64 * 4;
        let grad_bytes = rows * classes * 4;
        let output = |values| LossValue::Tensor {
            shape: self.shape(data.rows, data.classes),
            values,
        };
        if rows == 0 {
            return Ok(ForwardBackward::plain(output(Vec::new()), Vec::new()));
        }
        let empty = wgpu::BufferUsages::empty();
        let input = upload(ctx, "softmax.input", data.input.bytes(), empty)?;
        let upstream = data
            .upstream
            .map(|u| upload(ctx, "softmax.upstream", bytemuck::cast_slice(u), empty))
            .transpose()?;
        let out = storage(ctx, "softmax.out", out_bytes)?;
        let grad = upstream
            .as_ref()
            .map(|_| storage(ctx, "softmax.grad", grad_bytes))
            .transpose()?;
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("softmax") });
        let input_at = InputAt {
            at: (&input).into(),
            format: data.input.format(),
        };
        let mut sources = Vec::new();
        let passes = std::iter::once((None, &out, out_bytes)).chain(
            upstream
                .as_ref()
                .zip(grad.as_ref())
                .map(|(u, g)| (Some(u), g, grad_bytes)),
        );
        for (up, target, bytes) in passes {
            let pass = RowPass {
                input: input_at,
                rows: data.rows,
                classes: data.classes,
                inner: data.inner,
                upstream: up.map(BufferAt::from),
                out: target.into(),
            };
            self.encode_pass(ctx, &mut encoder, &pass)?;
            sources.push((&**target, 0, bytes));
        }
        let parts = read_back(ctx, encoder, &sources, waiting).await?;
        let grad = parts.get(1).map_or_else(Vec::new, |g| bytemuck::pod_collect_to_vec(g));
        Ok(ForwardBackward::plain(
            output(bytemuck::pod_collect_to_vec(&parts[0])),
            grad,
        ))
    }
}
