//! The loss family beyond class-index cross-entropy: golden values from PyTorch (produced by
//! `tests/golden/loss_family_golden.py`, PyTorch 2.15.0, f32-rounded inputs, float64 math;
//! each value is quoted beside its call), the seed table through the public API, and the
//! GPU against the f64 reference on seeded random shapes.

mod common;

use common::{assert_close, close, gpu, Rng, Tolerance, REDUCED, ROW_LOSS};
use wgpu_loss::{Backend, Batch, CrossEntropy, ElementwiseLoss, InputKind, Loss, LossValue, Reduction, RowOp, Targets};

/// The f64 reference against PyTorch's float64 result: only summation order differs.
const REFERENCE: Tolerance = Tolerance {
    name: "cpu.golden",
    atol: 1e-12,
    rtol: 1e-12,
};
/// The f32 GPU result against the f64 golden value: a few f32 roundings.
const GPU_GOLDEN: Tolerance = Tolerance {
    name: "gpu.golden",
    atol: 2e-6,
    rtol: 2e-6,
};
/// Elementwise losses, GPU against the f64 reference, per element: one f32 log/exp and a
/// few roundings of values of at most ~1e3. Measured worst: see the test's output.
const ELEMENT: Tolerance = Tolerance {
    name: "elementwise",
    atol: 2e-6,
    rtol: 4e-6,
};
/// BCE with logits: `(1-y)·x` and `lw·softplus(-x)` nearly cancel for large |x|, leaving an
/// absolute error of a few ulp of |x| (|x| ≤ 30 here), as PyTorch's own f32 kernel has.
const ELEMENT_LOGITS: Tolerance = Tolerance {
    name: "bce_with_logits",
    atol: 1.5e-5,
    rtol: 4e-6,
};
/// Softmax outputs: exp(x - max) / Σ in f32 over up to 4099 terms.
const SOFTMAX: Tolerance = Tolerance {
    name: "softmax",
    atol: 1e-7,
    rtol: 2e-5,
};

const INF: f32 = f32::INFINITY;
const X: [f32; 12] = [2.0, 0.5, -1.0, 0.0, 3.0, 0.1, -2.0, 1.5, 0.25, 4.0, 4.0, 4.0];
const W: [f32; 3] = [1.0, 2.0, 0.5];
const TP: [f32; 12] = [0.7, 0.2, 0.1, 0.0, 1.0, 0.0, 0.25, 0.25, 0.5, 0.1, 0.1, 0.8];
/// F.log_softmax(x, dim=1), rounded to f32 (printed exactly, as f64).
const LOGP: [f64; 12] = [
    -0.24131129682064056,
    -1.7413113117218018,
    -3.2413113117218018,
    -3.0996737480163574,
    -0.09967363625764847,
    -2.99967360496521,
    -3.775130271911621,
    -0.2751302719116211,
    -1.525130271911621,
    -1.0986123085021973,
    -1.0986123085021973,
    -1.0986123085021973,
];
const P: [f32; 8] = [0.1, 0.05, 0.05, 0.8, 0.1, 0.8, 0.05, 0.05];
const TP4: [f32; 8] = [0.0, 1.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0];
const BP: [f32; 6] = [0.0, 0.3, 1.0, 0.9, 1e-8, 0.5];
const BY: [f32; 6] = [0.0, 1.0, 1.0, 0.25, 0.0, 1.0];
const BX: [f32; 6] = [1000.0, -1000.0, 0.5, 1e4, -3.0, -1e4];
const BW: [f32; 3] = [0.5, 2.0, 1.0];
const PW: [f32; 3] = [3.0, 0.5, 1.0];
const KT: [f32; 12] = [0.5, 0.0, 0.5, 0.2, 0.3, 0.5, 1.0, 0.0, 0.0, 0.1, 0.6, 0.3];
/// torch.log(kt + 0.1), rounded to f32 (printed exactly, as f64).
const LOG_KT: [f64; 12] = [
    -0.5108256340026855,
    -2.3025851249694824,
    -0.5108256340026855,
    -1.2039728164672852,
    -0.9162907004356384,
    -0.5108256340026855,
    0.09531018137931824,
    -2.3025851249694824,
    -2.3025851249694824,
    -1.6094379425048828,
    -0.3566749095916748,
    -0.9162907004356384,
];

