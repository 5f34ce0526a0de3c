//! The linear cross-entropy's host path on the GPU: uploads `W` and `b` in vocabulary
//! parts that each fit one buffer, and `h` and the targets in groups of rows that do
//! (`gpu::driver`: with more than one group each runs with reduction `sum` and the upstream
//! over the whole call's divisor, `∂W` and `∂b` adding up on the device across groups),
//! records through `gpu.rs`, and reads the results back.

use crate::api::buffers::{BufferAt, InputAt};
use crate::api::host::{Input, Targets, Upstream};
use crate::api::kinds::{InputFormat, TargetWidth};
use crate::api::linear::{Grads, LinearBatch, LinearForwardBackward, LinearShape};
use crate::api::reduction::{LossValue, Reduction};
use crate::api::shard::{VocabShard, RECORD_WORDS};
use crate::cpu;
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::driver::{group_reduction, group_upstream, groups, rows_per_group};
use crate::gpu::io::{held_storage, read_back, storage, upload, Waiting};
use crate::gpu::plan::PARTIAL_BYTES;
use crate::gpu::pool::Lease;
use crate::losses::cross_entropy::cpu::accuracy_of;
use crate::losses::cross_entropy::spec::{ShardStep, ShardView, Spec};

use super::fast::row_weights;
use super::gpu::{encode, Recording};
use super::products::Part;

/// A validated host call.
pub(crate) struct HostCall<'a> {
    pub batch: &'a LinearBatch<'a>,
    pub targets: &'a [i64],
    pub upstream: Option<Upstream<&'a [f32]>>,
    pub grads: Grads,
    pub per_tile: usize,
    pub waiting: Waiting,
    /// A vocabulary shard's finish: classes `[start, start + V_shard)` of `total`, and the
    /// merged records of every row.
    pub shard: Option<(usize, usize, &'a [u32])>,
}

/// The uploaded vocabulary parts and their gradient buffers, kept across groups.
struct Parts {
    w: Vec<Lease>,
    b: Vec<Option<Lease>>,
    grad_w: Vec<Option<Lease>>,
    grad_b: Vec<Option<Lease>>,
    ranges: Vec<(usize, usize)>,
}

fn upload_parts(ctx: &GpuContext, call: &HostCall<'_>) -> Result<Parts> {
    let LinearShape { hidden, classes, .. } = call.batch.shape;
    let (grad_w, grad_b) = (
        call.grads.w && call.upstream.is_some(),
        call.grads.b && call.upstream.is_some(),
    );
    let row_bytes = (hidden as u64 * call.batch.w.format().bytes()).max(if grad_w { hidden as u64 * 4 } else { 4 });
    let per_part = rows_per_group(ctx, classes, row_bytes, "W")?.unwrap_or(classes);
    let mut parts = Parts {
        w: Vec::new(),
        b: Vec::new(),
        grad_w: Vec::new(),
        grad_b: Vec::new(),
        ranges: Vec::new(),
    };
    for range in groups(classes, per_part) {
        let (first, len) = (range.start, range.len());
        let w = call.batch.w.slice(first * hidden, (first + len) * hidden);
        parts.w.push(upload(
            ctx,
            "linear_cross_entropy.w",
            w.bytes(),
            wgpu::BufferUsages::empty(),
        )?);
        let b = call.batch.b.map(|b| b.slice(first, first + len));
        parts.b.push(
            b.map(|b| upload(ctx, "linear_cross_entropy.b", b.bytes(), wgpu::BufferUsages::empty()))
                .transpose()?,
        );
        // ∂W and ∂b add up over the row groups' submissions: held, not scratch.
        let held = |on: bool, n: u64| Option::transpose(on.then(|| held_storage(ctx, "linear_cross_entropy.grad", n)));
        parts.grad_w.push(held(grad_w, (len * hidden) as u64 * 4)?);
        parts.grad_b.push(held(grad_b && b.is_some(), len as u64 * 4)?);
        parts.ranges.push((first, len));
    }
    Ok(parts)
}

