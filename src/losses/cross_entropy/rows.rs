//! Pass 1 of cross-entropy (`shaders/cross_entropy.wgsl`): each row's loss, weight, (lse,
//! A) and argmax, one team per row — or, for a split plan, partial statistics per block of
//! columns merged per row in column order.

use bytemuck::{Pod, Zeroable};

use crate::api::buffers::BufferAt;
use crate::api::kinds::InputFormat;
use crate::api::kinds::InputKind;
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::dispatch::{bind, KernelPass};
use crate::gpu::io::{placeholder, storage};
use crate::gpu::kernels::{Kernel, RowPass, TargetLayout, Team};
use crate::gpu::plan::{Plan, PARTIAL_BYTES, TEAM_GROUP_SIZE};
use crate::gpu::small_rows::SMALL_ROWS_MAX;
use crate::gpu::tiler::Piece;
use crate::gpu::window::{items, window, Window};

use super::spec::{Inputs, ShardStep, Spec};
use super::windows::{input_window, target_window};

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
    inner: u32,
    quads: u32,
    row_stride: u32,
    record_block: u32,
    _pad: [u32; 2],
}

/// Per-row positions of one recording.
pub(crate) struct RowBuffers<'a> {
    pub loss: BufferAt<'a>,
    pub weight: BufferAt<'a>,
    pub status: BufferAt<'a>,
    pub stats: BufferAt<'a>,
    /// `stats` holds one (lse, A) pair per row (else it is a placeholder).
    pub stats_per_row: bool,
    pub argmax: BufferAt<'a>,
    /// `argmax` holds one u32 per row (else it is a placeholder).
    pub argmax_per_row: bool,
    /// `loss` and `weight` hold one (Σ loss, Σ weight) pair per team of the whole-row
    /// launches ([`team_partials`] of them), not one per row: a reduced loss.
    pub reduced: bool,
}

/// The (loss, weight) pairs pass 1 writes, and whether one per team (`REDUCED`): one per
/// row, or for a reduced loss over whole rows with one invocation per row (so that a
/// team's index is exact and every team writes its pair), one per team.
pub(crate) fn row_sums(reduced: bool, plan: &Plan, pieces: &[Piece], (rows, classes): (u64, u64)) -> (u64, bool) {
    if reduced && !plan.split() && plan.team == Team::Invocation {
        (team_partials(pieces, classes, plan), true)
    } else {
        (rows, false)
    }
}

/// Workgroups of one whole-row launch over `len` rows: the whole grid it dispatches.
fn whole_row_groups(len: u64, plan: &Plan) -> u64 {
    plan.grid_groups(len.div_ceil(plan.teams_per_group).min(plan.max_groups))
}

/// The (Σ loss, Σ weight) pairs pass 1 writes when it sums per team: one per team of every
/// chunk's launch, in chunk order.
fn team_partials(pieces: &[Piece], classes: u64, plan: &Plan) -> u64 {
    row_chunks(pieces, classes)
        .iter()
        .map(|c| whole_row_groups(c.len, plan) * plan.teams_per_group)
        .sum()
}

/// What pass 1 records: the call, its buffers and the plan (with the weights buffer).
pub(crate) struct RowsArgs<'a> {
    pub spec: &'a Spec<'a>,
    pub inputs: &'a Inputs<'a>,
    pub weight: &'a wgpu::Buffer,
    pub bufs: &'a RowBuffers<'a>,
    pub pieces: &'a [Piece],
    pub plan: &'a Plan,
}

/// The state shared by the launches of pass 1.
struct Rows<'a> {
    args: &'a RowsArgs<'a>,
    base: RowParams,
    status: Window<'a>,
    /// Binding 3 is the logits again (vec4 loads) rather than the class weights.
    plain: bool,
    blocks: u64,
}

impl<'a> Rows<'a> {
    fn kernel(&self, pass: RowPass) -> Kernel {
        let (spec, plan) = (self.args.spec, self.args.plan);
        let flags = spec.flags(self.args.inputs);
        let classes = self.args.inputs.classes;
        // Plain f32 logits (no weights, soft-cap, argmax or probability targets) in rows of
        // at most SMALL_ROWS_MAX classes, one invocation per row: read a pack at a time.
        let small = pass == RowPass::Whole
            && self.args.inputs.inner == 1
            && plan.team == Team::Invocation
            && self.plain
            && flags.input == InputKind::Logits
            && classes <= SMALL_ROWS_MAX as usize;
        Kernel::CrossEntropyRows {
            team: plan.team,
            pass,
            flags,
            argmax: self.args.bufs.argmax_per_row,
            small_rows: if small { classes as u32 } else { 0 },
            reduced: pass == RowPass::Whole && self.args.bufs.reduced,
        }
    }