/// f32 values that were printed as f64 (the conversion is exact).
fn f32s(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

/// Runs a case on the CPU reference and the GPU and checks both against PyTorch.
fn check(name: &str, run: impl Fn(bool) -> LossValue, want: &[f64]) {
    let cpu = run(false);
    let cpu64: Vec<f64> = cpu.values().iter().map(|&v| f64::from(v)).collect();
    // Backend::Reference rounds its f64 result to f32: compare at f32 precision, and tightly where
    // the value is exact in f32 (REFERENCE bounds the f64 math itself; see golden.rs).
    for (i, (&g, &w)) in cpu64.iter().zip(want).enumerate() {
        assert!(
            close(g, w, GPU_GOLDEN) || close(g, w, REFERENCE),
            "{name}[{i}]: cpu {g}, pytorch {w}"
        );
    }
    assert_eq!(cpu.values().len(), want.len(), "{name}: length");
    assert_close(&format!("gpu {name}"), run(true).values(), want, GPU_GOLDEN);
}

/// The GPU, or the f64 reference (`Backend::Reference`).
fn backend(on_gpu: bool) -> Backend<'static> {
    if on_gpu {
        Backend::Gpu(gpu())
    } else {
        Backend::Reference
    }
}

fn ce(loss: CrossEntropy, input: &[f32], rows: usize, classes: usize, targets: Targets<'_>, on_gpu: bool) -> LossValue {
    let batch = Batch::new(input, [rows, classes], targets);
    loss.forward(backend(on_gpu), &batch)
        .expect(if on_gpu { "gpu" } else { "cpu" })
}

fn ew(loss: ElementwiseLoss, input: &[f32], target: &[f32], shape: &[usize], on_gpu: bool) -> LossValue {
    let batch = Batch::new(input, shape, target);
    loss.forward(backend(on_gpu), &batch)
        .expect(if on_gpu { "gpu" } else { "cpu" })
}

fn row_op(op: RowOp, input: &[f32], rows: usize, classes: usize, on_gpu: bool) -> LossValue {
    let batch = Batch::input(input, [rows, classes]);
    op.forward(backend(on_gpu), &batch)
        .expect(if on_gpu { "gpu" } else { "cpu" })
}

#[test]
fn cross_entropy_variants_match_pytorch() {
    let none = CrossEntropy::default().reduction(Reduction::None);
    // F.cross_entropy(x, tp, reduction="none")
    check(
        "ce_probs_none",
        |g| ce(none.clone(), &X, 4, 3, Targets::F32(&TP), g),
        &[
            0.8413113037999445,
            0.09967363562050889,
            1.7751302622476355,
            1.0986123050387084,
        ],
    );
    // F.cross_entropy(x, tp, weight=w, label_smoothing=0.2)
    check(
        "ce_probs_weighted_smooth_mean",
        |g| {
            ce(
                CrossEntropy::default().weight(&W).label_smoothing(0.2),
                &X,
                4,
                3,
                Targets::F32(&TP),
                g,
            )
        },
        &[1.0096452661249609],
    );
    // F.cross_entropy(x, tp, reduction="sum")
    check(
        "ce_probs_sum",
        |g| {
            ce(
                CrossEntropy::default().reduction(Reduction::Sum),
                &X,
                4,
                3,
                Targets::F32(&TP),
                g,
            )
        },
        &[3.814727506706797],
    );
    // -(torch.log(p + 1e-7).gather(1, [[1], [1]]))
    let on_probs = none.clone().input_kind(InputKind::Probabilities);
    check(
        "ce_on_probs_index_none",
        |g| ce(on_probs.clone(), &P, 2, 4, Targets::I64(&[1, 1]), g),
        &[2.9957302586548598, 0.2231434114130584],
    );
    // -(tp4 * torch.log(p + 1e-7)).sum(1)
    check(
        "ce_on_probs_targets_none",
        |g| ce(on_probs.clone(), &P, 2, 4, Targets::F32(&TP4), g),
        &[2.9957302586548598, 1.262863744753229],
    );
    // F.nll_loss(logp, [0, 1, -100, 2], weight=w, reduction="none")
    let nll = CrossEntropy::nll().weight(&W);
    check(
        "nll_weighted_none",
        |g| {
            ce(
                nll.clone().reduction(Reduction::None),
                &f32s(&LOGP),
                4,
                3,
                Targets::I64(&[0, 1, -100, 2]),
                g,
            )
        },
        &[0.24131129682064056, 0.19934727251529694, 0.0, 0.5493061542510986],
    );
    // F.nll_loss(logp, [0, 1, -100, 2], weight=w)
    check(
        "nll_weighted_mean",
        |g| ce(nll.clone(), &f32s(&LOGP), 4, 3, Targets::I64(&[0, 1, -100, 2]), g),
        &[0.2828470638820103],
    );
}

