//! `compute --vocab-shards K`: the in-process shards give the unsharded run's outputs for
//! every option and K = 1…5 on both backends; bad sharding requests are one line and leave
//! no file. (`--vocab-parallel mpi` runs in `tests/vocab_mpi.rs`, built with the feature.)

mod common;

use std::path::Path;

use common::vocab::{args, assert_same_outputs, files, option_sets, CLASSES};

/// Runs the binary in `dir` and fails with its stderr unless it succeeds.
fn run_ok(dir: &Path, args: &[String]) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = common::cli::output(dir, &refs);
    assert!(
        out.status.success(),
        "wgpu-loss {refs:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn vocab_shards_give_the_unsharded_outputs() {
    let dir = files("vocab-cli", "shards");
    for (i, options) in option_sets().iter().enumerate() {
        for backend in ["gpu", "cpu"] {
            let mut with_backend = options.clone();
            with_backend.extend(["--backend", backend]);
            let base = format!("base{i}-{backend}");
            run_ok(&dir, &args(&with_backend, &base));
            for count in 1..=5 {
                let k = count.to_string();
                let mut sharded = with_backend.clone();
                sharded.extend(["--vocab-shards", k.as_str()]);
                let tag = format!("k{count}-{i}-{backend}");
                run_ok(&dir, &args(&sharded, &tag));
                assert_same_outputs(&dir, &base, &tag, &format!("{options:?} on {backend}, K = {count}"));
            }
        }
    }
}

#[test]
fn bad_sharding_is_one_line_and_leaves_no_file() {
    let dir = files("vocab-cli", "bad");
    let probabilities = vec![1.0 / CLASSES as f32; common::vocab::ROWS * CLASSES];
    wgpu_loss::npy::write_f32(dir.join("p.npy"), &[common::vocab::ROWS, CLASSES], &probabilities).expect("p");
    wgpu_loss::npy::write_f32(dir.join("x3.npy"), &[common::vocab::ROWS, CLASSES, 1], &probabilities).expect("x3");
    let too_many = (CLASSES + 1).to_string();
    let cases: Vec<(&str, &str, Vec<&str>, &str)> = vec![
        ("x.npy", "t.npy", vec!["--vocab-shards", "0"], "at least 1"),
        (
            "x.npy",
            "t.npy",
            vec!["--vocab-shards", too_many.as_str()],
            "more shards than",
        ),
        (
            "x.npy",
            "t.npy",
            vec!["--vocab-shards", "2", "--vocab-parallel", "mpi"],
            "give one",
        ),
        ("x.npy", "p.npy", vec!["--vocab-shards", "2"], "class-index targets"),
        ("x3.npy", "t.npy", vec!["--vocab-shards", "2"], "[N, C]"),
        (
            "x.npy",
            "t.npy",
            vec!["--vocab-shards", "2", "--input-kind", "probs"],
            "logits",
        ),
    ];
    for (input, target, extra, says) in cases {
        let mut argv = common::cli::compute("cross-entropy", input, Some(target), &extra);
        argv.extend(["--out", "never.npy"]);
        let (code, stderr) = common::cli::run(&dir, &argv);
        assert_ne!(code, Some(0), "{argv:?} succeeded");
        assert_eq!(stderr.trim().lines().count(), 1, "{argv:?}: {stderr}");
        assert!(stderr.contains(says), "{argv:?}: want `{says}` in {stderr}");
        assert!(!dir.join("never.npy").exists(), "{argv:?} wrote --out");
    }
    let nll = common::cli::compute("nll", "x.npy", Some("t.npy"), &["--vocab-shards", "2"]);
    let (code, stderr) = common::cli::run(&dir, &nll);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("does not take --vocab-shards"), "{stderr}");
    if !cfg!(feature = "mpi") {
        let mpi = common::cli::compute("cross-entropy", "x.npy", Some("t.npy"), &["--vocab-parallel", "mpi"]);
        let (code, stderr) = common::cli::run(&dir, &mpi);
        assert_eq!(code, Some(1));
        assert!(stderr.contains("--features mpi"), "{stderr}");
    }
}