impl Parts {
    fn parts(&self, format: (InputFormat, Option<InputFormat>)) -> Vec<Part<'_>> {
        (0..self.w.len())
            .map(|p| Part {
                first: self.ranges[p].0,
                len: self.ranges[p].1,
                w: InputAt {
                    at: (&self.w[p]).into(),
                    format: format.0,
                },
                b: self.b[p].as_ref().zip(format.1).map(|(lease, format)| InputAt {
                    at: lease.into(),
                    format,
                }),
                grad_w: self.grad_w[p].as_ref().map(BufferAt::from),
                grad_b: self.grad_b[p].as_ref().map(BufferAt::from),
            })
            .collect()
    }
}

/// What the groups' readbacks add up to.
#[derive(Default)]
struct Totals {
    values: Vec<f32>,
    sum: f64,
    grad_h: Vec<f32>,
    lse: Vec<f32>,
    argmax: Vec<u32>,
}

/// Uploads and runs a validated call with at least one row.
pub(crate) async fn forward_host(
    ctx: &GpuContext,
    spec: &Spec<'_>,
    call: &HostCall<'_>,
) -> Result<LinearForwardBackward> {
    let LinearShape { rows, hidden, .. } = call.batch.shape;
    let parts = upload_parts(ctx, call)?;
    let grad_h = call.grads.h && call.upstream.is_some();
    let row_bytes = (hidden as u64 * call.batch.h.format().bytes())
        .max(if grad_h { hidden as u64 * 4 } else { 8 })
        .max(8);
    let per_group = rows_per_group(ctx, rows, row_bytes, "h")?;
    let divisor = per_group.map(|_| match spec.reduction {
        Reduction::None => None,
        Reduction::Sum => Some(1.0),
        _ => Some(cpu::f32_sum(row_weights(spec, call.targets).into_iter())),
    });
    let group_spec = Spec {
        reduction: divisor.map_or(spec.reduction, group_reduction),
        ..*spec
    };
    let mut totals = Totals::default();
    let ranges: Vec<_> = groups(rows, per_group.unwrap_or(rows)).collect();
    let mut grads = (None, None);
    for (index, range) in ranges.iter().enumerate() {
        let upstream = group_upstream(call.upstream, range, 1, divisor.flatten());
        let last = index + 1 == ranges.len();
        let group = Group {
            range: range.clone(),
            upstream,
            accumulate: index > 0,
            read_weights: last,
            reduced: group_spec.reduction != Reduction::None,
        };
        let part = run_group(ctx, &group_spec, call, &parts, &group).await?;
        totals.sum += part.loss.iter().map(|&v| f64::from(v)).sum::<f64>();
        totals.values.extend(part.loss);
        totals.grad_h.extend(part.grad_h);
        totals.lse.extend(part.lse);
        totals.argmax.extend(part.argmax);
        if last {
            grads = (part.grad_w, part.grad_b);
        }
    }
    let loss = match (divisor, spec.reduction) {
        (_, Reduction::None) => LossValue::Tensor {
            shape: vec![rows],
            values: totals.values,
        },
        (Some(Some(d)), _) => LossValue::Scalar((totals.sum / d) as f32),
        _ => LossValue::Scalar(totals.values.first().copied().unwrap_or(f32::NAN)),
    };
    let argmax = spec.row_outputs.then_some(totals.argmax);
    Ok(LinearForwardBackward {
        loss,
        grad_h: grad_h.then_some(totals.grad_h),
        grad_w: grads.0,
        grad_b: grads.1,
        lse: spec.row_outputs.then_some(totals.lse),
        accuracy: argmax.as_ref().map(|a| accuracy_of(a, call.targets, spec.ignore_index)),
        argmax,
    })
}

/// Rows of one group and how it runs.
struct Group<'a> {
    range: std::ops::Range<usize>,
    upstream: Option<Upstream<&'a [f32]>>,
    accumulate: bool,
    read_weights: bool,
    reduced: bool,
}

/// One group's readback.
struct GroupResult {
    loss: Vec<f32>,
    grad_h: Vec<f32>,
    lse: Vec<f32>,
    argmax: Vec<u32>,
    grad_w: Option<Vec<f32>>,
    grad_b: Option<Vec<f32>>,
}

