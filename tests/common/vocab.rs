//! Shared by the vocab-parallel CLI tests (in process, and over MPI): the files every run
//! reads, the option sets every shard count runs with, and the comparison of a sharded
//! run's outputs with the unsharded run's.

use std::path::{Path, PathBuf};

use wgpu_loss::npy::{self, NpyData};
use wgpu_loss::VocabShard;

use super::{assert_close, Rng, GRAD_TOLERANCE, REDUCED, ROW_LOSS};

pub const ROWS: usize = 29;
pub const CLASSES: usize = 41;

/// Every even shard of `classes` for every shard count from 1 to `counts`: `(count, k,
/// shard k of count)`.
fn every_shard(classes: usize, counts: usize) -> impl Iterator<Item = (usize, usize, VocabShard)> {
    (1..=counts).flat_map(move |count| {
        (0..count).map(move |k| (count, k, VocabShard::even(classes, count, k).expect("a shard")))
    })
}

/// Each shard's first and last class, for every shard count from 1 to `counts` of
/// `classes` (even shards): targets that fall in every shard and on both its edges.
pub fn shard_edges(classes: usize, counts: usize) -> Vec<i64> {
    every_shard(classes, counts)
        .flat_map(|(_, _, shard)| [shard.start() as i64, shard.end() as i64 - 1])
        .collect()
}

/// Fails unless every shard of every count up to `counts` holds a target of a row not
/// ignored (the test data's promise).
pub fn assert_every_shard_has_a_target(targets: &[i64], classes: usize, counts: usize) {
    for (count, k, shard) in every_shard(classes, counts) {
        let range = shard.start() as i64..shard.end() as i64;
        assert!(
            targets.iter().any(|t| range.contains(t)),
            "no target in shard {k} of {count} ({range:?})"
        );
    }
}

/// Logits `x.npy [29, 41]`, targets `t.npy` (int64, two ignored rows; the first class of
/// every shard of every count up to 5, then its last where rows remain), class weights
/// `w.npy` in a fresh folder.
pub fn files(suite: &str, name: &str) -> PathBuf {
    let dir = super::scratch(suite, name);
    let mut rng = Rng::new(77);
    let logits = rng.logits(ROWS * CLASSES, 5.0);
    let edges = shard_edges(CLASSES, 5);
    let firsts = edges.iter().step_by(2);
    let lasts = edges.iter().skip(1).step_by(2);
    let mut targets: Vec<i64> = firsts.chain(lasts).copied().take(ROWS).collect();
    // Rows 3 and 10 held class 0 again (shard 0 of K = 3 and K = 5).
    targets[3] = -100;
    targets[10] = -100;
    assert_every_shard_has_a_target(&targets, CLASSES, 5);
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
    let mut args: Vec<String> = super::cli::compute("cross-entropy", "x.npy", Some("t.npy"), options)
        .iter()
        .map(|s| s.to_string())
        .collect();
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
