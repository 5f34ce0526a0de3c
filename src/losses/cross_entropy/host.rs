//! Cross-entropy's host path on the GPU: uploads the host data (in groups when it is larger
//! than the device's largest buffer, `gpu::driver`), records through `gpu.rs`, and reads
//! back the loss, the per-row outputs and the gradient in one readback; a bad class index
//! comes back as [`LossError::TargetOutOfRange`] with its row and value.

use std::ops::Range;

use crate::api::buffers::{GradInto, Outputs, Status};
use crate::api::host::{ForwardBackward, Input, Targets, Upstream};
use crate::api::kinds::{InputFormat, TargetWidth};
use crate::api::reduction::{LossValue, Reduction};
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::driver::{group_reduction, group_upstream, groups, rows_per_group, Combined};
use crate::gpu::io::{read_back, storage, upload, Waiting};
use crate::gpu::kernels::TargetLayout;
use crate::gpu::runs::{runs, scatter, Gathered, Group};

use super::cpu::accuracy_of;
use super::gpu::encode;
use super::spec::{Inputs, ShardStep, ShardView, Spec};
use crate::api::shard::RECORD_WORDS;

/// A validated host call: the data, the upstream when a gradient is wanted, and how the
/// readback waits.
pub(crate) struct HostCall<'a> {
    pub input: Input<'a>,
    /// Positions (`N·d1·…·dk`).
    pub rows: usize,
    pub classes: usize,
    /// Elements between a position's classes (`d1·…·dk`; 1 for `[N, C]`).
    pub inner: usize,
    pub targets: Targets<'a>,
    pub grad: Option<Upstream<&'a [f32]>>,
    pub waiting: Waiting,
    /// A vocabulary shard's finish: `classes` is the shard's, the records are merged.
    pub shard: Option<HostShard<'a>>,
}

/// A shard's finish on the host path: classes `[start, start + classes)` of `total`, and
/// the merged records (`RECORD_WORDS` a row) of the call's rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostShard<'a> {
    pub start: usize,
    pub total: usize,
    pub merged: &'a [u32],
}

impl<'a> HostCall<'a> {
    /// Rows `[begin, end)` of this call (whole outer slices of `inner` positions: their
    /// elements are `[begin·C, end·C)`), with `grad` as their upstream.
    fn rows(&self, rows: &std::ops::Range<usize>, grad: Option<Upstream<&'a [f32]>>) -> Self {
        let (begin, end, classes) = (rows.start, rows.end, self.classes);
        let targets = match self.targets {
            Targets::F32(_) => self.targets.slice(begin * classes, end * classes),
            other => other.slice(begin, end),
        };
        HostCall {
            input: self.input.slice(begin * classes, end * classes),
            rows: end - begin,
            classes,
            inner: self.inner,
            targets,
            grad,
            waiting: self.waiting,
            shard: self.shard.map(|s| HostShard {
                merged: &s.merged[begin * RECORD_WORDS..end * RECORD_WORDS],
                ..s
            }),
        }
    }

    /// The input and probability targets of positions `range` inside one outer slice,
    /// gathered into `[1, C, len]`.
    fn gather(&self, range: &Range<usize>) -> Gathered {
        let probabilities = match self.targets {
            Targets::F32(t) => Some(t),
            _ => None,
        };
        Gathered::new(self.input, probabilities, (self.classes, self.inner), range)
    }

    /// Positions `range` inside one outer slice, gathered into `[1, C, len]`, with `grad` as
    /// their upstream.
    fn run<'g>(&self, gathered: &'g Gathered, range: &Range<usize>, grad: Option<Upstream<&'g [f32]>>) -> HostCall<'g>
    where
        'a: 'g,
    {
        HostCall {
            input: gathered.input(),
            rows: range.len(),
            classes: self.classes,
            inner: range.len(),
            targets: gathered
                .alike()
                .map_or_else(|| self.targets.slice(range.start, range.end), Targets::F32),
            grad,
            waiting: self.waiting,
            shard: None,
        }
    }

