//! The adapter's ceilings: `shaders/ceiling.wgsl`'s streaming read and copy, each timed as
//! a loss is timed in the bench (one dispatch per submission, waited for), over several
//! launch shapes and unrollings; the best single run is the ceiling (the machine is noisy,
//! and a ceiling is what the adapter can do, not what it usually does).

use std::time::Instant;

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::io::{scoped, submit_and_wait};

const SHADER: &str = include_str!("../../shaders/ceiling.wgsl");

/// Workgroups per launch tried (64 invocations each, grid-stride loops).
const LAUNCHES: [u32; 4] = [64, 256, 1024, 4096];

/// Consecutive vec4s per invocation and step (the `UNROLL` override).
const UNROLLS: [f64; 2] = [1.0, 4.0];

/// Timed submissions per launch shape and unrolling.
const RUNS: usize = 4;

/// The adapter's streaming-read rate in GB/s: a kernel that reads `bytes` with vec4 loads
/// and sums them, writing one value per workgroup. The size is capped at the largest
/// storage binding (the rate, not the size, is the result) and rounded down to 16 bytes.
pub fn gpu_read(ctx: &GpuContext, bytes: u64) -> Result<f64> {
    measure(ctx, "read_sum", bytes, 1)
}

/// The adapter's read+write rate in GB/s, counting both: a kernel that copies `bytes / 2`
/// with vec4 loads and stores (so that `bytes` is the traffic, as a loss's forward+backward
/// that reads the logits and writes the gradient counts it).
pub fn gpu_copy(ctx: &GpuContext, bytes: u64) -> Result<f64> {
    measure(ctx, "copy", bytes / 2, 2)
}

fn measure(ctx: &GpuContext, entry: &str, bytes: u64, traffic: u64) -> Result<f64> {
    let device = ctx.device();
    let limit = ctx
        .limits()
        .max_storage_buffer_binding_size
        .min(ctx.limits().max_buffer_size);
    let size = (bytes.min(limit) / 16 * 16).max(16);
    let module = scoped(device, "the ceiling shader", || {
        device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("ceiling"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        })
    })?;
    let buffer = |label, size| {
        scoped(device, "a ceiling buffer", || {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })
    };
    let src = buffer("ceiling.src", size)?;
    let dst_size = if traffic == 2 {
        size
    } else {
        16 * u64::from(LAUNCHES[3])
    };
    let dst = buffer("ceiling.dst", dst_size)?;
    let mut best = f64::MAX;
    for unroll in UNROLLS {
        let pipeline = scoped(device, "the ceiling pipeline", || {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[("UNROLL", unroll)],
                    ..Default::default()
                },
                cache: None,
            })
        })?;
        best = best.min(fastest_run(ctx, &pipeline, &src, &dst)?);
    }
    Ok((size * traffic) as f64 / best / 1e9)
}

/// The shortest of `RUNS` timed runs (after one to warm up) over every launch shape.
fn fastest_run(
    ctx: &GpuContext,
    pipeline: &wgpu::ComputePipeline,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) -> Result<f64> {
    let device = ctx.device();
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("ceiling"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: src.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: dst.as_entire_binding(),
            },
        ],
    });
    let mut best = f64::MAX;
    for groups in LAUNCHES {
        for run in 0..=RUNS {
            let start = Instant::now();
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &bind, &[]);
                pass.dispatch_workgroups(groups, 1, 1);
            }
            submit_and_wait(ctx, encoder)?;
            if run > 0 {
                best = best.min(start.elapsed().as_secs_f64()); // run 0 warms up
            }
        }
    }
    Ok(best)
}
