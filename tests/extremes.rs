//! Valid but extreme input (issue 12, point 5): subnormals, values near f32's limits,
//! infinities, NaN targets, and sums that overflow f32. Each case states PyTorch's answer
//! (worked out from its float32 CPU kernels; `docs/NOTES.md`, "Extreme values", gives the
//! rule where PyTorch's float32 and float64 differ) and every backend must give it: the GPU,
//! the fast CPU backend and the f64 reference.

mod common;

use common::{close, gpu, Tolerance};
use wgpu_loss::{Backend, Batch, CrossEntropy, ElementwiseLoss, InputKind, Loss, Reduction, RowOp};

/// One or two f32 logs or exps of values up to ~1e2 and a few roundings; relative to values
/// up to 3.4e38 (a log result of 87.5 is good to ~1e-5 in f32).
const EXTREME: Tolerance = Tolerance {
    name: "extremes",
    atol: 2e-5,
    rtol: 2e-6,
};

const INF: f32 = f32::INFINITY;
const NAN: f64 = f64::NAN;
/// The smallest positive subnormal, 1.4e-45.
const DENORM_MIN: f32 = 1.0e-45;

enum Targets {
    None,
    Indices(Vec<i64>),
    Values(Vec<f32>),
}

struct Case {
    name: &'static str,
    loss: Box<dyn Loss>,
    input: Vec<f32>,
    shape: Vec<usize>,
    targets: Targets,
    want: Vec<f64>,
    /// Reduced to a scalar (upstream `Scalar(1)` for the gradients) rather than `none`.
    reduced: bool,
}

fn case(
    name: &'static str,
    loss: impl Loss + 'static,
    input: &[f32],
    shape: &[usize],
    targets: Targets,
    want: &[f64],
) -> Case {
    Case {
        name,
        loss: Box::new(loss),
        input: input.to_vec(),
        shape: shape.to_vec(),
        targets,
        want: want.to_vec(),
        reduced: false,
    }
}

/// A case whose loss reduces to one value.
fn reduced(mut c: Case) -> Case {
    c.reduced = true;
    c
}

fn ln(x: f32) -> f64 {
    f64::from(x).ln()
}

fn none(loss: ElementwiseLoss) -> ElementwiseLoss {
    loss.reduction(Reduction::None)
}

fn values(v: &[f32]) -> Targets {
    Targets::Values(v.to_vec())
}

#[rustfmt::skip]
fn bce_cases() -> Vec<Case> {
    let bce = || none(ElementwiseLoss::bce());
    let one_minus_ulp = 1.0 - f32::EPSILON / 2.0;
    vec![
        // log(1.4e-45) = -103.3 is clamped at -100; llvmpipe's log of a subnormal is wrong (-88).
        case("bce p=denorm_min y=1", bce(), &[DENORM_MIN], &[1], values(&[1.0]), &[100.0]),
        case("bce p=1e-38 (subnormal) y=1", bce(), &[1e-38], &[1], values(&[1.0]), &[-ln(1e-38)]),
        case("bce p=1e-40 y=1", bce(), &[1e-40], &[1], values(&[1.0]), &[-ln(1e-40)]),
        case("bce p=min normal y=1", bce(), &[f32::MIN_POSITIVE], &[1], values(&[1.0]), &[-ln(f32::MIN_POSITIVE)]),
        case("bce p=0 y=1, p=1 y=0", bce(), &[0.0, 1.0], &[2], values(&[1.0, 0.0]), &[100.0, 100.0]),
        case("bce p=0 y=0, p=1 y=1", bce(), &[0.0, 1.0], &[2], values(&[0.0, 1.0]), &[0.0, 0.0]),
        case("bce p=1-2^-24 y=0", bce(), &[one_minus_ulp], &[1], values(&[0.0]), &[24.0 * std::f64::consts::LN_2]),
        case("bce p=denorm_min y=0", bce(), &[DENORM_MIN], &[1], values(&[0.0]), &[0.0]),
        case("bce subnormal target", bce(), &[0.5], &[1], values(&[1e-40]), &[std::f64::consts::LN_2]),
        case("bce weight 3e38", bce().weight(&[3e38]), &[0.5, 1e-3], &[2, 1], values(&[1.0, 1.0]), &[3e38 * std::f64::consts::LN_2, f64::INFINITY]),
        case("bce subnormal p, soft target", bce(), &[1e-39], &[1], values(&[0.25]), &[-0.25 * ln(1e-39)]),
        // Outside [1e-4, 1 - 1e-4] the fast CPU backend recomputes with libm: weights too.
        case("bce weighted p near 0 and 1", bce().weight(&[2.0, 0.5]), &[1e-6, 1.0 - 1e-6], &[1, 2], values(&[1.0, 0.0]), &[-2.0 * ln(1e-6), -0.5 * (1.0 - f64::from(1.0_f32 - 1e-6)).ln()]),
    ]
}

