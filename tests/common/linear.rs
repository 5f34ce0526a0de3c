//! What the linear cross-entropy suites share: seeded data and the comparison of two
//! results with named tolerances.

use super::{assert_close, Rng, Tolerance};
use wgpu_loss::LinearForwardBackward;

/// The loss against the reference. The GPU's logits are f32 sums of D products (relative
/// error ~D·2^-24 of Σ|h·w|, 1e-6 here), the cross-entropy's tolerance on top.
pub const LOSS: Tolerance = Tolerance {
    name: "linear_cross_entropy.loss",
    atol: 5e-5,
    rtol: 5e-5,
};

/// The gradients against the reference: G has the cross-entropy gradient's error (2e-5
/// relative), and each product sums V (∂h) or N (∂W, ∂b) f32 terms of mixed sign.
pub const GRADS: Tolerance = Tolerance {
    name: "linear_cross_entropy.grads",
    atol: 2e-5,
    rtol: 2e-4,
};

/// Seeded host data of one shape `[N, D, V]`: every fifth row ignored (target -100).
pub struct Data {
    pub h: Vec<f32>,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub targets: Vec<i64>,
    pub upstream: Vec<f32>,
    pub shape: [usize; 3],
}

pub fn data(rng: &mut Rng, [rows, hidden, classes]: [usize; 3]) -> Data {
    let mut targets = rng.targets(rows, classes);
    for t in targets.iter_mut().step_by(5) {
        *t = -100;
    }
    Data {
        h: rng.logits(rows * hidden, 1.0),
        w: rng.logits(classes * hidden, 0.5),
        b: rng.logits(classes, 0.5),
        targets,
        upstream: rng.logits(rows, 1.0),
        shape: [rows, hidden, classes],
    }
}

pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// `got` against `want`: the loss, each gradient and lse present on both sides or neither,
/// the argmax and accuracy equal.
#[track_caller]
pub fn assert_agree(what: &str, got: &LinearForwardBackward, want: &LinearForwardBackward) {
    assert_close(
        &format!("{what}: loss"),
        got.loss.values(),
        &widen(want.loss.values()),
        LOSS,
    );
    for (name, g, w) in [
        ("grad_h", &got.grad_h, &want.grad_h),
        ("grad_w", &got.grad_w, &want.grad_w),
        ("grad_b", &got.grad_b, &want.grad_b),
        ("lse", &got.lse, &want.lse),
    ] {
        assert_eq!(g.is_some(), w.is_some(), "{what}: {name} present");
        if let (Some(g), Some(w)) = (g, w) {
            assert_close(&format!("{what}: {name}"), g, &widen(w), GRADS);
        }
    }
    assert_eq!(got.argmax, want.argmax, "{what}: argmax");
    assert_eq!(got.accuracy, want.accuracy, "{what}: accuracy");
}
