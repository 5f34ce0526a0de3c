//! The elementwise losses' f64 reference checked in f64: the seeds' ½ Σ (y - t)² and the
//! analytic derivatives against central finite differences of the losses.

use crate::api::kinds::ElementwiseKind;
use crate::api::reduction::Reduction;
use crate::testing::{close, finite_differences, Rng, FINITE_DIFF, SEED};

use super::reference::{elementwise_grad, elementwise_losses, mse_sum};
use super::spec::ElementSpec;

#[test]
fn seed_values() {
    // ½ Σ (y - t)²: the seeds' textbook form is 0.5 × sum of squared errors.
    let t = [0.0, 1.0, 0.0, 0.0];
    assert!(close(0.5 * mse_sum(&[0.1, 0.05, 0.05, 0.8], &t), 0.7775, SEED));
    assert!(close(0.5 * mse_sum(&[0.1, 0.8, 0.05, 0.05], &t), 0.0275, SEED));
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
        let spec = ElementSpec {
            kind,
            weight,
            pos_weight,
            log_target,
            last_dim: shape[1],
            reduction: Reduction::Sum,
        };
        let loss = |v: &[f64]| elementwise_losses(&spec, v, target).iter().sum::<f64>();
        let analytic = elementwise_grad(&spec, input, target);
        let numeric = finite_differences(input, loss);
        assert_eq!(analytic.len(), numeric.len(), "{kind:?}: length");
        for (i, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
            assert!(
                close(*a, *n, FINITE_DIFF),
                "{kind:?} [{i}]: analytic {a}, numeric {n} (tolerance {})",
                FINITE_DIFF.name
            );
        }
    }
}
