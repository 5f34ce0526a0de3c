//! The steady state of a loop: no pipelines, shader modules or buffers created per call
//! after the first (10,000 consecutive calls, device and host memory flat), recordings
//! into an app's encoder reusing buffers too, and one context shared by 4 threads.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use common::{assert_close, Rng, REDUCED, ROW_LOSS};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{
    Backend, Batch, BatchAt, CrossEntropy, GpuContext, Loss, Outputs, Reduction, RowOp, TargetsAt, Upstream,
};

/// Resident set size of this process, in bytes (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("statm field 2");
    pages * 4096
}

fn fresh_context() -> GpuContext {
    let ctx = common::gpu();
    GpuContext::from_device(ctx.device().clone(), ctx.queue().clone())
}

/// Host memory may wander a little (allocator arenas, driver caches); a leak of even one
/// small buffer per call would add ≥ 10,000 × 256 bytes = 2.4 MiB, and a per-call upload
/// of the 25.6 KB input 244 MiB.
const RSS_SLACK: u64 = 8 << 20;

#[test]
fn ten_thousand_calls_allocate_nothing() {
    let ctx = fresh_context();
    let mut rng = Rng::new(1);
    let (rows, classes) = (64, 100);
    let logits = rng.logits(rows * classes, 4.0);
    let targets: Vec<i64> = (0..rows).map(|_| rng.below(classes) as i64).collect();
    let loss = CrossEntropy::default().label_smoothing(0.1);
    let batch = Batch::new(&logits, [rows, classes], &targets);
    let want = loss.forward(Backend::Reference, &batch).unwrap().scalar().unwrap();
    let first = loss.forward(Backend::Gpu(&ctx), &batch).unwrap().scalar().unwrap();
    // Warm up: pipelines, pooled buffers, cached parameters, driver caches.
    for _ in 0..50 {
        loss.forward(Backend::Gpu(&ctx), &batch).unwrap();
    }
    let (bytes, built, rss) = (ctx.bytes_allocated(), ctx.pipelines_built(), rss_bytes());
    for i in 0..10_000 {
        let got = loss.forward(Backend::Gpu(&ctx), &batch).unwrap().scalar().unwrap();
        assert_eq!(got.to_bits(), first.to_bits(), "call {i}: not bit-identical");
    }
    assert_close("steady state", &[first], &[f64::from(want)], REDUCED);
    assert_eq!(
        ctx.bytes_allocated(),
        bytes,
        "device buffers were created after warm-up"
    );
    assert_eq!(
        ctx.pipelines_built(),
        built,
        "pipelines or modules were built after warm-up"
    );
    let grown = rss_bytes().saturating_sub(rss);
    assert!(grown < RSS_SLACK, "host memory grew by {grown} bytes over 10,000 calls");
    assert!(ctx.pooled_bytes() > 0, "finished calls leave their buffers to the pool");
}

#[test]
fn recording_into_an_app_encoder_reuses_buffers() {
    let ctx = fresh_context();
    let device = ctx.device();
    let mut rng = Rng::new(2);
    let (rows, classes) = (300, 77);
    let logits = rng.logits(rows * classes, 4.0);
    let targets: Vec<i64> = (0..rows).map(|_| rng.below(classes) as i64).collect();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let make = |contents: &[u8]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("app"),
            contents,
            usage,
        })
    };
    let input = make(bytemuck::cast_slice(&logits));
    let target_buf = make(bytemuck::cast_slice(&targets));
    let out = make(&[0; 8]);
    let grad = make(&vec![0; rows * classes * 4]);
    let loss = CrossEntropy::default().reduction(Reduction::Sum);
    let step = || {
        let mut encoder = device.create_command_encoder(&Default::default());
        let outputs = Outputs {
            grad: Some((wgpu_loss::GradInto::Buffer((&grad).into()), Upstream::Scalar(1.0))),
            ..Outputs::loss(&out)
        };
        let batch = BatchAt::new(&input, [rows, classes], TargetsAt::I64((&target_buf).into()));
        loss.encode(&ctx, &mut encoder, &batch, &outputs).unwrap();
        ctx.queue().submit(Some(encoder.finish()));
    };
    for _ in 0..20 {
        step();
    }
    let (bytes, built) = (ctx.bytes_allocated(), ctx.pipelines_built());
    for _ in 0..1000 {
        step();
    }
    let got = wgpu_loss::read::<f32>(&ctx, (&out).into(), 2).unwrap();
    assert_eq!(ctx.pipelines_built(), built);
    // Only the readback's staging buffer may be new.
    assert!(
        ctx.bytes_allocated() - bytes <= 8,
        "{} bytes allocated by 1000 recordings",
        ctx.bytes_allocated() - bytes
    );
    let want = loss
        .forward(Backend::Reference, &Batch::new(&logits, [rows, classes], &targets))
        .unwrap();
    assert_close("app encoder", &got[..1], &[f64::from(want.scalar().unwrap())], REDUCED);
}