    /// The divisor of a mean over the whole call: Σ w[y] of counted rows, or N for
    /// probability targets.
    fn mean_divisor(&self, spec: &Spec<'_>) -> f64 {
        match self.targets {
            Targets::F32(_) => self.rows as f64,
            targets => targets
                .indices()
                .into_iter()
                .filter(|&t| t != spec.ignore_index)
                .map(|t| {
                    spec.weight
                        .map_or(1.0, |w| f64::from(w.get(t as usize).copied().unwrap_or(f32::NAN)))
                })
                .sum(),
        }
    }
}

/// The result for an empty batch, as PyTorch gives it: `none` is empty, `sum` is 0,
/// `mean` is 0/0 = NaN.
fn empty_result(spec: &Spec<'_>) -> ForwardBackward {
    let loss = match spec.reduction {
        Reduction::None => LossValue::Tensor {
            shape: vec![0],
            values: Vec::new(),
        },
        Reduction::Sum => LossValue::Scalar(0.0),
        _ => LossValue::Scalar(f32::NAN),
    };
    ForwardBackward {
        loss,
        grad: Vec::new(),
        lse: spec.row_outputs.then(Vec::new),
        argmax: spec.row_outputs.then(Vec::new),
        accuracy: spec.row_outputs.then_some(f32::NAN),
    }
}

/// Uploads host data and runs. Inputs are already validated. With a gradient, the
/// uploaded input buffer is overwritten by it (no second `[N, C]` buffer) and read back.
/// An input larger than the device's largest buffer runs in groups of rows, each a batch
/// of its own with reduction `sum`; a mean divides the groups' sum by the whole batch's
/// divisor on the host (f64), and its gradient scales the upstream by that divisor.
pub(crate) async fn forward_host(ctx: &GpuContext, spec: &Spec<'_>, call: &HostCall<'_>) -> Result<ForwardBackward> {
    let (rows, classes) = (call.rows, call.classes);
    if rows == 0 {
        return Ok(empty_result(spec));
    }
    let format = call.input.format();
    // The largest of the [N, C] arrays of one row: input, probability targets, f32 gradient.
    let row_bytes = (classes as u64 * format.bytes())
        .max(if call.targets.is_indices() {
            8
        } else {
            classes as u64 * 4
        })
        .max(if call.grad.is_some() { classes as u64 * 4 } else { 0 });
    let Some(groups) = host_groups(ctx, call, row_bytes)? else {
        return forward_host_one(ctx, spec, call).await;
    };
    let divisor = match spec.reduction {
        Reduction::None => None,
        Reduction::Sum => Some(1.0),
        _ => Some(call.mean_divisor(spec)),
    };
    let group_spec = Spec {
        reduction: group_reduction(divisor),
        ..*spec
    };
    let mut combined = Combined::default();
    // Runs' gradients are scattered here; whole rows' are concatenated by `combined`.
    let mut scattered = Vec::new();
    for group in &groups {
        let range = group.range();
        let upstream = group_upstream(call.grad, range, 1, divisor);
        let gathered;
        let sub = match group {
            Group::Rows(range) => call.rows(range, upstream),
            Group::Run(range) => {
                gathered = call.gather(range);
                call.run(&gathered, range, upstream)
            }
        };
        let mut part = forward_host_one(ctx, &group_spec, &sub)
            .await
            .map_err(|err| match err {
                LossError::TargetOutOfRange {
                    row,
                    value,
                    classes,
                    ignore_index,
                } => LossError::TargetOutOfRange {
                    row: row + range.start,
                    value,
                    classes,
                    ignore_index,
                },
                other => other,
            })?;
        if matches!(group, Group::Run(_)) && !part.grad.is_empty() {
            scattered.resize(call.input.len(), 0.0);
            scatter(
                &mut scattered,
                &std::mem::take(&mut part.grad),
                range,
                classes,
                call.inner,
            );
        }
        combined.push(part);
    }
    let mut out = combined.finish(divisor, vec![rows]);
    if !scattered.is_empty() {
        out.grad = scattered;
    }
    if let (Some(argmax), true) = (&out.argmax, call.targets.is_indices()) {
        out.accuracy = Some(accuracy_of(argmax, &call.targets.indices(), spec.ignore_index));
    }
    Ok(out)
}

