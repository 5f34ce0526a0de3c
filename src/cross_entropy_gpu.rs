//! Cross-entropy on the GPU: chunking over rows so every binding fits the device, the row
//! kernel (pass 1: losses, lse, argmax), the batch reduction, the gradient kernel (pass 2,
//! optionally in place over the input), and reading back.

use bytemuck::{Pod, Zeroable};

use crate::binding::{entries, grid, items_per_binding, window, window_of, Window};
use crate::context::GpuContext;
use crate::cross_entropy::{CrossEntropy, ForwardBackward, Targets, Upstream};
use crate::device_io::{constant, read_buffer, read_mapped_with, staging, storage, submit, uniform, upload, Waiting};
use crate::error::{LossError, Result};
use crate::kernels::{InputFormat, InputKind, Kernel, Layout, RowPass, TargetLayout, TargetWidth};
use crate::plan::{Plan, TEAM_GROUP_SIZE};
use crate::reduce::{encode_batch_sum, Finish};
use crate::reduction::{LossValue, Reduction};

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

impl<'a> From<&'a crate::pool::Lease> for BufferAt<'a> {
    fn from(lease: &'a crate::pool::Lease) -> Self {
        Self {
            buffer: lease,
            offset: 0,
        }
    }
}

impl<'a> From<&'a crate::pool::Lease> for InputAt<'a> {
    fn from(lease: &'a crate::pool::Lease) -> Self {
        BufferAt::from(lease).into()
    }
}

impl<'a> From<&'a wgpu::Buffer> for BufferAt<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Self {
        Self { buffer, offset: 0 }
    }
}

/// An input in a GPU buffer: its position and element type (f32 unless said).
#[derive(Debug, Clone, Copy)]
pub struct InputAt<'a> {
    /// Where the first element is (a byte offset that is a multiple of the element size).
    pub at: BufferAt<'a>,
    /// The element type.
    pub format: InputFormat,
}

impl<'a> InputAt<'a> {
    /// f16 elements at `at`.
    pub fn f16(at: impl Into<BufferAt<'a>>) -> Self {
        Self {
            at: at.into(),
            format: InputFormat::F16,
        }
    }

    /// bf16 elements at `at`.
    pub fn bf16(at: impl Into<BufferAt<'a>>) -> Self {
        Self {
            at: at.into(),
            format: InputFormat::Bf16,
        }
    }
}

impl<'a> From<BufferAt<'a>> for InputAt<'a> {
    fn from(at: BufferAt<'a>) -> Self {
        Self {
            at,
            format: InputFormat::F32,
        }
    }
}

impl<'a> From<&'a wgpu::Buffer> for InputAt<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Self {
        BufferAt::from(buffer).into()
    }
}

/// Half-precision input on the host, as raw bits (see [`crate::half`] for conversions).
#[derive(Debug, Clone, Copy)]
pub enum HalfInput<'a> {
    /// IEEE f16 bits.
    F16(&'a [u16]),
    /// bfloat16 bits.
    Bf16(&'a [u16]),
}

impl HalfInput<'_> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            HalfInput::F16(v) | HalfInput::Bf16(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32 (exact): what the GPU computes with.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            HalfInput::F16(v) => v.iter().map(|&h| crate::half::f16_to_f32(h)).collect(),
            HalfInput::Bf16(v) => v.iter().map(|&h| crate::half::bf16_to_f32(h)).collect(),
        }
    }
}

