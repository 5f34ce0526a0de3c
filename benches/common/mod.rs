//! Generated inputs shared by the criterion benches.

/// Reproducible logits in [-8, 8) and class-index targets for `rows` × `classes`.
pub fn generated(rows: usize, classes: usize) -> (Vec<f32>, Vec<i64>) {
    let mut state = (rows * 1_000_003 + classes) as u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let logits = (0..rows * classes)
        .map(|_| (next() % 2000) as f32 / 125.0 - 8.0)
        .collect();
    let targets = (0..rows).map(|_| (next() % classes as u64) as i64).collect();
    (logits, targets)
}