async fn run_group(
    ctx: &GpuContext,
    spec: &Spec<'_>,
    call: &HostCall<'_>,
    parts: &Parts,
    group: &Group<'_>,
) -> Result<GroupResult> {
    let LinearShape { hidden, classes, .. } = call.batch.shape;
    let (first, rows) = (group.range.start, group.range.len());
    let h = call.batch.h.slice(first * hidden, (first + rows) * hidden);
    let targets = call.batch.targets.slice(first, first + rows);
    let none = wgpu::BufferUsages::empty();
    let h_buf = upload(ctx, "linear_cross_entropy.h", h.bytes(), none)?;
    let t_buf = upload(ctx, "linear_cross_entropy.targets", targets.bytes(), none)?;
    let width = target_width(&targets);
    let upstream_buf = match group.upstream {
        Some(Upstream::Values(v)) => Some(upload(
            ctx,
            "linear_cross_entropy.upstream",
            bytemuck::cast_slice(v),
            none,
        )?),
        _ => None,
    };
    let rows64 = rows as u64;
    let loss = storage(
        ctx,
        "linear_cross_entropy.loss",
        if group.reduced { 8 } else { rows64 * 4 },
    )?;
    let out = |on: bool, bytes: u64| on.then(|| storage(ctx, "linear_cross_entropy.out", bytes)).transpose();
    let row_stats = out(spec.row_outputs, rows64 * 8)?;
    let argmax = out(spec.row_outputs, rows64 * 4)?;
    let grad_h = out(call.grads.h && group.upstream.is_some(), rows64 * hidden as u64 * 4)?;
    let format = (call.batch.w.format(), call.batch.b.map(|b: Input<'_>| b.format()));
    let merged = match call.shard {
        Some((_, _, words)) => Some(upload(
            ctx,
            "linear_cross_entropy.merged",
            bytemuck::cast_slice(&words[first * RECORD_WORDS..(first + rows) * RECORD_WORDS]),
            none,
        )?),
        None => None,
    };
    let rec = Recording {
        shape: LinearShape { rows, hidden, classes },
        h: InputAt {
            at: (&h_buf).into(),
            format: h.format(),
        },
        parts: parts.parts(format),
        targets: ((&t_buf).into(), width),
        per_tile: call.per_tile,
        loss: Some((&loss).into()),
        status: None,
        row_stats: row_stats.as_ref().map(BufferAt::from),
        argmax: argmax.as_ref().map(BufferAt::from),
        grad_h: grad_h.as_ref().map(BufferAt::from),
        upstream: match (group.upstream, &upstream_buf) {
            (Some(Upstream::Scalar(g)), _) => Upstream::Scalar(g),
            (_, Some(lease)) => Upstream::Values(lease.into()),
            _ => Upstream::Scalar(1.0),
        },
        accumulate: group.accumulate,
        shard: call
            .shard
            .zip(merged.as_ref())
            .map(|((start, total, _), merged)| ShardView {
                start,
                total,
                step: ShardStep::Finish(merged.into()),
            }),
    };
    let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("linear_cross_entropy"),
    });
    encode(ctx, &mut encoder, spec, &rec)?;
    read_group(ctx, encoder, &rec, parts, group, call.waiting).await
}

/// Where a part's `∂W` and `∂b` sit among a readback's sources.
type PartReads = (Option<usize>, Option<usize>);

