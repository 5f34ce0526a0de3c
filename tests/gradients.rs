//! Gradients. The f64 reference gradient against central finite differences of the f64
//! reference loss (for every loss and option), then the GPU gradient against the reference
//! gradient; ignored rows; in-place writing into a caller's buffer with O(N) extra memory;
//! the per-row outputs (lse, argmax, accuracy).

mod common;

use common::{assert_close, gpu, Rng, Tolerance};
use wgpu_loss::cpu::{self, RefOptions, RefTargets};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{
    CrossEntropy, ElementwiseKind, ElementwiseLoss, GpuTargets, InputKind, Reduction, TargetWidth, Targets, Upstream,
};

/// Central differences with step h on smooth f64 functions of O(1) values: truncation
/// error O(h²·f''') ≈ 1e-10 and cancellation O(ε/h) ≈ 1e-10 at h = 1e-5.
const FINITE_DIFF: Tolerance = Tolerance {
    name: "finite_difference",
    atol: 1e-7,
    rtol: 1e-6,
};
const STEP: f64 = 1e-5;
/// GPU (f32) gradient against the f64 reference: p = exp(x - lse) in f32 with lse from an f32
/// sum (relative error ~1e-6 of p), times scales of at most a few units.
const GRAD: Tolerance = Tolerance {
    name: "grad",
    atol: 2e-6,
    rtol: 2e-5,
};

/// Central differences of `f` at `x`, one coordinate at a time.
fn finite_differences(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            probe[i] = x[i] + STEP;
            let up = f(&probe);
            probe[i] = x[i] - STEP;
            let down = f(&probe);
            probe[i] = x[i];
            (up - down) / (2.0 * STEP)
        })
        .collect()
}

/// The scalar the gradient is of: Σ_n g_n l_n, with g from the reduction (mean: 1/Σw).
fn total(losses: &cpu::RowLosses, reduction: Reduction, upstream: &[f64]) -> f64 {
    match reduction {
        Reduction::Mean => losses.mean(),
        Reduction::Sum => losses.sum(),
        _ => losses.loss.iter().zip(upstream).map(|(l, g)| l * g).sum(),
    }
}

struct CeCase {
    name: &'static str,
    opts: RefOptions<'static>,
    probabilities: bool,
    positive_input: bool,
}

const WEIGHTS: [f32; 5] = [0.5, 1.5, 1.0, 2.0, 0.25];

fn ce_cases() -> Vec<CeCase> {
    let base = RefOptions::default();
    let case = |name, opts, probabilities, positive_input| CeCase {
        name,
        opts,
        probabilities,
        positive_input,
    };
    vec![
        case("plain", base, false, false),
        case(
            "weighted smoothed",
            RefOptions {
                weight: Some(&WEIGHTS),
                label_smoothing: 0.2,
                ..base
            },
            false,
            false,
        ),
        case(
            "z-loss softcap",
            RefOptions {
                z_loss: 1e-2,
                softcap: Some(3.0),
                ..base
            },
            false,
            false,
        ),
        case(
            "probability targets",
            RefOptions {
                weight: Some(&WEIGHTS),
                label_smoothing: 0.1,
                z_loss: 1e-3,
                ..base
            },
            true,
            false,
        ),
        case(
            "probabilities in",
            RefOptions {
                kind: InputKind::Probabilities,
                label_smoothing: 0.1,
                ..base
            },
            false,
            true,
        ),
        case(
            "probabilities in, prob targets",
            RefOptions {
                kind: InputKind::Probabilities,
                ..base
            },
            true,
            true,
        ),
        case(
            "log-probabilities in (nll)",
            RefOptions {
                kind: InputKind::LogProbabilities,
                weight: Some(&WEIGHTS),
                ..base
            },
            false,
            false,
        ),
    ]
}

/// A small batch: 6 rows × 5 classes, row 2 ignored (class-index targets).
fn batch(positive: bool) -> (Vec<f64>, Vec<i64>, Vec<f64>) {
    let mut rng = Rng::new(77);
    let (rows, classes) = (6, 5);
    let input: Vec<f64> = (0..rows * classes)
        .map(|_| {
            if positive {
                f64::from(rng.uniform(0.05, 1.0))
            } else {
                f64::from(rng.uniform(-4.0, 4.0))
            }
        })
        .collect();
    let targets: Vec<i64> = (0..rows)
        .map(|r| if r == 2 { -100 } else { rng.below(classes) as i64 })
        .collect();
    let mut probs: Vec<f64> = (0..rows * classes).map(|_| f64::from(rng.uniform(0.0, 1.0))).collect();
    for row in probs.chunks_mut(classes) {
        let sum: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= sum);
    }
    (input, targets, probs)
}

