//! The fused linear cross-entropy recorded on the GPU: the buffers checked, each row's
//! weight and the mean's divisor from the targets alone (`target_weights.wgsl`, the fixed
//! batch sum), then tile by tile: the logits (`products.rs`), the cross-entropy of the
//! tile with its gradient written in place (`cross_entropy::gpu::encode_with`, the whole
//! call's divisor), the backward products; last, the fixed-order batch sum of the row
//! losses. Extra memory: one tile of logits, O(N) per-row values. Submits nothing.

use bytemuck::{Pod, Zeroable};

use crate::api::buffers::{BufferAt, GradInto, InputAt, Outputs};
use crate::api::host::Upstream;
use crate::api::kinds::{InputFormat, TargetWidth};
use crate::api::linear::LinearShape;
use crate::api::reduction::Reduction;
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::dispatch::{bind, KernelPass};
use crate::gpu::io::storage;
use crate::gpu::kernels::{Kernel, TargetLayout};
use crate::gpu::plan::PARTIAL_BYTES;
use crate::gpu::pool::Lease;
use crate::gpu::reduce::{encode_batch_sum, encode_empty, Finish};
use crate::gpu::tiler::spans;
use crate::gpu::window::{bytes_of, check_room, check_room_aligned, items, items_per_binding};
use crate::losses::cross_entropy::gpu::{encode_partials, encode_with, weight_buffer};
use crate::losses::cross_entropy::spec::{Inputs, ShardStep, ShardView, Spec};

use super::products::{encode_backward, encode_logits, Backward, Part, Tile};

/// What one recording reads and writes (every position already the caller's or an
/// upload's). `parts` cover the classes `[0, V)` in order.
pub(crate) struct Recording<'a> {
    pub shape: LinearShape,
    pub h: InputAt<'a>,
    pub parts: Vec<Part<'a>>,
    pub targets: (BufferAt<'a>, TargetWidth),
    /// Rows per tile of logits.
    pub per_tile: usize,
    pub loss: Option<BufferAt<'a>>,
    pub status: Option<BufferAt<'a>>,
    pub row_stats: Option<BufferAt<'a>>,
    pub argmax: Option<BufferAt<'a>>,
    pub grad_h: Option<BufferAt<'a>>,
    pub upstream: Upstream<BufferAt<'a>>,
    /// `∂W` and `∂b` add to the parts' buffers instead of overwriting them.
    pub accumulate: bool,
    /// A vocabulary shard's step (`shape.classes` is then the shard's): the records of
    /// every row, or the finish from the merged records.
    pub shard: Option<ShardView<'a>>,
}

impl Recording<'_> {
    fn wants_grad(&self) -> bool {
        self.grad_h.is_some() || self.parts.iter().any(|p| p.grad_w.is_some() || p.grad_b.is_some())
    }

    fn shape_name(&self) -> String {
        let LinearShape { rows, hidden, classes } = self.shape;
        format!("h [{rows}, {hidden}], W [{classes}, {hidden}]")
    }
}

/// Fails unless every buffer has room for its tensor at its offset.
fn check_buffers(spec: &Spec<'_>, rec: &Recording<'_>) -> Result<()> {
    let (rows, hidden) = (rec.shape.rows as u64, rec.shape.hidden as u64);
    let shape = rec.shape_name();
    let input = |what, at: InputAt<'_>, elements: u64| {
        let bytes = at.format.bytes();
        check_room_aligned(what, at.at, bytes_of(&[elements, bytes]), &shape, bytes)
    };
    input("h", rec.h, bytes_of(&[rows, hidden]))?;
    for part in &rec.parts {
        input("W", part.w, bytes_of(&[part.len as u64, hidden]))?;
        if let Some(b) = part.b {
            input("b", b, part.len as u64)?;
        }
        if let Some(at) = part.grad_w {
            check_room("grad_w", at, bytes_of(&[part.len as u64, hidden, 4]), &shape)?;
        }
        if let Some(at) = part.grad_b {
            check_room("grad_b", at, bytes_of(&[part.len as u64, 4]), &shape)?;
        }
    }
    let loss_bytes = if spec.reduction == Reduction::None {
        bytes_of(&[rows, 4])
    } else {
        8
    };
    for (what, at, bytes) in [
        ("targets", Some(rec.targets.0), bytes_of(&[rows, rec.targets.1.bytes()])),
        ("loss", rec.loss, loss_bytes),
        ("status", rec.status, 4),
        ("row_stats", rec.row_stats, bytes_of(&[rows, 8])),
        ("argmax", rec.argmax, bytes_of(&[rows, 4])),
        ("grad_h", rec.grad_h, bytes_of(&[rows, hidden, 4])),
    ] {
        if let Some(at) = at {
            check_room(what, at, bytes, &shape)?;
        }
    }
    if let Some(view) = rec.shard {
        let (ShardStep::Partials(at) | ShardStep::Finish(at)) = view.step;
        check_room("records", at, bytes_of(&[rows, PARTIAL_BYTES]), &shape)?;
    }
    if let Upstream::Values(at) = rec.upstream {
        if spec.reduction != Reduction::None {
            return Err(LossError::Unsupported {
                loss: "linear cross-entropy",
                option: "a per-row upstream gradient with a reduced loss (use Upstream::Scalar)",
            });
        }
        check_room("upstream", at, bytes_of(&[rows, 4]), &shape)?;
    }
    Ok(())
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct TargetParams {
    rows: u32,
    classes: u32,
    targets_offset: u32,
    ignore_lo: u32,
    ignore_hi: u32,
    weight_offset: u32,
    status_offset: u32,
    row_base: u32,
    label_smoothing: f32,
    softcap: f32,
    _pad: [u32; 2],
}

