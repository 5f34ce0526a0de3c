//! Threads sharing one context: host calls side by side give the bits of the same call
//! alone. The linear cross-entropy under a small buffer limit runs in row groups, one
//! submission each, and adds `∂W`, `∂b` up across them — the pool must not hand those
//! buffers to another thread's recording between two groups (it once did: `gpu::pool`,
//! `Lane::Held`).

mod common;

use common::linear::data;
use common::Rng;
use wgpu_loss::{Backend, Batch, CrossEntropy, GpuContext, Grads, LinearBatch, LinearCrossEntropy, Loss, Upstream};

#[test]
fn host_calls_side_by_side_on_one_context_give_the_bits_of_one_alone() {
    let ctx = GpuContext::new_blocking().unwrap().with_buffer_limit(2 << 10);
    let mut rng = Rng::new(1601);
    let shape = [45, 12, 43];
    let d = data(&mut rng, shape);
    let linear = LinearCrossEntropy::new(CrossEntropy::default().label_smoothing(0.1));
    let batch = LinearBatch::new(&d.h, &d.w, shape, &d.targets).bias(&d.b);
    let alone = linear
        .forward_backward(Backend::Gpu(&ctx), &batch, Upstream::Scalar(1.0), Grads::ALL)
        .unwrap();
    let logits = rng.logits(300 * 17, 4.0);
    let targets = rng.targets(300, 17);
    let plain = Batch::new(&logits, [300, 17], &targets);
    let ce = CrossEntropy::default().z_loss(1e-3);
    let ce_alone = ce
        .forward_backward(Backend::Gpu(&ctx), &plain, Upstream::Scalar(1.0))
        .unwrap();
    for round in 0..25 {
        std::thread::scope(|scope| {
            let linear_runs: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| {
                        linear
                            .forward_backward(Backend::Gpu(&ctx), &batch, Upstream::Scalar(1.0), Grads::ALL)
                            .unwrap()
                    })
                })
                .collect();
            let ce_run = scope.spawn(|| {
                ce.forward_backward(Backend::Gpu(&ctx), &plain, Upstream::Scalar(1.0))
                    .unwrap()
            });
            for run in linear_runs {
                assert_eq!(run.join().unwrap(), alone, "round {round}: a linear call beside others");
            }
            assert_eq!(
                ce_run.join().unwrap(),
                ce_alone,
                "round {round}: a cross-entropy call beside others"
            );
        });
    }
}
