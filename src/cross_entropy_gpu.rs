//! Cross-entropy on the GPU: chunking over rows so every binding fits the device, the row
//! kernel (pass 1: losses, lse, argmax), the batch reduction, the gradient kernel (pass 2,
//! optionally in place over the input), and reading back.

use bytemuck::{Pod, Zeroable};

use crate::binding::{entries, grid, items_per_binding, window, Window};
use crate::context::GpuContext;
use crate::cross_entropy::{CrossEntropy, ForwardBackward, Targets, Upstream};
use crate::device_io::{read_buffer, read_mapped, staging, storage, submit_and_wait, uniform, upload};
use crate::error::{LossError, Result};
use crate::kernels::{InputKind, Kernel, Layout, TargetLayout, TargetWidth};
use crate::reduce::{encode_batch_sum, Finish};
use crate::reduction::{LossValue, Reduction};

/// Invocations per workgroup of the row kernels (TEAM_GROUP_SIZE in WGSL).
pub(crate) const TEAM_GROUP_SIZE: u32 = 64;
/// Elements a workgroup of the gradient kernel should cover at least: rows are grouped
/// until a group has this many (lavapipe pays per workgroup).
const GRAD_ELEMENTS_PER_GROUP: u64 = 4096;

/// A position in a GPU buffer: the buffer and a byte offset into it.
#[derive(Debug, Clone, Copy)]
pub struct BufferAt<'a> {
    /// The buffer (needs `STORAGE` usage; `COPY_SRC` too for targets, to report a bad one).
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of the first element (a multiple of 4).
    pub offset: u64,
}

impl<'a> From<&'a wgpu::Buffer> for BufferAt<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Self {
        Self { buffer, offset: 0 }
    }
}

/// Class-index targets already in a GPU buffer.
#[derive(Debug, Clone, Copy)]
pub struct GpuTargets<'a> {
    /// Where the first target is.
    pub at: BufferAt<'a>,
    /// `i64` (two little-endian words each) or `i32`.
    pub width: TargetWidth,
}

/// The uniform of `cross_entropy_rows` (the WGSL `Params`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RowParams {
    rows: u32,
    classes: u32,
    logits_offset: u32,
    targets_offset: u32,
    out_offset: u32,
    row_base: u32,
    ignore_lo: u32,
    ignore_hi: u32,
    label_smoothing: f32,
    epsilon: f32,
    softcap: f32,
    z_loss: f32,
    lse_offset: u32,
    _pad: [u32; 3],
}

/// The uniform of `cross_entropy_grad` (the WGSL `GradParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GradParams {
    rows: u32,
    rows_per_group: u32,
    classes: u32,
    input_offset: u32,
    targets_offset: u32,
    row_offset: u32,
    grad_offset: u32,
    ignore_lo: u32,
    ignore_hi: u32,
    label_smoothing: f32,
    epsilon: f32,
    softcap: f32,
    z_loss: f32,
    upstream: f32,
    upstream_offset: u32,
    _pad: u32,
}

/// What a run computes besides the loss.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GradRequest<'a> {
    pub upstream: Upstream<'a>,
    /// Overwrite the input buffer with the gradient instead of allocating one.
    pub in_place: bool,
    /// Read the gradient back to the host.
    pub read_back: bool,
}

/// The result for an empty batch, as PyTorch gives it: `none` is empty, `sum` is 0,
/// `mean` is 0/0 = NaN.
fn empty_batch(reduction: Reduction) -> LossValue {
    match reduction {
        Reduction::None => LossValue::Tensor {
            shape: vec![0],
            values: Vec::new(),
        },
        Reduction::Sum => LossValue::Scalar(0.0),
        _ => LossValue::Scalar(f32::NAN),
    }
}

fn empty_result(loss: &CrossEntropy) -> ForwardBackward {
    ForwardBackward {
        loss: empty_batch(loss.reduction_kind()),
        grad: Vec::new(),
        lse: loss.wants_row_outputs().then(Vec::new),
        argmax: loss.wants_row_outputs().then(Vec::new),
        accuracy: loss.wants_row_outputs().then_some(f32::NAN),
    }
}

