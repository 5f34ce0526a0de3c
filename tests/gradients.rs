//! Gradients. The GPU gradient against the f64 reference gradient (`Backend::Reference`)
//! for every loss and option; ignored rows; in-place writing into a caller's buffer with
//! O(N) extra memory; the per-row outputs (lse, argmax, accuracy).
//!
//! The f64 reference gradient itself is checked against central finite differences of the
//! f64 reference loss (for every loss and option, and the softmax family's VJPs) in f64 by
//! the crate's unit tests in the families' `reference_tests.rs` unit tests (`src/losses/*/reference_tests.rs`), since `wgpu_loss::cpu` is private.

mod common;

use common::{assert_close, gpu, Rng, Tolerance};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{
    Backend, Batch, BatchAt, BufferAt, CrossEntropy, ElementwiseLoss, GradInto, InputKind, Loss, LossValue, Outputs,
    Reduction, RowOp, Status, Targets, TargetsAt, Upstream,
};

/// GPU (f32) gradient against the f64 reference: p = exp(x - lse) in f32 with lse from an f32
/// sum (relative error ~1e-6 of p), times scales of at most a few units.
const GRAD: Tolerance = Tolerance {
    name: "grad",
    atol: 2e-6,
    rtol: 2e-5,
};

/// One cross-entropy configuration: the options the f64 finite-difference unit tests
/// (the families' `reference_tests.rs` unit tests (`src/losses/*/reference_tests.rs`)) check the reference with, here as the public loss.
struct CeCase {
    name: &'static str,
    kind: InputKind,
    weighted: bool,
    label_smoothing: f64,
    z_loss: f64,
    softcap: Option<f64>,
    probabilities: bool,
    positive_input: bool,
}

const WEIGHTS: [f32; 5] = [0.5, 1.5, 1.0, 2.0, 0.25];

fn ce_cases() -> Vec<CeCase> {
    let base = CeCase {
        name: "plain",
        kind: InputKind::Logits,
        weighted: false,
        label_smoothing: 0.0,
        z_loss: 0.0,
        softcap: None,
        probabilities: false,
        positive_input: false,
    };
    vec![
        CeCase { ..base },
        CeCase {
            name: "weighted smoothed",
            weighted: true,
            label_smoothing: 0.2,
            ..base
        },
        CeCase {
            name: "z-loss softcap",
            z_loss: 1e-2,
            softcap: Some(3.0),
            ..base
        },
        CeCase {
            name: "probability targets",
            weighted: true,
            label_smoothing: 0.1,
            z_loss: 1e-3,
            probabilities: true,
            ..base
        },
        CeCase {
            name: "probabilities in",
            kind: InputKind::Probabilities,
            label_smoothing: 0.1,
            positive_input: true,
            ..base
        },
        CeCase {
            name: "probabilities in, prob targets",
            kind: InputKind::Probabilities,
            probabilities: true,
            positive_input: true,
            ..base
        },
        CeCase {
            name: "log-probabilities in (nll)",
            kind: InputKind::LogProbabilities,
            weighted: true,
            ..base
        },
    ]
}

/// The library call for a case (GPU or CPU path share it), with `weights` if it is weighted.
fn ce_loss(case: &CeCase, weights: &[f32], reduction: Reduction) -> CrossEntropy {
    let mut loss = CrossEntropy::default()
        .input_kind(case.kind)
        .label_smoothing(case.label_smoothing)
        .z_loss(case.z_loss)
        .reduction(reduction);
    if case.weighted {
        loss = loss.weight(weights);
    }
    if let Some(cap) = case.softcap {
        loss = loss.softcap(cap);
    }
    loss
}

/// The index of the row's largest value, as `torch.argmax`: NaN counts as the largest,
/// ties go to the first index.
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        let b = row[best];
        let better = if x.is_nan() || b.is_nan() {
            x.is_nan() && !b.is_nan()
        } else {
            x > b
        };
        if better {
            best = i;
        }
    }
    best as u32
}

