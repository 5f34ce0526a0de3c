//! Layer 3: the GPU kernels against the f64 CPU reference on seeded random inputs, over
//! N in {1, 7, 255, 257, 1757} × C in {1, 2, 3, 31, 1000, 4099, 50257}: sizes that are 1,
//! around the 256 and 8 of workgroups and subgroups, odd, and past one storage binding
//! (1757 × 50257 f32 is 353 MB, so it runs in several chunks on lavapipe's 128 MiB).
//!
//! The reference is `Backend::Reference`: f64 math rounded to f32 at the end (~6e-8
//! relative, far inside ROW_LOSS and REDUCED); its f64 rows themselves are checked against
//! PyTorch in the families' `reference_tests.rs` unit tests (`src/losses/*/reference_tests.rs`).

mod common;

use common::{assert_close, gpu, Rng, REDUCED, ROW_LOSS};
use wgpu_loss::{Backend, Batch, CrossEntropy, Loss, Reduction, Targets};

const ROWS: [usize; 5] = [1, 7, 255, 257, 1757];
const CLASSES: [usize; 7] = [1, 2, 3, 31, 1000, 4099, 50257];

/// One configuration per (rows, classes), rotating through the options so every option
/// meets every size class somewhere in the matrix.
fn config(index: usize, classes: usize, rng: &mut Rng) -> CrossEntropy {
    let weights: Vec<f32> = (0..classes).map(|_| rng.uniform(0.0, 2.0)).collect();
    match index % 4 {
        0 => CrossEntropy::default(),
        1 => CrossEntropy::default().weight(&weights),
        2 => CrossEntropy::default().label_smoothing(0.1),
        _ => CrossEntropy::default()
            .weight(&weights)
            .label_smoothing(0.3)
            .ignore_index(0),
    }
}

#[test]
fn matrix_matches_the_cpu_reference() {
    let ctx = gpu();
    let mut index = 0;
    for &rows in &ROWS {
        for &classes in &CLASSES {
            let mut rng = Rng::new((rows * 100_003 + classes) as u64);
            let logits = rng.logits(rows * classes, 8.0);
            let loss = config(index, classes, &mut rng);
            index += 1;
            // Every 5th row ignored, the rest uniform over the classes.
            let targets: Vec<i64> = (0..rows)
                .map(|r| {
                    if r % 5 == 4 {
                        loss.ignore_index
                    } else {
                        rng.below(classes) as i64
                    }
                })
                .collect();
            let what = format!(
                "{rows}x{classes} (weighted {}, smoothing {}, ignore {})",
                loss.weight.is_some(),
                loss.label_smoothing,
                loss.ignore_index
            );
            let batch = Batch::new(&logits, [rows, classes], &targets);
            let reference = |reduction: Reduction| -> Vec<f64> {
                let value = loss
                    .clone()
                    .reduction(reduction)
                    .forward(Backend::Reference, &batch)
                    .expect("reference");
                value.values().iter().map(|&v| f64::from(v)).collect()
            };

            let none = loss
                .clone()
                .reduction(Reduction::None)
                .forward(Backend::Gpu(ctx), &batch)
                .expect("none");
            assert_close(
                &format!("{what} none"),
                none.values(),
                &reference(Reduction::None),
                ROW_LOSS,
            );
            let sum = loss
                .clone()
                .reduction(Reduction::Sum)
                .forward(Backend::Gpu(ctx), &batch)
                .expect("sum");
            assert_close(
                &format!("{what} sum"),
                sum.values(),
                &reference(Reduction::Sum),
                REDUCED,
            );
            let mean = loss
                .clone()
                .reduction(Reduction::Mean)
                .forward(Backend::Gpu(ctx), &batch)
                .expect("mean");
            assert_close(
                &format!("{what} mean"),
                mean.values(),
                &reference(Reduction::Mean),
                REDUCED,
            );
        }
    }
}

#[test]
fn i32_targets_give_the_i64_result_bit_for_bit() {
    let ctx = gpu();
    let (rows, classes) = (257, 31);
    let mut rng = Rng::new(7);
    let logits = rng.logits(rows * classes, 4.0);
    let t64: Vec<i64> = (0..rows)
        .map(|r| if r % 9 == 0 { -100 } else { rng.below(classes) as i64 })
        .collect();
    let t32: Vec<i32> = t64.iter().map(|&t| t as i32).collect();
    let loss = CrossEntropy::default().label_smoothing(0.2).reduction(Reduction::None);
    let a = loss
        .forward(Backend::Gpu(ctx), &Batch::new(&logits, [rows, classes], &t64))
        .expect("i64");
    let b = loss
        .forward(
            Backend::Gpu(ctx),
            &Batch::new(&logits, [rows, classes], Targets::I32(&t32)),
        )
        .expect("i32");
    assert_eq!(a, b);
}

#[test]
fn results_are_bit_identical_across_runs() {
    let ctx = gpu();
    let (rows, classes) = (1757, 1000);
    let mut rng = Rng::new(11);
    let logits = rng.logits(rows * classes, 10.0);
    let targets: Vec<i64> = (0..rows).map(|_| rng.below(classes) as i64).collect();
    for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
        let loss = CrossEntropy::default().label_smoothing(0.1).reduction(reduction);
        let batch = Batch::new(&logits, [rows, classes], &targets);
        let first = loss.forward(Backend::Gpu(ctx), &batch).expect("first");
        for _ in 0..3 {
            let again = loss.forward(Backend::Gpu(ctx), &batch).expect("again");
            let same = first
                .values()
                .iter()
                .zip(again.values())
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{reduction:?}: results differ between runs");
        }
    }
}
