//! Cross-entropy recorded on the GPU: checks the caller's buffers, allocates the O(N)
//! temporaries, then records pass 1 (`rows.rs`), the fixed-order batch sum and pass 2
//! (`grad.rs`) over the tiler's pieces. Submits nothing.

use crate::api::buffers::{BufferAt, GradInto, Outputs};
use crate::api::host::Upstream;
use crate::api::kinds::{InputFormat, InputKind};
use crate::api::reduction::Reduction;
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::io::{constant, storage};
use crate::gpu::kernels::TargetLayout;
use crate::gpu::plan::Plan;
use crate::gpu::pool::Lease;
use crate::gpu::reduce::{encode_batch_sum, encode_empty as encode_empty_sum, Finish};
use crate::gpu::tiler::{pieces, whole_rows_per_piece};
use crate::gpu::window::{bytes_of, check_room, check_room_aligned};

use super::grad::{encode_grad, GradArgs};
use super::rows::{encode_rows, row_sums, RowBuffers, RowsArgs};
use super::spec::{Inputs, ShardStep, ShardView, Spec};
use crate::gpu::plan::PARTIAL_BYTES;

/// An output position of one recording: the caller's, or a temporary leased for it.
enum Slot<'a> {
    Given(BufferAt<'a>),
    Own(Lease),
}

impl<'a> Slot<'a> {
    /// `given`, or a new `bytes`-byte temporary.
    fn new(ctx: &GpuContext, given: Option<BufferAt<'a>>, label: &str, bytes: u64) -> Result<Self> {
        Ok(match given {
            Some(at) => Slot::Given(at),
            None => Slot::Own(storage(ctx, label, bytes)?),
        })
    }

    fn at(&self) -> BufferAt<'_> {
        match self {
            Slot::Given(at) => *at,
            Slot::Own(lease) => lease.into(),
        }
    }
}

