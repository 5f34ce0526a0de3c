//! Shared by the vocab-parallel CLI tests (in process, and over MPI): the files every run
//! reads, the option sets every shard count runs with, and the comparison of a sharded
//! run's outputs with the unsharded run's.

use std::path::{Path, PathBuf};

use wgpu_loss::npy::{self, NpyData};

use super::{assert_close, Rng, GRAD_TOLERANCE, REDUCED, ROW_LOSS};

pub const ROWS: usize = 29;
pub const CLASSES: usize = 41;

/// Logits `x.npy [29, 41]`, targets `t.npy` (int64, two ignored rows, one in every shard
/// of every count up to 5), class weights `w.npy` in a fresh folder.
pub fn files(suite: &str, name: &str) -> PathBuf {
    let dir = super::scratch(suite, name);
    let mut rng = Rng::new(77);
    let logits = rng.logits(ROWS * CLASSES, 5.0);
    let mut targets = rng.targets(ROWS, CLASSES);
    for (n, t) in targets.iter_mut().enumerate().take(8) {
        *t = [0, 40, 8, 9, 16, 17, -100, 33][n];
    }
    targets[20] = -100;
    let weight: Vec<f32> = (0..CLASSES).map(|_| rng.uniform(0.3, 2.0)).collect();
    npy::write_f32(dir.join("x.npy"), &[ROWS, CLASSES], &logits).expect("x");
    let header = format!("{{'descr': '<i8', 'fortran_order': False, 'shape': ({ROWS},), }}");
    super::npy_with_header(&dir.join("t.npy"), &header, bytemuck::cast_slice(&targets));
    npy::write_f32(dir.join("w.npy"), &[CLASSES], &weight).expect("w");
    dir
}

/// The option sets (every cross-entropy option, the reductions).
pub fn option_sets() -> Vec<Vec<&'static str>> {
    vec![
        vec![],
        vec!["--reduction", "sum"],
        vec!["--reduction", "none"],
        vec!["--weight", "w.npy"],
        vec!["--label-smoothing", "0.2"],
        vec!["--z-loss", "0.01", "--softcap", "3"],
        vec![
            "--weight",
            "w.npy",
            "--label-smoothing",
            "0.1",
            "--z-loss",
            "0.001",
            "--softcap",
            "4",
            "--ignore-index",
            "-100",
            "--reduction",
            "none",
        ],
    ]
}

/// `compute --loss cross-entropy` on the files with `options`, writing `<tag>.loss.npy`
/// and `<tag>.grad.npy`.
pub fn args(options: &[&str], tag: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "compute",
        "--loss",
        "cross-entropy",
        "--input",
        "x.npy",
        "--target",
        "t.npy",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(options.iter().map(|s| s.to_string()));
    args.extend([
        "--out".into(),
        format!("{tag}.loss.npy"),
        "--grad-out".into(),
        format!("{tag}.grad.npy"),
    ]);
    args
}

fn floats(path: &Path) -> Vec<f32> {
    match npy::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .data
    {
        NpyData::F32(v) => v,
        other => panic!("{}: {}", path.display(), other.dtype_name()),
    }
}

/// A sharded run's outputs `<tag>.*` against the unsharded run's `<base>.*`.
pub fn assert_same_outputs(dir: &Path, base: &str, tag: &str, what: &str) {
    let want_loss: Vec<f64> = floats(&dir.join(format!("{base}.loss.npy")))
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let tol = if want_loss.len() == 1 { REDUCED } else { ROW_LOSS };
    assert_close(
        &format!("{what}: loss"),
        &floats(&dir.join(format!("{tag}.loss.npy"))),
        &want_loss,
        tol,
    );
    let want_grad: Vec<f64> = floats(&dir.join(format!("{base}.grad.npy")))
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    assert_close(
        &format!("{what}: grad"),
        &floats(&dir.join(format!("{tag}.grad.npy"))),
        &want_grad,
        GRAD_TOLERANCE,
    );
}
