//! Class-index cross-entropy on the GPU: chunking over rows so every binding fits the
//! device, recording the row kernel and the batch reduction, and reading back.

use bytemuck::{Pod, Zeroable};

use crate::binding::{entries, grid, items_per_binding, window};
use crate::context::GpuContext;
use crate::cross_entropy::{CrossEntropy, Targets};
use crate::device_io::{read_buffer, read_mapped, staging, storage, submit_and_wait, upload};
use crate::error::{LossError, Result};
use crate::kernels::{Kernel, Layout, TargetLayout, TargetWidth};
use crate::reduce::{encode_batch_sum, Finish};
use crate::reduction::{LossValue, Reduction};

/// Invocations per workgroup of the row kernels (TEAM_GROUP_SIZE in WGSL).
pub(crate) const TEAM_GROUP_SIZE: u32 = 64;

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
    _pad: [u32; 2],
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

/// Uploads host data and runs [`run`]. Inputs are already validated.
pub(crate) fn forward_host(
    ctx: &GpuContext,
    loss: &CrossEntropy,
    logits: &[f32],
    rows: usize,
    classes: usize,
    targets: &Targets<'_>,
) -> Result<LossValue> {
    if rows == 0 {
        return Ok(empty_batch(loss.reduction_kind()));
    }
    let logits_bytes = std::mem::size_of_val(logits) as u64;
    if logits_bytes > ctx.limits.max_buffer_size {
        return Err(LossError::TooLarge {
            what: "logits",
            detail: format!(
                "[{rows}, {classes}] f32 is {logits_bytes} bytes; the device's largest buffer is {} bytes",
                ctx.limits.max_buffer_size
            ),
        });
    }
    let logits_buf = upload(
        &ctx.device,
        "cross_entropy.logits",
        bytemuck::cast_slice(logits),
        wgpu::BufferUsages::empty(),
    )?;
    let targets_buf = upload(
        &ctx.device,
        "cross_entropy.targets",
        targets.bytes(),
        wgpu::BufferUsages::COPY_SRC,
    )?;
    run(
        ctx,
        loss,
        (&logits_buf).into(),
        rows,
        classes,
        ((&targets_buf).into(), targets.layout()),
    )
}

/// Runs on buffers the caller owns; checks that they are large enough first.
pub(crate) fn forward_buffers(
    ctx: &GpuContext,
    loss: &CrossEntropy,
    logits: BufferAt<'_>,
    rows: usize,
    classes: usize,
    targets: GpuTargets<'_>,
) -> Result<LossValue> {
    if rows == 0 {
        return Ok(empty_batch(loss.reduction_kind()));
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
    needs("logits", logits, rows as u64 * classes as u64 * 4)?;
    needs("targets", targets.at, rows as u64 * targets.width.bytes())?;
    run(
        ctx,
        loss,
        logits,
        rows,
        classes,
        (targets.at, TargetLayout::Indices(targets.width)),
    )
}

/// Records the row kernel and the reduction, submits, and reads back the result and
/// the target check.
fn run(
    ctx: &GpuContext,
    loss: &CrossEntropy,
    logits: BufferAt<'_>,
    rows: usize,
    classes: usize,
    targets: (BufferAt<'_>, TargetLayout),
) -> Result<LossValue> {
    let device = &ctx.device;
    let rows64 = rows as u64;
    let weight_bytes: &[u8] = loss.weights().map_or(&[0; 4], bytemuck::cast_slice);
    let weight_buf = upload(
        device,
        "cross_entropy.weight",
        weight_bytes,
        wgpu::BufferUsages::empty(),
    )?;
    let row_loss = storage(device, "cross_entropy.row_loss", rows64 * 4)?;
    let row_weight = storage(device, "cross_entropy.row_weight", rows64 * 4)?;
    let status = storage(device, "cross_entropy.status", 4)?;
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("cross_entropy"),
    });
    encoder.clear_buffer(&status, 0, None);
    let rows_args = RowsArgs {
        loss,
        logits,
        rows,
        classes,
        targets,
        weight: &weight_buf,
        row_loss: &row_loss,
        row_weight: &row_weight,
        status: &status,
    };
    encode_rows(ctx, &mut encoder, &rows_args)?;
    let (output, output_bytes) = match loss.reduction_kind() {
        Reduction::None => (row_loss.clone(), rows64 * 4),
        reduction => {
            let result = storage(device, "cross_entropy.result", 4)?;
            let finish = if reduction == Reduction::Sum {
                Finish::Sum
            } else {
                Finish::WeightedMean
            };
            encode_batch_sum(ctx, &mut encoder, &row_loss, Some(&row_weight), rows64, finish, &result)?;
            (result, 4)
        }
    };
    let stage = staging(device, "cross_entropy.readback", 4 + output_bytes)?;
    encoder.copy_buffer_to_buffer(&status, 0, &stage, 0, 4);
    encoder.copy_buffer_to_buffer(&output, 0, &stage, 4, output_bytes);
    submit_and_wait(device, &ctx.queue, encoder)?;
    let bytes = pollster::block_on(read_mapped(device, &stage, 4 + output_bytes))?;
    let flagged = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if let (true, (at, TargetLayout::Indices(width))) = (flagged != 0, targets) {
        // The kernel stores u32::MAX - row with atomicMax, so 0 means no bad row.
        let row = (u32::MAX - flagged) as usize;
        let bytes = width.bytes();
        let word = read_buffer(device, &ctx.queue, at.buffer, at.offset + row as u64 * bytes, bytes)?;
        let value = match width {
            TargetWidth::I32 => i64::from(i32::from_le_bytes([word[0], word[1], word[2], word[3]])),
            TargetWidth::I64 => i64::from_le_bytes(word[..8].try_into().unwrap_or([0; 8])),
        };
        return Err(LossError::TargetOutOfRange {
            row,
            value,
            classes,
            ignore_index: loss.ignored_index(),
        });
    }
    let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes[4..]);
    Ok(LossValue::from_gpu(loss.reduction_kind(), vec![rows], values))
}

