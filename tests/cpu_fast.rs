//! The fast CPU backend (`Backend::Cpu`) against the f64 reference (`Backend::Reference`):
//! every option, special rows (NaN, -inf, all -inf, 1e4), gradients, and bit-identical
//! results from run to run.

mod common;

use common::{assert_close, Rng, GRAD_TOLERANCE, REDUCED, ROW_LOSS};
use wgpu_loss::{Backend, Batch, CrossEntropy, Loss, Reduction, Targets, Upstream};

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

#[test]
fn matches_the_reference_for_every_option() {
    for (rows, classes) in [(1, 1), (7, 3), (257, 31), (65, 1000), (9, 4099)] {
        let mut rng = Rng::new((rows * 7 + classes) as u64);
        let mut logits = rng.logits(rows * classes, 8.0);
        if rows > 4 {
            logits[classes] = f32::NEG_INFINITY; // a masked class in row 1
            logits[2 * classes + classes / 2] = 1e4; // a huge logit in row 2
        }
        let targets: Vec<i64> = (0..rows)
            .map(|r| if r % 5 == 4 { -100 } else { rng.below(classes) as i64 })
            .collect();
        let mut probs: Vec<f32> = (0..rows * classes).map(|_| rng.uniform(0.0, 1.0)).collect();
        for row in probs.chunks_mut(classes) {
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s);
        }
        let weights: Vec<f32> = (0..classes).map(|_| rng.uniform(0.1, 2.0)).collect();
        let configs = [
            CrossEntropy::default(),
            CrossEntropy::default().weight(&weights).label_smoothing(0.2),
            CrossEntropy::default().z_loss(1e-3),
            CrossEntropy::default().softcap(5.0),
        ];
        for loss in configs {
            for targets in [Targets::I64(&targets), Targets::F32(&probs)] {
                let batch = Batch::new(&logits, [rows, classes], targets);
                for reduction in [Reduction::None, Reduction::Mean] {
                    let loss = loss.clone().reduction(reduction);
                    let what = format!(
                        "{rows}x{classes} {reduction:?} probs={}",
                        matches!(targets, Targets::F32(_))
                    );
                    let want = loss.forward(Backend::Reference, &batch).expect("reference");
                    let got = loss.forward(Backend::Cpu, &batch).expect("fast");
                    let tol = if reduction == Reduction::None {
                        ROW_LOSS
                    } else {
                        REDUCED
                    };
                    assert_close(&what, got.values(), &to64(want.values()), tol);
                    let up = Upstream::Scalar(1.5);
                    let want = loss
                        .forward_backward(Backend::Reference, &batch, up)
                        .expect("reference");
                    let got = loss.forward_backward(Backend::Cpu, &batch, up).expect("fast");
                    assert_close(&format!("{what} grad"), &got.grad, &to64(&want.grad), GRAD_TOLERANCE);
                }
            }
        }
    }
}

#[test]
fn nll_and_probability_inputs_match_the_reference() {
    use wgpu_loss::InputKind;
    let (rows, classes) = (300, 77);
    let mut rng = Rng::new(23);
    let probs: Vec<f32> = (0..rows * classes).map(|_| rng.uniform(0.0, 1.0)).collect();
    let logp: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
    let targets: Vec<i64> = (0..rows)
        .map(|r| if r % 7 == 0 { -100 } else { rng.below(classes) as i64 })
        .collect();
    let weights: Vec<f32> = (0..classes).map(|_| rng.uniform(0.1, 2.0)).collect();
    for (loss, input) in [
        (CrossEntropy::nll().weight(&weights), &logp),
        (CrossEntropy::default().input_kind(InputKind::Probabilities), &probs),
        (
            CrossEntropy::default()
                .input_kind(InputKind::Probabilities)
                .label_smoothing(0.1),
            &probs,
        ),
    ] {
        for reduction in [Reduction::None, Reduction::Mean] {
            let loss = loss.clone().reduction(reduction);
            let batch = Batch::new(input, [rows, classes], &targets);
            let want = loss.forward(Backend::Reference, &batch).expect("reference");
            let got = loss.forward(Backend::Cpu, &batch).expect("fast");
            assert_close(&format!("{loss:?}"), got.values(), &to64(want.values()), REDUCED);
        }
    }
}

#[test]
fn special_rows_keep_pytorch_semantics() {
    let inf = f32::INFINITY;
    let logits = [1.0, f32::NAN, 0.0, -inf, -inf, -inf, 3.0, 1.0, 2.0];
    let targets = [0_i64, 1, 2];
    let loss = CrossEntropy::default().reduction(Reduction::None);
    let got = loss
        .forward(Backend::Cpu, &Batch::new(&logits, [3, 3], &targets))
        .expect("fast");
    let v = got.values();
    assert!(v[0].is_nan() && v[1].is_nan() && v[2].is_finite(), "{v:?}");
}

