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
const UNROLLS: [&[(&str, f64)]; 2] = [&[("UNROLL", 1.0)], &[("UNROLL", 4.0)]];

/// Bytes of the read kernels' output: one vec4 per workgroup of the largest launch.
const DST_BYTES: u64 = 16 * LAUNCHES[3] as u64;

/// Timed submissions per launch shape and unrolling.
const RUNS: usize = 4;

/// The adapter's streaming-read rate in GB/s: a kernel that reads `bytes` with vec4 loads
/// and sums them, writing one value per workgroup. The size is capped at the largest
/// storage binding (the rate, not the size, is the result) and rounded down to 16 bytes.
pub fn gpu_read(ctx: &GpuContext, bytes: u64) -> Result<f64> {
    let size = binding_size(ctx, bytes);
    let time = best_time(ctx, "read_sum", &UNROLLS, (size, DST_BYTES), &LAUNCHES)?;
    Ok(size as f64 / time / 1e9)
}

/// The adapter's read+write rate in GB/s, counting both: a kernel that copies `bytes / 2`
/// with vec4 loads and stores (so that `bytes` is the traffic, as a loss's forward+backward
/// that reads the logits and writes the gradient counts it).
pub fn gpu_copy(ctx: &GpuContext, bytes: u64) -> Result<f64> {
    let size = binding_size(ctx, bytes / 2);
    let time = best_time(ctx, "copy", &UNROLLS, (size, size), &LAUNCHES)?;
    Ok((2 * size) as f64 / time / 1e9)
}

/// The read rate in GB/s of a loss's loads alone over `[rows, classes]` f32 rows, read by
/// teams of `team` lanes as the loss kernels read them (whole vec4s where rows line up on
/// 16 bytes, packs of rows for `team` 1), with no math: what the shape's access pattern
/// allows. Rows past the largest storage binding are left out (the rate is the result).
pub fn gpu_rows_read(ctx: &GpuContext, rows: u64, classes: u64, team: u32) -> Result<f64> {
    let row_bytes = 4 * classes.max(1);
    let rows = rows.min(binding_size(ctx, u64::MAX) / row_bytes / 4 * 4).max(1);
    let size = (rows * row_bytes).next_multiple_of(16);
    let constants = [
        ("ROWS", rows as f64),
        ("CLASSES", classes as f64),
        ("TEAM", f64::from(team.max(1))),
    ];
    let time = best_time(ctx, "rows_read", &[&constants], (size, DST_BYTES), &LAUNCHES)?;
    Ok((rows * row_bytes) as f64 / time / 1e9)
}

/// [`gpu_rows_read`] with the team the cross-entropy kernels choose for this shape on
/// `ctx`: the loads of its forward alone.
pub fn gpu_loss_loads(ctx: &GpuContext, rows: u64, classes: u64) -> Result<f64> {
    let team = crate::gpu::plan::Plan::choose(ctx, rows, classes, true).team_width();
    gpu_rows_read(ctx, rows, classes, team)
}

/// The adapter's exp rate in 10^9 exps per second: independent vec4 exps on values in
/// registers, no loads (what a loss's math costs where the adapter computes slowly, as a
/// CPU driver does).
pub fn gpu_exp_rate(ctx: &GpuContext) -> Result<f64> {
    math_rate(ctx, 0.0)
}

/// The adapter's log rate in 10^9 logs per second, as [`gpu_exp_rate`].
pub fn gpu_log_rate(ctx: &GpuContext) -> Result<f64> {
    math_rate(ctx, 1.0)
}

/// The adapter's multiply-add rate in GFLOP/s (two flops each): the ceiling of a matrix
/// product, whose every step is one (the fused linear cross-entropy's bench states its
/// speed against it).
pub fn gpu_fma_rate(ctx: &GpuContext) -> Result<f64> {
    Ok(2.0 * math_rate(ctx, 2.0)?)
}