#[rustfmt::skip]
fn bce_with_logits_cases() -> Vec<Case> {
    let bwl = || none(ElementwiseLoss::bce_with_logits());
    vec![
        case("bwl x=±1e38", bwl(), &[1e38, -1e38], &[2], values(&[0.0, 1.0]), &[1e38, 1e38]),
        case("bwl x=3e38 y=0.5", bwl(), &[3e38], &[1], values(&[0.5]), &[1.5e38]),
        case("bwl x=-3e38 y=0", bwl(), &[-3e38], &[1], values(&[0.0]), &[0.0]),
        case("bwl x=f32::MAX y=0", bwl(), &[f32::MAX], &[1], values(&[0.0]), &[f64::from(f32::MAX)]),
        case("bwl x=inf y=0", bwl(), &[INF], &[1], values(&[0.0]), &[f64::INFINITY]),
        // (1 - y)·x with y = 1 and x = inf is 0·inf: NaN, as PyTorch's formula gives.
        case("bwl x=inf y=1", bwl(), &[INF], &[1], values(&[1.0]), &[NAN]),
        case("bwl x=-inf y=0", bwl(), &[-INF], &[1], values(&[0.0]), &[NAN]),
        case("bwl x=subnormal", bwl(), &[1e-40, -1e-40], &[2], values(&[0.0, 1.0]), &[std::f64::consts::LN_2; 2]),
        case("bwl x=-100 y=1", bwl(), &[-100.0], &[1], values(&[1.0]), &[100.0]),
        case("bwl x=100 y=1", bwl(), &[100.0], &[1], values(&[1.0]), &[0.0]),
        case("bwl pos_weight 3e38", bwl().pos_weight(&[3e38]), &[0.0], &[1, 1], values(&[1.0]), &[3e38 * std::f64::consts::LN_2]),
    ]
}

#[rustfmt::skip]
fn mse_kl_cases() -> Vec<Case> {
    let mse = || none(ElementwiseLoss::mse());
    let kl = || none(ElementwiseLoss::kl_div());
    let kl_log = || none(ElementwiseLoss::kl_div().log_target(true));
    vec![
        case("mse overflow", mse(), &[3e38, 1.8e19], &[2], values(&[-3e38, 0.0]), &[f64::INFINITY, 1.8e19_f32 as f64 * 1.8e19_f32 as f64]),
        case("mse inf - inf", mse(), &[INF], &[1], values(&[INF]), &[NAN]),
        case("mse underflow", mse(), &[1e-23, 1e-40], &[2], values(&[0.0, 0.0]), &[0.0, 0.0]),
        case("mse NaN", mse(), &[f32::NAN], &[1], values(&[0.0]), &[NAN]),
        // xlogy(t, t) - t·x: log of a negative target is NaN.
        case("kl negative target", kl(), &[0.0, -1.0], &[2], values(&[-1.0, -0.5]), &[NAN, NAN]),
        case("kl t=0 x=-inf", kl(), &[-INF], &[1], values(&[0.0]), &[NAN]),
        case("kl t=0 x=5", kl(), &[5.0], &[1], values(&[0.0]), &[0.0]),
        case("kl subnormal target", kl(), &[0.0], &[1], values(&[1e-40]), &[0.0]),
        case("kl t=inf", kl(), &[0.0], &[1], values(&[INF]), &[NAN]),
        case("kl t=3e38 x=-3e38", kl(), &[-3e38], &[1], values(&[3e38]), &[f64::INFINITY]),
        case("kl t=f32::MAX x=0", kl(), &[0.0], &[1], values(&[f32::MAX]), &[f64::INFINITY]),
        case("kl log_target t=-inf", kl_log(), &[0.0], &[1], values(&[-INF]), &[NAN]),
        case("kl log_target t=100", kl_log(), &[0.0], &[1], values(&[100.0]), &[f64::INFINITY]),
        case("kl log_target t=x=-100", kl_log(), &[-100.0], &[1], values(&[-100.0]), &[0.0]),
    ]
}