/// Uploads host data and runs. Inputs are already validated. With a gradient, the
/// uploaded input buffer is overwritten by it (no second `[N, C]` buffer) and read back.
pub(crate) fn forward_host(
    ctx: &GpuContext,
    loss: &CrossEntropy,
    input: &[f32],
    rows: usize,
    classes: usize,
    targets: &Targets<'_>,
    grad: Option<Upstream<'_>>,
) -> Result<ForwardBackward> {
    if rows == 0 {
        return Ok(empty_result(loss));
    }
    let input_bytes = std::mem::size_of_val(input) as u64;
    if input_bytes > ctx.limits.max_buffer_size {
        return Err(LossError::TooLarge {
            what: "input",
            detail: format!(
                "[{rows}, {classes}] f32 is {input_bytes} bytes; the device's largest buffer is {} bytes",
                ctx.limits.max_buffer_size
            ),
        });
    }
    let input_buf = upload(
        ctx,
        "cross_entropy.input",
        bytemuck::cast_slice(input),
        wgpu::BufferUsages::COPY_SRC,
    )?;
    let targets_buf = upload(
        ctx,
        "cross_entropy.targets",
        targets.bytes(),
        wgpu::BufferUsages::COPY_SRC,
    )?;
    let request = grad.map(|upstream| GradRequest {
        upstream,
        in_place: true,
        read_back: true,
    });
    let host_targets = targets
        .index(0)
        .map(|_| (0..rows).filter_map(|r| targets.index(r)).collect::<Vec<_>>());
    run(
        ctx,
        loss,
        (&input_buf).into(),
        rows,
        classes,
        ((&targets_buf).into(), targets.layout()),
        request,
        host_targets.as_deref(),
    )
}

/// Runs on buffers the caller owns; checks that they are large enough first.
pub(crate) fn forward_buffers(
    ctx: &GpuContext,
    loss: &CrossEntropy,
    input: BufferAt<'_>,
    rows: usize,
    classes: usize,
    targets: GpuTargets<'_>,
    grad: Option<GradRequest<'_>>,
) -> Result<ForwardBackward> {
    if rows == 0 {
        return Ok(empty_result(loss));
    }
    let needs = |what: &'static str, at: BufferAt<'_>, bytes: u64| -> Result<()> {
        if !at.offset.is_multiple_of(4) || at.offset.checked_add(bytes).is_none_or(|end| end > at.buffer.size()) {
            return Err(LossError::BadBuffer {
                what,
                detail: format!(
                    "[{rows}, {classes}] needs {bytes} bytes at byte offset {} (a multiple of 4), but the buffer has {} bytes",
                    at.offset,
                    at.buffer.size()
                ),
            });
        }
        Ok(())
    };
    needs("input", input, rows as u64 * classes as u64 * 4)?;
    needs("targets", targets.at, rows as u64 * targets.width.bytes())?;
    let layout = TargetLayout::Indices(targets.width);
    run(ctx, loss, input, rows, classes, (targets.at, layout), grad, None)
}

/// Per-row buffers of one run.
struct RowBuffers {
    loss: wgpu::Buffer,
    weight: wgpu::Buffer,
    status: wgpu::Buffer,
    lse: wgpu::Buffer,
    argmax: wgpu::Buffer,
}

