//! A classifier trained entirely on the GPU: the example's own WGSL computes the logits
//! (`X·W + b`) and the SGD step; `wgpu-loss` records the cross-entropy and its gradient
//! into the same encoder. Only the scalar loss (every 25 steps) and the final argmax come
//! back to the host. Data: four Gaussian blobs in 8 dimensions, built in.
//!
//! `cargo run --example train_softmax_regression`

use wgpu::util::DeviceExt;
use wgpu_loss::{wgpu, BatchAt, BufferAt, CrossEntropy, GpuContext, GradInto, Loss, Outputs, TargetsAt, Upstream};

const SAMPLES: usize = 2048;
const FEATURES: usize = 8;
const CLASSES: usize = 4;
const STEPS: usize = 200;
const LEARNING_RATE: f32 = 0.5;

/// Four blobs: class k is centred at 4·e_k (+ a shared offset), unit-variance noise.
fn dataset() -> (Vec<f32>, Vec<i64>) {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut normal = move || {
        let (u, v) = (uniform().max(1e-12), uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    };
    let mut x = Vec::with_capacity(SAMPLES * FEATURES);
    let mut y = Vec::with_capacity(SAMPLES);
    for n in 0..SAMPLES {
        let class = n % CLASSES;
        for d in 0..FEATURES {
            let centre = if d == class { 4.0 } else { 0.0 } + 0.5;
            x.push(centre + normal());
        }
        y.push(class as i64);
    }
    (x, y)
}

/// The example's buffers: the data, the weights, and what each step writes.
struct Buffers {
    x: wgpu::Buffer,
    y: wgpu::Buffer,
    w: wgpu::Buffer,
    logits: wgpu::Buffer,
    grad: wgpu::Buffer,
    results: wgpu::Buffer,
    argmax: wgpu::Buffer,
    dims: wgpu::Buffer,
}

impl Buffers {
    fn new(device: &wgpu::Device, x: &[f32], y: &[i64]) -> Self {
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let buffer = |label, contents: &[u8]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage,
            })
        };
        let dims: [u32; 4] = [SAMPLES as u32, FEATURES as u32, CLASSES as u32, LEARNING_RATE.to_bits()];
        Self {
            x: buffer("x", bytemuck::cast_slice(x)),
            y: buffer("y", bytemuck::cast_slice(y)),
            w: buffer("w", bytemuck::cast_slice(&[0.0_f32; (FEATURES + 1) * CLASSES])),
            logits: buffer("logits", &vec![0; SAMPLES * CLASSES * 4]),
            grad: buffer("grad", &vec![0; SAMPLES * CLASSES * 4]),
            results: buffer("results", &[0; 8]),
            argmax: buffer("argmax", &vec![0; SAMPLES * 4]),
            dims: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("dims"),
                contents: bytemuck::cast_slice(&dims),
                usage: wgpu::BufferUsages::UNIFORM,
            }),
        }
    }
}

/// The example's own kernels (`shader.wgsl`): the logits `X·W + b`, and the SGD step.
struct Kernels {
    forward: (wgpu::ComputePipeline, wgpu::BindGroup),
    sgd: (wgpu::ComputePipeline, wgpu::BindGroup),
}

impl Kernels {
    fn new(device: &wgpu::Device, b: &Buffers) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("softmax_regression"),
            source: wgpu::ShaderSource::Wgsl(include_str!("shader.wgsl").into()),
        });
        // Auto layouts keep only the bindings an entry point uses.
        let kernel = |entry, resources: &[(u32, &wgpu::Buffer)]| {
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
            let entries: Vec<wgpu::BindGroupEntry> = resources
                .iter()
                .map(|(binding, b)| wgpu::BindGroupEntry {
                    binding: *binding,
                    resource: b.as_entire_binding(),
                })
                .collect();
            let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            (pipeline, group)
        };
        Self {
            forward: kernel("forward", &[(0, &b.dims), (1, &b.x), (2, &b.w), (3, &b.logits)]),
            sgd: kernel("sgd_step", &[(0, &b.dims), (1, &b.x), (2, &b.w), (4, &b.grad)]),
        }
    }

    /// Records one kernel over `count` invocations.
    fn record(
        encoder: &mut wgpu::CommandEncoder,
        (pipeline, group): &(wgpu::ComputePipeline, wgpu::BindGroup),
        count: usize,
    ) {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, group, &[]);
        pass.dispatch_workgroups(count.div_ceil(64) as u32, 1, 1);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = GpuContext::new_blocking()?;
    println!("adapter: {}", ctx.adapter_info().name);
    let device = ctx.device();
    let (x, y) = dataset();
    let b = Buffers::new(device, &x, &y);
    let kernels = Kernels::new(device, &b);
    let loss = CrossEntropy::default().row_outputs(true);
    let batch = BatchAt::new(&b.logits, [SAMPLES, CLASSES], TargetsAt::I64((&b.y).into()));
    let outputs = Outputs {
        argmax: Some((&b.argmax).into()),
        grad: Some((GradInto::Buffer((&b.grad).into()), Upstream::Scalar(1.0))),
        ..Outputs::loss(&b.results)
    };
    let mut first = None;
    let mut last = f32::NAN;
    for step in 0..=STEPS {
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") });
        Kernels::record(&mut encoder, &kernels.forward, SAMPLES * CLASSES);
        loss.encode(&ctx, &mut encoder, &batch, &outputs)?;
        if step < STEPS {
            Kernels::record(&mut encoder, &kernels.sgd, (FEATURES + 1) * CLASSES);
        }
        ctx.queue().submit(Some(encoder.finish()));
        if step % 25 == 0 {
            last = wgpu_loss::read::<f32>(
                &ctx,
                BufferAt {
                    buffer: &b.results,
                    offset: 0,
                },
                1,
            )?[0];
            first.get_or_insert(last);
            println!("step {step:4}  loss {last:.5}");
        }
    }
    let predictions: Vec<u32> = wgpu_loss::read::<u32>(&ctx, (&b.argmax).into(), SAMPLES)?;
    let correct = predictions
        .iter()
        .zip(&y)
        .filter(|(p, t)| i64::from(**p) == **t)
        .count();
    let accuracy = correct as f64 / SAMPLES as f64;
    println!("final accuracy {:.1}% ({correct}/{SAMPLES})", 100.0 * accuracy);
    let first = first.unwrap_or(f32::NAN);
    if !(last < 0.5 * first && accuracy > 0.9) {
        return Err(format!("training failed: loss {first} -> {last}, accuracy {accuracy}").into());
    }
    Ok(())
}