/// Host input of any format.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HostInput<'a> {
    F32(&'a [f32]),
    Half(HalfInput<'a>),
}

impl HostInput<'_> {
    fn bytes(&self) -> (&[u8], InputFormat) {
        match self {
            HostInput::F32(v) => (bytemuck::cast_slice(v), InputFormat::F32),
            HostInput::Half(HalfInput::F16(v)) => (bytemuck::cast_slice(v), InputFormat::F16),
            HostInput::Half(HalfInput::Bf16(v)) => (bytemuck::cast_slice(v), InputFormat::Bf16),
        }
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

/// The upstream gradient of a recorded backward pass.
#[derive(Debug, Clone, Copy)]
pub enum GpuUpstream<'a> {
    /// `∂L/∂loss` of a reduced loss; for reduction `none`, the same for every row.
    Scalar(f32),
    /// Reduction `none`: N f32, one per row, in a GPU buffer.
    PerRow(BufferAt<'a>),
}

/// Where a recorded gradient goes.
#[derive(Debug, Clone, Copy)]
pub enum GradInto<'a> {
    /// Over the input itself (f32 input only): no second `[N, C]` buffer.
    InPlace,
    /// Into `[N, C]` f32 at this position.
    Buffer(BufferAt<'a>),
}

/// Where a recorded cross-entropy writes. Every position is a caller's buffer (with
/// `STORAGE` usage) at a byte offset that is a multiple of 4.
#[derive(Debug, Clone, Copy)]
pub struct CrossEntropyOutputs<'a> {
    /// `sum` / `mean`: two f32, `[loss, divisor]` (the divisor is 1 for a sum, `Σ w[y]` or N
    /// for a mean). `none`: the N row losses.
    pub loss: BufferAt<'a>,
    /// One u32: 0 when every class-index target was in range, else `u32::MAX - row` of the
    /// first bad row (whose loss and gradient are then NaN). Cleared by the recording. Also
    /// needs `COPY_DST` usage.
    pub status: Option<BufferAt<'a>>,
    /// With [`CrossEntropy::row_outputs`]: N pairs of f32, `(lse, Σ_c a_c)` per row.
    pub row_stats: Option<BufferAt<'a>>,
    /// With [`CrossEntropy::row_outputs`]: N u32, each row's argmax.
    pub argmax: Option<BufferAt<'a>>,
    /// The gradient `∂loss/∂input`: where, and with which upstream.
    pub grad: Option<(GradInto<'a>, GpuUpstream<'a>)>,
}

impl<'a> CrossEntropyOutputs<'a> {
    /// Only the loss, at `loss`.
    pub fn loss(loss: impl Into<BufferAt<'a>>) -> Self {
        Self {
            loss: loss.into(),
            status: None,
            row_stats: None,
            argmax: None,
            grad: None,
        }
    }
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
    status_offset: u32,
    weight_offset: u32,
    argmax_offset: u32,
    col_begin: u32,
    cols: u32,
    block_cols: u32,
    blocks_per_row: u32,
    aux_words: u32,
    write_stats: u32,
    _pad: [u32; 2],
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
    reduced_offset: u32,
    col_begin: u32,
    cols: u32,
    cols_per_group: u32,
    _pad: u32,
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
/// An input larger than the device's largest buffer is run in row groups that each fit
/// (see [`forward_host_groups`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn forward_host(
    ctx: &GpuContext,
    loss: &CrossEntropy,
    input: HostInput<'_>,
    rows: usize,
    classes: usize,
    targets: &Targets<'_>,
    grad: Option<Upstream<'_>>,
    waiting: Waiting,
) -> Result<ForwardBackward> {
    if rows == 0 {
        return Ok(empty_result(loss));
    }
    let format = input.bytes().1;
    // The largest of the [N, C] arrays of one row: input, probability targets, f32 gradient.
    let row_bytes = (classes as u64 * format.bytes())
        .max(if targets.is_probabilities() {
            classes as u64 * 4
        } else {
            8
        })
        .max(if grad.is_some() { classes as u64 * 4 } else { 0 });
    let max_buffer = ctx.max_buffer_bytes();
    if row_bytes * rows as u64 > max_buffer {
        let group_rows = (max_buffer / row_bytes) as usize;
        if group_rows == 0 {
            return Err(LossError::TooLarge {
                what: "input",
                detail: format!(
                    "one row of [{rows}, {classes}] {format:?} needs {row_bytes} bytes; the device's largest buffer is {max_buffer} bytes"
                ),
            });
        }
        return forward_host_groups(ctx, loss, input, rows, classes, targets, grad, waiting, group_rows).await;
    }
    forward_host_one(ctx, loss, input, rows, classes, targets, grad, waiting).await
}

/// [`forward_host`] over row groups of `group_rows` rows, each uploaded to its own buffers
/// and run as a batch of its own, in order: row outputs and gradients are concatenated;
/// a sum adds the groups' sums and a mean divides that by the whole batch's divisor
/// (Σ w[y] of counted rows, or N for probability targets), in f64 on the host, and the
/// gradient of a mean is each group's sum gradient scaled by upstream / divisor.
#[allow(clippy::too_many_arguments)]
async fn forward_host_groups(
    ctx: &GpuContext,
    loss: &CrossEntropy,
    input: HostInput<'_>,
    rows: usize,
    classes: usize,
    targets: &Targets<'_>,
    grad: Option<Upstream<'_>>,
    waiting: Waiting,
    group_rows: usize,
) -> Result<ForwardBackward> {
    let reduction = loss.reduction_kind();
    let divisor: f64 = match targets {
        Targets::Probabilities(_) => rows as f64,
        _ => (0..rows)
            .filter_map(|r| targets.index(r))
            .filter(|&t| t != loss.ignored_index())
            .map(|t| {
                loss.weights()
                    .map_or(1.0, |w| f64::from(w.get(t as usize).copied().unwrap_or(f32::NAN)))
            })
            .sum(),
    };
    let group_loss = match reduction {
        Reduction::None => loss.clone(),
        _ => loss.clone().reduction(Reduction::Sum),
    };
    let mut out = ForwardBackward {
        loss: LossValue::Scalar(0.0),
        grad: Vec::new(),
        lse: loss.wants_row_outputs().then(Vec::new),
        argmax: loss.wants_row_outputs().then(Vec::new),
        accuracy: None,
    };
    let (mut row_losses, mut total) = (Vec::new(), 0.0_f64);
    for begin in (0..rows).step_by(group_rows) {
        let end = rows.min(begin + group_rows);
        let part_input = match input {
            HostInput::F32(v) => HostInput::F32(&v[begin * classes..end * classes]),
            HostInput::Half(HalfInput::F16(v)) => HostInput::Half(HalfInput::F16(&v[begin * classes..end * classes])),
            HostInput::Half(HalfInput::Bf16(v)) => HostInput::Half(HalfInput::Bf16(&v[begin * classes..end * classes])),
        };
        let part_targets = match targets {
            Targets::I64(t) => Targets::I64(&t[begin..end]),
            Targets::I32(t) => Targets::I32(&t[begin..end]),
            Targets::Probabilities(p) => Targets::Probabilities(&p[begin * classes..end * classes]),
        };
        let part_grad = match grad {
            Some(Upstream::Values(v)) => Some(Upstream::Values(&v[begin..end])),
            Some(Upstream::Scalar(g)) if reduction == Reduction::Mean => {
                Some(Upstream::Scalar((f64::from(g) / divisor) as f32))
            }
            other => other,
        };
        let part = forward_host_one(
            ctx,
            &group_loss,
            part_input,
            end - begin,
            classes,
            &part_targets,
            part_grad,
            waiting,
        )
        .await
        .map_err(|err| match err {
            LossError::TargetOutOfRange {
                row,
                value,
                classes,
                ignore_index,
            } => LossError::TargetOutOfRange {
                row: row + begin,
                value,
                classes,
                ignore_index,
            },
            other => other,
        })?;
        match part.loss {
            LossValue::Scalar(v) => total += f64::from(v),
            LossValue::Tensor { values, .. } => row_losses.extend(values),
        }
        out.grad.extend(part.grad);
        if let (Some(all), Some(some)) = (out.lse.as_mut(), part.lse) {
            all.extend(some);
        }
        if let (Some(all), Some(some)) = (out.argmax.as_mut(), part.argmax) {
            all.extend(some);
        }
    }
    out.loss = match reduction {
        Reduction::None => LossValue::Tensor {
            shape: vec![rows],
            values: row_losses,
        },
        Reduction::Sum => LossValue::Scalar(total as f32),
        _ => LossValue::Scalar((total / divisor) as f32),
    };
    if let (Some(argmax), false) = (&out.argmax, targets.is_probabilities()) {
        let indices: Vec<i64> = (0..rows).filter_map(|r| targets.index(r)).collect();
        out.accuracy = Some(accuracy_of(argmax, &indices, loss.ignored_index()));
    }
    Ok(out)
}

/// [`forward_host`] for an input that fits one buffer.
#[allow(clippy::too_many_arguments)]
async fn forward_host_one(
    ctx: &GpuContext,
    loss: &CrossEntropy,
    input: HostInput<'_>,
    rows: usize,
    classes: usize,
    targets: &Targets<'_>,
    grad: Option<Upstream<'_>>,
    waiting: Waiting,
) -> Result<ForwardBackward> {
    let (input_data, format) = input.bytes();
    let usage = wgpu::BufferUsages::COPY_SRC;
    let input_buf = upload(ctx, "cross_entropy.input", input_data, usage)?;
    // f32 input takes the gradient in place; half input needs an f32 gradient buffer.
    let grad_buf = (grad.is_some() && format != InputFormat::F32)
        .then(|| storage(ctx, "cross_entropy.grad", rows as u64 * classes as u64 * 4))
        .transpose()?;
    let targets_buf = upload(ctx, "cross_entropy.targets", targets.bytes(), usage)?;
    let upstream_buf = match grad {
        Some(Upstream::Values(v)) => Some(upload(ctx, "cross_entropy.upstream", bytemuck::cast_slice(v), usage)?),
        _ => None,
    };
    let upstream = match (grad, &upstream_buf) {
        (Some(Upstream::Scalar(g)), _) => Some(GpuUpstream::Scalar(g)),
        (Some(_), Some(buffer)) => Some(GpuUpstream::PerRow(buffer.into())),
        _ => None,
    };
    // Only the accuracy (row outputs, class indices) needs the targets on the host.
    let host_targets = targets
        .index(0)
        .filter(|_| loss.wants_row_outputs())
        .map(|_| (0..rows).filter_map(|r| targets.index(r)).collect::<Vec<_>>());
    let inputs = Inputs {
        input: (&input_buf).into(),
        format,
        rows,
        classes,
        targets: ((&targets_buf).into(), targets.layout()),
    };
    let into = grad_buf
        .as_ref()
        .map_or(GradInto::InPlace, |b| GradInto::Buffer(b.into()));
    let grad = upstream.map(|u| (into, u));
    run(ctx, loss, &inputs, grad, true, host_targets.as_deref(), waiting).await
}

/// Runs on buffers the caller owns and reads back the small results (never `[N, C]`).
pub(crate) fn forward_buffers(
    ctx: &GpuContext,
    loss: &CrossEntropy,
    input: InputAt<'_>,
    rows: usize,
    classes: usize,
    targets: GpuTargets<'_>,
    grad: Option<(GradInto<'_>, GpuUpstream<'_>)>,
) -> Result<ForwardBackward> {
    if rows == 0 {
        return Ok(empty_result(loss));
    }
    let inputs = Inputs {
        input: input.at,
        format: input.format,
        rows,
        classes,
        targets: (targets.at, TargetLayout::Indices(targets.width)),
    };
    pollster::block_on(run(ctx, loss, &inputs, grad, false, None, Waiting::Block))
}

/// The inputs of one recording.
pub(crate) struct Inputs<'a> {
    pub input: BufferAt<'a>,
    pub format: InputFormat,
    pub rows: usize,
    pub classes: usize,
    pub targets: (BufferAt<'a>, TargetLayout),
}

/// Fails unless `at` holds `bytes` bytes from a 4-aligned offset.
pub(crate) fn check_room(what: &'static str, at: BufferAt<'_>, bytes: u64, shape: &str) -> Result<()> {
    check_room_aligned(what, at, bytes, shape, 4)
}

/// Fails unless `at` holds `bytes` bytes from an offset that is a multiple of `align`.
pub(crate) fn check_room_aligned(
    what: &'static str,
    at: BufferAt<'_>,
    bytes: u64,
    shape: &str,
    align: u64,
) -> Result<()> {
    if !at.offset.is_multiple_of(align) || at.offset.checked_add(bytes).is_none_or(|end| end > at.buffer.size()) {
        return Err(LossError::BadBuffer {
            what,
            detail: format!(
                "{shape} needs {bytes} bytes at byte offset {} (a multiple of {align}), but the buffer has {} bytes",
                at.offset,
                at.buffer.size()
            ),
        });
    }
    Ok(())
}

/// Allocates the outputs, records, submits once, and reads back the small results (and,
/// with `read_grad`, the gradient), waiting as `waiting` says.
async fn run(
    ctx: &GpuContext,
    loss: &CrossEntropy,
    inputs: &Inputs<'_>,
    grad: Option<(GradInto<'_>, GpuUpstream<'_>)>,
    read_grad: bool,
    host_targets: Option<&[i64]>,
    waiting: Waiting,
) -> Result<ForwardBackward> {
    let (rows, classes) = (inputs.rows, inputs.classes);
    let rows64 = rows as u64;
    let reduction = loss.reduction_kind();
    let loss_bytes = if reduction == Reduction::None { rows64 * 4 } else { 8 };
    let loss_out = storage(ctx, "cross_entropy.loss", loss_bytes)?;
    let status = storage(ctx, "cross_entropy.status", 4)?;
    let rows_out = loss.wants_row_outputs();
    let row_stats = storage(ctx, "cross_entropy.row_stats", if rows_out { rows64 * 8 } else { 4 })?;
    let argmax = storage(ctx, "cross_entropy.argmax", if rows_out { rows64 * 4 } else { 4 })?;
    let outputs = CrossEntropyOutputs {
        loss: (&loss_out).into(),
        status: Some((&status).into()),
        row_stats: rows_out.then(|| (&row_stats).into()),
        argmax: rows_out.then(|| (&argmax).into()),
        grad,
    };
    let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("cross_entropy"),
    });
    encode(ctx, &mut encoder, loss, inputs, &outputs)?;
    // One staging buffer: status, the loss, then the per-row outputs asked for.
    let mut layout = vec![(&status, 4_u64), (&loss_out, loss_bytes)];
    if rows_out {
        layout.push((&row_stats, rows64 * 8));
        layout.push((&argmax, rows64 * 4));
    }
    let total: u64 = layout.iter().map(|(_, len)| len).sum();
    let stage = staging(ctx, "cross_entropy.readback", total)?;
    let mut at = 0;
    for (buffer, len) in &layout {
        encoder.copy_buffer_to_buffer(buffer, 0, &stage, at, *len);
        at += len;
    }
    let grad_bytes = rows64 * classes as u64 * 4;
    let grad_stage = match grad {
        Some((into, _)) if read_grad => {
            let source = match into {
                GradInto::InPlace => inputs.input,
                GradInto::Buffer(at) => at,
            };
            let stage = staging(ctx, "cross_entropy.grad_readback", grad_bytes)?;
            encoder.copy_buffer_to_buffer(source.buffer, source.offset, &stage, 0, grad_bytes);
            Some(stage)
        }
        _ => None,
    };
    submit(ctx, encoder)?;
    let bytes = read_mapped_with(&ctx.device, &stage, total, waiting).await?;
    let word = |i: usize| u32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
    check_status(ctx, loss, word(0), inputs)?;
    let floats: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
    let loss_value = match reduction {
        Reduction::None => LossValue::Tensor {
            shape: vec![rows],
            values: floats[1..1 + rows].to_vec(),
        },
        _ => LossValue::Scalar(floats[1]),
    };
    let (lse, argmax, accuracy) = if rows_out {
        let next = 1 + (loss_bytes / 4) as usize;
        let lse: Vec<f32> = (0..rows).map(|r| floats[next + 2 * r]).collect();
        let argmax: Vec<u32> = (0..rows).map(|r| word(next + 2 * rows + r)).collect();
        let accuracy = match (inputs.targets.1, host_targets) {
            (TargetLayout::Probabilities, _) => None,
            (_, Some(t)) => Some(accuracy_of(&argmax, t, loss.ignored_index())),
            (_, None) => Some(accuracy_of(
                &argmax,
                &read_targets(ctx, inputs.targets, rows)?,
                loss.ignored_index(),
            )),
        };
        (Some(lse), Some(argmax), accuracy)
    } else {
        (None, None, None)
    };
    let grad = match grad_stage {
        Some(stage) => bytemuck::pod_collect_to_vec(&read_mapped_with(&ctx.device, &stage, grad_bytes, waiting).await?),
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

/// Turns a non-zero status word into [`LossError::TargetOutOfRange`], reading the value.
pub(crate) fn check_status(ctx: &GpuContext, loss: &CrossEntropy, status: u32, inputs: &Inputs<'_>) -> Result<()> {
    let (at, TargetLayout::Indices(width)) = inputs.targets else {
        return Ok(());
    };
    if status == 0 {
        return Ok(());
    }
    // The kernel stores u32::MAX - row with atomicMax, so 0 means no bad row.
    let row = (u32::MAX - status) as usize;
    let size = width.bytes();
    let raw = read_buffer(ctx, at.buffer, at.offset + row as u64 * size, size)?;
    let value = match width {
        TargetWidth::I32 => i64::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
        TargetWidth::I64 => i64::from_le_bytes(raw[..8].try_into().unwrap_or([0; 8])),
    };
    Err(LossError::TargetOutOfRange {
        row,
        value,
        classes: inputs.classes,
        ignore_index: loss.ignored_index(),
    })
}

/// Records pass 1, the reduction and pass 2 into `encoder`, reading `inputs` and writing
/// `outputs`; submits nothing. Temporary buffers (O(N)) are created here and kept alive
/// by the recorded commands.
pub(crate) fn encode(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    loss: &CrossEntropy,
    inputs: &Inputs<'_>,
    outputs: &CrossEntropyOutputs<'_>,
) -> Result<()> {
    let (rows, classes) = (inputs.rows, inputs.classes);
    let rows64 = rows as u64;
    let classes64 = classes as u64;
    let shape = format!("[{rows}, {classes}]");
    let target_bytes = match inputs.targets.1 {
        TargetLayout::Indices(width) => rows64 * width.bytes(),
        TargetLayout::Probabilities => rows64 * classes64 * 4,
    };
    let reduction = loss.reduction_kind();
    let element = inputs.format.bytes();
    check_room_aligned("input", inputs.input, rows64 * classes64 * element, &shape, element)?;
    if inputs.format != InputFormat::F32 && matches!(outputs.grad, Some((GradInto::InPlace, _))) {
        return Err(LossError::Unsupported {
            loss: "cross-entropy",
            option: "an in-place gradient over f16/bf16 input (use GradInto::Buffer, f32)",
        });
    }
    check_room("targets", inputs.targets.0, target_bytes, &shape)?;
    check_room(
        "loss",
        outputs.loss,
        if reduction == Reduction::None { rows64 * 4 } else { 8 },
        &shape,
    )?;
    for (what, at, bytes) in [
        ("status", outputs.status, 4),
        ("row_stats", outputs.row_stats, rows64 * 8),
        ("argmax", outputs.argmax, rows64 * 4),
    ] {
        if let Some(at) = at {
            check_room(what, at, bytes, &shape)?;
        }
    }
    if let Some((into, upstream)) = outputs.grad {
        if let GradInto::Buffer(at) = into {
            check_room("grad", at, rows64 * classes64 * 4, &shape)?;
        }
        if let GpuUpstream::PerRow(at) = upstream {
            if reduction != Reduction::None {
                return Err(LossError::Unsupported {
                    loss: "cross-entropy",
                    option: "a per-row upstream gradient with a reduced loss (use GpuUpstream::Scalar)",
                });
            }
            check_room("upstream", at, rows64 * 4, &shape)?;
        }
    }
    // Class weights padded to whole vec4s (the row kernel reads them as vec4<f32>), in an
    // immutable content-cached buffer: the recording may be submitted after later calls.
    let mut weight_words: Vec<f32> = loss.weights().map_or_else(Vec::new, <[f32]>::to_vec);
    weight_words.resize(weight_words.len().next_multiple_of(4).max(4), 0.0);
    let weight_buf = constant(
        ctx,
        "cross_entropy.weight",
        bytemuck::cast_slice(&weight_words),
        wgpu::BufferUsages::empty(),
    )?;
    // (lse, A) per row is written for logits when the gradient or the caller reads it.
    let stats_rows = loss.input() == InputKind::Logits && (outputs.grad.is_some() || outputs.row_stats.is_some());
    // Internal O(N) buffers where the caller gave no output.
    let row_loss_own = (reduction != Reduction::None)
        .then(|| storage(ctx, "cross_entropy.row_loss", rows64 * 4))
        .transpose()?;
    let row_weight = storage(ctx, "cross_entropy.row_weight", rows64 * 4)?;
    let status_own = outputs
        .status
        .is_none()
        .then(|| storage(ctx, "cross_entropy.status", 4))
        .transpose()?;
    // Pass 1 writes (lse, A) for every row of logits: an own O(N) buffer unless given one.
    let stats_own = (outputs.row_stats.is_none())
        .then(|| storage(ctx, "cross_entropy.row_stats", if stats_rows { rows64 * 8 } else { 8 }))
        .transpose()?;
    let argmax_own = outputs
        .argmax
        .is_none()
        .then(|| storage(ctx, "cross_entropy.argmax", 4))
        .transpose()?;
    let row_bufs = RowBuffers {
        loss: match &row_loss_own {
            Some(b) => b.into(),
            None => outputs.loss,
        },
        weight: (&row_weight).into(),
        status: outputs
            .status
            .unwrap_or_else(|| status_own.as_ref().map(BufferAt::from).expect("allocated above")),
        stats: outputs
            .row_stats
            .unwrap_or_else(|| stats_own.as_ref().map(BufferAt::from).expect("allocated above")),
        stats_per_row: stats_rows,
        argmax: outputs
            .argmax
            .unwrap_or_else(|| argmax_own.as_ref().map(BufferAt::from).expect("allocated above")),
        argmax_per_row: outputs.argmax.is_some() && loss.wants_row_outputs(),
    };
    encoder.clear_buffer(row_bufs.status.buffer, row_bufs.status.offset, Some(4));
    let plan = Plan::choose(ctx, rows64, classes64, true);
    let pieces = pieces(ctx, rows64, classes64, inputs.targets.1, &plan)?;
    encode_rows(ctx, encoder, loss, inputs, &weight_buf, &row_bufs, &pieces, &plan)?;
    // The reduced loss, or for `none` a constant [0, 1] so that pass 2 scales by upstream / 1.
    let unit_divisor;
    let reduced: BufferAt<'_> = if reduction != Reduction::None {
        let finish = if reduction == Reduction::Sum {
            Finish::Sum
        } else {
            Finish::WeightedMean
        };
        let losses = row_bufs.loss.buffer;
        encode_batch_sum(ctx, encoder, losses, Some(&row_weight), rows64, finish, outputs.loss)?;
        outputs.loss
    } else {
        unit_divisor = constant(
            ctx,
            "cross_entropy.unit_divisor",
            bytemuck::cast_slice(&[0.0_f32, 1.0]),
            wgpu::BufferUsages::empty(),
        )?;
        (&unit_divisor).into()
    };
    if let Some((into, upstream)) = outputs.grad {
        let grad_at = match into {
            GradInto::InPlace => inputs.input,
            GradInto::Buffer(at) => at,
        };
        let grad_args = GradArgs {
            loss,
            inputs,
            weight: &weight_buf,
            stats: row_bufs.stats,
            reduced,
            grad: grad_at,
            in_place: matches!(into, GradInto::InPlace),
            upstream,
        };
        encode_grad(ctx, encoder, &grad_args, &pieces, &plan)?;
    }
    Ok(())
}