/// The groups of a host call larger than the device's largest buffer (`None` when it fits):
/// whole rows (whole outer slices of `[N, C, d1, …]`), or when one slice does not fit,
/// runs of each slice's positions. `row_bytes` is the largest array of one position.
fn host_groups(ctx: &GpuContext, call: &HostCall<'_>, row_bytes: u64) -> Result<Option<Vec<Group>>> {
    let (rows, classes, inner) = (call.rows, call.classes, call.inner.max(1));
    let format = call.input.format();
    let what = if inner == 1 {
        format!("[{rows}, {classes}] {format:?}")
    } else {
        format!(
            "[{rows}, {classes}] {format:?} (one position of [{}, {classes}, {inner}])",
            rows / inner
        )
    };
    if inner == 1 {
        return Ok(rows_per_group(ctx, rows, row_bytes, &what)?.map(|per| groups(rows, per).map(Group::Rows).collect()));
    }
    // Strided positions: whole outer slices are the rows, else runs of one slice's positions.
    let slice = format!("[{}, {classes}, {inner}] {format:?}", rows / inner);
    match rows_per_group(ctx, rows / inner, row_bytes * inner as u64, &slice) {
        Ok(per) => Ok(per.map(|per| groups(rows, per * inner).map(Group::Rows).collect())),
        Err(_) => {
            let per_run = rows_per_group(ctx, rows, row_bytes, &what)?.unwrap_or(rows);
            Ok(Some(runs(rows, inner, per_run)))
        }
    }
}

/// [`forward_host`] for an input that fits one buffer.
async fn forward_host_one(ctx: &GpuContext, spec: &Spec<'_>, call: &HostCall<'_>) -> Result<ForwardBackward> {
    let (rows, classes) = (call.rows, call.classes);
    let format = call.input.format();
    let usage = wgpu::BufferUsages::COPY_SRC;
    let input_buf = upload(ctx, "cross_entropy.input", call.input.bytes(), usage)?;
    // f32 input takes the gradient in place; half input needs an f32 gradient buffer.
    let grad_buf = (call.grad.is_some() && format != InputFormat::F32)
        .then(|| storage(ctx, "cross_entropy.grad", rows as u64 * classes as u64 * 4))
        .transpose()?;
    let targets_buf = upload(ctx, "cross_entropy.targets", call.targets.bytes(), usage)?;
    let upstream_buf = match call.grad {
        Some(Upstream::Values(v)) => Some(upload(ctx, "cross_entropy.upstream", bytemuck::cast_slice(v), usage)?),
        _ => None,
    };
    let upstream = match (call.grad, &upstream_buf) {
        (Some(Upstream::Scalar(g)), _) => Some(Upstream::Scalar(g)),
        (Some(_), Some(buffer)) => Some(Upstream::Values(buffer.into())),
        _ => None,
    };
    let merged_buf = match call.shard {
        Some(s) => Some(upload(
            ctx,
            "cross_entropy.merged",
            bytemuck::cast_slice(s.merged),
            usage,
        )?),
        None => None,
    };
    let inputs = Inputs {
        input: (&input_buf).into(),
        format,
        rows,
        classes,
        inner: call.inner,
        targets: ((&targets_buf).into(), target_layout(&call.targets)),
        shard: call.shard.zip(merged_buf.as_ref()).map(|(s, merged)| ShardView {
            start: s.start,
            total: s.total,
            step: ShardStep::Finish(merged.into()),
        }),
    };
    let into = grad_buf
        .as_ref()
        .map_or(GradInto::InPlace, |b| GradInto::Buffer(b.into()));
    run(ctx, spec, &inputs, upstream.map(|u| (into, u)), call).await
}