/// Records pass 1, the reduction and pass 2, submits once, and reads back.
#[allow(clippy::too_many_arguments)]
fn run(
    ctx: &GpuContext,
    loss: &CrossEntropy,
    input: BufferAt<'_>,
    rows: usize,
    classes: usize,
    targets: (BufferAt<'_>, TargetLayout),
    grad: Option<GradRequest<'_>>,
    host_targets: Option<&[i64]>,
) -> Result<ForwardBackward> {
    let rows64 = rows as u64;
    let weight_bytes: &[u8] = loss.weights().map_or(&[0; 4], bytemuck::cast_slice);
    let weight_buf = upload(ctx, "cross_entropy.weight", weight_bytes, wgpu::BufferUsages::empty())?;
    let logits_kind = loss.input() == InputKind::Logits;
    let row_bufs = RowBuffers {
        loss: storage(ctx, "cross_entropy.row_loss", rows64 * 4)?,
        weight: storage(ctx, "cross_entropy.row_weight", rows64 * 4)?,
        status: storage(ctx, "cross_entropy.status", 4)?,
        lse: storage(ctx, "cross_entropy.row_lse", if logits_kind { rows64 * 8 } else { 8 })?,
        argmax: storage(
            ctx,
            "cross_entropy.row_argmax",
            if loss.wants_row_outputs() { rows64 * 4 } else { 4 },
        )?,
    };
    let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("cross_entropy"),
    });
    encoder.clear_buffer(&row_bufs.status, 0, None);
    let chunks = row_chunks(ctx, rows64, classes as u64, targets.1)?;
    encode_rows(
        ctx,
        &mut encoder,
        loss,
        input,
        classes,
        targets,
        &weight_buf,
        &row_bufs,
        &chunks,
    )?;
    let reduced = storage(ctx, "cross_entropy.result", 8)?;
    let reduction = loss.reduction_kind();
    if reduction != Reduction::None {
        let finish = if reduction == Reduction::Sum {
            Finish::Sum
        } else {
            Finish::WeightedMean
        };
        encode_batch_sum(
            ctx,
            &mut encoder,
            &row_bufs.loss,
            Some(&row_bufs.weight),
            rows64,
            finish,
            &reduced,
        )?;
    }
    let mut grad_buf = None;
    if let Some(request) = grad {
        let out = if request.in_place {
            input.buffer.clone()
        } else {
            storage(ctx, "cross_entropy.grad", rows64 * classes as u64 * 4)?
        };
        let out_at = if request.in_place { input.offset } else { 0 };
        let grad_args = GradArgs {
            loss,
            input,
            classes,
            targets,
            weight: &weight_buf,
            lse: &row_bufs.lse,
            reduced: &reduced,
            grad: BufferAt {
                buffer: &out,
                offset: out_at,
            },
            request,
        };
        encode_grad(ctx, &mut encoder, &grad_args, &chunks)?;
        grad_buf = Some((out, out_at));
    }
    // One staging buffer: status, [loss, divisor], then the per-row outputs asked for.
    let mut layout = vec![(&row_bufs.status, 4_u64), (&reduced, 8)];
    if reduction == Reduction::None {
        layout.push((&row_bufs.loss, rows64 * 4));
    }
    if loss.wants_row_outputs() {
        layout.push((&row_bufs.lse, rows64 * 8));
        layout.push((&row_bufs.argmax, rows64 * 4));
    }
    let total: u64 = layout.iter().map(|(_, len)| len).sum();
    let stage = staging(ctx, "cross_entropy.readback", total)?;
    let mut at = 0;
    for (buffer, len) in &layout {
        encoder.copy_buffer_to_buffer(buffer, 0, &stage, at, *len);
        at += len;
    }
    let grad_bytes = rows64 * classes as u64 * 4;
    let grad_stage = match (&grad_buf, grad) {
        (Some((buffer, offset)), Some(request)) if request.read_back => {
            let stage = staging(ctx, "cross_entropy.grad_readback", grad_bytes)?;
            encoder.copy_buffer_to_buffer(buffer, *offset, &stage, 0, grad_bytes);
            Some(stage)
        }
        _ => None,
    };
    submit_and_wait(&ctx.device, &ctx.queue, encoder)?;
    let bytes = pollster::block_on(read_mapped(&ctx.device, &stage, total))?;
    let word = |i: usize| u32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
    let flagged = word(0);
    if let (true, (at, TargetLayout::Indices(width))) = (flagged != 0, targets) {
        // The kernel stores u32::MAX - row with atomicMax, so 0 means no bad row.
        let row = (u32::MAX - flagged) as usize;
        let size = width.bytes();
        let raw = read_buffer(ctx, at.buffer, at.offset + row as u64 * size, size)?;
        let value = match width {
            TargetWidth::I32 => i64::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
            TargetWidth::I64 => i64::from_le_bytes(raw[..8].try_into().unwrap_or([0; 8])),
        };
        return Err(LossError::TargetOutOfRange {
            row,
            value,
            classes,
            ignore_index: loss.ignored_index(),
        });
    }
    let floats: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
    let mut next = 3;
    let loss_value = if reduction == Reduction::None {
        next += rows;
        LossValue::Tensor {
            shape: vec![rows],
            values: floats[3..3 + rows].to_vec(),
        }
    } else {
        LossValue::Scalar(floats[1])
    };
    let (lse, argmax, accuracy) = if loss.wants_row_outputs() {
        let lse: Vec<f32> = (0..rows).map(|r| floats[next + 2 * r]).collect();
        let argmax: Vec<u32> = (0..rows).map(|r| word(next + 2 * rows + r)).collect();
        let targets_host = match host_targets {
            Some(t) => t.to_vec(),
            None => read_targets(ctx, targets, rows)?,
        };
        let accuracy = accuracy_of(&argmax, &targets_host, loss.ignored_index());
        (Some(lse), Some(argmax), Some(accuracy))
    } else {
        (None, None, None)
    };
    let grad = match grad_stage {
        Some(stage) => bytemuck::pod_collect_to_vec(&pollster::block_on(read_mapped(&ctx.device, &stage, grad_bytes))?),
        None => Vec::new(),
    };
    Ok(ForwardBackward {
        loss: loss_value,
        grad,
        lse,
        argmax,
        accuracy,
    })
}