    /// Split plans, pass 1: a team per block of every piece writes its partial record.
    fn partials(&self, ctx: &GpuContext, pass: &mut KernelPass<'_>, partials: BufferAt<'_>) -> Result<()> {
        let (inputs, plan) = (self.args.inputs, self.args.plan);
        let classes = inputs.classes as u64;
        let placeholder = placeholder(ctx)?;
        let kernel = self.kernel(RowPass::Partials);
        pass.set_kernel(ctx, kernel)?;
        for piece in self.args.pieces {
            let logits_w = input_window(ctx, inputs.input, inputs.format, classes, piece)?;
            let targets_w = target_window(ctx, inputs.targets, classes, piece)?;
            let record = self.blocks * PARTIAL_BYTES;
            let partials_w = items(ctx, "partials", partials, record, (piece.begin, piece.len))?;
            let spare = window(ctx, "placeholder", &placeholder, 0, 4)?;
            let (aux_resource, aux_words) = aux_binding(self.plain, &logits_w, self.args.weight);
            let params = RowParams {
                rows: piece.len as u32,
                aux_words,
                logits_offset: logits_w.word_shift,
                targets_offset: targets_w.word_shift,
                out_offset: partials_w.word_shift,
                row_base: piece.begin as u32,
                // A shard's columns are classes [start, start + cols) of the whole row.
                col_begin: (inputs.class_base() as u64 + piece.col_begin) as u32,
                cols: piece.cols as u32,
                record_block: (piece.col_begin / plan.block) as u32,
                ..self.base
            };
            let resources = vec![
                logits_w.binding(),
                targets_w.binding(),
                aux_resource,
                partials_w.binding(),
                spare.binding(),
                self.status.binding(),
                spare.binding(),
                spare.binding(),
            ];
            let teams = piece.len * piece.cols.div_ceil(plan.block);
            let groups = teams.div_ceil(plan.teams_per_group).min(plan.max_groups);
            pass.launch(&bind(ctx, kernel, &params, resources)?, groups)?;
        }
        Ok(())
    }

    /// Whole rows (one team per row, teams looping over rows), or for split plans pass 2
    /// (one invocation per row merging its blocks), per chunk of rows.
    fn rows(&self, ctx: &GpuContext, pass: &mut KernelPass<'_>, partials: Option<BufferAt<'_>>) -> Result<()> {
        let (inputs, plan, bufs) = (self.args.inputs, self.args.plan, self.args.bufs);
        let classes = inputs.classes as u64;
        let kernel = self.kernel(if plan.split() { RowPass::Merge } else { RowPass::Whole });
        pass.set_kernel(ctx, kernel)?;
        let mut pairs_before = 0;
        for chunk in &row_chunks(self.args.pieces, classes) {
            let (begin, len) = (chunk.begin, chunk.len);
            let (logits_w, groups) = match partials {
                Some(partials) => {
                    let record = self.blocks * PARTIAL_BYTES;
                    let w = items(ctx, "partials", partials, record, (begin, len))?;
                    (w, len.div_ceil(u64::from(TEAM_GROUP_SIZE)))
                }
                None => {
                    let w = input_window(ctx, inputs.input, inputs.format, classes, chunk)?;
                    (w, whole_row_groups(len, plan))
                }
            };
            let targets = inputs.targets;
            let targets_w = match targets.1 {
                // Probability targets are only read by pass 1 when split.
                TargetLayout::Probabilities if partials.is_some() => {
                    window(ctx, "targets", targets.0.buffer, targets.0.offset, 4)?
                }
                _ => target_window(ctx, targets, classes, chunk)?,
            };
            // Per row, or per team after the previous chunks' teams.
            let (first, count) = if bufs.reduced {
                (pairs_before, groups * plan.teams_per_group)
            } else {
                (begin, len)
            };
            pairs_before += count;
            let loss_w = rows_window(ctx, "row losses", (bufs.loss, 4, true), first, count)?;
            let weight_w = rows_window(ctx, "row weights", (bufs.weight, 4, true), first, count)?;
            let stats_w = rows_window(ctx, "row stats", (bufs.stats, 8, bufs.stats_per_row), begin, len)?;
            let argmax_w = rows_window(ctx, "argmax", (bufs.argmax, 4, bufs.argmax_per_row), begin, len)?;
            // Each per-row binding has its own shift (caller's buffers sit at any offset).
            let (aux_resource, aux_words) = if partials.is_some() {
                (self.args.weight.as_entire_binding(), 0)
            } else {
                aux_binding(self.plain, &logits_w, self.args.weight)
            };
            let params = RowParams {
                rows: len as u32,
                aux_words,
                logits_offset: logits_w.word_shift,
                targets_offset: targets_w.word_shift,
                out_offset: loss_w.word_shift,
                row_base: begin as u32,
                lse_offset: stats_w.word_shift,
                weight_offset: weight_w.word_shift,
                argmax_offset: argmax_w.word_shift,
                cols: classes as u32,
                quads: u32::from(partials.is_none() && self.quads(chunk, logits_w.word_shift, aux_words)),
                ..self.base
            };
            let resources = vec![
                logits_w.binding(),
                targets_w.binding(),
                aux_resource,
                loss_w.binding(),
                weight_w.binding(),
                self.status.binding(),
                stats_w.binding(),
                argmax_w.binding(),
            ];
            pass.launch(&bind(ctx, kernel, &params, resources)?, groups)?;
        }
        Ok(())
    }
}

