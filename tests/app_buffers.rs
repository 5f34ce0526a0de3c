//! A wgpu app's own device, buffers and encoder: the crate records into the app's encoder,
//! reads the app's buffers at byte offsets, writes into the app's output buffers at byte
//! offsets, submits nothing, and allocates nothing the size of the input.

mod common;

use common::{assert_close, gpu, Rng, GRAD_TOLERANCE, REDUCED, ROW_LOSS};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{
    Backend, Batch, BatchAt, BufferAt, CrossEntropy, GradInto, Loss, Outputs, Reduction, Status, TargetsAt, Upstream,
};

fn app_buffer(contents: &[u8]) -> wgpu::Buffer {
    gpu().device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("app"),
        contents,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    })
}

/// The app's own readback of a whole buffer.
fn read_all(buffer: &wgpu::Buffer) -> Vec<f32> {
    let ctx = gpu();
    let staging = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("app.staging"),
        size: buffer.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, buffer.size());
    ctx.queue().submit(Some(encoder.finish()));
    staging.slice(..).map_async(wgpu::MapMode::Read, |r| r.expect("map"));
    ctx.device().poll(wgpu::PollType::wait_indefinitely()).expect("poll");
    let values = bytemuck::pod_collect_to_vec(&staging.slice(..).get_mapped_range().expect("mapped"));
    staging.unmap();
    values
}

#[test]
fn recorded_into_the_apps_encoder_and_buffers() {
    let ctx = gpu();
    let (rows, classes) = (257, 1000);
    let mut rng = Rng::new(8);
    let logits = rng.logits(rows * classes, 4.0);
    let targets: Vec<i64> = (0..rows)
        .map(|r| if r % 6 == 0 { -100 } else { rng.below(classes) as i64 })
        .collect();
    // The app's buffers: logits after 40 floats of other data, targets after 3 others,
    // outputs in one "results" buffer at offsets, the gradient after 8 floats.
    let mut logits_contents = vec![-1.0_f32; 40];
    logits_contents.extend_from_slice(&logits);
    let logits_buf = app_buffer(bytemuck::cast_slice(&logits_contents));
    let mut target_contents = vec![5_i64; 3];
    target_contents.extend_from_slice(&targets);
    let targets_buf = app_buffer(bytemuck::cast_slice(&target_contents));
    let results = app_buffer(bytemuck::cast_slice(&vec![42.0_f32; 13 + 3 * rows]));
    let grad_buf = app_buffer(bytemuck::cast_slice(&vec![42.0_f32; 8 + rows * classes]));
    let loss = CrossEntropy::default().label_smoothing(0.1).row_outputs(true);
    let outputs = Outputs {
        loss: Some(BufferAt {
            buffer: &results,
            offset: 4,
        }), // [loss, divisor] at floats 1-2
        status: Some(BufferAt {
            buffer: &results,
            offset: 20,
        }), // float 5
        row_stats: Some(BufferAt {
            buffer: &results,
            offset: 52,
        }), // floats 13.. (N pairs at an offset that is 4 mod 8: pairs are not vec2-aligned)
        argmax: Some(BufferAt {
            buffer: &results,
            offset: 52 + 8 * rows as u64,
        }),
        grad: Some((
            GradInto::Buffer(BufferAt {
                buffer: &grad_buf,
                offset: 32,
            }),
            Upstream::Scalar(1.0),
        )),
    };
    let batch = BatchAt::new(
        BufferAt {
            buffer: &logits_buf,
            offset: 160,
        },
        [rows, classes],
        TargetsAt::I64(BufferAt {
            buffer: &targets_buf,
            offset: 24,
        }),
    );
    let before = ctx.bytes_allocated();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    loss.encode(ctx, &mut encoder, &batch, &outputs).expect("encode");
    let extra = ctx.bytes_allocated() - before;
    let input_bytes = (rows * classes * 4) as u64;
    assert!(
        extra < input_bytes / 20,
        "the crate allocated {extra} bytes for a {input_bytes}-byte input"
    );
    // Nothing was submitted: the app's outputs still hold their old contents.
    assert!(
        read_all(&results).iter().all(|&v| v == 42.0),
        "the crate submitted work itself"
    );
    ctx.queue().submit(Some(encoder.finish()));
    let out = read_all(&results);
    let grad = read_all(&grad_buf);
    let want = loss
        .forward_backward(
            Backend::Reference,
            &Batch::new(&logits, [rows, classes], &targets),
            Upstream::Scalar(1.0),
        )
        .expect("cpu");
    assert_eq!(out[0], 42.0, "bytes before the loss untouched");
    assert_close(
        "loss at offset 4",
        &out[1..2],
        &[f64::from(want.loss.values()[0])],
        REDUCED,
    );
    let counted = targets.iter().filter(|&&t| t != -100).count() as f64;
    assert_close("divisor", &out[2..3], &[counted], REDUCED);
    assert_eq!(out[5].to_bits(), 0, "status: every target in range");
    assert!(Status(out[5].to_bits()).is_ok(), "status: every target in range");
    assert_eq!(out[12], 42.0, "the float before the row stats untouched");
    let lse: Vec<f32> = (0..rows).map(|r| out[13 + 2 * r]).collect();
    let want_lse: Vec<f64> = want.lse.expect("lse").iter().map(|&v| f64::from(v)).collect();
    assert_close("lse at offset", &lse, &want_lse, ROW_LOSS);
    let argmax: Vec<u32> = out[13 + 2 * rows..13 + 3 * rows].iter().map(|v| v.to_bits()).collect();
    assert_eq!(Some(argmax), want.argmax);
    assert!(
        grad[..8].iter().all(|&v| v == 42.0),
        "bytes before the gradient untouched"
    );
    let want_grad: Vec<f64> = want.grad.iter().map(|&g| f64::from(g)).collect();
    assert_close("grad at offset 32", &grad[8..], &want_grad, GRAD_TOLERANCE);
    // The input was only read.
    assert_eq!(&read_all(&logits_buf)[40..], &logits[..]);
}