#[rustfmt::skip]
fn cross_entropy_cases() -> Vec<Case> {
    let ce = || CrossEntropy::default().reduction(Reduction::None);
    let idx = |t: &[i64]| Targets::Indices(t.to_vec());
    let lse_01 = (1.0_f64 + 1.0_f64.exp()).ln();
    vec![
        // PyTorch's smoothing term is -(logp · w).sum(): 0 · -inf is NaN even for a zero weight.
        case("ce smoothing, zero weight on -inf", ce().label_smoothing(0.1).weight(&[1.0, 0.0, 1.0]), &[0.0, -INF, 1.0], &[1, 3], idx(&[0]), &[NAN]),
        case("ce zero weight on -inf, no smoothing", ce().weight(&[1.0, 0.0, 1.0]), &[0.0, -INF, 1.0], &[1, 3], idx(&[0]), &[lse_01]),
        case("ce smoothing with a -inf logit", ce().label_smoothing(0.1), &[0.0, -INF, 1.0], &[1, 3], idx(&[0]), &[f64::INFINITY]),
        case("ce ±1e38", ce(), &[1e38, -1e38, 1e38, -1e38], &[2, 2], idx(&[1, 0]), &[2e38, 0.0]),
        case("ce ±3e38", ce(), &[3e38, -3e38], &[1, 2], idx(&[1]), &[f64::INFINITY]),
        case("ce all -inf", ce(), &[-INF, -INF], &[1, 2], idx(&[0]), &[NAN]),
        case("ce +inf logit", ce(), &[INF, 0.0], &[1, 2], idx(&[1]), &[NAN]),
        case("ce subnormal logits", ce(), &[1e-45, -1e-40], &[1, 2], idx(&[0]), &[std::f64::consts::LN_2]),
        case("ce weight 3e38", ce().weight(&[3e38, 1.0]), &[0.0, 0.0], &[1, 2], idx(&[0]), &[3e38 * std::f64::consts::LN_2]),
        case("nll -inf target", CrossEntropy::nll().reduction(Reduction::None), &[-INF, 0.0], &[1, 2], idx(&[0]), &[f64::INFINITY]),
        case("ce probs eps 0 subnormal", ce().input_kind(InputKind::Probabilities).epsilon(0.0), &[1e-40, 1.0, DENORM_MIN, 1.0], &[2, 2], values(&[1.0, 0.0, 1.0, 0.0]), &[-ln(1e-40), -ln(DENORM_MIN)]),
        case("ce probs eps 0, p=0", ce().input_kind(InputKind::Probabilities).epsilon(0.0), &[0.0, 1.0], &[1, 2], values(&[1.0, 0.0]), &[f64::INFINITY]),
        case("ce soft target on -inf logit", ce(), &[-INF, 0.0], &[1, 2], values(&[0.0, 1.0]), &[NAN]),
    ]
}

#[rustfmt::skip]
fn softmax_cases() -> Vec<Case> {
    let rows = |op: RowOp, x: &[f32], want: &[f64]| case("", op, x, &[1, x.len()], Targets::None, want);
    let mut cases = vec![
        rows(RowOp::Entropy, &[1e38, -1e38], &[0.0]),
        rows(RowOp::Entropy, &[3e38, -3e38], &[0.0]),
        rows(RowOp::Entropy, &[0.0, -INF], &[0.0]),
        rows(RowOp::Entropy, &[-INF, -INF], &[NAN]),
        rows(RowOp::Entropy, &[INF, 0.0], &[NAN]),
        // PyTorch gives 0 here, in float32 and float64 alike: its lse = max + ln 2 rounds
        // to the max, so the normalised logits are 0. We keep the exact entropy, ln 2, which
        // is also PyTorch's float64 answer wherever float64 can hold lse - max (e.g. at 1e8,
        // where PyTorch's float32 gives 0): docs/NOTES.md, "Extreme values".
        rows(RowOp::Entropy, &[3e38, -3e38, 0.0, 3e38], &[std::f64::consts::LN_2]),
        rows(RowOp::Softmax, &[1e38, -1e38], &[1.0, 0.0]),
        rows(RowOp::Softmax, &[0.0, -INF, 1e-45], &[0.5, 0.0, 0.5]),
        rows(RowOp::LogSoftmax, &[1e38, -1e38], &[0.0, -2e38]),
        rows(RowOp::LogSoftmax, &[3e38, -3e38], &[0.0, f64::NEG_INFINITY]),
        rows(RowOp::LogSoftmax, &[0.0, -INF], &[0.0, f64::NEG_INFINITY]),
    ];
    for c in &mut cases {
        c.name = "softmax family";
    }
    cases
}