/// Records each row's weight in the mean into `row_weight` and flags the first row whose
/// target is out of range in `status` (cleared first), in pieces whose bindings fit.
fn encode_target_weights(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    spec: &Spec<'_>,
    rec: &Recording<'_>,
    (row_weight, status): (BufferAt<'_>, BufferAt<'_>),
) -> Result<()> {
    encoder.clear_buffer(status.buffer, status.offset, Some(4));
    let (targets, width) = rec.targets;
    let kernel = Kernel::target_weights(width, spec.weight.is_some());
    let weights = weight_buffer(ctx, spec)?;
    let per_piece = items_per_binding(ctx, width.bytes());
    let mut pass = KernelPass::begin(ctx, encoder, kernel)?;
    for (begin, len) in spans(rec.shape.rows as u64, per_piece) {
        let targets_w = items(ctx, "targets", targets, width.bytes(), (begin, len))?;
        let weight_w = items(ctx, "row_weight", row_weight, 4, (begin, len))?;
        let status_w = items(ctx, "status", status, 4, (0, 1))?;
        let ignore = spec.ignore_index as u64;
        let params = TargetParams {
            rows: len as u32,
            classes: rec.shard.map_or(rec.shape.classes, |s| s.total) as u32,
            targets_offset: targets_w.word_shift,
            ignore_lo: ignore as u32,
            ignore_hi: (ignore >> 32) as u32,
            weight_offset: weight_w.word_shift,
            status_offset: status_w.word_shift,
            row_base: begin as u32,
            ..TargetParams::zeroed()
        };
        let resources = vec![
            targets_w.binding(),
            weights.as_entire_binding(),
            weight_w.binding(),
            status_w.binding(),
        ];
        pass.launch(&bind(ctx, kernel, &params, resources)?, len.div_ceil(64))?;
    }
    Ok(())
}

/// The per-row temporaries of a recording: row losses to reduce, row weights (and the
/// `[1, Σ w]` pair a mean's gradient divides by), a status word when the caller has none.
struct RowState {
    row_loss: Option<Lease>,
    row_weight: Option<Lease>,
    divisor: Option<Lease>,
    status: Option<Lease>,
}

/// Row weights and the status (whenever a mean or the caller needs them), and for a
/// mean with gradients the divisor, all before the first tile.
fn prepare(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    spec: &Spec<'_>,
    rec: &Recording<'_>,
) -> Result<RowState> {
    let rows = rec.shape.rows as u64;
    let mean = spec.reduction == Reduction::Mean;
    let reduced = spec.reduction != Reduction::None;
    let mut state = RowState {
        row_loss: (reduced && rec.loss.is_some())
            .then(|| storage(ctx, "linear_cross_entropy.row_loss", rows * 4))
            .transpose()?,
        row_weight: None,
        divisor: None,
        status: None,
    };
    if !(mean || rec.status.is_some()) {
        return Ok(state);
    }
    let row_weight = storage(ctx, "linear_cross_entropy.row_weight", rows * 4)?;
    let status = match rec.status {
        Some(at) => at,
        None => (&*state.status.insert(storage(ctx, "linear_cross_entropy.status", 4)?)).into(),
    };
    encode_target_weights(ctx, encoder, spec, rec, ((&row_weight).into(), status))?;
    if mean && rec.wants_grad() {
        // [Σw/Σw, Σw]: pass 2 of every tile divides the upstream by element 1.
        let pair = storage(ctx, "linear_cross_entropy.divisor", 8)?;
        encode_batch_sum(
            ctx,
            encoder,
            &row_weight,
            Some(&row_weight),
            rows,
            Finish::WeightedMean,
            (&pair).into(),
        )?;
        state.divisor = Some(pair);
    }
    state.row_weight = Some(row_weight);
    Ok(state)
}

