//! The fused linear cross-entropy, GPU and fast CPU against the f64 reference on random
//! shapes that do not divide the matmul's 64-row tiles, with every cross-entropy option,
//! all three gradients, scalar and per-row upstreams, tiles of one row up to unfused, and
//! bit-identical reruns.

mod common;

use common::linear::{assert_agree, data};
use common::{gpu, Rng};
use wgpu_loss::{
    Backend, CrossEntropy, Grads, Input, LinearBatch, LinearCrossEntropy, LinearMode, Reduction, Upstream,
};

fn options() -> Vec<(&'static str, CrossEntropy)> {
    let weights: Vec<f32> = (0..37).map(|c| 0.5 + (c % 4) as f32 * 0.25).collect();
    vec![
        ("plain mean", CrossEntropy::default()),
        ("sum", CrossEntropy::default().reduction(Reduction::Sum)),
        ("none", CrossEntropy::default().reduction(Reduction::None)),
        ("weights", CrossEntropy::default().weight(&weights)),
        ("smoothing", CrossEntropy::default().label_smoothing(0.2)),
        (
            "everything",
            CrossEntropy::default()
                .weight(&weights)
                .label_smoothing(0.1)
                .z_loss(1e-3)
                .softcap(3.0)
                .ignore_index(3)
                .row_outputs(true),
        ),
    ]
}

#[test]
fn gpu_and_cpu_agree_with_the_reference_for_every_option() {
    let mut rng = Rng::new(1501);
    let d = data(&mut rng, [131, 19, 37]);
    for (name, ce) in options() {
        let none = ce.reduction == Reduction::None;
        let upstream = if none {
            Upstream::Values(&d.upstream[..])
        } else {
            Upstream::Scalar(0.75)
        };
        // The ignored rows carry the call's ignore_index.
        let targets: Vec<i64> = d
            .targets
            .iter()
            .map(|&t| if t == -100 { ce.ignore_index } else { t })
            .collect();
        let batch = LinearBatch::new(&d.h, &d.w, d.shape, &targets).bias(&d.b);
        // 40-row tiles: four tiles, the last partial.
        let loss = LinearCrossEntropy::new(ce).tile_bytes(40 * 37 * 4);
        let want = loss
            .forward_backward(Backend::Reference, &batch, upstream, Grads::ALL)
            .unwrap();
        let got = loss
            .forward_backward(Backend::Gpu(gpu()), &batch, upstream, Grads::ALL)
            .unwrap();
        assert_agree(&format!("gpu {name}"), &got, &want);
        let cpu = loss
            .forward_backward(Backend::Cpu, &batch, upstream, Grads::ALL)
            .unwrap();
        assert_agree(&format!("cpu {name}"), &cpu, &want);
        // The forward alone gives the same loss.
        let forward = loss.forward(Backend::Gpu(gpu()), &batch).unwrap();
        assert_eq!(forward, got.loss, "{name}: forward alone");
    }
}

/// Random shapes (N, D, V drawn per case, none a multiple of the 64-wide tiles by
/// design), random options and random tile sizes: GPU and fast CPU against the reference.
#[test]
fn random_shapes_and_options_agree_with_the_reference() {
    let mut rng = Rng::new(1505);
    for case in 0..8 {
        let shape = [1 + rng.below(150), 1 + rng.below(70), 2 + rng.below(260)];
        let [rows, _, classes] = shape;
        let d = data(&mut rng, shape);
        let weights: Vec<f32> = (0..classes).map(|_| rng.uniform(0.2, 2.0)).collect();
        let mut ce = CrossEntropy::default().reduction([Reduction::Mean, Reduction::Sum, Reduction::None][case % 3]);
        if rng.below(2) == 1 {
            ce = ce.weight(&weights);
        }
        if rng.below(2) == 1 {
            ce = ce.label_smoothing(rng.uniform(0.0, 0.5).into());
        }
        if rng.below(2) == 1 {
            ce = ce.z_loss(1e-3).softcap(rng.uniform(1.0, 10.0).into());
        }
        ce = ce.row_outputs(rng.below(2) == 1);
        let upstream = if ce.reduction == Reduction::None {
            Upstream::Values(&d.upstream[..])
        } else {
            Upstream::Scalar(rng.uniform(0.5, 2.0))
        };
        let tile_rows = 1 + rng.below(rows);
        let loss = LinearCrossEntropy::new(ce).tile_bytes((tile_rows * classes * 4) as u64);
        let batch = LinearBatch::new(&d.h, &d.w, shape, &d.targets).bias(&d.b);
        let what = format!("case {case}: {shape:?}, tiles of {tile_rows} rows");
        let want = loss
            .forward_backward(Backend::Reference, &batch, upstream, Grads::ALL)
            .unwrap();
        for (backend, name) in [(Backend::Gpu(gpu()), "gpu"), (Backend::Cpu, "cpu")] {
            let got = loss.forward_backward(backend, &batch, upstream, Grads::ALL).unwrap();
            assert_agree(&format!("{name} {what}"), &got, &want);
        }
    }
}

