//! Criterion benches of issue 5's shapes: class-index cross-entropy forward (mean), logits
//! and targets resident on the device, beside the machine's single-thread memory-read
//! bandwidth measured in the same run (a plain sum over a 256 MiB f32 array, 16 independent
//! accumulators so that the loop is bound by memory, not by add latency).
//!
//! Throughput is bytes of input read (f32 logits + i64 targets). At the end a table gives
//! each shape's median of 10 timed calls as GB/s and as a share of that bandwidth, with
//! the strategy the plan chose. `WGPU_LOSS_BENCH_QUICK=1` runs one small shape;
//! `WGPU_LOSS_STRATEGY=invocation|subgroup|workgroup|split` forces a strategy.

use std::time::Instant;

mod common;

use common::{buffer, forward_resident, generated, results_buffer};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgpu_loss::{Backend, Batch, BatchAt, CrossEntropy, GpuContext, Loss, Strategy, TargetsAt};

fn shapes() -> Vec<(usize, usize)> {
    if std::env::var_os("WGPU_LOSS_BENCH_QUICK").is_some() {
        vec![(1024, 1024)]
    } else {
        vec![
            (4096, 4096),
            (65536, 128),
            (16, 262_144),
            (2048, 32_000),
            (1024, 131_072),
            (4_000_000, 10),
        ]
    }
}

fn sum_256_mib(data: &[f32]) -> f32 {
    let mut acc = [0.0_f32; 16];
    for chunk in data.chunks_exact(16) {
        for i in 0..16 {
            acc[i] += chunk[i];
        }
    }
    acc.iter().sum()
}

fn median_seconds(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn forced_strategy() -> Option<Strategy> {
    match std::env::var("WGPU_LOSS_STRATEGY").ok()?.as_str() {
        "invocation" => Some(Strategy::InvocationPerRow),
        "subgroup" => Some(Strategy::SubgroupPerRow),
        "workgroup" => Some(Strategy::WorkgroupPerRow),
        "split" => Some(Strategy::SplitRow),
        other => panic!("WGPU_LOSS_STRATEGY={other}: invocation, subgroup, workgroup or split"),
    }
}

fn large_batches(c: &mut Criterion) {
    let mut ctx = GpuContext::new_blocking()
        .expect("the benches need a GPU adapter (mesa-vulkan-drivers on a machine without one)");
    if let Some(strategy) = forced_strategy() {
        ctx = ctx.with_strategy(strategy);
    }
    let data = vec![1.0_f32; 64 << 20];
    let mut group = c.benchmark_group("read_bandwidth");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((data.len() * 4) as u64));
    group.bench_function("sum_256MiB_f32", |b| {
        b.iter(|| sum_256_mib(std::hint::black_box(&data)))
    });
    group.finish();
    let bandwidth = (data.len() * 4) as f64
        / median_seconds(10, || {
            std::hint::black_box(sum_256_mib(std::hint::black_box(&data)));
        })
        / 1e9;
    drop(data);
    let loss = CrossEntropy::default();
    let mut group = c.benchmark_group("cross_entropy_resident");
    group.sample_size(10);
    let mut table = Vec::new();
    for (rows, classes) in shapes() {
        let (logits, targets) = generated(rows, classes);
        let bytes = (logits.len() * 4 + targets.len() * 8) as u64;
        let id = format!("{rows}x{classes}");
        group.throughput(Throughput::Bytes(bytes));
        let logits_buf = buffer(&ctx, "bench.logits", bytemuck::cast_slice(&logits));
        let targets_buf = buffer(&ctx, "bench.targets", bytemuck::cast_slice(&targets));
        let results = results_buffer(&ctx);
        let resident = BatchAt::new(&logits_buf, [rows, classes], TargetsAt::I64((&targets_buf).into()));
        let run = || forward_resident(&ctx, &loss, &resident, &results, None);
        // Checked against the f64 reference before timing.
        let got = run();
        let want = loss
            .forward(Backend::Reference, &Batch::new(&logits, [rows, classes], &targets))
            .expect("cpu")
            .scalar()
            .expect("scalar");
        assert!(
            (got - want).abs() <= 3e-5 * (1.0 + want.abs()),
            "{id}: GPU {got} vs reference {want}"
        );
        group.bench_function(BenchmarkId::new("forward_mean", &id), |b| b.iter(run));
        let seconds = median_seconds(10, || {
            run();
        });
        table.push((id, seconds, bytes as f64 / seconds / 1e9));
    }
    group.finish();
    println!(
        "\nsingle-thread read bandwidth: {bandwidth:.1} GB/s; adapter: {}",
        ctx.adapter_info().name
    );
    println!("{:>14} {:>10} {:>9} {:>12}", "shape", "median ms", "GB/s", "% of read");
    for (id, seconds, gbs) in table {
        println!(
            "{id:>14} {:>10.2} {gbs:>9.2} {:>11.0}%",
            seconds * 1e3,
            100.0 * gbs / bandwidth
        );
    }
}

criterion_group!(benches, large_batches);
criterion_main!(benches);