#[test]
fn four_threads_share_one_context() {
    let ctx = Arc::new(fresh_context());
    let handles: Vec<_> = (0..4_u64)
        .map(|t| {
            let ctx = Arc::clone(&ctx);
            std::thread::spawn(move || {
                let mut rng = Rng::new(100 + t);
                // A different shape and option set per thread, so their pipelines and
                // pooled buffers differ and interleave.
                let (rows, classes) = [(33, 7), (128, 1000), (5, 40_000), (1000, 3)][t as usize];
                let logits = rng.logits(rows * classes, 5.0);
                let targets: Vec<i64> = (0..rows).map(|_| rng.below(classes) as i64).collect();
                let loss = CrossEntropy::default()
                    .label_smoothing(0.05 * t as f64)
                    .reduction(Reduction::None);
                let batch = Batch::new(&logits, [rows, classes], &targets);
                let want = loss.forward(Backend::Reference, &batch).unwrap();
                let want: Vec<f64> = want.values().iter().map(|&v| f64::from(v)).collect();
                let mean = loss.clone().reduction(Reduction::Mean);
                let mut first_grad: Option<Vec<u32>> = None;
                for i in 0..25 {
                    let got = loss.forward(Backend::Gpu(&ctx), &batch).unwrap();
                    assert_close(&format!("thread {t} call {i}"), got.values(), &want, ROW_LOSS);
                    let fb = mean
                        .forward_backward(Backend::Gpu(&ctx), &batch, Upstream::Scalar(1.0))
                        .unwrap();
                    let bits: Vec<u32> = fb.grad.iter().map(|g| g.to_bits()).collect();
                    match &first_grad {
                        None => first_grad = Some(bits),
                        Some(first) => assert!(first == &bits, "thread {t} call {i}: gradient changed"),
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("a thread failed");
    }
}

#[test]
fn the_pool_is_what_keeps_memory_flat() {
    // The control for the test above: with no idle buffers kept, every call allocates
    // afresh; and releasing the pool empties it.
    let mut rng = Rng::new(3);
    let (rows, classes) = (16, 50);
    let logits = rng.logits(rows * classes, 4.0);
    let targets: Vec<i64> = (0..rows).map(|_| rng.below(classes) as i64).collect();
    let loss = CrossEntropy::default();
    let batch = Batch::new(&logits, [rows, classes], &targets);
    let unpooled = fresh_context().with_pool_limit(0);
    loss.forward(Backend::Gpu(&unpooled), &batch).unwrap();
    let before = unpooled.bytes_allocated();
    for _ in 0..10 {
        loss.forward(Backend::Gpu(&unpooled), &batch).unwrap();
    }
    assert!(unpooled.bytes_allocated() >= before + 10 * (rows * classes * 4) as u64);
    assert_eq!(unpooled.pooled_bytes(), 0);
    let pooled = fresh_context();
    loss.forward(Backend::Gpu(&pooled), &batch).unwrap();
    assert!(pooled.pooled_bytes() >= (rows * classes * 4) as u64);
    pooled.release_pooled();
    assert_eq!(pooled.pooled_bytes(), 0);
}

#[test]
fn recordings_sharing_pooled_buffers_in_one_encoder() {
    // Two recordings of each family into one encoder, submitted once: the second reuses
    // the scratch buffers the first gave back during recording, and both results must be
    // their own. Same shapes (so the pool hands the same buffers over), different data.
    let ctx = fresh_context();
    let device = ctx.device();
    let mut rng = Rng::new(4);
    let (rows, classes) = (200, 50);
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let make = |contents: &[u8]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("app"),
            contents,
            usage,
        })
    };
    let inputs: Vec<Vec<f32>> = (0..2).map(|_| rng.logits(rows * classes, 4.0)).collect();
    let targets: Vec<Vec<i64>> = (0..2)
        .map(|_| (0..rows).map(|_| rng.below(classes) as i64).collect())
        .collect();
    let input_bufs: Vec<_> = inputs.iter().map(|v| make(bytemuck::cast_slice(v))).collect();
    let target_bufs: Vec<_> = targets.iter().map(|v| make(bytemuck::cast_slice(v))).collect();
    let ce_out: Vec<_> = (0..2).map(|_| make(&[0; 8])).collect();
    let mse_out: Vec<_> = (0..2).map(|_| make(&[0; 8])).collect();
    let softmax_out: Vec<_> = (0..2).map(|_| make(&vec![0; rows * classes * 4])).collect();
    // Different class weights per recording: host data of a recording must not be
    // overwritten by the next one before the encoder is submitted.
    let losses: Vec<CrossEntropy> = (0..2)
        .map(|_| {
            let weights: Vec<f32> = (0..classes).map(|_| rng.uniform(0.1, 3.0)).collect();
            CrossEntropy::default().label_smoothing(0.1).weight(&weights)
        })
        .collect();
    let mse = wgpu_loss::ElementwiseLoss::mse();
    let mut encoder = device.create_command_encoder(&Default::default());
    for i in 0..2 {
        let batch = BatchAt::new(
            &input_bufs[i],
            [rows, classes],
            TargetsAt::I64((&target_bufs[i]).into()),
        );
        losses[i]
            .encode(&ctx, &mut encoder, &batch, &Outputs::loss(&ce_out[i]))
            .unwrap();
        let batch = BatchAt::new(
            &input_bufs[i],
            [rows, classes],
            TargetsAt::F32((&input_bufs[1 - i]).into()),
        );
        mse.encode(&ctx, &mut encoder, &batch, &Outputs::loss(&mse_out[i]))
            .unwrap();
        let batch = BatchAt::new(&input_bufs[i], [rows, classes], TargetsAt::None);
        RowOp::Softmax
            .encode(&ctx, &mut encoder, &batch, &Outputs::loss(&softmax_out[i]))
            .unwrap();
    }
    ctx.queue().submit(Some(encoder.finish()));
    for i in 0..2 {
        let what = format!("recording {i}");
        let got = wgpu_loss::read::<f32>(&ctx, (&ce_out[i]).into(), 1).unwrap();
        let want = losses[i]
            .forward(
                Backend::Reference,
                &Batch::new(&inputs[i], [rows, classes], &targets[i]),
            )
            .unwrap();
        assert_close(&what, &got, &[f64::from(want.scalar().unwrap())], REDUCED);
        let got = wgpu_loss::read::<f32>(&ctx, (&mse_out[i]).into(), 1).unwrap();
        let want = mse
            .forward(
                Backend::Reference,
                &Batch::new(&inputs[i], [rows, classes], &inputs[1 - i]),
            )
            .unwrap();
        assert_close(
            &format!("{what} mse"),
            &got,
            &[f64::from(want.scalar().unwrap())],
            REDUCED,
        );
        let got = wgpu_loss::read::<f32>(&ctx, (&softmax_out[i]).into(), rows * classes).unwrap();
        let want = RowOp::Softmax
            .forward(Backend::Reference, &Batch::input(&inputs[i], [rows, classes]))
            .unwrap();
        let want: Vec<f64> = want.values().iter().map(|&v| f64::from(v)).collect();
        assert_close(&format!("{what} softmax"), &got, &want, ROW_LOSS);
    }
}

/// Calls of different shapes on one context from several threads: a call's scratch buffers
/// go back to the pool when its recording returns, before it is submitted, so an upload of
/// another thread must never be handed one of them (its data would be overwritten by the
/// first call's kernels). Every result must equal the same call made alone.
#[test]
fn concurrent_uploads_never_reuse_unsubmitted_scratch() {
    let ctx = fresh_context();
    let x = [2.0_f32, 0.5, -1.0, 0.0, 3.0, 0.1, -2.0, 1.5, 0.25, 4.0, 4.0, 4.0];
    let (p, t) = ([0.1_f32, 0.05, 0.05, 0.8], [0.0_f32, 1.0, 0.0, 0.0]);
    let on_probs = CrossEntropy::default()
        .input_kind(wgpu_loss::InputKind::Probabilities)
        .reduction(Reduction::Sum);
    let plain = CrossEntropy::default().reduction(Reduction::None);
    let a = || {
        on_probs
            .forward(Backend::Gpu(&ctx), &Batch::new(&p, [1, 4], &t))
            .expect("a")
            .values()
            .to_vec()
    };
    let b = || {
        let batch = Batch::new(&x, [4, 3], &[0_i64, 1, 2, -100]);
        plain.forward(Backend::Gpu(&ctx), &batch).expect("b").values().to_vec()
    };
    let (want_a, want_b) = (a(), b());
    let bad = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (a, b, bad, want_a, want_b) = (&a, &b, &bad, &want_a, &want_b);
            s.spawn(move || {
                (0..400).filter(|_| a() != *want_a).for_each(|_| {
                    bad.fetch_add(1, Relaxed);
                })
            });
            s.spawn(move || {
                (0..400).filter(|_| b() != *want_b).for_each(|_| {
                    bad.fetch_add(1, Relaxed);
                })
            });
        }
    });
    let bad = bad.into_inner();
    assert_eq!(
        bad, 0,
        "{bad} of 1600 concurrent calls differ from the same call made alone"
    );
}
