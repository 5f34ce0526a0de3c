//! Layer 2: golden values. The CPU reference against PyTorch and the seed documents, then
//! the GPU against the same values through the public API.
//!
//! The reference's f64 internals (its f64 rows against these values at 1e-12, and the seed
//! table of `mse_sum`, `cross_entropy_of_probabilities` and `softmax`) are checked in f64 by
//! the crate's unit tests in `src/losses/cross_entropy/reference_tests.rs`; here every backend goes through
//! the public [`Loss`] API.
//!
//! PyTorch values come from `tests/golden/cross_entropy_golden.py` (PyTorch 2.15.0, CPU,
//! inputs rounded to f32, then float64); each is quoted beside the call that produced it.

mod common;

use common::{assert_close, gpu, Tolerance};
use wgpu_loss::{Backend, Batch, CrossEntropy, Loss, Reduction};

/// The f32 GPU result against the f64 golden value: a few f32 roundings of O(1) values.
const GPU_GOLDEN: Tolerance = Tolerance {
    name: "gpu.golden",
    atol: 2e-6,
    rtol: 2e-6,
};

include!("golden/cross_entropy_cases.rs");

#[test]
fn cpu_reference_matches_pytorch() {
    // The reference rounds its f64 result to f32 at the end; its f64 rows are checked
    // against the same values at 1e-12 in src/losses/cross_entropy/reference_tests.rs.
    for case in cases() {
        let rows = case.targets.len();
        let batch = Batch::new(&case.logits, [rows, case.classes], &case.targets);
        let got = case.loss.forward(Backend::Reference, &batch).expect(case.name);
        assert_close(case.name, got.values(), &case.want, GPU_GOLDEN);
    }
}

#[test]
fn gpu_matches_pytorch() {
    let ctx = gpu();
    for case in cases() {
        let rows = case.targets.len();
        let batch = Batch::new(&case.logits, [rows, case.classes], &case.targets);
        let got = case.loss.forward(Backend::Gpu(ctx), &batch).expect(case.name);
        assert_close(&format!("gpu {}", case.name), got.values(), &case.want, GPU_GOLDEN);
    }
}

#[test]
fn one_hot_seed_through_cross_entropy() {
    // -log softmax(x)[1] for logits x = ln(y) equals -log y[1] when Σ y = 1: the seeds'
    // probability cross-entropy (without the 1e-7) through the class-index API, both backends.
    let y: [f32; 4] = [0.1, 0.05, 0.05, 0.8];
    let logits: Vec<f32> = y.iter().map(|p| p.ln()).collect();
    let want = -(f64::from(y[1])).ln() + (y.iter().map(|&p| f64::from(p)).sum::<f64>()).ln();
    let loss = CrossEntropy::default();
    let batch = Batch::new(&logits, [1, 4], &[1_i64]);
    let cpu_value = loss.forward(Backend::Reference, &batch).expect("cpu");
    let gpu_value = loss.forward(Backend::Gpu(gpu()), &batch).expect("gpu");
    assert_close("seed one-hot cpu", cpu_value.values(), &[want], GPU_GOLDEN);
    assert_close("seed one-hot gpu", gpu_value.values(), &[want], GPU_GOLDEN);
    assert!((want - 2.995732273553991).abs() < 1e-6);
}