/// Fails unless every buffer of the recording has room for `[N, C]` at its offset, and the
/// gradient options fit the input and the reduction.
fn check_buffers(
    spec: &Spec<'_>,
    inputs: &Inputs<'_>,
    outputs: &Outputs<'_>,
    loss: Option<(BufferAt<'_>, u64)>,
) -> Result<()> {
    let (rows, classes) = (inputs.rows as u64, inputs.classes as u64);
    let shape = positions_shape(inputs);
    let target_bytes = match inputs.targets.1 {
        TargetLayout::Indices(width) => bytes_of(&[rows, width.bytes()]),
        TargetLayout::Probabilities => bytes_of(&[rows, classes, 4]),
    };
    let element = inputs.format.bytes();
    check_room_aligned(
        "input",
        inputs.input,
        bytes_of(&[rows, classes, element]),
        &shape,
        element,
    )?;
    if inputs.format != InputFormat::F32 && matches!(outputs.grad, Some((GradInto::InPlace, _))) {
        return Err(LossError::Unsupported {
            loss: "cross-entropy",
            option: "an in-place gradient over f16/bf16 input (use GradInto::Buffer, f32)",
        });
    }
    check_room("targets", inputs.targets.0, target_bytes, &shape)?;
    if let Some(ShardView {
        step: ShardStep::Finish(merged),
        ..
    }) = inputs.shard
    {
        check_room("merged records", merged, bytes_of(&[rows, PARTIAL_BYTES]), &shape)?;
    }
    if let Some((at, bytes)) = loss {
        check_room("loss", at, bytes, &shape)?;
    }
    for (what, at, bytes) in [
        ("status", outputs.status, 4),
        ("row_stats", outputs.row_stats, bytes_of(&[rows, 8])),
        ("argmax", outputs.argmax, bytes_of(&[rows, 4])),
    ] {
        if let Some(at) = at {
            check_room(what, at, bytes, &shape)?;
        }
    }
    if let Some((into, upstream)) = outputs.grad {
        if let GradInto::Buffer(at) = into {
            check_room("grad", at, bytes_of(&[rows, classes, 4]), &shape)?;
        }
        if let Upstream::Values(at) = upstream {
            if spec.reduction != Reduction::None {
                return Err(LossError::Unsupported {
                    loss: "cross-entropy",
                    option: "a per-row upstream gradient with a reduced loss (use Upstream::Scalar)",
                });
            }
            check_room("upstream", at, bytes_of(&[rows, 4]), &shape)?;
        }
    }
    Ok(())
}

/// The input's shape for errors: `[N, C]`, or `[N, C, d1·…·dk]` for strided positions.
fn positions_shape(inputs: &Inputs<'_>) -> String {
    let (rows, classes, inner) = (inputs.rows, inputs.classes, inputs.inner);
    if inner > 1 {
        format!("[{}, {classes}, {inner}] (N, C, d1·…·dk)", rows / inner)
    } else {
        format!("[{rows}, {classes}]")
    }
}

/// Class weights padded to whole vec4s (the row kernel reads them as vec4<f32>), in an
/// immutable content-cached buffer: the recording may be submitted after later calls.
pub(crate) fn weight_buffer(ctx: &GpuContext, spec: &Spec<'_>) -> Result<wgpu::Buffer> {
    let mut words: Vec<f32> = spec.weight.map_or_else(Vec::new, <[f32]>::to_vec);
    words.resize(words.len().next_multiple_of(4).max(4), 0.0);
    constant(
        ctx,
        "cross_entropy.weight",
        bytemuck::cast_slice(&words),
        wgpu::BufferUsages::empty(),
    )
}

/// Records the result of an empty batch after the same checks: the reduced loss PyTorch
/// gives (`[0, 1]` for a sum, `[NaN, 0]` for a mean over no rows) and a cleared status;
/// nothing else has elements.
pub(crate) fn encode_empty(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    spec: &Spec<'_>,
    inputs: &Inputs<'_>,
    outputs: &Outputs<'_>,
) -> Result<()> {
    let reduced = spec.reduction != Reduction::None;
    let loss = outputs.loss.map(|at| (at, if reduced { 8 } else { 0 }));
    check_buffers(spec, inputs, outputs, loss)?;
    if let (Some(at), true) = (outputs.loss, reduced) {
        let divisor = if spec.reduction == Reduction::Sum { 1.0 } else { 0.0 };
        encode_empty_sum(ctx, encoder, divisor, at)?;
    }
    if let Some(status) = outputs.status {
        encoder.clear_buffer(status.buffer, status.offset, Some(4));
    }
    Ok(())
}

/// The plan of a recording: strided positions (`[N, C, d1, …]`) take one invocation each,
/// so that neighbouring invocations read neighbouring addresses for every class.
/// A slice larger than a binding is split along its positions and classes
/// (`Plan::strided_split`).
fn plan_of(ctx: &GpuContext, inputs: &Inputs<'_>) -> Plan {
    let (rows, classes, inner) = (inputs.rows as u64, inputs.classes as u64, inputs.inner as u64);
    if inputs.shard.is_some() {
        return Plan::shard(ctx, classes);
    }
    if inner == 1 {
        return Plan::choose(ctx, rows, classes, true);
    }
    let plan = Plan::invocation_per_row(ctx);
    if whole_rows_per_piece(ctx, (classes, inner), inputs.targets.1, &plan) > 0 {
        plan
    } else {
        Plan::strided_split(ctx, classes, inner)
    }
}

/// Records pass 1, the reduction and pass 2 into `encoder`, reading `inputs` and writing
/// `outputs`; submits nothing. Temporary buffers (O(N)) are created here and kept alive
/// by the recorded commands.
pub(crate) fn encode(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    spec: &Spec<'_>,
    inputs: &Inputs<'_>,
    outputs: &Outputs<'_>,
) -> Result<()> {
    encode_with(ctx, encoder, spec, inputs, outputs, None)
}

/// [`encode`], where for reduction `none` a scalar upstream is divided by the divisor of
/// the `[_, divisor]` pair at `divisor` (a GPU buffer) instead of by 1: the rows are a tile
/// of a larger mean whose divisor is known before its rows' losses are (the fused linear
/// cross-entropy).
pub(crate) fn encode_with(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    spec: &Spec<'_>,
    inputs: &Inputs<'_>,
    outputs: &Outputs<'_>,
    divisor: Option<BufferAt<'_>>,
) -> Result<()> {
    let (rows, classes) = (inputs.rows as u64, inputs.classes as u64);
    let reduced_loss = spec.reduction != Reduction::None;
    let loss_bytes = if reduced_loss { 8 } else { rows * 4 };
    // Without a loss output the loss still goes somewhere: pass 2 reads [loss, divisor].
    let loss = Slot::new(ctx, outputs.loss, "cross_entropy.loss", loss_bytes)?;
    check_buffers(spec, inputs, outputs, Some((loss.at(), loss_bytes)))?;
    let weight = weight_buffer(ctx, spec)?;
    // (lse, A) per row is written for logits when the gradient or the caller reads it.
    let stats_per_row = spec.kind == InputKind::Logits && (outputs.grad.is_some() || outputs.row_stats.is_some());
    let plan = plan_of(ctx, inputs);
    let pieces = pieces(ctx, (rows, classes, inputs.inner as u64), inputs.targets.1, &plan)?;
    // Row losses go straight to the loss output for `none`, else to a temporary to reduce.
    let (sums, per_team) = row_sums(reduced_loss, &plan, &pieces, (rows, classes));
    let row_loss = Slot::new(
        ctx,
        (!reduced_loss).then(|| loss.at()),
        "cross_entropy.row_loss",
        sums * 4,
    )?;
    let row_weight = storage(ctx, "cross_entropy.row_weight", sums * 4)?;
    let status = Slot::new(ctx, outputs.status, "cross_entropy.status", 4)?;
    let stats_bytes = if stats_per_row { rows * 8 } else { 8 };
    let stats = Slot::new(ctx, outputs.row_stats, "cross_entropy.row_stats", stats_bytes)?;
    let argmax = Slot::new(ctx, outputs.argmax, "cross_entropy.argmax", 4)?;
    let bufs = RowBuffers {
        loss: row_loss.at(),
        weight: (&row_weight).into(),
        status: status.at(),
        stats: stats.at(),
        stats_per_row,
        argmax: argmax.at(),
        argmax_per_row: outputs.argmax.is_some() && spec.row_outputs,
        reduced: per_team,
    };
    encoder.clear_buffer(bufs.status.buffer, bufs.status.offset, Some(4));
    let weight = &weight;
    let rows_args = RowsArgs {
        spec,
        inputs,
        weight,
        bufs: &bufs,
        pieces: &pieces,
        plan: &plan,
    };
    encode_rows(ctx, encoder, &rows_args)?;
    // The reduced loss, or for `none` a constant [0, 1] so that pass 2 scales by upstream / 1.
    let unit_divisor;
    let reduced = if reduced_loss {
        let finish = match spec.reduction {
            Reduction::Sum => Finish::Sum,
            _ => Finish::WeightedMean,
        };
        let weights = Some(&*row_weight);
        encode_batch_sum(ctx, encoder, bufs.loss.buffer, weights, sums, finish, loss.at())?;
        loss.at()
    } else if let Some(divisor) = divisor {
        divisor
    } else {
        let unit = bytemuck::cast_slice(&[0.0_f32, 1.0]);
        unit_divisor = constant(ctx, "cross_entropy.unit_divisor", unit, wgpu::BufferUsages::empty())?;
        (&unit_divisor).into()
    };
    match outputs.grad {
        Some(grad) => record_grad(ctx, encoder, &rows_args, reduced, grad),
        None => Ok(()),
    }
}

/// Records a vocabulary shard's first step (`inputs.shard`: `ShardStep::Partials`): each
/// row's partial record over the shard's classes, into the step's buffer. Submits nothing.
pub(crate) fn encode_partials(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    spec: &Spec<'_>,
    inputs: &Inputs<'_>,
) -> Result<()> {
    let Some(ShardView {
        step: ShardStep::Partials(records),
        ..
    }) = inputs.shard
    else {
        return Err(LossError::BadShard {
            detail: "a shard's partials step without its records buffer".into(),
        });
    };
    let rows = inputs.rows as u64;
    check_buffers(spec, inputs, &Outputs::default(), None)?;
    check_room(
        "records",
        records,
        bytes_of(&[rows, PARTIAL_BYTES]),
        &positions_shape(inputs),
    )?;
    let weight = weight_buffer(ctx, spec)?;
    let plan = plan_of(ctx, inputs);
    let pieces = pieces(ctx, (rows, inputs.classes as u64, 1), inputs.targets.1, &plan)?;
    let status = storage(ctx, "cross_entropy.status", 4)?;
    let spare = storage(ctx, "cross_entropy.spare", 8)?;
    let bufs = RowBuffers {
        loss: (&spare).into(),
        weight: (&spare).into(),
        status: (&status).into(),
        stats: (&spare).into(),
        stats_per_row: false,
        argmax: (&spare).into(),
        argmax_per_row: spec.row_outputs,
        reduced: false,
    };
    let rows_args = RowsArgs {
        spec,
        inputs,
        weight: &weight,
        bufs: &bufs,
        pieces: &pieces,
        plan: &plan,
    };
    encode_rows(ctx, encoder, &rows_args)
}

/// Records pass 2 over the pieces of pass 1, reading `reduced` ([loss, divisor]).
fn record_grad(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    rows: &RowsArgs<'_>,
    reduced: BufferAt<'_>,
    (into, upstream): (GradInto<'_>, Upstream<BufferAt<'_>>),
) -> Result<()> {
    let grad_args = GradArgs {
        spec: rows.spec,
        inputs: rows.inputs,
        weight: rows.weight,
        stats: rows.bufs.stats,
        reduced,
        grad: match into {
            GradInto::InPlace => rows.inputs.input,
            GradInto::Buffer(at) => at,
        },
        in_place: matches!(into, GradInto::InPlace),
        upstream,
    };
    encode_grad(ctx, encoder, &grad_args, rows.pieces, rows.plan)
}