/// Per-row positions of one recording.
struct RowBuffers<'a> {
    loss: BufferAt<'a>,
    weight: BufferAt<'a>,
    status: BufferAt<'a>,
    stats: BufferAt<'a>,
    /// `stats` holds one (lse, A) pair per row (else it is a placeholder).
    stats_per_row: bool,
    argmax: BufferAt<'a>,
    /// `argmax` holds one u32 per row (else it is a placeholder).
    argmax_per_row: bool,
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

/// A piece of one dispatch: rows `[begin, begin + len)`, columns `[col_begin, col_begin +
/// cols)` of each (whole rows unless one row is larger than a binding; then `len` is 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub begin: u64,
    pub len: u64,
    pub col_begin: u64,
    pub cols: u64,
}

impl Piece {
    /// Elements from the piece's first to its last (rows are `classes` apart).
    fn span(&self, classes: u64) -> u64 {
        (self.len - 1) * classes + self.cols
    }

    /// The element index of the piece's first element.
    fn first(&self, classes: u64) -> u64 {
        self.begin * classes + self.col_begin
    }
}

/// Splits `rows` × `classes` into pieces whose every binding (logits, targets, per-row
/// outputs, split partials; pass 1 and pass 2) fits the device, and whose in-binding
/// indices stay below 2^31. Rows larger than a binding are cut into column ranges (whole
/// blocks of the split plan); any other plan refuses them.
pub(crate) fn pieces(
    ctx: &GpuContext,
    rows: u64,
    classes: u64,
    layout: TargetLayout,
    plan: &Plan,
) -> Result<Vec<Piece>> {
    let row_bytes = classes * 4;
    let target_row_bytes = match layout {
        TargetLayout::Indices(width) => width.bytes(),
        TargetLayout::Probabilities => row_bytes,
    };
    let partial_row_bytes = if plan.split() {
        classes.div_ceil(plan.block) * PARTIAL_BYTES
    } else {
        4
    };
    if rows >= u64::from(u32::MAX) || classes >= u64::from(u32::MAX) {
        return Err(LossError::TooLarge {
            what: "logits",
            detail: format!(
                "[{rows}, {classes}]: rows and classes are each at most {} (indices are u32 on the GPU)",
                u32::MAX - 1
            ),
        });
    }
    let small = items_per_binding(ctx, 8)
        .min(items_per_binding(ctx, partial_row_bytes))
        .min(items_per_binding(ctx, target_row_bytes.min(8)));
    let per_chunk = items_per_binding(ctx, row_bytes)
        .min(items_per_binding(ctx, target_row_bytes))
        .min(small)
        .min(u64::from(u32::MAX / 2) / classes.max(1));
    if per_chunk > 0 {
        return Ok((0..rows)
            .step_by(per_chunk as usize)
            .map(|begin| Piece {
                begin,
                len: per_chunk.min(rows - begin),
                col_begin: 0,
                cols: classes,
            })
            .collect());
    }
    // One row is larger than a binding: column ranges of whole blocks, split plan only.
    let range = (items_per_binding(ctx, 4).min(u64::from(u32::MAX / 2)) / plan.block) * plan.block;
    if !plan.split() || small == 0 || range == 0 {
        return Err(LossError::TooLarge {
            what: "logits",
            detail: format!(
                "one row of {classes} classes is {row_bytes} bytes, more than the device's largest storage binding ({} bytes){}",
                ctx.max_binding_bytes(),
                if plan.split() { "" } else { " (only the split-row strategy cuts rows)" }
            ),
        });
    }
    Ok((0..rows)
        .flat_map(|row| {
            (0..classes).step_by(range as usize).map(move |col_begin| Piece {
                begin: row,
                len: 1,
                col_begin,
                cols: range.min(classes - col_begin),
            })
        })
        .collect())
}