#[test]
fn every_tile_size_and_the_unfused_path_agree() {
    let mut rng = Rng::new(1502);
    let d = data(&mut rng, [77, 33, 150]);
    let batch = LinearBatch::new(&d.h, &d.w, d.shape, &d.targets).bias(&d.b);
    let ce = CrossEntropy::default().label_smoothing(0.05).z_loss(1e-4);
    let want = LinearCrossEntropy::new(ce.clone())
        .forward_backward(Backend::Reference, &batch, Upstream::Scalar(1.0), Grads::ALL)
        .unwrap();
    for (tile_bytes, mode) in [
        (1, LinearMode::Fused),
        (7 * 600, LinearMode::Fused),
        (64 * 600, LinearMode::Fused),
        (1, LinearMode::Unfused),
    ] {
        let loss = LinearCrossEntropy::new(ce.clone()).tile_bytes(tile_bytes).mode(mode);
        let got = loss
            .forward_backward(Backend::Gpu(gpu()), &batch, Upstream::Scalar(1.0), Grads::ALL)
            .unwrap();
        assert_agree(&format!("{mode:?} tile {tile_bytes}"), &got, &want);
    }
}

#[test]
fn reruns_are_bit_identical_and_gradients_come_as_asked() {
    let mut rng = Rng::new(1503);
    let d = data(&mut rng, [200, 24, 90]);
    let batch = LinearBatch::new(&d.h, &d.w, d.shape, &d.targets).bias(&d.b);
    let loss = LinearCrossEntropy::new(CrossEntropy::default()).tile_bytes(30 * 90 * 4);
    let run = |grads| {
        loss.forward_backward(Backend::Gpu(gpu()), &batch, Upstream::Scalar(1.0), grads)
            .unwrap()
    };
    let first = run(Grads::ALL);
    for _ in 0..3 {
        assert_eq!(run(Grads::ALL), first, "a rerun differs");
    }
    let only_w = run(Grads {
        h: false,
        w: true,
        b: false,
    });
    assert!(only_w.grad_h.is_none() && only_w.grad_b.is_none());
    assert_eq!(only_w.grad_w, first.grad_w);
    let without_bias = LinearBatch::new(&d.h, &d.w, d.shape, &d.targets);
    let no_b = loss
        .forward_backward(Backend::Gpu(gpu()), &without_bias, Upstream::Scalar(1.0), Grads::ALL)
        .unwrap();
    assert!(no_b.grad_b.is_none(), "no bias, no ∂b");
}

#[test]
fn half_precision_inputs_are_accumulated_in_f32() {
    let mut rng = Rng::new(1504);
    let d = data(&mut rng, [70, 20, 45]);
    let loss = LinearCrossEntropy::new(CrossEntropy::default().label_smoothing(0.1)).tile_bytes(32 * 45 * 4);
    use wgpu_loss::half::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
    type Codec = (fn(f32) -> u16, fn(u16) -> f32, fn(&[u16]) -> Input<'_>);
    let codecs: [(&str, Codec); 2] = [
        ("f16", (f32_to_f16, f16_to_f32, |v| Input::F16(v))),
        ("bf16", (f32_to_bf16, bf16_to_f32, |v| Input::Bf16(v))),
    ];
    for (name, (to_half, from_half, input)) in codecs {
        let half = |v: &[f32]| -> Vec<u16> { v.iter().map(|&x| to_half(x)).collect() };
        let (h, w, b) = (half(&d.h), half(&d.w), half(&d.b));
        let halves = LinearBatch::new(input(&h), input(&w), d.shape, &d.targets).bias(input(&b));
        // The reference on the same rounded values, widened exactly.
        let exact = |v: &[u16]| -> Vec<f32> { v.iter().map(|&x| from_half(x)).collect() };
        let (he, we, be) = (exact(&h), exact(&w), exact(&b));
        let widened = LinearBatch::new(&he, &we, d.shape, &d.targets).bias(&be);
        let want = loss
            .forward_backward(Backend::Reference, &widened, Upstream::Scalar(1.0), Grads::ALL)
            .unwrap();
        let got = loss
            .forward_backward(Backend::Gpu(gpu()), &halves, Upstream::Scalar(1.0), Grads::ALL)
            .unwrap();
        assert_agree(name, &got, &want);
    }
}