/// The rate in GFLOP/s of the crate's own matrix product (`shaders/matmul.wgsl`) on the
/// logits' shape of a linear layer, `[m, k]·[n, k]ᵀ` (f32, zeros), best of 3: how much of
/// the multiply-add rate the tiled kernel itself reaches, beside a whole loss's rate.
pub fn gpu_matmul_rate(ctx: &GpuContext, (m, n, k): (usize, usize, usize)) -> Result<f64> {
    use crate::api::kinds::InputFormat;
    use crate::gpu::matmul::{encode_matmul, Product, View};
    let a = crate::gpu::io::storage(ctx, "ceiling.matmul.a", (m * k * 4) as u64)?;
    let b = crate::gpu::io::storage(ctx, "ceiling.matmul.b", (n * k * 4) as u64)?;
    let c = crate::gpu::io::storage(ctx, "ceiling.matmul.c", (m * n * 4) as u64)?;
    let product = Product {
        a: View::rows((&a).into(), InputFormat::F32, k as u64),
        b: View::rows((&b).into(), InputFormat::F32, k as u64).t(),
        c: View::rows((&c).into(), InputFormat::F32, n as u64),
        bias: None,
        m: m as u64,
        n: n as u64,
        depth: k as u64,
        accumulate: false,
    };
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut encoder = ctx.device().create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("ceiling.matmul"),
        });
        for buffer in [&a, &b] {
            encoder.clear_buffer(buffer, 0, None);
        }
        submit_and_wait(ctx, encoder)?;
        let mut encoder = ctx.device().create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("ceiling.matmul"),
        });
        encode_matmul(ctx, &mut encoder, &product)?;
        let start = Instant::now();
        submit_and_wait(ctx, encoder)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(2.0 * (m * n * k) as f64 / best / 1e9)
}

/// Calls per second (10^9) of `function` (0: exp, 1: log, 2: multiply-add) in `math_rate`.
fn math_rate(ctx: &GpuContext, function: f64) -> Result<f64> {
    const STEPS: u32 = 1024;
    let groups = LAUNCHES[2];
    let constants = [("STEPS", f64::from(STEPS)), ("FUNCTION", function)];
    let time = best_time(ctx, "math_rate", &[&constants], (16, DST_BYTES), &[groups])?;
    let calls = f64::from(groups) * 64.0 * f64::from(STEPS) * 16.0;
    Ok(calls / time / 1e9)
}

/// `bytes` capped at the largest storage binding and buffer, in whole 16-byte units.
fn binding_size(ctx: &GpuContext, bytes: u64) -> u64 {
    let limit = ctx
        .limits()
        .max_storage_buffer_binding_size
        .min(ctx.limits().max_buffer_size);
    (bytes.min(limit) / 16 * 16).max(16)
}

/// The best single run of `entry` over `launches` (workgroup counts) and each set of
/// override `constants`, reading a `src_size`-byte buffer and writing a `dst_size`-byte one.
fn best_time(
    ctx: &GpuContext,
    entry: &str,
    constants: &[&[(&str, f64)]],
    (src_size, dst_size): (u64, u64),
    launches: &[u32],
) -> Result<f64> {
    let device = ctx.device();
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
    let src = buffer("ceiling.src", src_size)?;
    let dst = buffer("ceiling.dst", dst_size)?;
    let mut best = f64::MAX;
    for &constants in constants {
        let pipeline = scoped(device, "the ceiling pipeline", || {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            })
        })?;
        best = best.min(fastest_run(ctx, &pipeline, (&src, &dst), launches)?);
    }
    Ok(best)
}

/// The shortest of `RUNS` timed runs (after one to warm up) over `launches`.
fn fastest_run(
    ctx: &GpuContext,
    pipeline: &wgpu::ComputePipeline,
    (src, dst): (&wgpu::Buffer, &wgpu::Buffer),
    launches: &[u32],
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
    for &groups in launches {
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
