//! The softmax family's f64 reference checked in f64: the seeds' softmax values and the
//! vector-Jacobian products against central finite differences of u · op(x).

use crate::api::kinds::RowOutput;
use crate::cpu;
use crate::testing::{close, finite_differences, Rng, FINITE_DIFF, REFERENCE};

use super::reference::{row_op, row_op_vjp};

#[test]
fn seed_values() {
    // softmax([6, 6, -6]) (seed table; PyTorch float64 agrees)
    let s = cpu::softmax(&[6.0, 6.0, -6.0]);
    let want = [0.49999846395163056, 0.49999846395163056, 3.0720967388567383e-06];
    for (g, w) in s.iter().zip(want) {
        assert!(close(*g, w, REFERENCE), "{g} vs {w}");
    }
    // F.softmax([1234., 0.]) == [1., 0.]: the max shift keeps it finite.
    assert_eq!(cpu::softmax(&[1234.0, 0.0]), vec![1.0, 0.0]);
}

/// The f64 VJP against finite differences of u · op(x): the f64 half of
/// `tests/gradients.rs`'s `row_op_vector_jacobian_products`, whose GPU half stays there.
#[test]
fn row_op_vector_jacobian_products_match_finite_differences() {
    let mut rng = Rng::new(31);
    let row: Vec<f64> = (0..7).map(|_| f64::from(rng.uniform(-3.0, 3.0))).collect();
    for op in [RowOutput::Softmax, RowOutput::LogSoftmax, RowOutput::Entropy] {
        let outputs = if op == RowOutput::Entropy { 1 } else { 7 };
        let up: Vec<f64> = (0..outputs).map(|_| f64::from(rng.uniform(-1.0, 1.0))).collect();
        let analytic = row_op_vjp(op, &row, &up);
        let numeric = finite_differences(&row, |x| row_op(op, x).iter().zip(&up).map(|(o, u)| o * u).sum());
        assert_eq!(analytic.len(), numeric.len(), "{op:?}: length");
        for (i, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
            assert!(
                close(*a, *n, FINITE_DIFF),
                "{op:?} [{i}]: analytic {a}, numeric {n} (tolerance {})",
                FINITE_DIFF.name
            );
        }
    }
}
