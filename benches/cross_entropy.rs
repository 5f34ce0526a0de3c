//! Criterion benches of class-index cross-entropy (mean), forward.
//!
//! - `resident`: logits and targets already in GPU buffers (a wgpu app's case); timed is
//!   recording (`Loss::encode`), submit, wait and the 12-byte readback of the loss and
//!   the target status.
//! - `end_to_end`: host slices in, scalar out (upload + compute + readback).
//! - `cpu_reference`: the f64 reference, for scale.
//!
//! Throughput is bytes of input read (f32 logits + i64 targets). Everything is generated
//! and uploaded outside the timed loop. `WGPU_LOSS_BENCH_QUICK=1` runs one small shape.

mod common;

use common::{buffer, forward_resident, generated, results_buffer};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use wgpu_loss::wgpu;
use wgpu_loss::{Backend, Batch, BatchAt, CrossEntropy, GpuContext, GradInto, Loss, TargetsAt};

fn shapes() -> Vec<(usize, usize)> {
    if std::env::var_os("WGPU_LOSS_BENCH_QUICK").is_some() {
        vec![(1024, 1024)]
    } else {
        vec![(4096, 4096), (65536, 128), (16, 262_144), (2048, 32_000)]
    }
}

fn cross_entropy_forward(c: &mut Criterion) {
    let ctx = GpuContext::new_blocking()
        .expect("the benches need a GPU adapter (mesa-vulkan-drivers on a machine without one)");
    let loss = CrossEntropy::default();
    let mut group = c.benchmark_group("cross_entropy_forward");
    group.sample_size(10);
    for (rows, classes) in shapes() {
        let (logits, targets) = generated(rows, classes);
        let id = format!("{rows}x{classes}");
        group.throughput(Throughput::Bytes((logits.len() * 4 + targets.len() * 8) as u64));
        let logits_buf = buffer(&ctx, "bench.logits", bytemuck::cast_slice(&logits));
        let targets_buf = buffer(&ctx, "bench.targets", bytemuck::cast_slice(&targets));
        let results = results_buffer(&ctx);
        let resident = BatchAt::new(&logits_buf, [rows, classes], TargetsAt::I64((&targets_buf).into()));
        let batch = Batch::new(&logits, [rows, classes], &targets);
        group.bench_function(BenchmarkId::new("resident", &id), |b| {
            b.iter(|| forward_resident(&ctx, &loss, &resident, &results, None))
        });
        group.bench_function(BenchmarkId::new("end_to_end", &id), |b| {
            b.iter(|| loss.forward(Backend::Gpu(&ctx), &batch).expect("end to end"))
        });
        group.bench_function(BenchmarkId::new("cpu_reference", &id), |b| {
            b.iter(|| loss.forward(Backend::Reference, &batch).expect("cpu"))
        });
    }
    group.finish();
}

/// Fused forward + backward, the gradient written in place over resident logits, beside
/// forward alone on the same buffers. Prints the device bytes each call allocates beyond
/// the caller's logits, targets and 16-byte results (its peak extra memory: all of a call's buffers live
/// until it returns). Each in-place call gets the original logits back first, outside the
/// timing: repeated in-place calls would feed gradients of gradients, down to denormals,
/// which are very slow on a CPU-backed adapter and made the timings meaningless.
fn cross_entropy_forward_backward(c: &mut Criterion) {
    let ctx = GpuContext::new_blocking().expect("the benches need a GPU adapter");
    let shapes: Vec<(usize, usize)> = if std::env::var_os("WGPU_LOSS_BENCH_QUICK").is_some() {
        vec![(256, 4096)]
    } else {
        vec![(2048, 32_000), (1024, 131_072)]
    };
    let loss = CrossEntropy::default();
    let mut group = c.benchmark_group("cross_entropy_forward_backward");
    group.sample_size(10);
    for (rows, classes) in shapes {
        let (logits, targets) = generated(rows, classes);
        let id = format!("{rows}x{classes}");
        group.throughput(Throughput::Bytes((logits.len() * 4 + targets.len() * 8) as u64));
        let logits_buf = buffer(&ctx, "bench.logits", bytemuck::cast_slice(&logits));
        let pristine = buffer(&ctx, "bench.pristine", bytemuck::cast_slice(&logits));
        let targets_buf = buffer(&ctx, "bench.targets", bytemuck::cast_slice(&targets));
        let restore = || {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&pristine, 0, &logits_buf, 0, pristine.size());
            ctx.queue().submit(Some(encoder.finish()));
            ctx.device().poll(wgpu::PollType::wait_indefinitely()).expect("poll");
        };
        let results = results_buffer(&ctx);
        let resident = BatchAt::new(&logits_buf, [rows, classes], TargetsAt::I64((&targets_buf).into()));
        let measure = |f: &dyn Fn()| {
            let before = ctx.bytes_allocated();
            f();
            ctx.bytes_allocated() - before
        };
        let forward = || {
            forward_resident(&ctx, &loss, &resident, &results, None);
        };
        let fused = || {
            forward_resident(&ctx, &loss, &resident, &results, Some(GradInto::InPlace));
        };
        println!(
            "memory {id}: logits {} B; extra per call: forward {} B, forward+backward in place {} B",
            logits.len() * 4,
            measure(&forward),
            measure(&fused)
        );
        restore();
        group.bench_function(BenchmarkId::new("forward", &id), |b| b.iter(forward));
        group.bench_function(BenchmarkId::new("forward_backward_in_place", &id), |b| {
            b.iter_batched(restore, |()| fused(), BatchSize::PerIteration)
        });
    }
    group.finish();
}

criterion_group!(benches, cross_entropy_forward, cross_entropy_forward_backward);
criterion_main!(benches);
