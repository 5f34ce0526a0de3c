//! The steady state of a loop: no pipelines, shader modules or buffers created per call
//! after the first (10,000 consecutive calls, device and host memory flat), recordings
//! into an app's encoder reusing buffers too, and one context shared by 4 threads.

mod common;

use std::sync::Arc;

use common::{assert_close, Rng, REDUCED, ROW_LOSS};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{CrossEntropy, CrossEntropyOutputs, GpuContext, GpuTargets, Reduction, TargetWidth, Upstream};

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
    let want = loss
        .forward_cpu(&logits, rows, classes, &targets)
        .unwrap()
        .scalar()
        .unwrap();
    let first = loss
        .forward(&ctx, &logits, rows, classes, &targets)
        .unwrap()
        .scalar()
        .unwrap();
    // Warm up: pipelines, pooled buffers, cached parameters, driver caches.
    for _ in 0..50 {
        loss.forward(&ctx, &logits, rows, classes, &targets).unwrap();
    }
    let (bytes, built, rss) = (ctx.bytes_allocated(), ctx.pipelines_built(), rss_bytes());
    for i in 0..10_000 {
        let got = loss
            .forward(&ctx, &logits, rows, classes, &targets)
            .unwrap()
            .scalar()
            .unwrap();
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
        let outputs = CrossEntropyOutputs {
            grad: Some((
                wgpu_loss::GradInto::Buffer((&grad).into()),
                wgpu_loss::GpuUpstream::Scalar(1.0),
            )),
            ..CrossEntropyOutputs::loss(&out)
        };
        let targets = GpuTargets {
            at: (&target_buf).into(),
            width: TargetWidth::I64,
        };
        loss.encode(&ctx, &mut encoder, &input, rows, classes, targets, &outputs)
            .unwrap();
        ctx.queue().submit(Some(encoder.finish()));
    };
    for _ in 0..20 {
        step();
    }
    let (bytes, built) = (ctx.bytes_allocated(), ctx.pipelines_built());
    for _ in 0..1000 {
        step();
    }
    let got = wgpu_loss::read_f32(&ctx, (&out).into(), 2).unwrap();
    assert_eq!(ctx.pipelines_built(), built);
    // Only the readback's staging buffer may be new.
    assert!(
        ctx.bytes_allocated() - bytes <= 8,
        "{} bytes allocated by 1000 recordings",
        ctx.bytes_allocated() - bytes
    );
    let want = loss.forward_cpu(&logits, rows, classes, &targets).unwrap();
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
                let want = loss.forward_cpu(&logits, rows, classes, &targets).unwrap();
                let want: Vec<f64> = want.values().iter().map(|&v| f64::from(v)).collect();
                let mean = loss.clone().reduction(Reduction::Mean);
                let mut first_grad: Option<Vec<u32>> = None;
                for i in 0..25 {
                    let got = loss.forward(&ctx, &logits, rows, classes, &targets).unwrap();
                    assert_close(&format!("thread {t} call {i}"), got.values(), &want, ROW_LOSS);
                    let fb = mean
                        .forward_backward(&ctx, &logits, rows, classes, &targets, Upstream::Scalar(1.0))
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
    let unpooled = fresh_context().with_pool_limit(0);
    loss.forward(&unpooled, &logits, rows, classes, &targets).unwrap();
    let before = unpooled.bytes_allocated();
    for _ in 0..10 {
        loss.forward(&unpooled, &logits, rows, classes, &targets).unwrap();
    }
    assert!(unpooled.bytes_allocated() >= before + 10 * (rows * classes * 4) as u64);
    assert_eq!(unpooled.pooled_bytes(), 0);
    let pooled = fresh_context();
    loss.forward(&pooled, &logits, rows, classes, &targets).unwrap();
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
        let gpu_targets = GpuTargets {
            at: (&target_bufs[i]).into(),
            width: TargetWidth::I64,
        };
        losses[i]
            .encode(
                &ctx,
                &mut encoder,
                &input_bufs[i],
                rows,
                classes,
                gpu_targets,
                &CrossEntropyOutputs::loss(&ce_out[i]),
            )
            .unwrap();
        let outputs = wgpu_loss::ElementwiseOutputs {
            loss: (&mse_out[i]).into(),
            grad: None,
        };
        mse.encode(
            &ctx,
            &mut encoder,
            (&input_bufs[i]).into(),
            (&input_bufs[1 - i]).into(),
            &[rows, classes],
            &outputs,
        )
        .unwrap();
        wgpu_loss::RowOp::Softmax
            .encode(
                &ctx,
                &mut encoder,
                &input_bufs[i],
                rows,
                classes,
                (&softmax_out[i]).into(),
            )
            .unwrap();
    }
    ctx.queue().submit(Some(encoder.finish()));
    for i in 0..2 {
        let what = format!("recording {i}");
        let got = wgpu_loss::read_f32(&ctx, (&ce_out[i]).into(), 1).unwrap();
        let want = losses[i].forward_cpu(&inputs[i], rows, classes, &targets[i]).unwrap();
        assert_close(&what, &got, &[f64::from(want.scalar().unwrap())], REDUCED);
        let got = wgpu_loss::read_f32(&ctx, (&mse_out[i]).into(), 1).unwrap();
        let want = mse.forward_cpu(&inputs[i], &inputs[1 - i], &[rows, classes]).unwrap();
        assert_close(
            &format!("{what} mse"),
            &got,
            &[f64::from(want.scalar().unwrap())],
            REDUCED,
        );
        let got = wgpu_loss::read_f32(&ctx, (&softmax_out[i]).into(), rows * classes).unwrap();
        let want = wgpu_loss::RowOp::Softmax
            .forward_cpu(&inputs[i], rows, classes)
            .unwrap();
        let want: Vec<f64> = want.values().iter().map(|&v| f64::from(v)).collect();
        assert_close(&format!("{what} softmax"), &got, &want, ROW_LOSS);
    }
}