#[test]
fn reference_cross_entropy_gradients_match_finite_differences() {
    let classes = 5;
    for case in ce_cases() {
        let (input, indices, probs) = batch(case.positive_input);
        let targets = if case.probabilities {
            RefTargets::Probabilities(&probs)
        } else {
            RefTargets::Indices(&indices)
        };
        let upstream: Vec<f64> = (0..6).map(|r| 0.5 + r as f64 * 0.25).collect();
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            let losses = cpu::reference_rows(&input, classes, targets, &case.opts);
            let scale: Vec<f64> = match reduction {
                Reduction::Mean => vec![1.0 / losses.weight.iter().sum::<f64>(); 6],
                Reduction::Sum => vec![1.0; 6],
                _ => upstream.clone(),
            };
            let analytic = cpu::reference_grad(&input, classes, targets, &case.opts, &scale);
            let numeric = finite_differences(&input, |x| {
                total(
                    &cpu::reference_rows(x, classes, targets, &case.opts),
                    reduction,
                    &upstream,
                )
            });
            for (i, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
                assert!(
                    common::close(*a, *n, FINITE_DIFF),
                    "{} {reduction:?} [{i}]: analytic {a}, numeric {n}",
                    case.name
                );
            }
            if !case.probabilities {
                assert!(
                    analytic[10..15].iter().all(|&g| g == 0.0),
                    "{}: the ignored row's gradient is exactly 0",
                    case.name
                );
            }
        }
    }
}

/// (loss, input, target, weight, pos_weight, log_target)
type ElementCase<'a> = (
    ElementwiseKind,
    &'a [f64],
    &'a [f64],
    Option<&'a [f32]>,
    Option<&'a [f32]>,
    bool,
);

#[test]
fn reference_elementwise_gradients_match_finite_differences() {
    let mut rng = Rng::new(9);
    let shape = [3, 4];
    let n = 12;
    let p: Vec<f64> = (0..n).map(|_| f64::from(rng.uniform(0.05, 0.95))).collect();
    let y: Vec<f64> = (0..n).map(|_| f64::from(rng.uniform(0.0, 1.0))).collect();
    let x: Vec<f64> = (0..n).map(|_| f64::from(rng.uniform(-3.0, 3.0))).collect();
    let w = [0.5_f32, 1.0, 2.0, 1.5];
    let pw = [3.0_f32, 0.5, 1.0, 2.0];
    let cases: Vec<ElementCase<'_>> = vec![
        (ElementwiseKind::Mse, &x, &y, None, None, false),
        (ElementwiseKind::Bce, &p, &y, Some(&w), None, false),
        (ElementwiseKind::BceWithLogits, &x, &y, Some(&w), Some(&pw), false),
        (ElementwiseKind::KlDiv, &x, &p, None, None, false),
        (ElementwiseKind::KlDiv, &x, &x, None, None, true),
    ];
    for (kind, input, target, weight, pos_weight, log_target) in cases {
        let loss = |v: &[f64]| {
            cpu::elementwise_losses(kind, v, target, weight, pos_weight, log_target, shape[1])
                .iter()
                .sum::<f64>()
        };
        let analytic = cpu::elementwise_grad(kind, input, target, weight, pos_weight, log_target, shape[1]);
        let numeric = finite_differences(input, loss);
        for (i, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
            assert!(
                common::close(*a, *n, FINITE_DIFF),
                "{kind:?} [{i}]: analytic {a}, numeric {n}"
            );
        }
    }
}

