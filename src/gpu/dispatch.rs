//! The one way a kernel is launched: its parameters as a content-cached uniform at binding
//! 0, the storage windows after it in the shader's order, and a 2-D grid of workgroups (x up
//! to the per-dimension limit), recorded into a compute pass labelled by the kernel.

use bytemuck::Pod;

use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::io::uniform;
use crate::gpu::kernels::Kernel;

/// The bind group of one launch of `kernel`: `params` at binding 0, then `resources`.
pub(crate) fn bind<P: Pod>(
    ctx: &GpuContext,
    kernel: Kernel,
    params: &P,
    resources: Vec<wgpu::BindingResource<'_>>,
) -> Result<wgpu::BindGroup> {
    let label = kernel.label();
    let params = uniform(ctx, &label, bytemuck::bytes_of(params))?;
    let entries: Vec<wgpu::BindGroupEntry<'_>> = std::iter::once(params.as_entire_binding())
        .chain(resources)
        .enumerate()
        .map(|(binding, resource)| wgpu::BindGroupEntry {
            binding: binding as u32,
            resource,
        })
        .collect();
    Ok(ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(&label),
        layout: ctx.pipelines.bind_group_layout(kernel.layout()),
        entries: &entries,
    }))
}

/// A compute pass running one kernel at a time.
pub(crate) struct KernelPass<'e> {
    pass: wgpu::ComputePass<'e>,
    per_dim: u64,
}

impl<'e> KernelPass<'e> {
    /// Begins a pass in `encoder` with `kernel`'s pipeline set.
    pub(crate) fn begin(ctx: &GpuContext, encoder: &'e mut wgpu::CommandEncoder, kernel: Kernel) -> Result<Self> {
        let label = kernel.label();
        let pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&label),
            timestamp_writes: None,
        });
        let mut this = Self {
            pass,
            per_dim: u64::from(ctx.limits.max_compute_workgroups_per_dimension),
        };
        this.set_kernel(ctx, kernel)?;
        Ok(this)
    }

    /// Switches the pass to `kernel`'s pipeline.
    pub(crate) fn set_kernel(&mut self, ctx: &GpuContext, kernel: Kernel) -> Result<()> {
        let pipeline = ctx.pipelines.get(kernel)?;
        self.pass.set_pipeline(&pipeline);
        Ok(())
    }

    /// One launch of at least `groups` workgroups on a 2-D grid.
    pub(crate) fn launch(&mut self, bind_group: &wgpu::BindGroup, groups: u64) -> Result<()> {
        let groups = groups.max(1);
        let x = groups.min(self.per_dim);
        self.launch_grid(bind_group, x, groups.div_ceil(x))
    }

    /// One launch of exactly `x` × `y` workgroups.
    pub(crate) fn launch_grid(&mut self, bind_group: &wgpu::BindGroup, x: u64, y: u64) -> Result<()> {
        if x > self.per_dim || y > self.per_dim {
            return Err(LossError::TooLarge {
                what: "dispatch",
                detail: format!("{x}×{y} workgroups exceed {} per dimension", self.per_dim),
            });
        }
        self.pass.set_bind_group(0, bind_group, &[]);
        self.pass.dispatch_workgroups(x as u32, y as u32, 1);
        Ok(())
    }
}
