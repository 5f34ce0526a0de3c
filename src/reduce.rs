//! The batch reduction: row losses and row weights to one scalar, in a fixed order on
//! the GPU (a tree of workgroup sums; no float atomics), so results are bit-identical
//! from run to run.

use bytemuck::{Pod, Zeroable};

use crate::binding::{entries, grid, items_per_binding, window};
use crate::context::GpuContext;
use crate::cross_entropy_gpu::BufferAt;
use crate::device_io::{storage, uniform};
use crate::error::Result;
use crate::kernels::{Kernel, Layout};

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

/// Records the reduction of `count` losses (with their weights, if given) into
/// `result` as `finish` says: two f32, the result and the divisor it used (1 for a sum). `count` must be at least 1. Every pass runs in chunks
/// whose bindings fit the device.
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
    let layout = ctx.pipelines.bind_group_layout(Layout::Reduce);
    let placeholder;
    let weight_buf = match weight {
        Some(w) => w,
        None => {
            placeholder = storage(ctx, "reduce.no_weight", 4)?;
            &placeholder
        }
    };
    let has_weight = u32::from(weight.is_some());
    // Chunks of whole blocks where the binding allows it; each chunk's partials follow the
    // previous chunk's, so the layout is fixed for a device and its limits.
    let binding_items = items_per_binding(ctx, 4);
    let per_chunk = if binding_items >= BLOCK {
        binding_items / BLOCK * BLOCK
    } else {
        binding_items.max(1)
    };
    let mut inputs = (loss.clone(), weight_buf.clone());
    // Every level's partials stay leased until the recording is done (a level reads the
    // previous one's), then go back to the pool.
    let mut levels = Vec::new();
    let mut count = count;
    while count > 1 {
        let chunks: Vec<(u64, u64)> = (0..count)
            .step_by(per_chunk as usize)
            .map(|begin| (begin, per_chunk.min(count - begin)))
            .collect();
        let groups: u64 = chunks.iter().map(|&(_, len)| len.div_ceil(BLOCK)).sum();
        let partial_loss = storage(ctx, "reduce.partial_loss", groups * 4)?;
        let partial_weight = storage(ctx, "reduce.partial_weight", groups * 4)?;
        let pipeline = ctx.pipelines.get(Kernel::ReducePairs)?;
        let mut written = 0;
        for (begin, len) in chunks {
            let loss_in = window(ctx, "losses", &inputs.0, begin * 4, len * 4)?;
            let weight_in = if has_weight == 1 {
                window(ctx, "weights", &inputs.1, begin * 4, len * 4)?
            } else {
                window(ctx, "weights", &inputs.1, 0, 4)?
            };
            let params = ReduceParams {
                count: len as u32,
                in_offset: loss_in.word_shift,
                out_offset: written as u32,
                has_weight,
                mode: 0,
                denominator: 0.0,
                _pad: [0; 2],
            };
            let params = uniform(ctx, "reduce.params", bytemuck::bytes_of(&params))?;
            let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("reduce.reduce_pairs"),
                layout,
                entries: &entries(vec![
                    params.as_entire_binding(),
                    loss_in.binding(),
                    weight_in.binding(),
                    partial_loss.as_entire_binding(),
                    partial_weight.as_entire_binding(),
                ]),
            });
            let (x, y) = grid(ctx, len.div_ceil(BLOCK))?;
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("reduce.reduce_pairs"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
            written += len.div_ceil(BLOCK);
        }
        inputs = ((*partial_loss).clone(), (*partial_weight).clone());
        levels.push((partial_loss, partial_weight));
        count = groups;
    }
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
    let params = uniform(ctx, "reduce.finish.params", bytemuck::bytes_of(&params))?;
    let unused = storage(ctx, "reduce.finish.unused", 4)?;
    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("reduce.finish"),
        layout,
        entries: &entries(vec![
            params.as_entire_binding(),
            window(ctx, "loss sum", &inputs.0, 0, 4)?.binding(),
            window(ctx, "weight sum", &inputs.1, 0, 4)?.binding(),
            result.binding(),
            unused.as_entire_binding(),
        ]),
    });
    let pipeline = ctx.pipelines.get(Kernel::Finish)?;
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("reduce.finish"),
        timestamp_writes: None,
    });
    pass.set_pipeline(&pipeline);
    pass.set_bind_group(0, &bind_group, &[]);
    pass.dispatch_workgroups(1, 1, 1);
    Ok(())
}