/// The buffers and options of one recording of the row kernel.
struct RowsArgs<'a> {
    loss: &'a CrossEntropy,
    logits: BufferAt<'a>,
    rows: usize,
    classes: usize,
    targets: (BufferAt<'a>, TargetLayout),
    weight: &'a wgpu::Buffer,
    row_loss: &'a wgpu::Buffer,
    row_weight: &'a wgpu::Buffer,
    status: &'a wgpu::Buffer,
}

/// Records `cross_entropy_rows` over all rows, in chunks of rows whose bindings fit the
/// device's largest storage binding.
fn encode_rows(ctx: &GpuContext, encoder: &mut wgpu::CommandEncoder, args: &RowsArgs<'_>) -> Result<()> {
    let classes = args.classes as u64;
    let (targets_at, target_layout) = args.targets;
    let row_bytes = classes * 4;
    let target_row_bytes = match target_layout {
        TargetLayout::Indices(width) => width.bytes(),
        TargetLayout::Probabilities => row_bytes,
    };
    let rows_per_chunk = items_per_binding(ctx, row_bytes)
        .min(items_per_binding(ctx, target_row_bytes))
        .min(u64::from(u32::MAX / 2));
    if rows_per_chunk == 0 {
        return Err(LossError::TooLarge {
            what: "logits",
            detail: format!(
                "one row of {classes} classes is {row_bytes} bytes, more than the device's largest storage binding ({} bytes)",
                ctx.max_binding_bytes()
            ),
        });
    }
    if args.rows as u64 >= u64::from(u32::MAX) {
        return Err(LossError::TooLarge {
            what: "logits",
            detail: format!("{} rows; at most {} are supported", args.rows, u32::MAX - 1),
        });
    }
    let (team, teams_per_group) = ctx.row_team(TEAM_GROUP_SIZE);
    let kernel = Kernel::CrossEntropyRows {
        team,
        targets: target_layout,
        weighted: args.loss.weights().is_some(),
        smoothing: args.loss.smoothing() > 0.0,
        input: args.loss.input(),
    };
    let pipeline = ctx.pipelines.get(kernel)?;
    let ignore = args.loss.ignored_index() as u64;
    let uniform_stride = (std::mem::size_of::<RowParams>() as u64)
        .next_multiple_of(u64::from(ctx.limits.min_uniform_buffer_offset_alignment));

    let total_rows = args.rows as u64;
    let mut chunks = Vec::new();
    let mut params = Vec::new();
    let mut row_begin = 0;
    while row_begin < total_rows {
        let chunk_rows = rows_per_chunk.min(total_rows - row_begin);
        let logits_w = window(
            ctx,
            "logits",
            args.logits.buffer,
            args.logits.offset + row_begin * row_bytes,
            chunk_rows * row_bytes,
        )?;
        let targets_w = window(
            ctx,
            "targets",
            targets_at.buffer,
            targets_at.offset + row_begin * target_row_bytes,
            chunk_rows * target_row_bytes,
        )?;
        let loss_w = window(ctx, "row losses", args.row_loss, row_begin * 4, chunk_rows * 4)?;
        let weight_w = window(ctx, "row weights", args.row_weight, row_begin * 4, chunk_rows * 4)?;
        let chunk_params = RowParams {
            rows: chunk_rows as u32,
            classes: classes as u32,
            logits_offset: logits_w.word_shift,
            targets_offset: targets_w.word_shift,
            out_offset: loss_w.word_shift,
            row_base: row_begin as u32,
            ignore_lo: ignore as u32,
            ignore_hi: (ignore >> 32) as u32,
            label_smoothing: args.loss.smoothing() as f32,
            epsilon: args.loss.epsilon_value() as f32,
            _pad: [0; 2],
        };
        let mut bytes = bytemuck::bytes_of(&chunk_params).to_vec();
        bytes.resize(uniform_stride as usize, 0);
        params.extend_from_slice(&bytes);
        chunks.push((chunk_rows, [logits_w, targets_w, loss_w, weight_w]));
        row_begin += chunk_rows;
    }
    let params_buf = crate::device_io::uniform(&ctx.device, "cross_entropy.params", &params)?;
    let layout = ctx.pipelines.bind_group_layout(Layout::Rows);
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("cross_entropy.rows"),
        timestamp_writes: None,
    });
    pass.set_pipeline(&pipeline);
    for (index, (chunk_rows, [logits_w, targets_w, loss_w, weight_w])) in chunks.iter().enumerate() {
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("cross_entropy.rows"),
            layout,
            entries: &entries(vec![
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &params_buf,
                    offset: index as u64 * uniform_stride,
                    size: wgpu::BufferSize::new(std::mem::size_of::<RowParams>() as u64),
                }),
                logits_w.binding(),
                targets_w.binding(),
                args.weight.as_entire_binding(),
                loss_w.binding(),
                weight_w.binding(),
                args.status.as_entire_binding(),
            ]),
        });
        let (x, y) = grid(ctx, chunk_rows.div_ceil(teams_per_group))?;
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }
    Ok(())
}
