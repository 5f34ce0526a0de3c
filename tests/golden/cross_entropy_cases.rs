// The cross-entropy golden cases, included by `tests/golden.rs` (every backend through the
// public API) and by `src/losses/cross_entropy/reference_tests.rs` (the f64 reference at
// 1e-12). PyTorch values from `tests/golden/cross_entropy_golden.py` (PyTorch 2.15.0, CPU,
// inputs rounded to f32, then float64); each is quoted beside the call that produced it.
// The including file brings `CrossEntropy` and `Reduction` into scope.

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

/// The cases of `tests/golden.rs` (PyTorch values from `tests/golden/cross_entropy_golden.py`,
/// PyTorch 2.15.0, CPU, inputs rounded to f32, then float64; each quoted beside its call).
fn cases() -> Vec<Case> {
    let mut all = batch_cases();
    all.extend(edge_cases());
    all
}

/// The cases on the shared batch `X`, `Y`.
fn batch_cases() -> Vec<Case> {
    let base = |name, loss, want: Vec<f64>| Case {
        name,
        loss,
        logits: X.to_vec(),
        classes: 3,
        targets: Y.to_vec(),
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
        Case {
            targets: vec![0, 1, 2, 1],
            ..base(
                "smooth_sum_ignore_1",
                CrossEntropy::default()
                    .ignore_index(1)
                    .label_smoothing(0.25)
                    .reduction(Reduction::Sum),
                vec![2.2247748922381256],
            )
        },
    ]
}

/// Single rows at the edges: large logits, -inf, NaN.
fn edge_cases() -> Vec<Case> {
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
