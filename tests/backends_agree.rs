//! A property test: random shapes, options and values through all three backends (the GPU,
//! the fast CPU backend, the f64 reference), which must agree within the named tolerances of
//! `tests/common` — for cross-entropy (with every option), the elementwise losses and the
//! softmax family, losses and gradients alike. Values stay in the ranges where PyTorch's
//! f32 and f64 agree (the extremes are issue 12's point 5, with their own rules).

mod common;

use common::{assert_close, gpu, GRAD_TOLERANCE, REDUCED, ROW_LOSS};
use proptest::prelude::*;
use wgpu_loss::{Backend, Batch, CrossEntropy, ElementwiseLoss, Loss, Reduction, RowOp, Upstream};

/// Elementwise losses and the softmax family: one f32 log/exp and a few roundings per
/// element of values of at most ~1e3 (as loss_family's `ELEMENT`, with room for BCE with
/// logits' cancellation of a few ulp of |x| ≤ 20 and sums of up to 8000 elements).
const ELEMENT: common::Tolerance = common::Tolerance {
    name: "backends_agree.element",
    atol: 5e-5,
    rtol: 3e-5,
};

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// `loss` on the GPU and the fast CPU backend against the reference, forward and backward.
fn agree(loss: &dyn Loss, batch: &Batch<'_>, upstream: Upstream<&[f32]>, tol: [common::Tolerance; 2]) {
    let want = loss
        .forward_backward(Backend::Reference, batch, upstream)
        .expect("reference");
    for backend in [Backend::Gpu(gpu()), Backend::Cpu] {
        let got = loss.forward_backward(backend, batch, upstream).expect("backend");
        let what = format!("{} {:?} on {backend:?}", loss.name(), batch.shape);
        assert_close(&what, got.loss.values(), &to64(want.loss.values()), tol[0]);
        assert_close(&format!("{what} grad"), &got.grad, &to64(&want.grad), tol[1]);
    }
}

fn reduction() -> impl Strategy<Value = Reduction> {
    prop_oneof![Just(Reduction::None), Just(Reduction::Sum), Just(Reduction::Mean)]
}

proptest! {
    // A fixed seed keeps CI deterministic (400 cases with random seeds passed before it was
    // fixed); nothing is written to the tree on failure: the case is in the message.
    #![proptest_config(ProptestConfig {
        cases: 48,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x1057_5eed),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn cross_entropy_agrees(
        (rows, classes, logits, picks) in (1_usize..24, 1_usize..300).prop_flat_map(|(r, c)| (
            Just(r), Just(c),
            prop::collection::vec(-20.0_f32..20.0, r * c),
            prop::collection::vec(0_usize..1000, r),
        )),
        reduction in reduction(),
        smoothing in prop_oneof![Just(0.0), 0.0_f64..1.0],
        weighted in any::<bool>(),
        ignore_every in 0_usize..4,
        z_loss in prop_oneof![Just(0.0), 0.0_f64..1e-2],
        softcap in prop_oneof![Just(None), (5.0_f64..50.0).prop_map(Some)],
    ) {
        let targets: Vec<i64> = picks.iter().enumerate().map(|(n, &p)| {
            if ignore_every > 0 && n % (ignore_every + 1) == 0 { -100 } else { (p % classes) as i64 }
        }).collect();
        let weight: Vec<f32> = (0..classes).map(|c| 0.25 + (c % 7) as f32 * 0.5).collect();
        let mut loss = CrossEntropy::default().reduction(reduction).label_smoothing(smoothing).z_loss(z_loss);
        if weighted {
            loss = loss.weight(&weight);
        }
        if let Some(cap) = softcap {
            loss = loss.softcap(cap);
        }
        let batch = Batch::new(&logits, [rows, classes], &targets);
        let every_row_ignored = targets.iter().all(|&t| t == -100);
        prop_assume!(!(every_row_ignored && reduction == Reduction::Mean)); // 0/0: NaN on all three, checked elsewhere
        let tol = if reduction == Reduction::None { ROW_LOSS } else { REDUCED };
        agree(&loss, &batch, Upstream::Scalar(1.0), [tol, GRAD_TOLERANCE]);
    }

    #[test]
    fn elementwise_and_softmax_agree(
        (rows, cols, x, y) in (1_usize..40, 1_usize..200).prop_flat_map(|(r, c)| (
            Just(r), Just(c),
            prop::collection::vec(-20.0_f32..20.0, r * c),
            prop::collection::vec(0.001_f32..0.999, r * c),
        )),
        reduction in reduction(),
        which in 0_usize..6,
    ) {
        let shape = [rows, cols];
        let probabilities: Vec<f32> = x.iter().map(|v| 0.001 + 0.998 / (1.0 + (-v).exp())).collect();
        let ones = vec![1.0_f32; rows * cols];
        let (loss, input, upstream): (Box<dyn Loss>, &[f32], Upstream<&[f32]>) = match which {
            0 => (Box::new(ElementwiseLoss::mse().reduction(reduction)), &x, Upstream::Scalar(1.0)),
            1 => (Box::new(ElementwiseLoss::bce().reduction(reduction)), &probabilities, Upstream::Scalar(1.0)),
            2 => (Box::new(ElementwiseLoss::bce_with_logits().reduction(reduction)), &x, Upstream::Scalar(1.0)),
            3 => (Box::new(ElementwiseLoss::kl_div().reduction(reduction)), &x, Upstream::Scalar(1.0)),
            4 => (Box::new(RowOp::LogSoftmax), &x, Upstream::Values(&ones)),
            _ => (Box::new(RowOp::Softmax), &x, Upstream::Values(&ones)),
        };
        let batch = if which >= 4 { Batch::input(input, shape) } else { Batch::new(input, shape, &y) };
        agree(&*loss, &batch, upstream, [ELEMENT, ELEMENT]);
    }
}