#[test]
fn bad_targets_in_the_apps_buffer_show_in_its_status_word() {
    let ctx = gpu();
    let (rows, classes) = (100, 10);
    let logits = app_buffer(bytemuck::cast_slice(&vec![0.5_f32; rows * classes]));
    let mut targets: Vec<i32> = (0..rows as i32).map(|r| r % 10).collect();
    targets[61] = 10;
    targets[70] = -5;
    let targets_buf = app_buffer(bytemuck::cast_slice(&targets));
    let results = app_buffer(&[0; 64]);
    let outputs = Outputs {
        status: Some(BufferAt {
            buffer: &results,
            offset: 8,
        }),
        ..Outputs::loss(&results)
    };
    let batch = BatchAt::new(&logits, [rows, classes], TargetsAt::I32((&targets_buf).into()));
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    CrossEntropy::default()
        .reduction(Reduction::Sum)
        .encode(ctx, &mut encoder, &batch, &outputs)
        .expect("encode");
    ctx.queue().submit(Some(encoder.finish()));
    let out = read_all(&results);
    assert_eq!(u32::MAX - out[2].to_bits(), 61, "the first bad row");
    assert_eq!(Status(out[2].to_bits()).bad_row(), Some(61), "the first bad row");
    assert!(out[0].is_nan(), "the sum includes a poisoned row");
}

#[test]
fn encode_refuses_output_buffers_that_are_too_small() {
    let ctx = gpu();
    let logits = app_buffer(&[0; 4 * 6]);
    let targets = app_buffer(&[0; 8 * 2]);
    let small = app_buffer(&[0; 4]);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let batch = BatchAt::new(&logits, [2, 3], TargetsAt::I64((&targets).into()));
    let err = CrossEntropy::default()
        .encode(ctx, &mut encoder, &batch, &Outputs::loss(&small))
        .expect_err("4 bytes cannot hold [loss, divisor]");
    assert!(
        matches!(err, wgpu_loss::LossError::BadBuffer { what: "loss", .. }),
        "{err}"
    );
}