/// Class-index targets from a GPU buffer, widened to i64 (for the accuracy).
fn read_targets(ctx: &GpuContext, (at, layout): (BufferAt<'_>, TargetLayout), rows: usize) -> Result<Vec<i64>> {
    let TargetLayout::Indices(width) = layout else {
        return Ok(Vec::new());
    };
    let raw = read_buffer(ctx, at.buffer, at.offset, rows as u64 * width.bytes())?;
    Ok(match width {
        TargetWidth::I32 => bytemuck::pod_collect_to_vec::<u8, i32>(&raw)
            .into_iter()
            .map(i64::from)
            .collect(),
        TargetWidth::I64 => bytemuck::pod_collect_to_vec(&raw),
    })
}

/// The fraction of rows not ignored whose argmax equals the target (NaN if none counts;
/// probability targets compare with their own argmax).
pub(crate) fn accuracy_of(argmax: &[u32], targets: &[i64], ignore_index: i64) -> f32 {
    let counted: Vec<(u32, i64)> = argmax
        .iter()
        .zip(targets)
        .filter(|(_, &t)| t != ignore_index)
        .map(|(&a, &t)| (a, t))
        .collect();
    let hits = counted.iter().filter(|(a, t)| i64::from(*a) == *t).count();
    hits as f32 / counted.len() as f32
}

/// Rows per chunk so that every binding of pass 1 and pass 2 fits the device.
fn row_chunks(ctx: &GpuContext, rows: u64, classes: u64, layout: TargetLayout) -> Result<Vec<(u64, u64)>> {
    let row_bytes = classes * 4;
    let target_row_bytes = match layout {
        TargetLayout::Indices(width) => width.bytes(),
        TargetLayout::Probabilities => row_bytes,
    };
    let per_chunk = items_per_binding(ctx, row_bytes)
        .min(items_per_binding(ctx, target_row_bytes))
        .min(items_per_binding(ctx, 8))
        .min(u64::from(u32::MAX / 2) / classes.max(1))
        .min(u64::from(ctx.limits.max_compute_workgroups_per_dimension));
    if per_chunk == 0 {
        return Err(LossError::TooLarge {
            what: "logits",
            detail: format!(
                "one row of {classes} classes is {row_bytes} bytes, more than the device's largest storage binding ({} bytes)",
                ctx.max_binding_bytes()
            ),
        });
    }
    if rows >= u64::from(u32::MAX) {
        return Err(LossError::TooLarge {
            what: "logits",
            detail: format!("{rows} rows; at most {} are supported", u32::MAX - 1),
        });
    }
    Ok((0..rows)
        .step_by(per_chunk as usize)
        .map(|begin| (begin, per_chunk.min(rows - begin)))
        .collect())
}

/// The windows of one chunk's targets.
fn target_window<'a>(
    ctx: &GpuContext,
    (at, layout): (BufferAt<'a>, TargetLayout),
    classes: u64,
    begin: u64,
    len: u64,
) -> Result<Window<'a>> {
    let per_row = match layout {
        TargetLayout::Indices(width) => width.bytes(),
        TargetLayout::Probabilities => classes * 4,
    };
    window(ctx, "targets", at.buffer, at.offset + begin * per_row, len * per_row)
}

