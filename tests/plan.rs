//! Every row-kernel strategy of the plan (invocation, subgroup, workgroup per row, split
//! rows), forced on the context, against the f64 reference: the loss for every option and
//! input kind, the gradient that reads pass 1's row statistics, special rows, and rows
//! larger than one binding under a lowered limit.

mod common;

use common::{assert_close, Rng, GRAD_TOLERANCE, REDUCED, ROW_LOSS};
use wgpu_loss::{
    Backend, Batch, CrossEntropy, GpuContext, InputKind, Loss, LossValue, Reduction, Strategy, Targets, Upstream,
};

const STRATEGIES: [Strategy; 4] = [
    Strategy::InvocationPerRow,
    Strategy::SubgroupPerRow,
    Strategy::WorkgroupPerRow,
    Strategy::SplitRow,
];

fn forced(strategy: Strategy) -> GpuContext {
    let ctx = common::gpu();
    GpuContext::from_device(ctx.device().clone(), ctx.queue().clone()).with_strategy(strategy)
}

/// One configuration of options, with its input and targets.
struct Case {
    name: &'static str,
    loss: CrossEntropy,
    input: Vec<f32>,
    indices: Vec<i64>,
    probs: Option<Vec<f32>>,
}

fn cases(rows: usize, classes: usize, seed: u64) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    let n = rows * classes;
    let mut logits = rng.logits(n, 6.0);
    // Special rows where there are enough: 1e4 logits, an all -inf row, a NaN.
    if rows >= 6 {
        logits[classes..2 * classes].iter_mut().for_each(|x| *x *= 1.0e3);
        logits[3 * classes..4 * classes].fill(f32::NEG_INFINITY);
        logits[5 * classes + classes / 2] = f32::NAN;
    }
    let indices: Vec<i64> = (0..rows)
        .map(|r| if r % 7 == 2 { -100 } else { rng.below(classes) as i64 })
        .collect();
    let weights: Vec<f32> = (0..classes).map(|_| rng.uniform(0.2, 2.0)).collect();
    let probs: Vec<f32> = {
        let raw: Vec<f32> = (0..n).map(|_| rng.uniform(0.0, 1.0)).collect();
        raw.chunks(classes)
            .flat_map(|row| {
                let total: f32 = row.iter().sum();
                row.iter().map(move |v| v / total).collect::<Vec<_>>()
            })
            .collect()
    };
    let log_probs: Vec<f32> = rng
        .logits(n, 3.0)
        .chunks(classes)
        .flat_map(|row| {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let lse = m + row.iter().map(|x| (x - m).exp()).sum::<f32>().ln();
            row.iter().map(move |x| x - lse).collect::<Vec<_>>()
        })
        .collect();
    let plain = rng.logits(n, 4.0);
    vec![
        Case {
            name: "plain",
            loss: CrossEntropy::default(),
            input: plain.clone(),
            indices: indices.clone(),
            probs: None,
        },
        Case {
            name: "weights+smoothing+row outputs, special rows",
            loss: CrossEntropy::default()
                .weight(&weights)
                .label_smoothing(0.1)
                .row_outputs(true),
            input: logits.clone(),
            indices: indices.clone(),
            probs: None,
        },
        Case {
            name: "probability targets, smoothing",
            loss: CrossEntropy::default().label_smoothing(0.2).weight(&weights),
            input: plain.clone(),
            indices: indices.clone(),
            probs: Some(probs.clone()),
        },
        Case {
            name: "nll, weights",
            loss: CrossEntropy::nll().weight(&weights),
            input: log_probs,
            indices: indices.clone(),
            probs: None,
        },
        Case {
            name: "probabilities input, probability targets",
            loss: CrossEntropy::default().input_kind(InputKind::Probabilities),
            input: probs.iter().rev().copied().collect(),
            indices: indices.clone(),
            probs: Some(probs.clone()),
        },
        Case {
            name: "probabilities input, smoothing, weights",
            loss: CrossEntropy::default()
                .input_kind(InputKind::Probabilities)
                .label_smoothing(0.1)
                .weight(&weights),
            input: probs,
            indices: indices.clone(),
            probs: None,
        },
        Case {
            name: "softcap + z-loss",
            loss: CrossEntropy::default().softcap(5.0).z_loss(1e-3),
            input: plain,
            indices,
            probs: None,
        },
    ]
}

fn targets(case: &Case) -> Targets<'_> {
    match &case.probs {
        Some(p) => Targets::F32(p),
        None => Targets::I64(&case.indices),
    }
}

