//! Layer 2: golden values. The CPU reference against PyTorch and the seed documents, then
//! the GPU against the same values through the public API.
//!
//! PyTorch values come from `tests/golden/cross_entropy_golden.py` (PyTorch 2.15.0, CPU,
//! inputs rounded to f32, then float64); each is quoted beside the call that produced it.

mod common;

use common::{assert_close, gpu, Tolerance};
use wgpu_loss::{cpu, CrossEntropy, Reduction};

/// The f64 reference against PyTorch's float64 result: only summation order differs.
const REFERENCE: Tolerance = Tolerance {
    name: "cpu.golden",
    atol: 1e-12,
    rtol: 1e-12,
};
/// The f32 GPU result against the f64 golden value: a few f32 roundings of O(1) values.
const GPU_GOLDEN: Tolerance = Tolerance {
    name: "gpu.golden",
    atol: 2e-6,
    rtol: 2e-6,
};
/// Seed inputs such as 0.05 are not exact in f32; the rounding (~4e-9 relative) moves the
/// seeds' f64 results by at most ~1e-7.
const SEED: Tolerance = Tolerance {
    name: "seed",
    atol: 1e-6,
    rtol: 1e-6,
};

const INF: f32 = f32::INFINITY;

/// x = [[2, .5, -1], [0, 3, .1], [-2, 1.5, .25], [4, 4, 4]], y = [0, 1, 2, -100]
const X: [f32; 12] = [2.0, 0.5, -1.0, 0.0, 3.0, 0.1, -2.0, 1.5, 0.25, 4.0, 4.0, 4.0];
const Y: [i64; 4] = [0, 1, 2, -100];
/// w = [1, 2, .5]
const W: [f32; 3] = [1.0, 2.0, 0.5];

struct Case {
    name: &'static str,
    loss: CrossEntropy,
    logits: Vec<f32>,
    classes: usize,
    targets: Vec<i64>,
    want: Vec<f64>,
}

fn cases() -> Vec<Case> {
    let base = |name, loss, want: Vec<f64>| Case {
        name,
        loss,
        logits: X.to_vec(),
        classes: 3,
        targets: Y.to_vec(),
        want,
    };
    let one = |name, logits: Vec<f32>, classes, targets: Vec<i64>, loss, want: Vec<f64>| Case {
        name,
        loss,
        logits,
        classes,
        targets,
        want,
    };
    let none = CrossEntropy::default().reduction(Reduction::None);
    vec![
        // F.cross_entropy(x, y)
        base("plain_mean", CrossEntropy::default(), vec![0.6220383981751004]),
        // F.cross_entropy(x, y, reduction="sum")
        base(
            "plain_sum",
            CrossEntropy::default().reduction(Reduction::Sum),
            vec![1.8661151945253014],
        ),
        // F.cross_entropy(x, y, reduction="none")
        base(
            "plain_none",
            none.clone(),
            vec![0.24131129665715703, 0.09967363562050889, 1.5251302622476355, 0.0],
        ),
        // F.cross_entropy(x, y, weight=w)
        base(
            "weighted_mean",
            CrossEntropy::default().weight(&W),
            vec![0.34377819972056933],
        ),
        // F.cross_entropy(x, y, weight=w, label_smoothing=0.1)
        base(
            "weighted_smooth_mean",
            CrossEntropy::default().weight(&W).label_smoothing(0.1),
            vec![0.4544613624160695],
        ),
        // F.cross_entropy(x, y, weight=w, label_smoothing=0.1, reduction="none")
        base(
            "weighted_smooth_none",
            none.clone().weight(&W).label_smoothing(0.1),
            vec![0.395333151601443, 0.3393744682478068, 0.8559071486069934, 0.0],
        ),
        // F.cross_entropy(x, [0, 1, 2, 1], ignore_index=1, label_smoothing=0.25, reduction="sum")
        one(
            "smooth_sum_ignore_1",
            X.to_vec(),
            3,
            vec![0, 1, 2, 1],
            CrossEntropy::default()
                .ignore_index(1)
                .label_smoothing(0.25)
                .reduction(Reduction::Sum),
            vec![2.2247748922381256],
        ),
        // F.cross_entropy([[1234., 0.]], [1], reduction="none")
        one("large_1234", vec![1234.0, 0.0], 2, vec![1], none.clone(), vec![1234.0]),
        // F.cross_entropy([[1e4, 0.], [0., 1e4]], [0, 0], reduction="none")
        one(
            "large_1e4",
            vec![1e4, 0.0, 0.0, 1e4],
            2,
            vec![0, 0],
            none.clone(),
            vec![0.0, 10000.0],
        ),
        // F.cross_entropy([[-inf, 0., 1.]], [2], reduction="none")
        one(
            "masked_neg_inf",
            vec![-INF, 0.0, 1.0],
            3,
            vec![2],
            none.clone(),
            vec![0.31326168751822286],
        ),
        // F.cross_entropy([[-inf, 0., 1.]], [0], reduction="none")
        one(
            "target_neg_inf",
            vec![-INF, 0.0, 1.0],
            3,
            vec![0],
            none.clone(),
            vec![f64::INFINITY],
        ),
        // F.cross_entropy([[-inf, -inf]], [0], reduction="none")
        one(
            "all_neg_inf",
            vec![-INF, -INF],
            2,
            vec![0],
            none.clone(),
            vec![f64::NAN],
        ),
        // F.cross_entropy([[-inf, 0., 1.]], [2], label_smoothing=0.1, reduction="none")
        one(
            "smooth_neg_inf",
            vec![-INF, 0.0, 1.0],
            3,
            vec![2],
            none.clone().label_smoothing(0.1),
            vec![f64::INFINITY],
        ),
        // F.cross_entropy(x[:2], [-100, -100])
        one(
            "all_ignored_mean",
            X[..6].to_vec(),
            3,
            vec![-100, -100],
            CrossEntropy::default(),
            vec![f64::NAN],
        ),
        // F.cross_entropy([[3.5], [-7.]], [0, 0], reduction="none")
        one("one_class", vec![3.5, -7.0], 1, vec![0, 0], none, vec![0.0, 0.0]),
    ]
}