#[test]
fn results_are_bit_identical_across_runs() {
    let (rows, classes) = (4096, 1000);
    let mut rng = Rng::new(5);
    let logits = rng.logits(rows * classes, 8.0);
    let targets: Vec<i64> = (0..rows).map(|_| rng.below(classes) as i64).collect();
    let loss = CrossEntropy::default().label_smoothing(0.1);
    let batch = Batch::new(&logits, [rows, classes], &targets);
    let first = loss.forward(Backend::Cpu, &batch).expect("fast");
    for _ in 0..3 {
        let again = loss.forward(Backend::Cpu, &batch).expect("fast");
        assert_eq!(first.values()[0].to_bits(), again.values()[0].to_bits());
    }
}

#[test]
fn elementwise_and_row_ops_match_the_reference() {
    use wgpu_loss::{ElementwiseLoss, RowOp};
    let (rows, classes) = (97, 301);
    let n = rows * classes;
    let mut rng = Rng::new(17);
    let x = rng.logits(n, 30.0);
    let p: Vec<f32> = (0..n)
        .map(|i| {
            if i % 97 == 0 {
                0.0
            } else if i % 89 == 0 {
                1.0
            } else {
                rng.uniform(0.0, 1.0)
            }
        })
        .collect();
    let y: Vec<f32> = (0..n).map(|_| rng.uniform(0.0, 1.0)).collect();
    let logp: Vec<f32> = (0..n).map(|_| rng.uniform(-8.0, 0.0)).collect();
    let w: Vec<f32> = (0..classes).map(|_| rng.uniform(0.1, 2.0)).collect();
    // Per element: PyTorch's formulas in f32 (BCE-with-logits cancels at |x| ~ 30).
    let element = common::Tolerance {
        name: "elementwise",
        atol: 1.5e-5,
        rtol: 4e-6,
    };
    let cases: Vec<(ElementwiseLoss, &[f32], &[f32])> = vec![
        (ElementwiseLoss::mse(), &x, &y),
        (ElementwiseLoss::bce().weight(&w), &p, &y),
        (ElementwiseLoss::bce_with_logits().weight(&w).pos_weight(&w), &x, &y),
        (ElementwiseLoss::kl_div(), &logp, &p),
        (ElementwiseLoss::kl_div().log_target(true), &logp, &logp),
    ];
    for (loss, input, target) in cases {
        for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            let loss = loss.clone().reduction(reduction);
            let what = format!("{:?} {reduction:?}", loss.kind);
            let batch = Batch::new(input, [rows, classes], target);
            let want = loss.forward(Backend::Reference, &batch).expect("reference");
            let got = loss.forward(Backend::Cpu, &batch).expect("fast");
            let tol = if reduction == Reduction::None { element } else { REDUCED };
            assert_close(&what, got.values(), &to64(want.values()), tol);
            let up = Upstream::Scalar(0.5);
            let want = loss
                .forward_backward(Backend::Reference, &batch, up)
                .expect("reference")
                .grad;
            let got = loss.forward_backward(Backend::Cpu, &batch, up).expect("fast").grad;
            assert_close(
                &format!("{what} grad"),
                &got,
                &to64(&want),
                common::Tolerance {
                    name: "grad",
                    atol: 1e-6,
                    rtol: 1e-5,
                },
            );
        }
    }
    let mut logits = rng.logits(n, 6.0);
    logits[3] = f32::NEG_INFINITY;
    logits[classes + 5] = f32::NAN;
    for op in [RowOp::Softmax, RowOp::LogSoftmax, RowOp::Entropy] {
        let batch = Batch::input(&logits, [rows, classes]);
        let want = op.forward(Backend::Reference, &batch).expect("reference");
        let got = op.forward(Backend::Cpu, &batch).expect("fast");
        let tol = if op == RowOp::Softmax {
            common::Tolerance {
                name: "softmax",
                atol: 1e-7,
                rtol: 2e-5,
            }
        } else {
            ROW_LOSS
        };
        assert_close(&format!("{op:?}"), got.values(), &to64(want.values()), tol);
        let outputs = if op == RowOp::Entropy { rows } else { n };
        let up: Vec<f32> = (0..outputs).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let want = op
            .forward_backward(Backend::Reference, &batch, Upstream::Values(&up))
            .expect("reference")
            .grad;
        let got = op
            .forward_backward(Backend::Cpu, &batch, Upstream::Values(&up))
            .expect("fast")
            .grad;
        assert_close(&format!("{op:?} vjp"), &got, &to64(&want), GRAD_TOLERANCE);
    }
}