#[test]
fn elementwise_losses_match_pytorch() {
    let none = Reduction::None;
    // F.binary_cross_entropy(bp, by, reduction="none")
    check(
        "bce_none",
        |g| ew(ElementwiseLoss::bce().reduction(none), &BP, &BY, &[2, 3], g),
        &[
            0.0,
            1.2039727645895069,
            -0.0,
            1.7532787764688165,
            9.99999998922529e-09,
            std::f64::consts::LN_2, // 0.6931471805599453
        ],
    );
    // F.binary_cross_entropy(bp, by, weight=bw.expand(2, 3))
    check(
        "bce_weighted_mean",
        |g| ew(ElementwiseLoss::bce().weight(&BW), &BP, &BY, &[2, 3], g),
        &[0.6629553529955612],
    );
    // F.binary_cross_entropy_with_logits(bx, by, reduction="none")
    check(
        "bce_logits_none",
        |g| ew(ElementwiseLoss::bce_with_logits().reduction(none), &BX, &BY, &[2, 3], g),
        &[
            1000.0,
            1000.0,
            0.4740769841801067,
            7500.0,
            0.048587351573742055,
            10000.0,
        ],
    );
    // F.binary_cross_entropy_with_logits(bx, by, weight=bw, pos_weight=pw)
    check(
        "bce_logits_weighted_pos_mean",
        |g| {
            ew(
                ElementwiseLoss::bce_with_logits().weight(&BW).pos_weight(&PW),
                &BX,
                &BY,
                &[2, 3],
                g,
            )
        },
        &[2541.7618752812214],
    );
    // F.mse_loss(bp, by, reduction="none")
    check(
        "mse_none",
        |g| ew(ElementwiseLoss::mse().reduction(none), &BP, &BY, &[2, 3], g),
        &[
            0.0,
            0.4899999833106996,
            0.0,
            0.4224999690055853,
            9.999999878450581e-17,
            0.25,
        ],
    );
    // F.mse_loss(bp, by, reduction="sum")
    check(
        "mse_sum",
        |g| ew(ElementwiseLoss::mse().reduction(Reduction::Sum), &BP, &BY, &[2, 3], g),
        &[1.162499952316285],
    );
    // F.kl_div(logp, kt, reduction="none")
    check(
        "kl_none",
        |g| ew(ElementwiseLoss::kl_div().reduction(none), &f32s(&LOGP), &KT, &[4, 3], g),
        &[
            -0.22591794186965236,
            0.0,
            1.2740820655809282,
            0.29804717453793256,
            -0.33128975166382896,
            1.1532632122026323,
            3.775130271911621,
            0.0,
            0.0,
            -0.12039727875312797,
            0.35267204869750896,
            -0.031608138082187376,
        ],
    );
    // F.kl_div(logp, kt, reduction="batchmean")
    check(
        "kl_batchmean",
        |g| {
            ew(
                ElementwiseLoss::kl_div().reduction(Reduction::BatchMean),
                &f32s(&LOGP),
                &KT,
                &[4, 3],
                g,
            )
        },
        &[1.5359954156404567],
    );
    // F.kl_div(logp, kt, reduction="mean")
    check(
        "kl_mean",
        |g| ew(ElementwiseLoss::kl_div(), &f32s(&LOGP), &KT, &[4, 3], g),
        &[0.5119984718801522],
    );
    // F.kl_div(logp, torch.log(kt + 0.1), reduction="sum", log_target=True)
    check(
        "kl_log_target_sum",
        |g| {
            ew(
                ElementwiseLoss::kl_div().log_target(true).reduction(Reduction::Sum),
                &f32s(&LOGP),
                &f32s(&LOG_KT),
                &[4, 3],
                g,
            )
        },
        &[7.622940876136692],
    );
}

