//! Criterion benches per loss family, each shape in four modes: GPU resident (inputs on the
//! device, scalar back), GPU end-to-end (upload + compute + readback), CPU fast, CPU
//! reference. Throughput is the bytes of input read. `WGPU_LOSS_BENCH_QUICK=1` shrinks the
//! work (one small shape, few samples) so a full `cargo bench` ends in minutes on 2 cores.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{
    BufferAt, CrossEntropy, CrossEntropyOutputs, ElementwiseLoss, ElementwiseOutputs, GpuContext, GpuTargets, RowOp,
    TargetWidth,
};

fn quick() -> bool {
    std::env::var_os("WGPU_LOSS_BENCH_QUICK").is_some()
}

fn shapes() -> Vec<(usize, usize)> {
    if quick() {
        vec![(256, 1024)]
    } else {
        vec![(4096, 4096), (65536, 128), (2048, 32_000)]
    }
}

fn data(rows: usize, classes: usize) -> (Vec<f32>, Vec<f32>, Vec<i64>) {
    let mut state = (rows * 7_919 + classes) as u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let x = (0..rows * classes).map(|_| (next() - 0.5) * 16.0).collect();
    let y = (0..rows * classes).map(|_| next() * 0.98 + 0.01).collect();
    let t = (0..rows).map(|r| ((r * 2_654_435_761) % classes) as i64).collect();
    (x, y, t)
}

fn buffer(ctx: &GpuContext, contents: &[u8]) -> wgpu::Buffer {
    ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("bench"),
        contents,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    })
}

/// Records with `record`, submits, waits.
fn resident(ctx: &GpuContext, record: impl Fn(&mut wgpu::CommandEncoder)) {
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    record(&mut encoder);
    ctx.queue().submit(Some(encoder.finish()));
    ctx.device().poll(wgpu::PollType::wait_indefinitely()).expect("poll");
}

fn families(c: &mut Criterion) {
    let ctx = GpuContext::new_blocking().expect("the benches need a GPU adapter (mesa-vulkan-drivers without a GPU)");
    let samples = 10;
    for (rows, classes) in shapes() {
        let (x, y, t) = data(rows, classes);
        let id = format!("{rows}x{classes}");
        let out = buffer(&ctx, &vec![0; x.len() * 4]);
        let x_buf = buffer(&ctx, bytemuck::cast_slice(&x));
        let y_buf = buffer(&ctx, bytemuck::cast_slice(&y));
        let t_buf = buffer(&ctx, bytemuck::cast_slice(&t));

        let mut group = c.benchmark_group("cross_entropy");
        group
            .sample_size(samples)
            .throughput(Throughput::Bytes((x.len() * 4 + t.len() * 8) as u64));
        let ce = CrossEntropy::default();
        let targets = GpuTargets {
            at: (&t_buf).into(),
            width: TargetWidth::I64,
        };
        group.bench_function(BenchmarkId::new("gpu_resident", &id), |b| {
            b.iter(|| {
                resident(&ctx, |e| {
                    ce.encode(
                        &ctx,
                        e,
                        &x_buf,
                        rows,
                        classes,
                        targets,
                        &CrossEntropyOutputs::loss(&out),
                    )
                    .expect("encode")
                })
            })
        });
        group.bench_function(BenchmarkId::new("gpu_end_to_end", &id), |b| {
            b.iter(|| ce.forward(&ctx, &x, rows, classes, &t).expect("gpu"))
        });
        group.bench_function(BenchmarkId::new("cpu_fast", &id), |b| {
            b.iter(|| ce.forward_cpu_fast(&x, rows, classes, &t).expect("fast"))
        });
        group.bench_function(BenchmarkId::new("cpu_reference", &id), |b| {
            b.iter(|| ce.forward_cpu(&x, rows, classes, &t).expect("reference"))
        });
        group.finish();

        let mut group = c.benchmark_group("bce_with_logits");
        group
            .sample_size(samples)
            .throughput(Throughput::Bytes((x.len() * 8) as u64));
        let shape = [rows, classes];
        let bce = ElementwiseLoss::bce_with_logits();
        let outputs = ElementwiseOutputs {
            loss: BufferAt::from(&out),
            grad: None,
        };
        group.bench_function(BenchmarkId::new("gpu_resident", &id), |b| {
            b.iter(|| {
                resident(&ctx, |e| {
                    bce.encode(&ctx, e, (&x_buf).into(), (&y_buf).into(), &shape, &outputs)
                        .expect("encode")
                })
            })
        });
        group.bench_function(BenchmarkId::new("gpu_end_to_end", &id), |b| {
            b.iter(|| bce.forward(&ctx, &x, &y, &shape).expect("gpu"))
        });
        group.bench_function(BenchmarkId::new("cpu_fast", &id), |b| {
            b.iter(|| bce.forward_cpu_fast(&x, &y, &shape).expect("fast"))
        });
        group.bench_function(BenchmarkId::new("cpu_reference", &id), |b| {
            b.iter(|| bce.forward_cpu(&x, &y, &shape).expect("reference"))
        });
        group.finish();

        let mut group = c.benchmark_group("softmax");
        group
            .sample_size(samples)
            .throughput(Throughput::Bytes((x.len() * 4) as u64));
        let op = RowOp::Softmax;
        group.bench_function(BenchmarkId::new("gpu_resident", &id), |b| {
            b.iter(|| {
                resident(&ctx, |e| {
                    op.encode(&ctx, e, &x_buf, rows, classes, (&out).into())
                        .expect("encode")
                })
            })
        });
        group.bench_function(BenchmarkId::new("gpu_end_to_end", &id), |b| {
            b.iter(|| op.forward(&ctx, &x, rows, classes).expect("gpu"))
        });
        group.bench_function(BenchmarkId::new("cpu_fast", &id), |b| {
            b.iter(|| op.forward_cpu_fast(&x, rows, classes).expect("fast"))
        });
        group.bench_function(BenchmarkId::new("cpu_reference", &id), |b| {
            b.iter(|| op.forward_cpu(&x, rows, classes).expect("reference"))
        });
        group.finish();
    }
}

criterion_group!(benches, families);
criterion_main!(benches);
