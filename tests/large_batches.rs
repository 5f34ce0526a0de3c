//! Large batches: inputs larger than one buffer (split into row groups under a lowered
//! `max_buffer_size`, for every loss family), 16M rows (far more than 65,535 workgroups per
//! dimension) and the f32 tree sum of 16M row losses against the f64 sum.

mod common;

use common::{assert_close, Rng, GRAD_TOLERANCE, REDUCED, ROW_LOSS};
use wgpu_loss::{
    Backend, Batch, CrossEntropy, ElementwiseLoss, GpuContext, Loss, LossValue, Reduction, RowOp, Targets, Upstream,
};

fn widen(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

/// 4 KiB buffers and 1 KiB bindings: a 100×37 input (14.8 KB) runs in 4 groups of 27 rows,
/// each in several chunks.
fn small_buffers() -> GpuContext {
    let ctx = common::gpu();
    GpuContext::from_device(ctx.device().clone(), ctx.queue().clone())
        .with_buffer_limit(4096)
        .with_binding_limit(1024)
}

#[test]
fn cross_entropy_larger_than_a_buffer() {
    let ctx = small_buffers();
    let mut rng = Rng::new(1);
    let (rows, classes) = (100, 37);
    let logits = rng.logits(rows * classes, 5.0);
    let weights: Vec<f32> = (0..classes).map(|_| rng.uniform(0.2, 2.0)).collect();
    let indices: Vec<i64> = (0..rows)
        .map(|r| if r % 9 == 4 { -100 } else { rng.below(classes) as i64 })
        .collect();
    let probs: Vec<f32> = (0..rows * classes)
        .map(|_| rng.uniform(0.0, 1.0) / classes as f32)
        .collect();
    for reduction in [Reduction::None, Reduction::Sum, Reduction::Mean] {
        for targets in [Targets::I64(&indices), Targets::F32(&probs)] {
            let loss = CrossEntropy::default()
                .weight(&weights)
                .label_smoothing(0.1)
                .reduction(reduction)
                .row_outputs(true);
            let what = format!(
                "{reduction:?} {}",
                if matches!(targets, Targets::F32(_)) {
                    "probs"
                } else {
                    "indices"
                }
            );
            let upstream = Upstream::Scalar(0.5);
            let batch = Batch::new(&logits, [rows, classes], targets);
            let got = loss
                .forward_backward(Backend::Gpu(&ctx), &batch, upstream)
                .expect(&what);
            let want = loss
                .forward_backward(Backend::Reference, &batch, upstream)
                .expect(&what);
            let tol = if reduction == Reduction::None {
                ROW_LOSS
            } else {
                REDUCED
            };
            assert_close(&what, got.loss.values(), &widen(want.loss.values()), tol);
            assert_close(&format!("{what} grad"), &got.grad, &widen(&want.grad), GRAD_TOLERANCE);
            assert_eq!(got.argmax, want.argmax, "{what}");
            assert_eq!(
                got.accuracy.map(f32::to_bits),
                want.accuracy.map(f32::to_bits),
                "{what}"
            );
        }
    }
    // A bad target in a later group is reported with its row in the whole batch.
    let mut bad = indices.clone();
    bad[77] = 37;
    let err = CrossEntropy::default()
        .forward(Backend::Gpu(&ctx), &Batch::new(&logits, [rows, classes], &bad))
        .unwrap_err();
    assert!(err.to_string().contains("77"), "{err}");
}

#[test]
fn elementwise_and_row_ops_larger_than_a_buffer() {
    let ctx = small_buffers();
    let mut rng = Rng::new(2);
    let shape = [60, 41];
    let n = shape[0] * shape[1];
    let x = rng.logits(n, 3.0);
    let y: Vec<f32> = (0..n).map(|_| rng.uniform(0.0, 1.0)).collect();
    let w: Vec<f32> = (0..shape[1]).map(|_| rng.uniform(0.5, 1.5)).collect();
    let losses = [
        (ElementwiseLoss::mse(), true),
        (ElementwiseLoss::bce_with_logits().weight(&w).pos_weight(&w), true),
        (ElementwiseLoss::kl_div().reduction(Reduction::BatchMean), true),
        (ElementwiseLoss::mse().reduction(Reduction::None), false),
    ];
    for (loss, reduced) in losses {
        let what = format!("{loss:?}");
        let batch = Batch::new(&x, shape, &y);
        let (got, want) = if reduced {
            let got = loss
                .forward_backward(Backend::Gpu(&ctx), &batch, Upstream::Scalar(1.0))
                .expect(&what);
            let want = loss
                .forward_backward(Backend::Reference, &batch, Upstream::Scalar(1.0))
                .unwrap();
            ((got.loss, got.grad), (want.loss, want.grad))
        } else {
            (
                (loss.forward(Backend::Gpu(&ctx), &batch).expect(&what), Vec::new()),
                (loss.forward(Backend::Reference, &batch).unwrap(), Vec::new()),
            )
        };
        let tol = if matches!(got.0, LossValue::Scalar(_)) {
            REDUCED
        } else {
            ROW_LOSS
        };
        assert_close(&what, got.0.values(), &widen(want.0.values()), tol);
        assert_close(&format!("{what} grad"), &got.1, &widen(&want.1), GRAD_TOLERANCE);
    }
    for op in [RowOp::Softmax, RowOp::LogSoftmax, RowOp::Entropy] {
        let (rows, classes) = (shape[0], shape[1]);
        let batch = Batch::input(&x, [rows, classes]);
        let got = op.forward(Backend::Gpu(&ctx), &batch).unwrap();
        let want = op.forward(Backend::Reference, &batch).unwrap();
        assert_close(&format!("{op:?}"), got.values(), &widen(want.values()), ROW_LOSS);
        let upstream: Vec<f32> = (0..rows * op_width(op, classes))
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect();
        let got = op
            .forward_backward(Backend::Gpu(&ctx), &batch, Upstream::Values(&upstream))
            .unwrap()
            .grad;
        let want = op
            .forward_backward(Backend::Reference, &batch, Upstream::Values(&upstream))
            .unwrap()
            .grad;
        assert_close(&format!("{op:?} backward"), &got, &widen(&want), GRAD_TOLERANCE);
    }
}

fn op_width(op: RowOp, classes: usize) -> usize {
    if op == RowOp::Entropy {
        1
    } else {
        classes
    }
}

#[test]
fn sixteen_million_rows() {
    // 16M rows of 2 classes: 128 MiB of logits (more than one binding on lavapipe), 2-D
    // dispatch grids, and the batch sum as a tree of f32 pair sums.
    let ctx = common::gpu();
    let rows = 1 << 24;
    let classes = 2;
    let mut rng = Rng::new(3);
    let logits = rng.logits(rows * classes, 4.0);
    let targets: Vec<i32> = (0..rows).map(|r| (r % 3 == 0) as i32).collect();
    let batch = Batch::new(&logits, [rows, classes], &targets[..]);
    let none = CrossEntropy::default().reduction(Reduction::None);
    let rows_gpu = none.forward(Backend::Gpu(ctx), &batch).unwrap();
    let rows_gpu = rows_gpu.values();
    let want = none.forward(Backend::Reference, &batch).unwrap();
    assert_close("16M rows", rows_gpu, &widen(want.values()), ROW_LOSS);
    // The sum of exactly these f32 row losses: the GPU's tree against f64.
    let sum = CrossEntropy::default()
        .reduction(Reduction::Sum)
        .forward(Backend::Gpu(ctx), &batch)
        .unwrap()
        .scalar()
        .unwrap();
    let exact: f64 = rows_gpu.iter().map(|&v| f64::from(v)).sum();
    let relative = (f64::from(sum) - exact).abs() / exact.abs();
    assert!(
        relative <= 1e-6,
        "tree sum of 16M f32 row losses: {sum} vs f64 {exact} ({relative:e} relative)"
    );
    // The same for an elementwise loss over 32M elements, and a row op over 16M rows.
    let target: Vec<f32> = logits.iter().map(|x| x * 0.5).collect();
    let mse_batch = Batch::new(&logits, [rows, classes], &target);
    let mse = ElementwiseLoss::mse().forward(Backend::Gpu(ctx), &mse_batch).unwrap();
    let mse_want = ElementwiseLoss::mse().forward(Backend::Reference, &mse_batch).unwrap();
    assert_close("mse 32M", mse.values(), &widen(mse_want.values()), REDUCED);
    let rows_batch = Batch::input(&logits, [rows, classes]);
    let entropy = RowOp::Entropy.forward(Backend::Gpu(ctx), &rows_batch).unwrap();
    let entropy_want = RowOp::Entropy.forward(Backend::Reference, &rows_batch).unwrap();
    assert_close("entropy 16M", entropy.values(), &widen(entropy_want.values()), ROW_LOSS);
}