#[test]
fn gpu_cross_entropy_gradients_match_the_reference() {
    let ctx = gpu();
    for (rows, classes) in [(6, 5), (257, 31), (33, 4099)] {
        let mut rng = Rng::new((rows + classes) as u64);
        for case in ce_cases() {
            let input: Vec<f32> = (0..rows * classes)
                .map(|_| {
                    if case.positive_input {
                        rng.uniform(0.05, 1.0)
                    } else {
                        rng.uniform(-4.0, 4.0)
                    }
                })
                .collect();
            let indices: Vec<i64> = (0..rows)
                .map(|r| if r % 5 == 2 { -100 } else { rng.below(classes) as i64 })
                .collect();
            let mut probs: Vec<f32> = (0..rows * classes).map(|_| rng.uniform(0.0, 1.0)).collect();
            for row in probs.chunks_mut(classes) {
                let sum: f32 = row.iter().sum();
                row.iter_mut().for_each(|v| *v /= sum);
            }
            let weights: Vec<f32> = (0..classes).map(|c| WEIGHTS[c % 5]).collect();
            let targets = if case.probabilities {
                Targets::F32(&probs)
            } else {
                Targets::I64(&indices)
            };
            let batch = Batch::new(&input, [rows, classes], targets);
            let upstream: Vec<f32> = (0..rows).map(|r| 0.5 + (r % 3) as f32).collect();
            for (reduction, up) in [
                (Reduction::Mean, Upstream::Scalar(1.0)),
                (Reduction::Sum, Upstream::Scalar(0.5)),
                (Reduction::None, Upstream::Values(&upstream[..])),
                (Reduction::None, Upstream::Scalar(2.0)),
            ] {
                let loss = ce_loss(&case, &weights, reduction);
                let want = loss.forward_backward(Backend::Reference, &batch, up).expect("cpu");
                let got = loss.forward_backward(Backend::Gpu(ctx), &batch, up).expect("gpu");
                let what = format!("{} {rows}x{classes} {reduction:?}", case.name);
                let want_grad: Vec<f64> = want.grad.iter().map(|&g| f64::from(g)).collect();
                assert_close(&format!("{what} grad"), &got.grad, &want_grad, GRAD);
                let want_loss: Vec<f64> = want.loss.values().iter().map(|&v| f64::from(v)).collect();
                assert_close(&format!("{what} loss"), got.loss.values(), &want_loss, common::REDUCED);
                if !case.probabilities {
                    for (r, &t) in indices.iter().enumerate() {
                        if t == -100 {
                            assert!(
                                got.grad[r * classes..(r + 1) * classes].iter().all(|&g| g == 0.0),
                                "{what}: ignored row {r}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn gpu_elementwise_gradients_match_the_reference() {
    let ctx = gpu();
    let (rows, classes) = (37, 300);
    let mut rng = Rng::new(4);
    let n = rows * classes;
    let p: Vec<f32> = (0..n).map(|_| rng.uniform(0.01, 0.99)).collect();
    let y: Vec<f32> = (0..n).map(|_| rng.uniform(0.0, 1.0)).collect();
    let x: Vec<f32> = (0..n).map(|_| rng.uniform(-8.0, 8.0)).collect();
    let w: Vec<f32> = (0..classes).map(|_| rng.uniform(0.1, 2.0)).collect();
    let upstream: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let cases: Vec<(ElementwiseLoss, &[f32], &[f32])> = vec![
        (ElementwiseLoss::mse(), &x, &y),
        (ElementwiseLoss::bce().weight(&w), &p, &y),
        (ElementwiseLoss::bce_with_logits().weight(&w).pos_weight(&w), &x, &y),
        (ElementwiseLoss::kl_div(), &x, &p),
        (ElementwiseLoss::kl_div().log_target(true), &x, &x),
    ];
    // BCE's 1/((1-p)p) reaches ~100 here; relative accuracy is what f32 gives.
    let tol = Tolerance {
        name: "elementwise_grad",
        atol: 1e-6,
        rtol: 1e-5,
    };
    for (loss, input, target) in cases {
        for (reduction, up) in [
            (Reduction::Mean, Upstream::Scalar(1.0)),
            (Reduction::Sum, Upstream::Scalar(2.0)),
            (Reduction::None, Upstream::Values(&upstream[..])),
        ] {
            let loss = loss.clone().reduction(reduction);
            let batch = Batch::new(input, [rows, classes], target);
            let want = loss.forward_backward(Backend::Reference, &batch, up).expect("cpu").grad;
            let got = loss.forward_backward(Backend::Gpu(ctx), &batch, up).expect("gpu").grad;
            let want: Vec<f64> = want.iter().map(|&g| f64::from(g)).collect();
            assert_close(&format!("{:?} {reduction:?}", loss.kind), &got, &want, tol);
        }
    }
    let kl = ElementwiseLoss::kl_div().reduction(Reduction::BatchMean);
    let got = kl
        .forward_backward(
            Backend::Gpu(ctx),
            &Batch::new(&x, [rows, classes], &p),
            Upstream::Scalar(1.0),
        )
        .expect("gpu")
        .grad;
    let want: Vec<f64> = p.iter().map(|&t| -f64::from(t) / rows as f64).collect();
    assert_close("kl batchmean grad = -t / N", &got, &want, tol);
}

#[test]
fn in_place_gradient_lands_in_the_callers_buffer_with_o_n_extra_memory() {
    let ctx = gpu();
    let (rows, classes) = (300, 2000);
    let mut rng = Rng::new(12);
    let logits = rng.logits(rows * classes, 5.0);
    let targets: Vec<i64> = (0..rows)
        .map(|r| if r % 7 == 0 { -100 } else { rng.below(classes) as i64 })
        .collect();
    // The app's buffer holds other data before and after the logits (offset 256 bytes).
    let mut contents = vec![7.0_f32; 64];
    contents.extend_from_slice(&logits);
    contents.extend_from_slice(&[9.0; 64]);
    let buffer = ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("app.logits"),
        contents: bytemuck::cast_slice(&contents),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    });
    let targets_buf = ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("app.targets"),
        contents: bytemuck::cast_slice(&targets),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    // The loss ([loss, divisor] for the mean) and the status word land in the app's buffers.
    let result = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("app.loss"),
        size: 8,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let status = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("app.status"),
        size: 4,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let loss = CrossEntropy::default().label_smoothing(0.1).z_loss(1e-4);
    let before = ctx.bytes_allocated();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    loss.encode(
        ctx,
        &mut encoder,
        &BatchAt::new(
            BufferAt {
                buffer: &buffer,
                offset: 256,
            },
            [rows, classes],
            TargetsAt::I64((&targets_buf).into()),
        ),
        &Outputs {
            loss: Some((&result).into()),
            status: Some((&status).into()),
            grad: Some((GradInto::InPlace, Upstream::Scalar(1.0))),
            ..Default::default()
        },
    )
    .expect("in place");
    ctx.queue().submit(Some(encoder.finish()));
    // Only the loss (one f32 of [loss, divisor]) and the status word are read back: nothing
    // [N, C] (a read-back of the gradient would show in `extra` below, as its staging buffer).
    let result = LossValue::Scalar(wgpu_loss::read::<f32>(ctx, (&result).into(), 1).expect("read loss")[0]);
    let word = wgpu_loss::read::<u32>(ctx, (&status).into(), 1).expect("read status")[0];
    let extra = ctx.bytes_allocated() - before;
    let input_bytes = (rows * classes * 4) as u64;
    assert!(
        Status(word).is_ok(),
        "status {word:#x}: every target in range or ignored"
    );
    assert!(
        extra < input_bytes / 10,
        "in place allocated {extra} bytes beside {input_bytes} bytes of logits"
    );
    assert!(
        extra < 64 * rows as u64 + 64 * 1024,
        "O(N): {extra} bytes for {rows} rows"
    );
    // Read the app's buffer back and compare with the reference gradient.
    let staging = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("check"),
        size: buffer.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(&buffer, 0, &staging, 0, buffer.size());
    ctx.queue().submit(Some(encoder.finish()));
    staging.slice(..).map_async(wgpu::MapMode::Read, |r| r.expect("map"));
    ctx.device().poll(wgpu::PollType::wait_indefinitely()).expect("poll");
    let all: Vec<f32> = bytemuck::pod_collect_to_vec(&staging.slice(..).get_mapped_range().expect("mapped"));
    assert!(
        all[..64].iter().all(|&v| v == 7.0) && all[64 + rows * classes..].iter().all(|&v| v == 9.0),
        "bytes outside the input untouched"
    );
    let want = loss
        .forward_backward(
            Backend::Reference,
            &Batch::new(&logits, [rows, classes], &targets),
            Upstream::Scalar(1.0),
        )
        .expect("cpu");
    let want_grad: Vec<f64> = want.grad.iter().map(|&g| f64::from(g)).collect();
    assert_close("in-place grad", &all[64..64 + rows * classes], &want_grad, GRAD);
    assert_close(
        "in-place loss",
        result.values(),
        &[f64::from(want.loss.values()[0])],
        common::REDUCED,
    );
}

#[test]
fn row_outputs_lse_argmax_accuracy() {
    let ctx = gpu();
    let (rows, classes) = (257, 1000);
    let mut rng = Rng::new(3);
    let mut logits = rng.logits(rows * classes, 5.0);
    // Ties go to the first index; NaN wins; the target of row 1 is its argmax.
    logits[5 * classes + 10] = 100.0;
    logits[5 * classes + 20] = 100.0;
    logits[6 * classes + 500] = f32::NAN;
    let mut targets: Vec<i64> = (0..rows)
        .map(|r| if r % 9 == 0 { -100 } else { rng.below(classes) as i64 })
        .collect();
    let row1 = &logits[classes..2 * classes];
    targets[1] = argmax(row1) as i64;
    for loss in [
        CrossEntropy::default().row_outputs(true),
        CrossEntropy::default().row_outputs(true).softcap(4.0),
    ] {
        let batch = Batch::new(&logits, [rows, classes], &targets);
        let want = loss
            .forward_backward(Backend::Reference, &batch, Upstream::Scalar(1.0))
            .expect("cpu");
        let got = loss
            .forward_backward(Backend::Gpu(ctx), &batch, Upstream::Scalar(1.0))
            .expect("gpu");
        assert_eq!(got.argmax, want.argmax);
        let argmax = got.argmax.as_ref().expect("argmax");
        assert_eq!(argmax[5], 10);
        assert_eq!(argmax[6], 500);
        let want_lse: Vec<f64> = want.lse.as_ref().expect("lse").iter().map(|&v| f64::from(v)).collect();
        let got_lse = got.lse.as_ref().expect("lse");
        for (r, (g, w)) in got_lse.iter().zip(&want_lse).enumerate() {
            assert!(
                r == 6 || common::close(f64::from(*g), *w, common::ROW_LOSS),
                "lse row {r}: {g} vs {w}"
            );
        }
        let counted = targets.iter().filter(|&&t| t != -100).count();
        let hits = argmax
            .iter()
            .zip(&targets)
            .filter(|(a, t)| **t != -100 && i64::from(**a) == **t)
            .count();
        assert!(hits >= 1);
        assert_eq!(got.accuracy, Some(hits as f32 / counted as f32));
        assert_eq!(got.accuracy, want.accuracy);
    }
}

#[test]
fn z_loss_and_softcap_forward_values() {
    let x = [1.0_f32, 2.0, 3.0];
    let lse = (1.0_f64.exp() + 2.0_f64.exp() + 3.0_f64.exp()).ln();
    let plain = -(3.0 - lse);
    let with_z = CrossEntropy::default()
        .z_loss(0.1)
        .forward(Backend::Gpu(gpu()), &Batch::new(&x, [1, 3], &[2_i64]))
        .expect("z");
    assert_close("z-loss", with_z.values(), &[plain + 0.1 * lse * lse], common::ROW_LOSS);
    let capped: Vec<f64> = x.iter().map(|&v| 2.0 * (f64::from(v) / 2.0).tanh()).collect();
    let lse_c = capped.iter().map(|v| v.exp()).sum::<f64>().ln();
    let with_cap = CrossEntropy::default()
        .softcap(2.0)
        .forward(Backend::Gpu(gpu()), &Batch::new(&x, [1, 3], &[2_i64]))
        .expect("cap");
    assert_close("softcap", with_cap.values(), &[lse_c - capped[2]], common::ROW_LOSS);
}

#[test]
fn row_op_vector_jacobian_products() {
    // The f64 VJP against finite differences of u · op(x) is checked in f64 in
    // src/losses/softmax/reference_tests.rs (row_op_vector_jacobian_products_match_finite_differences),
    // from the same seed. Its draws are replayed here so that the GPU cases below see the
    // same data as before that half moved.
    let mut rng = Rng::new(31);
    let _row: Vec<f32> = (0..7).map(|_| rng.uniform(-3.0, 3.0)).collect();
    for op in [RowOp::Softmax, RowOp::LogSoftmax, RowOp::Entropy] {
        let outputs = if op == RowOp::Entropy { 1 } else { 7 };
        let _up: Vec<f32> = (0..outputs).map(|_| rng.uniform(-1.0, 1.0)).collect();
    }
    // The GPU VJP against the reference, with masked classes.
    let ctx = gpu();
    for (rows, classes) in [(1, 1), (7, 3), (257, 31), (33, 4099)] {
        let mut logits = rng.logits(rows * classes, 5.0);
        if classes > 1 {
            logits[1] = f32::NEG_INFINITY;
        }
        for op in [RowOp::Softmax, RowOp::LogSoftmax, RowOp::Entropy] {
            let outputs = if op == RowOp::Entropy { rows } else { rows * classes };
            let up: Vec<f32> = (0..outputs).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let batch = Batch::input(&logits, [rows, classes]);
            let want: Vec<f64> = op
                .forward_backward(Backend::Reference, &batch, Upstream::Values(&up))
                .expect("cpu")
                .grad
                .iter()
                .map(|&g| f64::from(g))
                .collect();
            let got = op
                .forward_backward(Backend::Gpu(ctx), &batch, Upstream::Values(&up))
                .expect("gpu")
                .grad;
            assert_close(&format!("{op:?} vjp {rows}x{classes}"), &got, &want, GRAD);
        }
    }
}