#[test]
fn row_ops_match_pytorch() {
    let rows = [6.0, 6.0, -6.0, 1234.0, 0.0, -INF];
    // F.softmax([[6, 6, -6], [1234, 0, -inf]], dim=1)
    check(
        "softmax_rows",
        |g| row_op(RowOp::Softmax, &rows, 2, 3, g),
        &[
            0.4999984639516306,
            0.4999984639516306,
            3.0720967388567383e-06,
            1.0,
            0.0,
            0.0,
        ],
    );
    // F.log_softmax([[6, 6, -6], [1234, 0, -inf]], dim=1)
    check(
        "log_softmax_rows",
        |g| row_op(RowOp::LogSoftmax, &rows, 2, 3, g),
        &[
            -0.693150252661403,
            -0.693150252661403,
            -12.693150252661402,
            0.0,
            -1234.0,
            f64::NEG_INFINITY,
        ],
    );
    // Categorical(logits=[[6, 6, -6], [1, 0, -inf], [0, 0, 0]]).entropy()
    check(
        "entropy_rows",
        |g| {
            row_op(
                RowOp::Entropy,
                &[6.0, 6.0, -6.0, 1.0, 0.0, -INF, 0.0, 0.0, 0.0],
                3,
                3,
                g,
            )
        },
        &[0.6931871178222694, 0.582203108888218, 1.0986122886681096],
    );
}

#[test]
fn seed_table_through_the_public_api() {
    for on_gpu in [false, true] {
        // ½ Σ (y - t)² = 0.5 × mse(sum)
        let t = [0.0, 1.0, 0.0, 0.0];
        let sum = ElementwiseLoss::mse().reduction(Reduction::Sum);
        let half = |y: &[f32]| 0.5 * f64::from(ew(sum.clone(), y, &t, &[4], on_gpu).values()[0]);
        assert!(close(half(&[0.1, 0.05, 0.05, 0.8]), 0.7775, GPU_GOLDEN), "{on_gpu}");
        assert!(close(half(&[0.1, 0.8, 0.05, 0.05]), 0.0275, GPU_GOLDEN), "{on_gpu}");
        // -Σ t log(y + 1e-7): probabilities in, class index 1 and one-hot targets
        let on_probs = CrossEntropy::default()
            .input_kind(InputKind::Probabilities)
            .reduction(Reduction::Sum);
        for (y, want) in [
            ([0.1, 0.05, 0.05, 0.8], 2.9957302735559908),
            ([0.1, 0.8, 0.05, 0.05], 0.22314342631421757),
        ] {
            // the seeds computed with y in f64; f32 rounding of y moves the result by < 1e-7
            let seed = Tolerance {
                name: "seed",
                atol: 1e-6,
                rtol: 1e-6,
            };
            let by_index = ce(on_probs.clone(), &y, 1, 4, Targets::I64(&[1]), on_gpu);
            let by_probs = ce(on_probs.clone(), &y, 1, 4, Targets::F32(&t), on_gpu);
            assert!(
                close(f64::from(by_index.values()[0]), want, seed),
                "{on_gpu}: {by_index:?}"
            );
            assert!(
                close(f64::from(by_probs.values()[0]), want, seed),
                "{on_gpu}: {by_probs:?}"
            );
        }
        // softmax([6, 6, -6])
        let s = row_op(RowOp::Softmax, &[6.0, 6.0, -6.0], 1, 3, on_gpu);
        let want = [0.49999846395163056, 0.49999846395163056, 3.0720967388567383e-06];
        assert_close("seed softmax", s.values(), &want, SOFTMAX);
    }
}