impl Rows<'_> {
    /// Whether `strided_quad` takes a chunk: plain f32 logits with class-index targets,
    /// positions whose classes are a multiple of 4 apart, the binding 16-byte aligned at
    /// `shift` (elements) and the chunk's elements all in the vec4 view (`aux_words`).
    fn quads(&self, chunk: &Piece, shift: u32, aux_words: u32) -> bool {
        let inputs = self.args.inputs;
        let end = u64::from(shift) + chunk.span(inputs.classes as u64);
        self.plain
            && self.args.spec.kind == InputKind::Logits
            && inputs.inner > 1
            && inputs.inner.is_multiple_of(4)
            && shift.is_multiple_of(4)
            && end <= u64::from(aux_words)
    }
}

/// Pieces of the same rows merged into chunks of whole rows.
fn row_chunks(pieces: &[Piece], classes: u64) -> Vec<Piece> {
    let mut chunks: Vec<Piece> = Vec::new();
    for piece in pieces {
        match chunks.last_mut() {
            Some(last) if last.begin == piece.begin => last.cols = classes,
            _ => chunks.push(*piece),
        }
    }
    chunks
}

/// A position with a per-row stride `(at, stride, per_row)` as a window of rows `[begin,
/// begin + len)`, or its first row when it is a placeholder (`per_row` false).
fn rows_window<'a>(
    ctx: &GpuContext,
    what: &'static str,
    (at, stride, per_row): (BufferAt<'a>, u64, bool),
    begin: u64,
    len: u64,
) -> Result<Window<'a>> {
    items(ctx, what, at, stride, if per_row { (begin, len) } else { (0, 1) })
}

/// Records the row kernel over all pieces: `cross_entropy_rows` per chunk of rows, or for
/// a split plan `cross_entropy_partials` per piece and then `cross_entropy_merge` per chunk.
pub(crate) fn encode_rows(ctx: &GpuContext, encoder: &mut wgpu::CommandEncoder, args: &RowsArgs<'_>) -> Result<()> {
    let (spec, inputs, plan, bufs) = (args.spec, args.inputs, args.plan, args.bufs);
    let classes = inputs.classes as u64;
    let blocks = classes.div_ceil(plan.block);
    let ignore = spec.ignore_index as u64;
    let status = window(ctx, "status", bufs.status.buffer, bufs.status.offset, 4)?;
    let base = RowParams {
        classes: inputs.total_classes() as u32,
        row_stride: classes as u32,
        ignore_lo: ignore as u32,
        ignore_hi: (ignore >> 32) as u32,
        label_smoothing: spec.label_smoothing as f32,
        epsilon: spec.epsilon as f32,
        softcap: spec.softcap.unwrap_or(1.0) as f32,
        z_loss: spec.z_loss as f32,
        status_offset: status.word_shift,
        write_stats: u32::from(bufs.stats_per_row),
        block_cols: plan.block as u32,
        blocks_per_row: blocks as u32,
        inner: inputs.inner as u32,
        ..RowParams::zeroed()
    };
    // Binding 3: the class weights, or for plain f32 logits the logits window again, cut to
    // whole 16-byte units, for the kernel's vec4 loads (`aux_words` says how far).
    let plain = inputs.format == InputFormat::F32
        && spec.weight.is_none()
        && spec.softcap.is_none()
        && inputs.targets.1 != TargetLayout::Probabilities
        && !bufs.argmax_per_row;
    let rows = Rows {
        args,
        base,
        status,
        plain,
        blocks,
    };
    // The partial records: a shard's step writes them to (or finishes from) the caller's
    // buffer; a split plan keeps them in a temporary.
    let own;
    let partials = match inputs.shard.map(|s| s.step) {
        Some(ShardStep::Partials(records)) => {
            let mut pass = KernelPass::begin(ctx, encoder, rows.kernel(RowPass::Partials))?;
            return rows.partials(ctx, &mut pass, records);
        }
        Some(ShardStep::Finish(merged)) => Some(merged),
        None if plan.split() => {
            let rows = args.pieces.last().map_or(0, |p| p.begin + p.len);
            own = storage(ctx, "cross_entropy.partials", rows * blocks * PARTIAL_BYTES)?;
            Some(BufferAt::from(&own))
        }
        None => None,
    };
    let first = rows.kernel(if partials.is_some() && inputs.shard.is_none() {
        RowPass::Partials
    } else if plan.split() {
        RowPass::Merge
    } else {
        RowPass::Whole
    });
    let mut pass = KernelPass::begin(ctx, encoder, first)?;
    if let (Some(partials), None) = (partials, inputs.shard) {
        rows.partials(ctx, &mut pass, partials)?;
    }
    rows.rows(ctx, &mut pass, partials)
}

/// Binding 3 of the row kernel: `window` cut to whole 16-byte units when `plain` (and
/// the elements it covers), else `weight`.
fn aux_binding<'w>(plain: bool, window: &Window<'w>, weight: &'w wgpu::Buffer) -> (wgpu::BindingResource<'w>, u32) {
    match window.vec4_view().filter(|_| plain) {
        Some(cut) => (cut.binding(), (cut.size / 4) as u32),
        None => (weight.as_entire_binding(), 0),
    }
}