/// How host targets are laid out for the kernels.
fn target_layout(targets: &Targets<'_>) -> TargetLayout {
    match targets {
        Targets::I32(_) => TargetLayout::Indices(TargetWidth::I32),
        Targets::F32(_) => TargetLayout::Probabilities,
        _ => TargetLayout::Indices(TargetWidth::I64),
    }
}

/// Allocates the outputs, records, submits once, and reads back the status, the loss, the
/// per-row outputs asked for and the gradient in one readback.
async fn run(
    ctx: &GpuContext,
    spec: &Spec<'_>,
    inputs: &Inputs<'_>,
    grad: Option<(GradInto<'_>, Upstream<crate::api::buffers::BufferAt<'_>>)>,
    call: &HostCall<'_>,
) -> Result<ForwardBackward> {
    let rows = inputs.rows as u64;
    let loss_bytes = if spec.reduction == Reduction::None { rows * 4 } else { 8 };
    let rows_out = spec.row_outputs;
    let loss_out = storage(ctx, "cross_entropy.loss", loss_bytes)?;
    let status = storage(ctx, "cross_entropy.status", 4)?;
    let row_stats = storage(ctx, "cross_entropy.row_stats", if rows_out { rows * 8 } else { 4 })?;
    let argmax = storage(ctx, "cross_entropy.argmax", if rows_out { rows * 4 } else { 4 })?;
    let outputs = Outputs {
        loss: Some((&loss_out).into()),
        status: Some((&status).into()),
        row_stats: rows_out.then(|| (&row_stats).into()),
        argmax: rows_out.then(|| (&argmax).into()),
        grad,
    };
    let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("cross_entropy"),
    });
    encode(ctx, &mut encoder, spec, inputs, &outputs)?;
    let mut sources = vec![(&*status, 0, 4), (&*loss_out, 0, loss_bytes)];
    if rows_out {
        sources.extend([(&*row_stats, 0, rows * 8), (&*argmax, 0, rows * 4)]);
    }
    if let Some((into, _)) = grad {
        let at = match into {
            GradInto::InPlace => inputs.input,
            GradInto::Buffer(at) => at,
        };
        sources.push((at.buffer, at.offset, rows * inputs.classes as u64 * 4));
    }
    let mut parts = read_back(ctx, encoder, &sources, call.waiting).await?.into_iter();
    let mut next = || parts.next().unwrap_or_default();
    let status: Vec<u32> = bytemuck::pod_collect_to_vec(&next());
    check_status(spec, Status(status.first().copied().unwrap_or(0)), call)?;
    let floats: Vec<f32> = bytemuck::pod_collect_to_vec(&next());
    let mut out = ForwardBackward::plain(
        LossValue::from_gpu(spec.reduction, vec![inputs.rows], floats),
        Vec::new(),
    );
    if rows_out {
        let stats: Vec<f32> = bytemuck::pod_collect_to_vec(&next());
        let argmax: Vec<u32> = bytemuck::pod_collect_to_vec(&next());
        if call.targets.is_indices() {
            out.accuracy = Some(accuracy_of(&argmax, &call.targets.indices(), spec.ignore_index));
        }
        out.lse = Some(stats.iter().step_by(2).copied().collect());
        out.argmax = Some(argmax);
    }
    if grad.is_some() {
        out.grad = bytemuck::pod_collect_to_vec(&next());
    }
    Ok(out)
}

/// Turns a bad status into [`LossError::TargetOutOfRange`] with the host target's value.
fn check_status(spec: &Spec<'_>, status: Status, call: &HostCall<'_>) -> Result<()> {
    match status.bad_row() {
        None => Ok(()),
        Some(row) => Err(LossError::TargetOutOfRange {
            row,
            value: call.targets.index(row).unwrap_or_default(),
            classes: call.shard.map_or(call.classes, |s| s.total),
            ignore_index: spec.ignore_index,
        }),
    }
}