/// The library call for a case (GPU or CPU path share it), with `weights` if it is weighted.
fn ce_loss(case: &CeCase, weights: &[f32], reduction: Reduction) -> CrossEntropy {
    let o = &case.opts;
    let mut loss = CrossEntropy::default()
        .input_kind(o.kind)
        .label_smoothing(o.label_smoothing)
        .z_loss(o.z_loss)
        .reduction(reduction);
    if o.weight.is_some() {
        loss = loss.weight(weights);
    }
    if let Some(cap) = o.softcap {
        loss = loss.softcap(cap);
    }
    loss
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
                Targets::Probabilities(&probs)
            } else {
                Targets::I64(&indices)
            };
            let upstream: Vec<f32> = (0..rows).map(|r| 0.5 + (r % 3) as f32).collect();
            for (reduction, up) in [
                (Reduction::Mean, Upstream::Scalar(1.0)),
                (Reduction::Sum, Upstream::Scalar(0.5)),
                (Reduction::None, Upstream::Values(&upstream)),
                (Reduction::None, Upstream::Scalar(2.0)),
            ] {
                let loss = ce_loss(&case, &weights, reduction);
                let want = loss
                    .forward_backward_cpu(&input, rows, classes, targets, up)
                    .expect("cpu");
                let got = loss
                    .forward_backward(ctx, &input, rows, classes, targets, up)
                    .expect("gpu");
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
            (Reduction::None, Upstream::Values(&upstream)),
        ] {
            let loss = loss.clone().reduction(reduction);
            let (_, want) = loss
                .forward_backward_cpu(input, target, &[rows, classes], up)
                .expect("cpu");
            let (_, got) = loss
                .forward_backward(ctx, input, target, &[rows, classes], up)
                .expect("gpu");
            let want: Vec<f64> = want.iter().map(|&g| f64::from(g)).collect();
            assert_close(&format!("{:?} {reduction:?}", loss.kind()), &got, &want, tol);
        }
    }
    let kl = ElementwiseLoss::kl_div().reduction(Reduction::BatchMean);
    let (_, got) = kl
        .forward_backward(ctx, &x, &p, &[rows, classes], Upstream::Scalar(1.0))
        .expect("gpu");
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
    let loss = CrossEntropy::default().label_smoothing(0.1).z_loss(1e-4);
    let before = ctx.bytes_allocated();
    let result = loss
        .forward_backward_in_place(
            ctx,
            wgpu_loss::BufferAt {
                buffer: &buffer,
                offset: 256,
            },
            rows,
            classes,
            GpuTargets {
                at: (&targets_buf).into(),
                width: TargetWidth::I64,
            },
            wgpu_loss::GpuUpstream::Scalar(1.0),
        )
        .expect("in place");
    let extra = ctx.bytes_allocated() - before;
    let input_bytes = (rows * classes * 4) as u64;
    assert!(result.grad.is_empty(), "nothing [N, C] is read back");
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
        .forward_backward_cpu(&logits, rows, classes, &targets, Upstream::Scalar(1.0))
        .expect("cpu");
    let want_grad: Vec<f64> = want.grad.iter().map(|&g| f64::from(g)).collect();
    assert_close("in-place grad", &all[64..64 + rows * classes], &want_grad, GRAD);
    assert_close(
        "in-place loss",
        result.loss.values(),
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
    targets[1] = cpu::argmax(row1) as i64;
    for loss in [
        CrossEntropy::default().row_outputs(true),
        CrossEntropy::default().row_outputs(true).softcap(4.0),
    ] {
        let want = loss
            .forward_backward_cpu(&logits, rows, classes, &targets, Upstream::Scalar(1.0))
            .expect("cpu");
        let got = loss
            .forward_backward(ctx, &logits, rows, classes, &targets, Upstream::Scalar(1.0))
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
        .forward(gpu(), &x, 1, 3, &vec![2_i64])
        .expect("z");
    assert_close("z-loss", with_z.values(), &[plain + 0.1 * lse * lse], common::ROW_LOSS);
    let capped: Vec<f64> = x.iter().map(|&v| 2.0 * (f64::from(v) / 2.0).tanh()).collect();
    let lse_c = capped.iter().map(|v| v.exp()).sum::<f64>().ln();
    let with_cap = CrossEntropy::default()
        .softcap(2.0)
        .forward(gpu(), &x, 1, 3, &vec![2_i64])
        .expect("cap");
    assert_close("softcap", with_cap.values(), &[lse_c - capped[2]], common::ROW_LOSS);
}

#[test]
fn row_op_vector_jacobian_products() {
    use wgpu_loss::RowOp;
    // The f64 VJP against finite differences of u · op(x).
    let mut rng = Rng::new(31);
    let row: Vec<f64> = (0..7).map(|_| f64::from(rng.uniform(-3.0, 3.0))).collect();
    for op in [RowOp::Softmax, RowOp::LogSoftmax, RowOp::Entropy] {
        let outputs = if op == RowOp::Entropy { 1 } else { 7 };
        let up: Vec<f64> = (0..outputs).map(|_| f64::from(rng.uniform(-1.0, 1.0))).collect();
        let analytic = cpu::row_op_vjp(op, &row, &up);
        let numeric = finite_differences(&row, |x| cpu::row_op(op, x).iter().zip(&up).map(|(o, u)| o * u).sum());
        for (i, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
            assert!(
                common::close(*a, *n, FINITE_DIFF),
                "{op:?} [{i}]: analytic {a}, numeric {n}"
            );
        }
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
            let want: Vec<f64> = op
                .backward_cpu(&logits, rows, classes, &up)
                .expect("cpu")
                .iter()
                .map(|&g| f64::from(g))
                .collect();
            let got = op.backward(ctx, &logits, rows, classes, &up).expect("gpu");
            assert_close(&format!("{op:?} vjp {rows}x{classes}"), &got, &want, GRAD);
        }
    }
}