/// Bytes of one partial record of a split row (8 words; see `cross_entropy_partials`).
const PARTIAL_BYTES: u64 = 32;

/// The window of one piece's targets.
fn target_window<'a>(
    ctx: &GpuContext,
    (at, layout): (BufferAt<'a>, TargetLayout),
    classes: u64,
    piece: &Piece,
) -> Result<Window<'a>> {
    match layout {
        TargetLayout::Indices(width) => window(
            ctx,
            "targets",
            at.buffer,
            at.offset + piece.begin * width.bytes(),
            piece.len * width.bytes(),
        ),
        TargetLayout::Probabilities => window(
            ctx,
            "targets",
            at.buffer,
            at.offset + piece.first(classes) * 4,
            piece.span(classes) * 4,
        ),
    }
}

/// The window of one piece's input elements.
fn input_window<'a>(
    ctx: &GpuContext,
    input: BufferAt<'a>,
    fmt: InputFormat,
    classes: u64,
    piece: &Piece,
) -> Result<Window<'a>> {
    let eb = fmt.bytes();
    window_of(
        ctx,
        "logits",
        input.buffer,
        input.offset + piece.first(classes) * eb,
        piece.span(classes) * eb,
        eb,
    )
}

/// Records the row kernel over all pieces: `cross_entropy_rows` per piece, or for a split
/// plan `cross_entropy_partials` per piece and then `cross_entropy_merge` per row chunk.
#[allow(clippy::too_many_arguments)]
fn encode_rows<'a>(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    loss: &CrossEntropy,
    inputs: &Inputs<'_>,
    weight: &wgpu::Buffer,
    bufs: &RowBuffers<'a>,
    pieces: &[Piece],
    plan: &Plan,
) -> Result<()> {
    let (input, classes, targets, fmt) = (inputs.input, inputs.classes as u64, inputs.targets, inputs.format);
    let kernel = |pass| Kernel::CrossEntropyRows {
        team: plan.team,
        pass,
        targets: targets.1,
        weighted: loss.weights().is_some(),
        smoothing: loss.smoothing() > 0.0,
        input: loss.input(),
        softcap: loss.softcap_value().is_some(),
        z_loss: loss.z_loss_value() != 0.0,
        argmax: bufs.argmax_per_row,
        format: fmt,
    };
    let ignore = loss.ignored_index() as u64;
    let layout = ctx.pipelines.bind_group_layout(Layout::Rows);
    // A position and a per-row stride, as a window of chunk rows (or a placeholder).
    let rows_window =
        |what, at: BufferAt<'a>, stride: u64, per_row: bool, begin: u64, len: u64| -> Result<Window<'a>> {
            if per_row {
                window(ctx, what, at.buffer, at.offset + begin * stride, len * stride)
            } else {
                window(ctx, what, at.buffer, at.offset, stride)
            }
        };
    let blocks = classes.div_ceil(plan.block);
    let partials = plan
        .split()
        .then(|| {
            storage(
                ctx,
                "cross_entropy.partials",
                pieces.last().map_or(0, |p| p.begin + p.len) * blocks * PARTIAL_BYTES,
            )
        })
        .transpose()?;
    let status_w = window(ctx, "status", bufs.status.buffer, bufs.status.offset, 4)?;
    let base = RowParams {
        classes: classes as u32,
        ignore_lo: ignore as u32,
        ignore_hi: (ignore >> 32) as u32,
        label_smoothing: loss.smoothing() as f32,
        epsilon: loss.epsilon_value() as f32,
        softcap: loss.softcap_value().unwrap_or(1.0) as f32,
        z_loss: loss.z_loss_value() as f32,
        status_offset: status_w.word_shift,
        write_stats: u32::from(bufs.stats_per_row),
        block_cols: plan.block as u32,
        blocks_per_row: blocks as u32,
        ..RowParams::zeroed()
    };
    // Binding 3: the class weights, or for plain f32 logits the logits window again, cut to
    // whole 16-byte units, for the kernel's vec4 loads (`aux_words` says how far).
    let plain = fmt == InputFormat::F32
        && loss.weights().is_none()
        && loss.softcap_value().is_none()
        && targets.1 != TargetLayout::Probabilities
        && !bufs.argmax_per_row;
    let bind = |params: &RowParams, bindings: [wgpu::BindingResource<'_>; 8]| -> Result<wgpu::BindGroup> {
        let params_buf = uniform(ctx, "cross_entropy.params", bytemuck::bytes_of(params))?;
        let mut resources = vec![params_buf.as_entire_binding()];
        resources.extend(bindings);
        Ok(ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("cross_entropy.rows"),
            layout,
            entries: &entries(resources),
        }))
    };
    let placeholder = partials
        .is_some()
        .then(|| storage(ctx, "cross_entropy.placeholder", 4))
        .transpose()?;
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("cross_entropy.rows"),
        timestamp_writes: None,
    });
    if let Some(partials) = &partials {
        // Pass 1: a team per block of every piece.
        let pipeline = ctx.pipelines.get(kernel(RowPass::Partials))?;
        pass.set_pipeline(&pipeline);
        let placeholder = placeholder.as_ref().expect("allocated with the partials");
        for piece in pieces {
            let logits_w = input_window(ctx, input, fmt, classes, piece)?;
            let targets_w = target_window(ctx, targets, classes, piece)?;
            let record = blocks * PARTIAL_BYTES;
            let partials_w = window(ctx, "partials", partials, piece.begin * record, piece.len * record)?;
            let spare = window(ctx, "placeholder", placeholder, 0, 4)?;
            let (aux_resource, aux_words) = aux_binding(plain, &logits_w, weight);
            let params = RowParams {
                rows: piece.len as u32,
                aux_words,
                logits_offset: logits_w.word_shift,
                targets_offset: targets_w.word_shift,
                out_offset: partials_w.word_shift / 8,
                row_base: piece.begin as u32,
                col_begin: piece.col_begin as u32,
                cols: piece.cols as u32,
                ..base
            };
            let bind_group = bind(
                &params,
                [
                    logits_w.binding(),
                    targets_w.binding(),
                    aux_resource,
                    partials_w.binding(),
                    spare.binding(),
                    status_w.binding(),
                    spare.binding(),
                    spare.binding(),
                ],
            )?;
            let teams = piece.len * piece.cols.div_ceil(plan.block);
            let (x, y) = grid(ctx, teams.div_ceil(plan.teams_per_group).min(plan.max_groups))?;
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
    }
    // Whole rows, or pass 2 of split rows: per row chunk (pieces of the same rows merged).
    let pipeline = ctx
        .pipelines
        .get(kernel(if plan.split() { RowPass::Merge } else { RowPass::Whole }))?;
    pass.set_pipeline(&pipeline);
    let mut chunks: Vec<Piece> = Vec::new();
    for piece in pieces {
        match chunks.last_mut() {
            Some(last) if last.begin == piece.begin => last.cols = classes,
            _ => chunks.push(*piece),
        }
    }
    for chunk in &chunks {
        let (begin, len) = (chunk.begin, chunk.len);
        // Merge: one invocation per row, every row its own; whole rows: teams loop over rows.
        let (logits_w, groups) = match &partials {
            Some(partials) => {
                let record = blocks * PARTIAL_BYTES;
                let w = window(ctx, "partials", partials, begin * record, len * record)?;
                (w, len.div_ceil(u64::from(TEAM_GROUP_SIZE)))
            }
            None => {
                let w = input_window(ctx, input, fmt, classes, chunk)?;
                (w, len.div_ceil(plan.teams_per_group).min(plan.max_groups))
            }
        };
        let targets_w = match targets.1 {
            TargetLayout::Indices(_) => target_window(ctx, targets, classes, chunk)?,
            // Probability targets are only read by pass 1 when split.
            TargetLayout::Probabilities if partials.is_some() => {
                window(ctx, "targets", targets.0.buffer, targets.0.offset, 4)?
            }
            TargetLayout::Probabilities => target_window(ctx, targets, classes, chunk)?,
        };
        let loss_w = rows_window("row losses", bufs.loss, 4, true, begin, len)?;
        let weight_w = rows_window("row weights", bufs.weight, 4, true, begin, len)?;
        let stats_w = rows_window("row stats", bufs.stats, 8, bufs.stats_per_row, begin, len)?;
        let argmax_w = rows_window("argmax", bufs.argmax, 4, bufs.argmax_per_row, begin, len)?;
        // Each per-row binding has its own shift (caller's buffers sit at any offset).
        let (aux_resource, aux_words) = if partials.is_some() {
            (weight.as_entire_binding(), 0)
        } else {
            aux_binding(plain, &logits_w, weight)
        };
        let params = RowParams {
            rows: len as u32,
            aux_words,
            logits_offset: logits_w.word_shift,
            targets_offset: targets_w.word_shift,
            out_offset: loss_w.word_shift,
            row_base: begin as u32,
            lse_offset: stats_w.word_shift / 2,
            weight_offset: weight_w.word_shift,
            argmax_offset: argmax_w.word_shift,
            cols: classes as u32,
            ..base
        };
        let bind_group = bind(
            &params,
            [
                logits_w.binding(),
                targets_w.binding(),
                aux_resource,
                loss_w.binding(),
                weight_w.binding(),
                status_w.binding(),
                stats_w.binding(),
                argmax_w.binding(),
            ],
        )?;
        let (x, y) = grid(ctx, groups)?;
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }
    Ok(())
}