fn check(ctx: &GpuContext, rows: usize, classes: usize, seed: u64, with_grad: bool) {
    for case in cases(rows, classes, seed) {
        // The context's Debug names the forced strategy.
        let what = format!("{} {rows}x{classes} ({ctx:?})", case.name);
        let batch = Batch::new(&case.input, [rows, classes], targets(&case));
        let none = case.loss.clone().reduction(Reduction::None);
        let got = none.forward(Backend::Gpu(ctx), &batch).expect(&what);
        let want = none.forward(Backend::Reference, &batch).expect(&what);
        assert_close(&what, got.values(), &as_f64(&want), ROW_LOSS);
        let mean = case.loss.clone().reduction(Reduction::Mean);
        if with_grad {
            let got = mean
                .forward_backward(Backend::Gpu(ctx), &batch, Upstream::Scalar(1.0))
                .expect(&what);
            let want = mean
                .forward_backward(Backend::Reference, &batch, Upstream::Scalar(1.0))
                .expect(&what);
            assert_close(&format!("{what} mean"), got.loss.values(), &as_f64(&want.loss), REDUCED);
            assert_close(&format!("{what} grad"), &got.grad, &widen(&want.grad), GRAD_TOLERANCE);
            if let (Some(g), Some(w)) = (&got.argmax, &want.argmax) {
                assert_eq!(g, w, "{what}: argmax");
            }
            if let (Some(g), Some(w)) = (&got.lse, &want.lse) {
                assert_close(&format!("{what} lse"), g, &widen(w), ROW_LOSS);
            }
        } else {
            let got = mean.forward(Backend::Gpu(ctx), &batch).expect(&what);
            let want = mean.forward(Backend::Reference, &batch).expect(&what);
            assert_close(&format!("{what} mean"), got.values(), &as_f64(&want), REDUCED);
        }
    }
}

fn as_f64(value: &LossValue) -> Vec<f64> {
    widen(value.values())
}

fn widen(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

#[test]
fn every_strategy_matches_the_reference() {
    for strategy in STRATEGIES {
        let ctx = forced(strategy);
        for (i, (rows, classes)) in [(1, 1), (7, 3), (37, 10), (9, 517), (3, 40000)].into_iter().enumerate() {
            check(&ctx, rows, classes, 10 + i as u64, true);
        }
    }
}

#[test]
fn every_strategy_is_deterministic() {
    let mut rng = Rng::new(7);
    let (rows, classes) = (300, 2000);
    let logits = rng.logits(rows * classes, 8.0);
    let targets: Vec<i64> = (0..rows).map(|_| rng.below(classes) as i64).collect();
    for strategy in STRATEGIES {
        let ctx = forced(strategy);
        let loss = CrossEntropy::default().label_smoothing(0.1);
        let batch = Batch::new(&logits, [rows, classes], &targets);
        let runs: Vec<u32> = (0..3)
            .map(|_| {
                loss.forward(Backend::Gpu(&ctx), &batch)
                    .unwrap()
                    .scalar()
                    .unwrap()
                    .to_bits()
            })
            .collect();
        assert!(runs.windows(2).all(|w| w[0] == w[1]), "{strategy:?}: {runs:?}");
    }
}

#[test]
fn split_rows_larger_than_a_binding() {
    // 4 KiB bindings: a row of 5000 classes (20000 bytes) is cut into column ranges of
    // 512-column blocks; the gradient is written range by range.
    let ctx = common::gpu();
    let small = GpuContext::from_device(ctx.device().clone(), ctx.queue().clone()).with_binding_limit(4096);
    check(&small, 3, 5000, 21, true);
    // The plan picks the split on its own when a row does not fit.
    let auto = GpuContext::from_device(ctx.device().clone(), ctx.queue().clone()).with_binding_limit(4096);
    check(&auto, 2, 3001, 22, false);
    // Without the split, the same row is a typed error naming the sizes.
    let whole = GpuContext::from_device(ctx.device().clone(), ctx.queue().clone())
        .with_binding_limit(4096)
        .with_strategy(Strategy::SubgroupPerRow);
    let logits = vec![0.0_f32; 3000];
    let err = CrossEntropy::default()
        .forward(Backend::Gpu(&whole), &Batch::new(&logits, [1, 3000], &[1_i64][..]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("3000 classes") && err.contains("12000 bytes"), "{err}");
}

#[test]
fn one_row_of_a_million_classes() {
    // C = 2^20, N = 1: the plan splits it (64 blocks), on the real binding limit.
    let ctx = common::gpu();
    check(ctx, 1, 1 << 20, 23, true);
}

#[test]
fn row_ops_under_every_strategy() {
    // Softmax, log-softmax and entropy share the team kernels; a forced split falls back
    // to the whole-row plan for them.
    let mut rng = Rng::new(31);
    for strategy in STRATEGIES {
        let ctx = forced(strategy);
        for (rows, classes) in [(5, 3), (70, 10), (6, 1500)] {
            let logits = rng.logits(rows * classes, 5.0);
            for op in [
                wgpu_loss::RowOp::Softmax,
                wgpu_loss::RowOp::LogSoftmax,
                wgpu_loss::RowOp::Entropy,
            ] {
                let what = format!("{op:?} {rows}x{classes} under {strategy:?}");
                let batch = Batch::input(&logits, [rows, classes]);
                let got = op.forward(Backend::Gpu(&ctx), &batch).expect(&what);
                let want = op.forward(Backend::Reference, &batch).expect(&what);
                assert_close(&what, got.values(), &as_f64(&want), ROW_LOSS);
            }
        }
    }
}