/// Records `cross_entropy_rows` over all rows, chunk by chunk.
#[allow(clippy::too_many_arguments)]
fn encode_rows(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    loss: &CrossEntropy,
    input: BufferAt<'_>,
    classes: usize,
    targets: (BufferAt<'_>, TargetLayout),
    weight: &wgpu::Buffer,
    bufs: &RowBuffers,
    chunks: &[(u64, u64)],
) -> Result<()> {
    let classes64 = classes as u64;
    let row_bytes = classes64 * 4;
    let logits_kind = loss.input() == InputKind::Logits;
    let (team, teams_per_group) = ctx.row_team(TEAM_GROUP_SIZE);
    let pipeline = ctx.pipelines.get(Kernel::CrossEntropyRows {
        team,
        targets: targets.1,
        weighted: loss.weights().is_some(),
        smoothing: loss.smoothing() > 0.0,
        input: loss.input(),
        softcap: loss.softcap_value().is_some(),
        z_loss: loss.z_loss_value() != 0.0,
        argmax: loss.wants_row_outputs(),
    })?;
    let ignore = loss.ignored_index() as u64;
    let layout = ctx.pipelines.bind_group_layout(Layout::Rows);
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("cross_entropy.rows"),
        timestamp_writes: None,
    });
    pass.set_pipeline(&pipeline);
    for &(begin, len) in chunks {
        let logits_w = window(
            ctx,
            "logits",
            input.buffer,
            input.offset + begin * row_bytes,
            len * row_bytes,
        )?;
        let targets_w = target_window(ctx, targets, classes64, begin, len)?;
        let loss_w = window(ctx, "row losses", &bufs.loss, begin * 4, len * 4)?;
        let weight_w = window(ctx, "row weights", &bufs.weight, begin * 4, len * 4)?;
        let lse_w = if logits_kind {
            window(ctx, "row lse", &bufs.lse, begin * 8, len * 8)?
        } else {
            window(ctx, "row lse", &bufs.lse, 0, 8)?
        };
        let argmax_w = if loss.wants_row_outputs() {
            window(ctx, "row argmax", &bufs.argmax, begin * 4, len * 4)?
        } else {
            window(ctx, "row argmax", &bufs.argmax, 0, 4)?
        };
        // Row loss, weight and argmax (4 bytes a row) share one shift; lse (8) has its own.
        let row_shift = loss_w.word_shift;
        let params = RowParams {
            rows: len as u32,
            classes: classes as u32,
            logits_offset: logits_w.word_shift,
            targets_offset: targets_w.word_shift,
            out_offset: row_shift,
            row_base: begin as u32,
            ignore_lo: ignore as u32,
            ignore_hi: (ignore >> 32) as u32,
            label_smoothing: loss.smoothing() as f32,
            epsilon: loss.epsilon_value() as f32,
            softcap: loss.softcap_value().unwrap_or(1.0) as f32,
            z_loss: loss.z_loss_value() as f32,
            lse_offset: lse_w.word_shift / 2,
            _pad: [0; 3],
        };
        let params_buf = uniform(ctx, "cross_entropy.params", bytemuck::bytes_of(&params))?;
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("cross_entropy.rows"),
            layout,
            entries: &entries(vec![
                params_buf.as_entire_binding(),
                logits_w.binding(),
                targets_w.binding(),
                weight.as_entire_binding(),
                loss_w.binding(),
                weight_w.binding(),
                bufs.status.as_entire_binding(),
                lse_w.binding(),
                argmax_w.binding(),
            ]),
        });
        let (x, y) = grid(ctx, len.div_ceil(teams_per_group))?;
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }
    Ok(())
}

/// The buffers and options of pass 2.
struct GradArgs<'a> {
    loss: &'a CrossEntropy,
    input: BufferAt<'a>,
    classes: usize,
    targets: (BufferAt<'a>, TargetLayout),
    weight: &'a wgpu::Buffer,
    lse: &'a wgpu::Buffer,
    reduced: &'a wgpu::Buffer,
    grad: BufferAt<'a>,
    request: GradRequest<'a>,
}

