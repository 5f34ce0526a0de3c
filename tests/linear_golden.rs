//! The fused linear cross-entropy against PyTorch: `F.cross_entropy(F.linear(h, W, b), y,
//! …)` and autograd's `∂h`, `∂W`, `∂b`, from `tests/golden/linear_golden.py` (PyTorch 2.15,
//! float64), on the reference, the fast CPU backend and the GPU, fused in tiles of two rows
//! and unfused.

mod common;

use common::{assert_close, gpu, Tolerance};
use wgpu_loss::{Backend, CrossEntropy, Grads, LinearBatch, LinearCrossEntropy, LinearMode, Reduction, Upstream};

struct LinearCase {
    name: &'static str,
    loss: CrossEntropy,
    shape: [usize; 3],
    h: Vec<f32>,
    w: Vec<f32>,
    b: Option<Vec<f32>>,
    targets: Vec<i64>,
    upstream: Option<Vec<f32>>,
    want: Vec<f64>,
    grad_h: Vec<f64>,
    grad_w: Vec<f64>,
    grad_b: Option<Vec<f64>>,
}

include!("golden/linear_cases.rs");

/// f32 results against PyTorch's float64 values: logits are f32 sums of at most 7
/// products of O(1) values, a few more f32 roundings in the cross-entropy of at most 11
/// classes, and gradients summed over at most 13 rows or 11 classes.
const GOLDEN: Tolerance = Tolerance {
    name: "linear.golden",
    atol: 3e-6,
    rtol: 1e-5,
};

#[test]
fn every_backend_gives_pytorchs_loss_and_gradients() {
    for case in linear_cases() {
        let mut batch = LinearBatch::new(&case.h[..], &case.w[..], case.shape, &case.targets[..]);
        if let Some(b) = &case.b {
            batch = batch.bias(&b[..]);
        }
        let upstream = case.upstream.as_deref().map_or(Upstream::Scalar(1.0), Upstream::Values);
        assert_eq!(
            case.upstream.is_some(),
            case.loss.reduction == Reduction::None,
            "{}",
            case.name
        );
        let row_bytes = case.shape[2] as u64 * 4;
        let fused = LinearCrossEntropy::new(case.loss.clone()).tile_bytes(2 * row_bytes);
        let unfused = fused.clone().mode(LinearMode::Unfused);
        let runs = [
            ("reference", &fused, Backend::Reference),
            ("cpu", &fused, Backend::Cpu),
            ("gpu fused", &fused, Backend::Gpu(gpu())),
            ("gpu unfused", &unfused, Backend::Gpu(gpu())),
        ];
        for (backend, loss, on) in runs {
            let what = format!("{} on {backend}", case.name);
            let got = loss.forward_backward(on, &batch, upstream, Grads::ALL).unwrap();
            assert_close(&format!("{what}: loss"), got.loss.values(), &case.want, GOLDEN);
            assert_close(
                &format!("{what}: ∂h"),
                got.grad_h.as_deref().unwrap(),
                &case.grad_h,
                GOLDEN,
            );
            assert_close(
                &format!("{what}: ∂W"),
                got.grad_w.as_deref().unwrap(),
                &case.grad_w,
                GOLDEN,
            );
            match (&got.grad_b, &case.grad_b) {
                (Some(got), Some(want)) => assert_close(&format!("{what}: ∂b"), got, want, GOLDEN),
                (None, None) => {}
                _ => panic!("{what}: ∂b present on one side only"),
            }
        }
    }
}