/// `at` moved `rows` items of `bytes` on.
pub(crate) fn skip(at: BufferAt<'_>, rows: usize, bytes: u64) -> BufferAt<'_> {
    BufferAt {
        buffer: at.buffer,
        offset: at.offset + rows as u64 * bytes,
    }
}

/// Records the whole call (see the module docs).
pub(crate) fn encode(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    spec: &Spec<'_>,
    rec: &Recording<'_>,
) -> Result<()> {
    check_buffers(spec, rec)?;
    let LinearShape { rows, classes, .. } = rec.shape;
    if rows == 0 {
        return encode_no_rows(ctx, encoder, spec, rec);
    }
    let state = prepare(ctx, encoder, spec, rec)?;
    let tile_bytes = (rec.per_tile * classes) as u64 * 4;
    let logits = storage(ctx, "linear_cross_entropy.logits", tile_bytes)?;
    let tile_spec = Spec {
        reduction: Reduction::None,
        ..*spec
    };
    let row_loss = match (&state.row_loss, spec.reduction) {
        (Some(lease), _) => Some(BufferAt::from(lease)),
        (None, Reduction::None) => rec.loss,
        (None, _) => None,
    };
    for (first, len) in super::plan::tiles(rows, rec.per_tile) {
        let tile = Tile {
            h: rec.h,
            hidden: rec.shape.hidden,
            classes,
            first,
            len,
            logits: (&logits).into(),
        };
        encode_logits(ctx, encoder, &tile, &rec.parts)?;
        let upstream = match rec.upstream {
            Upstream::Values(at) => Upstream::Values(skip(at, first, 4)),
            scalar => scalar,
        };
        let inputs = tile_inputs(rec, (&logits).into(), (first, len));
        if let Some(ShardStep::Partials(_)) = rec.shard.map(|s| s.step) {
            encode_partials(ctx, encoder, &tile_spec, &inputs)?;
            continue;
        }
        let outputs = Outputs {
            loss: row_loss.map(|at| skip(at, first, 4)),
            status: None,
            row_stats: rec.row_stats.map(|at| skip(at, first, 8)),
            argmax: rec.argmax.map(|at| skip(at, first, 4)),
            grad: rec.wants_grad().then_some((GradInto::InPlace, upstream)),
        };
        let divisor = state.divisor.as_ref().map(BufferAt::from);
        encode_with(ctx, encoder, &tile_spec, &inputs, &outputs, divisor)?;
        if rec.wants_grad() {
            let backward = Backward {
                grad_h: rec.grad_h,
                accumulate: rec.accumulate || first > 0,
            };
            encode_backward(ctx, encoder, &tile, &rec.parts, &backward)?;
        }
    }
    match rec.shard.map(|s| s.step) {
        Some(ShardStep::Partials(_)) => Ok(()),
        _ => finish_loss(ctx, encoder, spec, rec, &state),
    }
}

/// The cross-entropy inputs of the tile of rows `[first, first + len)`: its logits at
/// `logits`, its targets, and a shard's records of those rows.
fn tile_inputs<'a>(rec: &Recording<'a>, logits: BufferAt<'a>, (first, len): (usize, usize)) -> Inputs<'a> {
    Inputs {
        input: logits,
        format: InputFormat::F32,
        rows: len,
        classes: rec.shape.classes,
        inner: 1,
        targets: (
            skip(rec.targets.0, first, rec.targets.1.bytes()),
            TargetLayout::Indices(rec.targets.1),
        ),
        shard: rec.shard.map(|view| ShardView {
            step: match view.step {
                ShardStep::Partials(at) => ShardStep::Partials(skip(at, first, PARTIAL_BYTES)),
                ShardStep::Finish(at) => ShardStep::Finish(skip(at, first, PARTIAL_BYTES)),
            },
            ..view
        }),
    }
}

/// The reduced loss from the row losses (and, for a mean, the row weights).
fn finish_loss(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    spec: &Spec<'_>,
    rec: &Recording<'_>,
    state: &RowState,
) -> Result<()> {
    let (Some(out), Some(row_loss)) = (rec.loss, &state.row_loss) else {
        return Ok(());
    };
    let rows = rec.shape.rows as u64;
    match spec.reduction {
        Reduction::Mean => {
            let weight = state.row_weight.as_deref();
            encode_batch_sum(ctx, encoder, row_loss, weight, rows, Finish::WeightedMean, out)
        }
        _ => encode_batch_sum(ctx, encoder, row_loss, None, rows, Finish::Sum, out),
    }
}

/// A batch of no rows: the reduced loss PyTorch gives (`[0, 1]` for a sum, `[NaN, 0]` for
/// a mean), a cleared status, and `∂W`, `∂b` of zero (unless accumulating).
fn encode_no_rows(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    spec: &Spec<'_>,
    rec: &Recording<'_>,
) -> Result<()> {
    if let (Some(at), true) = (rec.loss, spec.reduction != Reduction::None) {
        let divisor = if spec.reduction == Reduction::Sum { 1.0 } else { 0.0 };
        encode_empty(ctx, encoder, divisor, at)?;
    }
    if let Some(status) = rec.status {
        encoder.clear_buffer(status.buffer, status.offset, Some(4));
    }
    if !rec.accumulate {
        let hidden = rec.shape.hidden as u64;
        for part in &rec.parts {
            let zero = |at: Option<BufferAt<'_>>, bytes: u64, encoder: &mut wgpu::CommandEncoder| {
                if let Some(at) = at.filter(|_| bytes > 0) {
                    encoder.clear_buffer(at.buffer, at.offset, Some(bytes));
                }
            };
            zero(part.grad_w, part.len as u64 * hidden * 4, encoder);
            zero(part.grad_b, part.len as u64 * 4, encoder);
        }
    }
    Ok(())
}