/// Records `cross_entropy_grad` over all rows, chunk by chunk.
fn encode_grad(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    args: &GradArgs<'_>,
    chunks: &[(u64, u64)],
) -> Result<()> {
    let loss = args.loss;
    let classes = args.classes as u64;
    let row_bytes = classes * 4;
    let per_row_upstream = matches!(args.request.upstream, Upstream::Values(_));
    let upstream_buf = match args.request.upstream {
        Upstream::Values(values) => upload(
            ctx,
            "cross_entropy.upstream",
            bytemuck::cast_slice(values),
            wgpu::BufferUsages::empty(),
        )?,
        Upstream::Scalar(_) => storage(ctx, "cross_entropy.upstream", 4)?,
    };
    let upstream_scalar = match args.request.upstream {
        Upstream::Scalar(g) => g,
        Upstream::Values(_) => 0.0,
    };
    let in_place = args.request.in_place;
    let pipeline = ctx.pipelines.get(Kernel::CrossEntropyGrad {
        targets: args.targets.1,
        weighted: loss.weights().is_some(),
        smoothing: loss.smoothing() > 0.0,
        input: loss.input(),
        softcap: loss.softcap_value().is_some(),
        z_loss: loss.z_loss_value() != 0.0,
        in_place,
        per_row_upstream,
    })?;
    let placeholder = storage(ctx, "cross_entropy.grad.placeholder", 4)?;
    let logits_kind = loss.input() == InputKind::Logits;
    let ignore = loss.ignored_index() as u64;
    let layout = ctx.pipelines.bind_group_layout(Layout::Grad);
    let rows_per_group = GRAD_ELEMENTS_PER_GROUP.div_ceil(classes).max(1);
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("cross_entropy.grad"),
        timestamp_writes: None,
    });
    pass.set_pipeline(&pipeline);
    for &(begin, len) in chunks {
        let grad_w = window(
            ctx,
            "gradient",
            args.grad.buffer,
            args.grad.offset + begin * row_bytes,
            len * row_bytes,
        )?;
        let input_w = if in_place {
            window(ctx, "input", &placeholder, 0, 4)?
        } else {
            window(
                ctx,
                "input",
                args.input.buffer,
                args.input.offset + begin * row_bytes,
                len * row_bytes,
            )?
        };
        let targets_w = target_window(ctx, args.targets, classes, begin, len)?;
        let lse_w = if logits_kind {
            window(ctx, "row lse", args.lse, begin * 8, len * 8)?
        } else {
            window(ctx, "row lse", args.lse, 0, 8)?
        };
        let upstream_w = if per_row_upstream {
            window(ctx, "upstream", &upstream_buf, begin * 4, len * 4)?
        } else {
            window(ctx, "upstream", &upstream_buf, 0, 4)?
        };
        let params = GradParams {
            rows: len as u32,
            rows_per_group: rows_per_group as u32,
            classes: classes as u32,
            input_offset: input_w.word_shift,
            targets_offset: targets_w.word_shift,
            row_offset: lse_w.word_shift / 2,
            grad_offset: grad_w.word_shift,
            ignore_lo: ignore as u32,
            ignore_hi: (ignore >> 32) as u32,
            label_smoothing: loss.smoothing() as f32,
            epsilon: loss.epsilon_value() as f32,
            softcap: loss.softcap_value().unwrap_or(1.0) as f32,
            z_loss: loss.z_loss_value() as f32,
            upstream: upstream_scalar,
            upstream_offset: upstream_w.word_shift,
            _pad: 0,
        };
        let params_buf = uniform(ctx, "cross_entropy.grad.params", bytemuck::bytes_of(&params))?;
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("cross_entropy.grad"),
            layout,
            entries: &entries(vec![
                params_buf.as_entire_binding(),
                input_w.binding(),
                targets_w.binding(),
                args.weight.as_entire_binding(),
                lse_w.binding(),
                upstream_w.binding(),
                args.reduced.as_entire_binding(),
                grad_w.binding(),
            ]),
        });
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(1, len.div_ceil(rows_per_group) as u32, 1);
    }
    Ok(())
}
