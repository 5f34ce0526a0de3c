//! Cross-entropy's f64 reference checked in f64: its row losses against PyTorch's float64
//! golden values, the seeds' probability form, and its analytic gradient against central
//! finite differences of its own losses, for every option. The public losses' golden
//! values (rounded to f32, GPU, fast CPU) stay in the integration tests.

use crate::api::kinds::InputKind;
use crate::api::reduction::Reduction;
use crate::cpu::RowLosses;
use crate::testing::{close, finite_differences, Rng, FINITE_DIFF, REFERENCE, SEED};

use super::options::CrossEntropy;
use super::reference::{
    cross_entropy_of_probabilities, cross_entropy_rows, reference_grad, reference_rows, RefTargets,
};
use super::spec::Spec;

// The PyTorch cases shared with `tests/golden.rs` (`X`, `Y`, `W`, `Case`, `cases()`).
include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/cross_entropy_cases.rs"
));

/// The f64 rows of the reference (before the public API rounds them to f32) against
/// PyTorch's float64 values: the f64 half of `tests/golden.rs`'s
/// `cpu_reference_matches_pytorch`, whose f32 half stays there through `Backend::Reference`.
#[test]
fn cpu_reference_f64_rows_match_pytorch() {
    for case in cases() {
        let rows64 = cross_entropy_rows(
            &case.logits,
            case.classes,
            &case.targets,
            case.loss.weight.as_deref(),
            case.loss.ignore_index,
            case.loss.label_smoothing,
        );
        let f64_values = match case.loss.reduction {
            Reduction::None => rows64.loss.clone(),
            Reduction::Sum => vec![rows64.sum()],
            Reduction::Mean | Reduction::BatchMean => vec![rows64.mean()],
        };
        assert_eq!(f64_values.len(), case.want.len(), "{}: length", case.name);
        for (i, (&g, &w)) in f64_values.iter().zip(&case.want).enumerate() {
            assert!(
                close(g, w, REFERENCE),
                "{} [{i}]: cpu f64 {g}, pytorch {w} (tolerance {})",
                case.name,
                REFERENCE.name
            );
        }
    }
}

#[test]
fn seed_values() {
    // -Σ t log(y + 1e-7), t one-hot at class 1.
    let t = [0.0, 1.0, 0.0, 0.0];
    let p = cross_entropy_of_probabilities(&[0.1, 0.05, 0.05, 0.8], &t, 1e-7);
    assert!(close(p, 2.9957302735559908, SEED), "{p}");
    let p = cross_entropy_of_probabilities(&[0.1, 0.8, 0.05, 0.05], &t, 1e-7);
    assert!(close(p, 0.22314342631421757, SEED), "{p}");
}

/// The scalar the gradient is of: Σ_n g_n l_n, with g from the reduction (mean: 1/Σw).
fn total(losses: &RowLosses, reduction: Reduction, upstream: &[f64]) -> f64 {
    match reduction {
        Reduction::Mean => losses.mean(),
        Reduction::Sum => losses.sum(),
        _ => losses.loss.iter().zip(upstream).map(|(l, g)| l * g).sum(),
    }
}

struct CeCase {
    name: &'static str,
    opts: Spec<'static>,
    probabilities: bool,
    positive_input: bool,
}

const WEIGHTS: [f32; 5] = [0.5, 1.5, 1.0, 2.0, 0.25];

/// The option cases of `tests/gradients.rs` (which runs the same options, through the
/// public API, on the GPU against `Backend::Reference`).
fn ce_cases() -> Vec<CeCase> {
    let base = Spec::default();
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
            Spec {
                weight: Some(&WEIGHTS),
                label_smoothing: 0.2,
                ..base
            },
            false,
            false,
        ),
        case(
            "z-loss softcap",
            Spec {
                z_loss: 1e-2,
                softcap: Some(3.0),
                ..base
            },
            false,
            false,
        ),
        case(
            "probability targets",
            Spec {
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
            Spec {
                kind: InputKind::Probabilities,
                label_smoothing: 0.1,
                ..base
            },
            false,
            true,
        ),
        case(
            "probabilities in, prob targets",
            Spec {
                kind: InputKind::Probabilities,
                ..base
            },
            true,
            true,
        ),
        case(
            "log-probabilities in (nll)",
            Spec {
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
            let losses = reference_rows(&input, classes, targets, &case.opts);
            let scale: Vec<f64> = match reduction {
                Reduction::Mean => vec![1.0 / losses.weight.iter().sum::<f64>(); 6],
                Reduction::Sum => vec![1.0; 6],
                _ => upstream.clone(),
            };
            let analytic = reference_grad(&input, classes, targets, &case.opts, &scale);
            let numeric = finite_differences(&input, |x| {
                total(&reference_rows(x, classes, targets, &case.opts), reduction, &upstream)
            });
            assert_eq!(analytic.len(), numeric.len(), "{} {reduction:?}: length", case.name);
            for (i, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
                assert!(
                    close(*a, *n, FINITE_DIFF),
                    "{} {reduction:?} [{i}]: analytic {a}, numeric {n} (tolerance {})",
                    case.name,
                    FINITE_DIFF.name
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
