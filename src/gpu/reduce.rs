//! The batch reduction: row losses and row weights to one scalar, in a fixed order on
//! the GPU (a tree of workgroup sums; no float atomics), so results are bit-identical
//! from run to run.

use bytemuck::{Pod, Zeroable};

use crate::api::buffers::BufferAt;
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::dispatch::{bind, KernelPass};
use crate::gpu::io::{self, storage};
use crate::gpu::kernels::Kernel;
use crate::gpu::pool::Lease;
use crate::gpu::tiler::spans;
use crate::gpu::window::{items, items_per_binding, window};

/// Elements one workgroup of `reduce_pairs` folds (GROUP_SIZE × ITEMS_PER_LANE in WGSL).
const BLOCK: u64 = 256 * 8;

/// What `finish` makes of the two sums.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Finish {
    /// The loss sum.
    Sum,
    /// The loss sum over the weight sum (weights must be given).
    WeightedMean,
    /// The loss sum over a count (elements, or the batch size).
    Divide(f64),
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    count: u32,
    in_offset: u32,
    out_offset: u32,
    has_weight: u32,
    mode: u32,
    denominator: f32,
    _pad: [u32; 2],
}

/// One level of the tree: `count` losses (and weights) of `inputs` folded into one partial
/// per block, in chunks of whole blocks whose bindings fit; returns the partials and how
/// many there are. Each chunk's partials follow the previous chunk's, so the layout is
/// fixed for a device and its limits.
fn fold_level(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    inputs: (&wgpu::Buffer, &wgpu::Buffer),
    count: u64,
    has_weight: u32,
) -> Result<(Lease, Lease, u64)> {
    let binding_items = items_per_binding(ctx, 4);
    let per_chunk = if binding_items >= BLOCK {
        binding_items / BLOCK * BLOCK
    } else {
        binding_items.max(1)
    };
    let chunks: Vec<(u64, u64)> = spans(count, per_chunk).collect();
    let groups: u64 = chunks.iter().map(|&(_, len)| len.div_ceil(BLOCK)).sum();
    let partial_loss = storage(ctx, "reduce.partial_loss", groups * 4)?;
    let partial_weight = storage(ctx, "reduce.partial_weight", groups * 4)?;
    let mut pass = KernelPass::begin(ctx, encoder, Kernel::ReducePairs)?;
    let mut written = 0;
    for (begin, len) in chunks {
        let loss_in = items(ctx, "losses", inputs.0.into(), 4, (begin, len))?;
        let weights = if has_weight == 1 { (begin, len) } else { (0, 1) };
        let weight_in = items(ctx, "weights", inputs.1.into(), 4, weights)?;
        let params = ReduceParams {
            count: len as u32,
            in_offset: loss_in.word_shift,
            out_offset: written as u32,
            has_weight,
            mode: 0,
            denominator: 0.0,
            _pad: [0; 2],
        };
        let resources = vec![
            loss_in.binding(),
            weight_in.binding(),
            partial_loss.as_entire_binding(),
            partial_weight.as_entire_binding(),
        ];
        pass.launch(
            &bind(ctx, Kernel::ReducePairs, &params, resources)?,
            len.div_ceil(BLOCK),
        )?;
        written += len.div_ceil(BLOCK);
    }
    drop(pass);
    Ok((partial_loss, partial_weight, groups))
}

/// Records the reduction of `count` losses (with their weights, if given) into `result`
/// as `finish` says: two f32, the result and the divisor it used (1 for a sum). `count`
/// must be at least 1. Every pass runs in chunks whose bindings fit the device.
pub(crate) fn encode_batch_sum(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    loss: &wgpu::Buffer,
    weight: Option<&wgpu::Buffer>,
    count: u64,
    finish: Finish,
    result: BufferAt<'_>,
) -> Result<()> {
    let result = window(ctx, "result", result.buffer, result.offset, 8)?;
    let placeholder;
    let weight_buf = match weight {
        Some(w) => w,
        None => {
            placeholder = io::placeholder(ctx)?;
            &placeholder
        }
    };
    let has_weight = u32::from(weight.is_some());
    // Every level's partials stay leased until the recording is done (a level reads the
    // previous one's), then go back to the pool.
    let mut levels: Vec<(Lease, Lease)> = Vec::new();
    let mut count = count;
    while count > 1 {
        let inputs = levels.last().map_or((loss, weight_buf), |(l, w)| (&**l, &**w));
        let (partial_loss, partial_weight, groups) = fold_level(ctx, encoder, inputs, count, has_weight)?;
        levels.push((partial_loss, partial_weight));
        count = groups;
    }
    let sums = levels.last().map_or((loss, weight_buf), |(l, w)| (&**l, &**w));
    let (mode, denominator) = match finish {
        Finish::Sum => (0, 0.0),
        Finish::WeightedMean => (1, 0.0),
        Finish::Divide(d) => (2, d as f32),
    };
    let params = ReduceParams {
        count: 1,
        in_offset: 0,
        out_offset: result.word_shift,
        has_weight,
        mode,
        denominator,
        _pad: [0; 2],
    };
    let unused = io::placeholder(ctx)?;
    let resources = vec![
        window(ctx, "loss sum", sums.0, 0, 4)?.binding(),
        window(ctx, "weight sum", sums.1, 0, 4)?.binding(),
        result.binding(),
        unused.as_entire_binding(),
    ];
    let bind_group = bind(ctx, Kernel::Finish, &params, resources)?;
    KernelPass::begin(ctx, encoder, Kernel::Finish)?.launch(&bind_group, 1)
}

/// Records the result of reducing no values into `result` (room for two f32 already
/// checked): `[sum / divisor, divisor]` of an empty sum, as PyTorch gives it (a sum is 0, a
/// mean over nothing is 0/0 = NaN).
pub(crate) fn encode_empty(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    divisor: f32,
    result: BufferAt<'_>,
) -> Result<()> {
    let words = [0.0 / divisor, divisor];
    let source = io::constant(
        ctx,
        "reduce.empty",
        bytemuck::cast_slice(&words),
        wgpu::BufferUsages::COPY_SRC,
    )?;
    encoder.copy_buffer_to_buffer(&source, 0, result.buffer, result.offset, 8);
    Ok(())
}