#[test]
fn elementwise_and_row_ops_record_into_the_apps_buffers() {
    use wgpu_loss::{ElementwiseLoss, RowOp};
    let ctx = gpu();
    let (rows, classes) = (33, 257);
    let n = rows * classes;
    let mut rng = Rng::new(2);
    let x = rng.logits(n, 3.0);
    let y: Vec<f32> = (0..n).map(|_| rng.uniform(0.0, 1.0)).collect();
    let pad = |v: &[f32], front: usize| {
        let mut out = vec![42.0_f32; front];
        out.extend_from_slice(v);
        out
    };
    let x_buf = app_buffer(bytemuck::cast_slice(&pad(&x, 3)));
    let y_buf = app_buffer(bytemuck::cast_slice(&pad(&y, 5)));
    let results = app_buffer(bytemuck::cast_slice(&vec![42.0_f32; 4 + n]));
    let grad_buf = app_buffer(bytemuck::cast_slice(&vec![42.0_f32; 7 + n]));
    let loss = ElementwiseLoss::bce_with_logits();
    let outputs = Outputs {
        loss: Some(BufferAt {
            buffer: &results,
            offset: 4,
        }),
        grad: Some((
            GradInto::Buffer(BufferAt {
                buffer: &grad_buf,
                offset: 28,
            }),
            Upstream::Scalar(1.0),
        )),
        ..Outputs::default()
    };
    let before = ctx.bytes_allocated();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let at = |buffer, floats: u64| BufferAt {
        buffer,
        offset: 4 * floats,
    };
    let batch = BatchAt::new(at(&x_buf, 3), [rows, classes], TargetsAt::F32(at(&y_buf, 5)));
    loss.encode(ctx, &mut encoder, &batch, &outputs).expect("encode");
    assert!(
        ctx.bytes_allocated() - before < (n as u64 * 4) * 3 / 2,
        "one O(n) buffer of losses to reduce at most"
    );
    ctx.queue().submit(Some(encoder.finish()));
    let want = loss
        .forward_backward(
            Backend::Reference,
            &Batch::new(&x, [rows, classes], &y),
            Upstream::Scalar(1.0),
        )
        .expect("cpu");
    let (want_loss, want_grad) = (want.loss, want.grad);
    let out = read_all(&results);
    assert_close(
        "elementwise loss at offset",
        &out[1..2],
        &[f64::from(want_loss.values()[0])],
        REDUCED,
    );
    let grad = read_all(&grad_buf);
    assert!(grad[..7].iter().all(|&v| v == 42.0));
    let want: Vec<f64> = want_grad.iter().map(|&g| f64::from(g)).collect();
    assert_close("elementwise grad at offset", &grad[7..], &want, GRAD_TOLERANCE);

    // Softmax into the results buffer at float 4; its backward into the grad buffer at 7.
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let rows_at = BatchAt::new(at(&x_buf, 3), [rows, classes], TargetsAt::None);
    RowOp::Softmax
        .encode(ctx, &mut encoder, &rows_at, &Outputs::loss(at(&results, 4)))
        .expect("softmax");
    let vjp = Outputs {
        grad: Some((GradInto::Buffer(at(&grad_buf, 7)), Upstream::Values(at(&y_buf, 5)))),
        ..Outputs::default()
    };
    RowOp::Softmax.encode(ctx, &mut encoder, &rows_at, &vjp).expect("vjp");
    ctx.queue().submit(Some(encoder.finish()));
    let want: Vec<f64> = RowOp::Softmax
        .forward(Backend::Reference, &Batch::input(&x, [rows, classes]))
        .expect("cpu")
        .values()
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let softmax_tol = common::Tolerance {
        name: "softmax",
        atol: 1e-7,
        rtol: 2e-5,
    };
    assert_close("softmax at offset", &read_all(&results)[4..4 + n], &want, softmax_tol);
    let want: Vec<f64> = RowOp::Softmax
        .forward_backward(
            Backend::Reference,
            &Batch::input(&x, [rows, classes]),
            Upstream::Values(&y),
        )
        .expect("cpu")
        .grad
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    assert_close(
        "softmax vjp at offset",
        &read_all(&grad_buf)[7..],
        &want,
        GRAD_TOLERANCE,
    );
}

#[test]
fn async_results_arrive_when_the_app_polls() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let ctx = gpu();
    let (rows, classes) = (300, 777);
    let mut rng = Rng::new(6);
    let logits = rng.logits(rows * classes, 4.0);
    let targets: Vec<i64> = (0..rows).map(|_| rng.below(classes) as i64).collect();
    // The app's poll loop, on its own thread; the futures only await their channels.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (device, stop) = (ctx.device().clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = device.poll(wgpu::PollType::Poll);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let loss = CrossEntropy::default().label_smoothing(0.05);
    let batch = Batch::new(&logits, [rows, classes], &targets);
    let got = pollster::block_on(loss.forward_async(ctx, &batch)).expect("async");
    let want = loss.forward(Backend::Reference, &batch).expect("cpu");
    assert_close("forward_async", got.values(), &[f64::from(want.values()[0])], REDUCED);
    let buffer = app_buffer(bytemuck::cast_slice(&logits));
    let read = pollster::block_on(wgpu_loss::read_async::<f32>(
        ctx,
        BufferAt {
            buffer: &buffer,
            offset: 40,
        },
        5,
    ))
    .expect("read");
    assert_eq!(read, &logits[10..15]);
    stop.store(true, Ordering::Relaxed);
    poller.join().expect("poller");
    // The blocking twin for programs that do not poll.
    assert_eq!(
        wgpu_loss::read::<f32>(
            ctx,
            BufferAt {
                buffer: &buffer,
                offset: 40
            },
            5
        )
        .expect("read"),
        &logits[10..15]
    );
}
