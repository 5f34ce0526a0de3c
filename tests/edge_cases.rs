//! The edge cases of SEMANTICS.md on both backends: NaN stays in its row, empty batches,
//! all-equal rows, huge logits at large C.

mod common;

use common::{assert_close, gpu, ROW_LOSS};
use wgpu_loss::{Backend, Batch, CrossEntropy, Loss, LossValue, Reduction};

fn both(loss: &CrossEntropy, logits: &[f32], rows: usize, classes: usize, targets: &[i64]) -> [LossValue; 2] {
    let batch = Batch::new(logits, [rows, classes], targets);
    [
        loss.forward(Backend::Gpu(gpu()), &batch).expect("gpu"),
        loss.forward(Backend::Reference, &batch).expect("cpu"),
    ]
}

#[test]
fn nan_stays_in_its_row() {
    let classes = 300;
    let mut logits: Vec<f32> = (0..3 * classes).map(|i| (i % 17) as f32 * 0.25).collect();
    logits[classes + 123] = f32::NAN; // row 1, not the target class
    let targets = [5, 7, 9];
    for value in both(
        &CrossEntropy::default().reduction(Reduction::None),
        &logits,
        3,
        classes,
        &targets,
    ) {
        let v = value.values();
        assert!(v[0].is_finite() && v[2].is_finite(), "{v:?}");
        assert!(v[1].is_nan(), "{v:?}");
    }
    for value in both(&CrossEntropy::default(), &logits, 3, classes, &targets) {
        assert!(value.scalar().expect("scalar").is_nan());
    }
    // A NaN in an ignored row does not reach the mean.
    let ignored = [5, -100, 9];
    let [gpu_mean, cpu_mean] = both(&CrossEntropy::default(), &logits, 3, classes, &ignored);
    assert!(gpu_mean.scalar().expect("gpu").is_finite());
    assert_close(
        "ignored NaN row",
        gpu_mean.values(),
        &[f64::from(cpu_mean.values()[0])],
        ROW_LOSS,
    );
}

#[test]
fn empty_batch() {
    for (reduction, check) in [
        (
            Reduction::None,
            (|v: &LossValue| v.values().is_empty()) as fn(&LossValue) -> bool,
        ),
        (Reduction::Sum, |v: &LossValue| v.scalar() == Some(0.0)),
        (Reduction::Mean, |v: &LossValue| v.scalar().is_some_and(f32::is_nan)),
    ] {
        for value in both(&CrossEntropy::default().reduction(reduction), &[], 0, 5, &[]) {
            assert!(check(&value), "{reduction:?}: {value:?}");
        }
    }
}

#[test]
fn all_equal_rows_give_log_c() {
    for classes in [1, 2, 31, 4099, 50257] {
        for level in [0.0_f32, 1e4, -1e4] {
            let logits = vec![level; 2 * classes];
            let want = (classes as f64).ln();
            for value in both(
                &CrossEntropy::default().reduction(Reduction::None),
                &logits,
                2,
                classes,
                &[0, (classes - 1) as i64],
            ) {
                assert_close(
                    &format!("C={classes} level={level}"),
                    value.values(),
                    &[want, want],
                    ROW_LOSS,
                );
            }
        }
    }
}

#[test]
fn huge_logits_at_large_c_stay_finite() {
    let classes = 50257;
    let mut logits = vec![0.0_f32; classes];
    logits[17] = 1e4;
    logits[40000] = -1e4;
    let [gpu_value, cpu_value] = both(
        &CrossEntropy::default().reduction(Reduction::None),
        &logits,
        1,
        classes,
        &[40000],
    );
    let want = f64::from(cpu_value.values()[0]);
    assert!((want - 2e4).abs() < 1e-2, "{want}");
    assert_close("1e4 logits", gpu_value.values(), &[want], ROW_LOSS);
    let [gpu_value, _] = both(
        &CrossEntropy::default().reduction(Reduction::None),
        &logits,
        1,
        classes,
        &[17],
    );
    assert_eq!(gpu_value.values(), &[0.0]);
}