/// Sums past f32's range. PyTorch's float32 kernels sum in float32 (the loss and, for the
/// weighted mean, Σ w[y]), so a total past 3.4e38 is inf before the mean divides: the rule
/// on every backend is "each sum rounded to f32, then divided".
#[rustfmt::skip]
fn overflowing_sum_cases() -> Vec<Case> {
    let idx = Targets::Indices(vec![0, 1, 0]);
    let weighted = |w: f32, r: Reduction| CrossEntropy::default().weight(&[w, w]).reduction(r);
    let zeros = [0.0_f32; 6];
    let ln2 = std::f64::consts::LN_2;
    let big = values(&[0.0; 4]);
    vec![
        // Σ w = 9e38 and Σ l = 6.2e38 are both inf: inf/inf.
        reduced(case("ce weighted mean, Σw and Σl overflow", weighted(3e38, Reduction::Mean), &zeros, &[3, 2], idx, &[NAN])),
        // Σ w = 4.5e38 overflows, Σ l = 3.1e38 does not: 3.1e38 / inf = 0.
        reduced(case("ce weighted mean, Σw overflows", weighted(1.5e38, Reduction::Mean), &zeros, &[3, 2], Targets::Indices(vec![0, 1, 0]), &[0.0])),
        reduced(case("ce weighted sum overflows", weighted(3e38, Reduction::Sum), &zeros, &[3, 2], Targets::Indices(vec![0, 1, 0]), &[f64::INFINITY])),
        reduced(case("ce weighted sum", weighted(1.5e38, Reduction::Sum), &zeros, &[3, 2], Targets::Indices(vec![0, 1, 0]), &[3.0 * 1.5e38 * ln2])),
        reduced(case("mse mean, Σ overflows", ElementwiseLoss::mse(), &[1e19; 4], &[4], values(&[0.0; 4]), &[f64::INFINITY])),
        reduced(case("mse sum overflows", ElementwiseLoss::mse().reduction(Reduction::Sum), &[1e19; 4], &[4], big, &[f64::INFINITY])),
        reduced(case("bce weighted mean", ElementwiseLoss::bce().weight(&[3e38]), &[0.5; 2], &[2, 1], values(&[1.0; 2]), &[f64::INFINITY])),
        reduced(case("kl batchmean", ElementwiseLoss::kl_div().reduction(Reduction::BatchMean), &[-1e38; 4], &[2, 2], values(&[1.0; 4]), &[f64::INFINITY])),
    ]
}

fn all_cases() -> Vec<Case> {
    [
        bce_cases(),
        bce_with_logits_cases(),
        mse_kl_cases(),
        cross_entropy_cases(),
        softmax_cases(),
        overflowing_sum_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[test]
fn every_backend_gives_pytorchs_answer() {
    let mut failures = Vec::new();
    let cases = all_cases();
    for c in &cases {
        let batch = batch(c);
        for backend in [Backend::Gpu(gpu()), Backend::Cpu, Backend::Reference] {
            match c.loss.forward(backend, &batch) {
                Ok(got) => {
                    let got = got.values();
                    let ok = got.len() == c.want.len()
                        && got.iter().zip(&c.want).all(|(&g, &w)| close(f64::from(g), w, EXTREME));
                    if !ok {
                        failures.push(format!(
                            "{} {:?} on {backend:?}: got {got:?}, want {:?}",
                            c.name, c.input, c.want
                        ));
                    }
                }
                Err(err) => failures.push(format!("{} on {backend:?}: {err}", c.name)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases × 3 backends failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn batch(c: &Case) -> Batch<'_> {
    match &c.targets {
        Targets::None => Batch::input(&c.input, c.shape.clone()),
        Targets::Indices(t) => Batch::new(&c.input, c.shape.clone(), t),
        Targets::Values(t) => Batch::new(&c.input, c.shape.clone(), t),
    }
}

/// The gradients at the same extremes: the GPU and the fast CPU backend against the f64
/// reference (upstream 1 for every output), NaN where it has NaN, infinities by sign.
#[test]
fn gradients_agree_with_the_reference() {
    let mut failures = Vec::new();
    let cases = all_cases();
    for c in &cases {
        let batch = batch(c);
        let ones = vec![1.0_f32; c.want.len()];
        let upstream = if c.reduced {
            wgpu_loss::Upstream::Scalar(1.0)
        } else {
            wgpu_loss::Upstream::Values(&ones[..])
        };
        let want = c
            .loss
            .forward_backward(Backend::Reference, &batch, upstream)
            .expect("reference");
        for backend in [Backend::Gpu(gpu()), Backend::Cpu] {
            let got = c.loss.forward_backward(backend, &batch, upstream).expect("backend");
            let ok = got
                .grad
                .iter()
                .zip(&want.grad)
                .all(|(&g, &w)| close(f64::from(g), f64::from(w), EXTREME));
            if !ok {
                failures.push(format!(
                    "{} {:?} on {backend:?}: grad {:?}, want {:?}",
                    c.name, c.input, got.grad, want.grad
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases × 2 backends failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