/// Reads a group's results back in one readback (the parts' `∂W` and `∂b` after the last).
async fn read_group<'b>(
    ctx: &GpuContext,
    encoder: wgpu::CommandEncoder,
    rec: &Recording<'b>,
    parts: &'b Parts,
    group: &Group<'_>,
    waiting: Waiting,
) -> Result<GroupResult> {
    let rows = rec.shape.rows as u64;
    let hidden = rec.shape.hidden as u64;
    let mut sources: Vec<(&'b wgpu::Buffer, u64, u64)> = Vec::new();
    let mut push = |at: Option<BufferAt<'b>>, bytes: u64| -> Option<usize> {
        let at = at?;
        sources.push((at.buffer, at.offset, bytes));
        Some(sources.len() - 1)
    };
    // A reduced loss is [loss, divisor]: only the loss is read.
    let loss_bytes = if group.reduced { 4 } else { rows * 4 };
    let loss_at = push(rec.loss, loss_bytes);
    let grad_h_at = push(rec.grad_h, rows * hidden * 4);
    let lse_at = push(rec.row_stats, rows * 8);
    let argmax_at = push(rec.argmax, rows * 4);
    let weight_parts: Vec<PartReads> = if group.read_weights {
        (0..parts.w.len())
            .map(|p| {
                let len = parts.ranges[p].1 as u64;
                let w = push(parts.grad_w[p].as_ref().map(BufferAt::from), len * hidden * 4);
                let b = push(parts.grad_b[p].as_ref().map(BufferAt::from), len * 4);
                (w, b)
            })
            .collect()
    } else {
        Vec::new()
    };
    let bytes = read_back(ctx, encoder, &sources, waiting).await?;
    let f32s = |i: Option<usize>| -> Vec<f32> { i.map_or_else(Vec::new, |i| bytemuck::pod_collect_to_vec(&bytes[i])) };
    let stats = f32s(lse_at);
    let concat = |pick: fn(&PartReads) -> Option<usize>| -> Option<Vec<f32>> {
        let chosen: Vec<usize> = weight_parts.iter().filter_map(pick).collect();
        (!chosen.is_empty()).then(|| chosen.into_iter().flat_map(|i| f32s(Some(i))).collect())
    };
    Ok(GroupResult {
        loss: f32s(loss_at),
        grad_h: f32s(grad_h_at),
        lse: stats.chunks_exact(2).map(|pair| pair[0]).collect(),
        argmax: argmax_at.map_or_else(Vec::new, |i| bytemuck::pod_collect_to_vec(&bytes[i])),
        grad_w: concat(|p| p.0),
        grad_b: concat(|p| p.1),
    })
}

/// A vocabulary shard's first step from host data: each row's record over the shard's
/// classes, `h` and the targets in groups of rows that fit a buffer (`W` in parts).
pub(crate) async fn partials_host(
    ctx: &GpuContext,
    spec: &Spec<'_>,
    call: &HostCall<'_>,
    shard: VocabShard,
) -> Result<Vec<u32>> {
    let LinearShape { rows, hidden, classes } = call.batch.shape;
    let parts = upload_parts(ctx, call)?;
    let row_bytes = (hidden as u64 * call.batch.h.format().bytes()).max(PARTIAL_BYTES);
    let per_group = rows_per_group(ctx, rows, row_bytes, "h")?.unwrap_or(rows);
    let format = (call.batch.w.format(), call.batch.b.map(|b: Input<'_>| b.format()));
    let none = wgpu::BufferUsages::empty();
    let mut words = Vec::with_capacity(rows * RECORD_WORDS);
    for range in groups(rows, per_group) {
        let (first, len) = (range.start, range.len());
        let h = call.batch.h.slice(first * hidden, (first + len) * hidden);
        let targets = call.batch.targets.slice(first, first + len);
        let h_buf = upload(ctx, "linear_cross_entropy.h", h.bytes(), none)?;
        let t_buf = upload(ctx, "linear_cross_entropy.targets", targets.bytes(), none)?;
        let records = storage(ctx, "linear_cross_entropy.records", len as u64 * PARTIAL_BYTES)?;
        let rec = Recording {
            shape: LinearShape {
                rows: len,
                hidden,
                classes,
            },
            h: InputAt {
                at: (&h_buf).into(),
                format: h.format(),
            },
            parts: parts.parts(format),
            targets: ((&t_buf).into(), target_width(&targets)),
            per_tile: call.per_tile,
            loss: None,
            status: None,
            row_stats: None,
            argmax: None,
            grad_h: None,
            upstream: Upstream::Scalar(1.0),
            accumulate: false,
            shard: Some(ShardView {
                start: shard.start(),
                total: shard.classes(),
                step: ShardStep::Partials((&records).into()),
            }),
        };
        let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("linear_cross_entropy.partials"),
        });
        encode(ctx, &mut encoder, spec, &rec)?;
        let bytes = read_back(ctx, encoder, &[(&records, 0, len as u64 * PARTIAL_BYTES)], call.waiting).await?;
        words.extend(bytes.iter().flat_map(|b| bytemuck::pod_collect_to_vec::<u8, u32>(b)));
    }
    Ok(words)
}

fn target_width(targets: &Targets<'_>) -> TargetWidth {
    match targets {
        Targets::I32(_) => TargetWidth::I32,
        _ => TargetWidth::I64,
    }
}
