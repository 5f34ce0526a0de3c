//! The batch reduction: row losses and row weights to one scalar, in a fixed order on
//! the GPU (a tree of workgroup sums; no float atomics), so results are bit-identical
//! from run to run.

use bytemuck::{Pod, Zeroable};

use crate::binding::{entries, grid, window};
use crate::context::GpuContext;
use crate::device_io::{storage, uniform};
use crate::error::Result;
use crate::kernels::{Kernel, Layout};

/// Elements one workgroup of `reduce_pairs` folds (GROUP_SIZE × ITEMS_PER_LANE in WGSL).
const BLOCK: u64 = 256 * 8;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    count: u32,
    in_offset: u32,
    mean: u32,
    _pad: u32,
}

/// Records the reduction of `count` (loss, weight) pairs into `result[0]`: the loss sum,
/// or for `mean` the loss sum over the weight sum. `count` must be at least 1.
pub(crate) fn encode_batch_sum(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    loss: &wgpu::Buffer,
    weight: &wgpu::Buffer,
    count: u64,
    mean: bool,
    result: &wgpu::Buffer,
) -> Result<()> {
    let layout = ctx.pipelines.bind_group_layout(Layout::Reduce);
    let mut inputs = (loss.clone(), weight.clone());
    let mut count = count;
    while count > 1 {
        let groups = count.div_ceil(BLOCK);
        let partial_loss = storage(&ctx.device, "reduce.partial_loss", groups * 4)?;
        let partial_weight = storage(&ctx.device, "reduce.partial_weight", groups * 4)?;
        let loss_in = window(ctx, "row losses", &inputs.0, 0, count * 4)?;
        let weight_in = window(ctx, "row weights", &inputs.1, 0, count * 4)?;
        let params = ReduceParams {
            count: count as u32,
            in_offset: 0,
            mean: 0,
            _pad: 0,
        };
        let params = uniform(&ctx.device, "reduce.params", bytemuck::bytes_of(&params))?;
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
        let (x, y) = grid(ctx, groups)?;
        let pipeline = ctx.pipelines.get(Kernel::ReducePairs)?;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("reduce.reduce_pairs"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
        drop(pass);
        inputs = (partial_loss, partial_weight);
        count = groups;
    }
    let params = ReduceParams {
        count: 1,
        in_offset: 0,
        mean: u32::from(mean),
        _pad: 0,
    };
    let params = uniform(&ctx.device, "reduce.finish.params", bytemuck::bytes_of(&params))?;
    let unused = storage(&ctx.device, "reduce.finish.unused", 4)?;
    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("reduce.finish"),
        layout,
        entries: &entries(vec![
            params.as_entire_binding(),
            window(ctx, "loss sum", &inputs.0, 0, 4)?.binding(),
            window(ctx, "weight sum", &inputs.1, 0, 4)?.binding(),
            result.as_entire_binding(),
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
