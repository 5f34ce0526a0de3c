//! Criterion benches per loss family, each shape in four modes: GPU resident (inputs on the
//! device, scalar back), GPU end-to-end (upload + compute + readback), CPU fast, CPU
//! reference. Throughput is the bytes of input read. `WGPU_LOSS_BENCH_QUICK=1` shrinks the
//! work (one small shape, few samples) so a full `cargo bench` ends in minutes on 2 cores.
//! Written once over `dyn Loss`: every family runs the same four modes.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{
    Backend, Batch, BatchAt, CrossEntropy, ElementwiseLoss, GpuContext, Loss, Outputs, RowOp, Targets, TargetsAt,
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

/// One family's loss on one shape: its host data, the same data resident, and where the
/// resident call writes.
struct Case<'a> {
    group: &'static str,
    loss: Box<dyn Loss>,
    batch: Batch<'a>,
    resident: BatchAt<'a>,
    out: &'a wgpu::Buffer,
}

/// Bytes of input read: the input and the targets.
fn bytes_read(batch: &Batch<'_>) -> u64 {
    let targets = match batch.targets {
        Targets::I64(t) => t.len() * 8,
        Targets::I32(t) => t.len() * 4,
        Targets::F32(t) => t.len() * 4,
        Targets::None => 0,
    };
    (batch.input.len() * 4 + targets) as u64
}

/// The four modes of `case` on the shape named `id`.
fn bench_case(c: &mut Criterion, ctx: &GpuContext, case: &Case<'_>, id: &str) {
    let mut group = c.benchmark_group(case.group);
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(bytes_read(&case.batch)));
    let (loss, batch) = (&*case.loss, &case.batch);
    let outputs = Outputs::loss(case.out);
    group.bench_function(BenchmarkId::new("gpu_resident", id), |b| {
        b.iter(|| resident(ctx, |e| loss.encode(ctx, e, &case.resident, &outputs).expect("encode")))
    });
    group.bench_function(BenchmarkId::new("gpu_end_to_end", id), |b| {
        b.iter(|| loss.forward(Backend::Gpu(ctx), batch).expect("gpu"))
    });
    group.bench_function(BenchmarkId::new("cpu_fast", id), |b| {
        b.iter(|| loss.forward(Backend::Cpu, batch).expect("fast"))
    });
    group.bench_function(BenchmarkId::new("cpu_reference", id), |b| {
        b.iter(|| loss.forward(Backend::Reference, batch).expect("reference"))
    });
    group.finish();
}

fn families(c: &mut Criterion) {
    let ctx = GpuContext::new_blocking().expect("the benches need a GPU adapter (mesa-vulkan-drivers without a GPU)");
    for (rows, classes) in shapes() {
        let (x, y, t) = data(rows, classes);
        let id = format!("{rows}x{classes}");
        let shape = [rows, classes];
        let out = buffer(&ctx, &vec![0; x.len() * 4]);
        let x_buf = buffer(&ctx, bytemuck::cast_slice(&x));
        let y_buf = buffer(&ctx, bytemuck::cast_slice(&y));
        let t_buf = buffer(&ctx, bytemuck::cast_slice(&t));
        let cases = [
            Case {
                group: "cross_entropy",
                loss: Box::new(CrossEntropy::default()),
                batch: Batch::new(&x, shape, &t),
                resident: BatchAt::new(&x_buf, shape, TargetsAt::I64((&t_buf).into())),
                out: &out,
            },
            Case {
                group: "bce_with_logits",
                loss: Box::new(ElementwiseLoss::bce_with_logits()),
                batch: Batch::new(&x, shape, &y),
                resident: BatchAt::new(&x_buf, shape, TargetsAt::F32((&y_buf).into())),
                out: &out,
            },
            Case {
                group: "softmax",
                loss: Box::new(RowOp::Softmax),
                batch: Batch::input(&x, shape),
                resident: BatchAt::new(&x_buf, shape, TargetsAt::None),
                out: &out,
            },
        ];
        for case in &cases {
            bench_case(c, &ctx, case, &id);
        }
    }
}

criterion_group!(benches, families);
criterion_main!(benches);