#[test]
fn one_hot_probability_targets_equal_class_indices() {
    let (rows, classes) = (257, 1000);
    let mut rng = Rng::new(21);
    let logits = rng.logits(rows * classes, 6.0);
    let indices: Vec<i64> = (0..rows).map(|_| rng.below(classes) as i64).collect();
    let mut one_hot = vec![0.0_f32; rows * classes];
    for (row, &y) in indices.iter().enumerate() {
        one_hot[row * classes + y as usize] = 1.0;
    }
    let weights: Vec<f32> = (0..classes).map(|_| rng.uniform(0.5, 1.5)).collect();
    let probs = probability_rows(&mut rng, rows, classes);
    for on_gpu in [false, true] {
        let on_probs = CrossEntropy::default().input_kind(InputKind::Probabilities);
        for (loss, input) in [
            (CrossEntropy::default(), &logits),
            (CrossEntropy::default().label_smoothing(0.1), &logits),
            (on_probs, &probs),
        ] {
            let loss = loss.reduction(Reduction::None);
            let by_index = ce(loss.clone(), input, rows, classes, Targets::I64(&indices), on_gpu);
            let by_probs = ce(loss.clone(), input, rows, classes, Targets::F32(&one_hot), on_gpu);
            let want: Vec<f64> = by_index.values().iter().map(|&v| f64::from(v)).collect();
            assert_close(
                &format!("one-hot {loss:?} gpu={on_gpu}"),
                by_probs.values(),
                &want,
                ROW_LOSS,
            );
        }
        // With class weights the row values agree; the means differ by design (Σ w[y] vs N).
        let weighted = CrossEntropy::default().weight(&weights).reduction(Reduction::None);
        let by_index = ce(weighted.clone(), &logits, rows, classes, Targets::I64(&indices), on_gpu);
        let by_probs = ce(weighted, &logits, rows, classes, Targets::F32(&one_hot), on_gpu);
        let want: Vec<f64> = by_index.values().iter().map(|&v| f64::from(v)).collect();
        assert_close("one-hot weighted", by_probs.values(), &want, ROW_LOSS);
    }
}

/// Random probability rows (each sums to 1).
fn probability_rows(rng: &mut Rng, rows: usize, classes: usize) -> Vec<f32> {
    let mut t: Vec<f32> = (0..rows * classes).map(|_| rng.uniform(0.0, 1.0)).collect();
    for row in t.chunks_mut(classes) {
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= sum);
    }
    t
}