/// Binding 3 of the row kernel: `window` cut to whole 16-byte units when `plain` (and
/// the elements it covers), else `weight`.
fn aux_binding<'w>(plain: bool, window: &Window<'w>, weight: &'w wgpu::Buffer) -> (wgpu::BindingResource<'w>, u32) {
    let size = window.size / 16 * 16;
    if plain && size > 0 {
        let cut = Window {
            buffer: window.buffer,
            offset: window.offset,
            size,
            word_shift: window.word_shift,
        };
        (cut.binding(), (size / 4) as u32)
    } else {
        (weight.as_entire_binding(), 0)
    }
}

/// The buffers and options of pass 2.
struct GradArgs<'a> {
    loss: &'a CrossEntropy,
    inputs: &'a Inputs<'a>,
    weight: &'a wgpu::Buffer,
    stats: BufferAt<'a>,
    reduced: BufferAt<'a>,
    grad: BufferAt<'a>,
    in_place: bool,
    upstream: GpuUpstream<'a>,
}

/// Records `cross_entropy_grad` over all pieces. A workgroup covers whole rows (at least
/// `GRAD_ELEMENTS_PER_GROUP` elements), or for a split plan one block of one row.
fn encode_grad(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    args: &GradArgs<'_>,
    pieces: &[Piece],
    plan: &Plan,
) -> Result<()> {
    let loss = args.loss;
    let classes = args.inputs.classes as u64;
    let placeholder = storage(ctx, "cross_entropy.grad.placeholder", 4)?;
    let (per_row_upstream, upstream_at, upstream_scalar) = match args.upstream {
        GpuUpstream::PerRow(at) => (true, at, 0.0),
        GpuUpstream::Scalar(g) => (false, BufferAt::from(&placeholder), g),
    };
    let in_place = args.in_place;
    let pipeline = ctx.pipelines.get(Kernel::CrossEntropyGrad {
        targets: args.inputs.targets.1,
        weighted: loss.weights().is_some(),
        smoothing: loss.smoothing() > 0.0,
        input: loss.input(),
        softcap: loss.softcap_value().is_some(),
        z_loss: loss.z_loss_value() != 0.0,
        in_place,
        per_row_upstream,
        format: args.inputs.format,
    })?;
    let logits_kind = loss.input() == InputKind::Logits;
    let ignore = loss.ignored_index() as u64;
    let layout = ctx.pipelines.bind_group_layout(Layout::Grad);
    let reduced_w = window(ctx, "reduced", args.reduced.buffer, args.reduced.offset, 8)?;
    let (rows_per_group, cols_per_group) = if plan.split() {
        (1, plan.block)
    } else {
        (GRAD_ELEMENTS_PER_GROUP.div_ceil(classes).max(1), classes)
    };
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("cross_entropy.grad"),
        timestamp_writes: None,
    });
    pass.set_pipeline(&pipeline);
    for piece in pieces {
        let (begin, len) = (piece.begin, piece.len);
        let grad_w = window(
            ctx,
            "gradient",
            args.grad.buffer,
            args.grad.offset + piece.first(classes) * 4,
            piece.span(classes) * 4,
        )?;
        let input_w = if in_place {
            window(ctx, "input", &placeholder, 0, 4)?
        } else {
            input_window(ctx, args.inputs.input, args.inputs.format, classes, piece)?
        };
        let targets_w = target_window(ctx, args.inputs.targets, classes, piece)?;
        let stats = args.stats;
        let lse_w = if logits_kind {
            window(ctx, "row stats", stats.buffer, stats.offset + begin * 8, len * 8)?
        } else {
            window(ctx, "row stats", stats.buffer, stats.offset, 8)?
        };
        let upstream_w = if per_row_upstream {
            window(
                ctx,
                "upstream",
                upstream_at.buffer,
                upstream_at.offset + begin * 4,
                len * 4,
            )?
        } else {
            window(ctx, "upstream", upstream_at.buffer, upstream_at.offset, 4)?
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
            reduced_offset: reduced_w.word_shift,
            col_begin: piece.col_begin as u32,
            cols: piece.cols as u32,
            cols_per_group: cols_per_group.min(piece.cols) as u32,
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
                reduced_w.binding(),
                grad_w.binding(),
            ]),
        });
        pass.set_bind_group(0, &bind_group, &[]);
        let x = piece.cols.div_ceil(cols_per_group.min(piece.cols));
        let y = len.div_ceil(rows_per_group);
        let per_dim = u64::from(ctx.limits.max_compute_workgroups_per_dimension);
        if x > per_dim || y > per_dim {
            return Err(LossError::TooLarge {
                what: "dispatch",
                detail: format!("{x}×{y} gradient workgroups exceed {per_dim} per dimension"),
            });
        }
        pass.dispatch_workgroups(x as u32, y as u32, 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Strategy;

    /// Every piece stays inside the device's bindings with u32 in-binding indices below
    /// 2^31, the pieces tile the array exactly, and byte offsets (u64) are exact, for arrays
    /// of 2^32 elements and more (nothing is allocated: only the index arithmetic runs).
    fn check_tiling(ctx: &GpuContext, rows: u64, classes: u64, plan: &Plan) {
        let tiles = pieces(ctx, rows, classes, TargetLayout::Indices(TargetWidth::I64), plan).expect("pieces");
        let binding = ctx.max_binding_bytes();
        let mut next = (0_u64, 0_u64); // (row, column) expected next
        for piece in &tiles {
            assert_eq!(
                (piece.begin, piece.col_begin),
                next,
                "{rows}x{classes}: gap or overlap at {piece:?}"
            );
            let span = piece.span(classes);
            assert!(span * 4 <= binding, "{piece:?}: {} bytes bound", span * 4);
            assert!(span < 1 << 31, "{piece:?}: in-binding index {span}");
            assert!(piece.begin + piece.len <= rows && piece.col_begin + piece.cols <= classes);
            // The last element's byte offset, computed in u64, is where it belongs.
            let last = (piece.begin + piece.len - 1) * classes + piece.col_begin + piece.cols - 1;
            assert_eq!(piece.first(classes) + span - 1, last);
            next = if piece.col_begin + piece.cols == classes {
                (piece.begin + piece.len, 0)
            } else {
                (piece.begin, piece.col_begin + piece.cols)
            };
        }
        assert_eq!(next, (rows, 0), "{rows}x{classes}: not covered");
    }

    #[test]
    fn pieces_tile_arrays_past_u32_indices() {
        let ctx = GpuContext::new_blocking().expect("GPU tests need a GPU adapter");
        // 2^34 elements in whole rows; a row of 2^31 + 5 classes (3 rows: > 2^32 elements)
        // in column ranges; and with a lowered binding limit, many more pieces.
        let whole = Plan::choose(&ctx, 1 << 22, 1 << 12, true);
        assert!(!whole.split());
        check_tiling(&ctx, 1 << 22, 1 << 12, &whole);
        let split = Plan::choose(&ctx, 3, (1 << 31) + 5, true);
        assert!(split.split(), "a row larger than a binding is split");
        check_tiling(&ctx, 3, (1 << 31) + 5, &split);
        let small = GpuContext::new_blocking().expect("adapter").with_binding_limit(1 << 16);
        check_tiling(&small, 1 << 20, 4099, &Plan::choose(&small, 1 << 20, 4099, true));
        let forced = GpuContext::new_blocking()
            .expect("adapter")
            .with_binding_limit(1 << 16)
            .with_strategy(Strategy::SplitRow);
        let classes = (1 << 22) + 3;
        check_tiling(&forced, 5, classes, &Plan::choose(&forced, 5, classes, true));
        // Shapes whose indices cannot be u32 are refused with the shape.
        let err = pieces(&ctx, 2, 1 << 33, TargetLayout::Indices(TargetWidth::I64), &split).unwrap_err();
        assert!(err.to_string().contains("8589934592"), "{err}");
    }
}