#[test]
fn cpu_reference_matches_pytorch() {
    for case in cases() {
        let rows = case.targets.len();
        let got = case
            .loss
            .forward_cpu(&case.logits, rows, case.classes, &case.targets)
            .expect(case.name);
        // forward_cpu rounds to f32; check the f64 rows too.
        let rows64 = cpu::cross_entropy_rows(
            &case.logits,
            case.classes,
            &case.targets,
            case.loss.weights(),
            case.loss.ignored_index(),
            case.loss.smoothing(),
        );
        let f64_values = match case.loss.reduction_kind() {
            Reduction::None => rows64.loss.clone(),
            Reduction::Sum => vec![rows64.sum()],
            Reduction::Mean | Reduction::BatchMean => vec![rows64.mean()],
        };
        for (i, (&g, &w)) in f64_values.iter().zip(&case.want).enumerate() {
            assert!(
                common::close(g, w, REFERENCE),
                "{} [{i}]: cpu f64 {g}, pytorch {w}",
                case.name
            );
        }
        assert_close(case.name, got.values(), &case.want, GPU_GOLDEN);
    }
}

#[test]
fn gpu_matches_pytorch() {
    let ctx = gpu();
    for case in cases() {
        let rows = case.targets.len();
        let got = case
            .loss
            .forward(ctx, &case.logits, rows, case.classes, &case.targets)
            .expect(case.name);
        assert_close(&format!("gpu {}", case.name), got.values(), &case.want, GPU_GOLDEN);
    }
}

#[test]
fn seed_values() {
    // ½ Σ (y - t)²: the seeds' textbook form is 0.5 × sum of squared errors.
    let t = [0.0, 1.0, 0.0, 0.0];
    assert!(common::close(
        0.5 * cpu::mse_sum(&[0.1, 0.05, 0.05, 0.8], &t),
        0.7775,
        SEED
    ));
    assert!(common::close(
        0.5 * cpu::mse_sum(&[0.1, 0.8, 0.05, 0.05], &t),
        0.0275,
        SEED
    ));
    // -Σ t log(y + 1e-7), t one-hot at class 1.
    let p = cpu::cross_entropy_of_probabilities(&[0.1, 0.05, 0.05, 0.8], &t, 1e-7);
    assert!(common::close(p, 2.9957302735559908, SEED), "{p}");
    let p = cpu::cross_entropy_of_probabilities(&[0.1, 0.8, 0.05, 0.05], &t, 1e-7);
    assert!(common::close(p, 0.22314342631421757, SEED), "{p}");
    // softmax([6, 6, -6]) (seed table; PyTorch float64 agrees)
    let s = cpu::softmax(&[6.0, 6.0, -6.0]);
    let want = [0.49999846395163056, 0.49999846395163056, 3.0720967388567383e-06];
    for (g, w) in s.iter().zip(want) {
        assert!(common::close(*g, w, REFERENCE), "{g} vs {w}");
    }
    // F.softmax([1234., 0.]) == [1., 0.]: the max shift keeps it finite.
    assert_eq!(cpu::softmax(&[1234.0, 0.0]), vec![1.0, 0.0]);
}

#[test]
fn one_hot_seed_through_cross_entropy() {
    // -log softmax(x)[1] for logits x = ln(y) equals -log y[1] when Σ y = 1: the seeds'
    // probability cross-entropy (without the 1e-7) through the class-index API, both backends.
    let y: [f32; 4] = [0.1, 0.05, 0.05, 0.8];
    let logits: Vec<f32> = y.iter().map(|p| p.ln()).collect();
    let want = -(f64::from(y[1])).ln() + (y.iter().map(|&p| f64::from(p)).sum::<f64>()).ln();
    let loss = CrossEntropy::default();
    let cpu_value = loss.forward_cpu(&logits, 1, 4, &vec![1_i64]).expect("cpu");
    let gpu_value = loss.forward(gpu(), &logits, 1, 4, &vec![1_i64]).expect("gpu");
    assert_close("seed one-hot cpu", cpu_value.values(), &[want], GPU_GOLDEN);
    assert_close("seed one-hot gpu", gpu_value.values(), &[want], GPU_GOLDEN);
    assert!((want - 2.995732273553991).abs() < 1e-6);
}