#[test]
fn gpu_matches_the_reference_on_random_shapes() {
    let ctx = gpu();
    for (rows, classes) in [(1, 1), (7, 3), (255, 31), (257, 1000), (33, 4099)] {
        let mut rng = Rng::new((rows * 31 + classes) as u64);
        let logits = rng.logits(rows * classes, 5.0);
        let probs = probability_rows(&mut rng, rows, classes);
        let log_probs: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let targets = probability_rows(&mut rng, rows, classes);
        let indices: Vec<i64> = (0..rows).map(|_| rng.below(classes) as i64).collect();
        let weights: Vec<f32> = (0..classes).map(|_| rng.uniform(0.1, 2.0)).collect();
        let what = |name: &str| format!("{name} {rows}x{classes}");
        // Cross-entropy: probability targets; probabilities in; log-probabilities in (NLL).
        let cases: Vec<(&str, CrossEntropy, &[f32], Targets<'_>)> = vec![
            (
                "ce probs",
                CrossEntropy::default().weight(&weights).label_smoothing(0.1),
                &logits,
                Targets::F32(&targets),
            ),
            (
                "ce on probs",
                CrossEntropy::default()
                    .input_kind(InputKind::Probabilities)
                    .label_smoothing(0.05),
                &probs,
                Targets::I64(&indices),
            ),
            (
                "ce on probs, prob targets",
                CrossEntropy::default()
                    .input_kind(InputKind::Probabilities)
                    .epsilon(0.0),
                &probs,
                Targets::F32(&targets),
            ),
            (
                "nll",
                CrossEntropy::nll().weight(&weights),
                &log_probs,
                Targets::I64(&indices),
            ),
        ];
        for (name, loss, input, t) in cases {
            for reduction in [Reduction::None, Reduction::Mean] {
                let loss = loss.clone().reduction(reduction);
                let batch = Batch::new(input, [rows, classes], t);
                let want: Vec<f64> = loss
                    .forward(Backend::Reference, &batch)
                    .expect("cpu")
                    .values()
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect();
                let got = loss.forward(Backend::Gpu(ctx), &batch).expect("gpu");
                let tol = if reduction == Reduction::None {
                    ROW_LOSS
                } else {
                    REDUCED
                };
                assert_close(&what(name), got.values(), &want, tol);
            }
        }
        // Elementwise losses over [rows, classes].
        let shape = [rows, classes];
        let y01: Vec<f32> = (0..rows * classes).map(|_| rng.uniform(0.0, 1.0)).collect();
        let big: Vec<f32> = rng.logits(rows * classes, 30.0);
        let cases: Vec<(&str, ElementwiseLoss, &[f32], &[f32])> = vec![
            ("mse", ElementwiseLoss::mse(), &logits, &big),
            ("bce", ElementwiseLoss::bce().weight(&weights), &probs, &y01),
            (
                "bce-with-logits",
                ElementwiseLoss::bce_with_logits().weight(&weights).pos_weight(&weights),
                &big,
                &y01,
            ),
            ("kl-div", ElementwiseLoss::kl_div(), &log_probs, &targets),
            (
                "kl-div log-target",
                ElementwiseLoss::kl_div().log_target(true),
                &log_probs,
                &log_probs,
            ),
        ];
        for (name, loss, input, target) in cases {
            for reduction in [Reduction::None, Reduction::Sum, Reduction::Mean] {
                let loss = loss.clone().reduction(reduction);
                let batch = Batch::new(input, shape, target);
                let want: Vec<f64> = loss
                    .forward(Backend::Reference, &batch)
                    .expect("cpu")
                    .values()
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect();
                let got = loss.forward(Backend::Gpu(ctx), &batch).expect("gpu");
                let tol = match (reduction, name) {
                    (Reduction::None, "bce-with-logits") => ELEMENT_LOGITS,
                    (Reduction::None, _) => ELEMENT,
                    _ => REDUCED,
                };
                assert_close(&what(name), got.values(), &want, tol);
            }
        }
        // Row operations.
        for op in [RowOp::Softmax, RowOp::LogSoftmax, RowOp::Entropy] {
            let batch = Batch::input(&logits, [rows, classes]);
            let want: Vec<f64> = op
                .forward(Backend::Reference, &batch)
                .expect("cpu")
                .values()
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let got = op.forward(Backend::Gpu(ctx), &batch).expect("gpu");
            let tol = if op == RowOp::Softmax { SOFTMAX } else { ROW_LOSS };
            assert_close(&what(&format!("{op:?}")), got.values(), &want, tol);
        }
    }
}

#[test]
fn elementwise_and_row_ops_chunk_under_a_lowered_binding_limit() {
    let base = gpu();
    let small =
        wgpu_loss::GpuContext::from_device(base.device().clone(), base.queue().clone()).with_binding_limit(4096);
    let (rows, classes) = (37, 300); // 11100 elements: 3 elementwise chunks; 3 rows per row chunk
    let mut rng = Rng::new(5);
    let logits = rng.logits(rows * classes, 4.0);
    let target = rng.logits(rows * classes, 4.0);
    let weights: Vec<f32> = (0..classes).map(|_| rng.uniform(0.1, 2.0)).collect();
    for reduction in [Reduction::None, Reduction::Mean] {
        let loss = ElementwiseLoss::bce_with_logits().weight(&weights).reduction(reduction);
        let batch = Batch::new(&logits, [rows, classes], &target);
        let want: Vec<f64> = loss
            .forward(Backend::Reference, &batch)
            .expect("cpu")
            .values()
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        assert_close(
            "chunked bce-with-logits",
            loss.forward(Backend::Gpu(&small), &batch).expect("gpu").values(),
            &want,
            if reduction == Reduction::None {
                ELEMENT_LOGITS
            } else {
                REDUCED
            },
        );
    }
    for op in [RowOp::Softmax, RowOp::Entropy] {
        let batch = Batch::input(&logits, [rows, classes]);
        let want: Vec<f64> = op
            .forward(Backend::Reference, &batch)
            .expect("cpu")
            .values()
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        assert_close(
            "chunked row op",
            op.forward(Backend::Gpu(&small), &batch).expect("gpu").values(),
            &want,
            SOFTMAX,
        );
    }
}
