//! `mpirun -np G wgpu-loss compute … --vocab-parallel mpi` (G = 2, 3): every option gives
//! the unsharded run's outputs, rank 0 alone reports, and a bad input stops every rank
//! with one error each and no file. Built only with `--features mpi` (`scripts/test_mpi.sh`,
//! which `.ci/run` runs after installing MPI); without `mpirun` it fails, it never skips.
#![cfg(feature = "mpi")]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::vocab::{args, assert_same_outputs, files, option_sets};

/// `mpirun -np <ranks> wgpu-loss <args>` in `dir`, killed after 120 s (a hang fails).
fn mpirun(dir: &Path, ranks: usize, args: &[String]) -> Output {
    let mut child = Command::new("mpirun")
        .current_dir(dir)
        .args(["--allow-run-as-root", "--oversubscribe", "-np", &ranks.to_string()])
        .arg(common::cli::BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("mpirun is needed for the MPI tests (apt-get install openmpi-bin libopenmpi-dev): {e}")
        });
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("mpirun -np {ranks} wgpu-loss {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn ranks_give_the_unsharded_outputs_for_every_option() {
    let dir = files("vocab-mpi", "options");
    for (i, options) in option_sets().iter().enumerate() {
        let base = format!("base{i}");
        let refs: Vec<String> = args(options, &base);
        let plain: Vec<&str> = refs.iter().map(String::as_str).collect();
        let out = common::cli::output(&dir, &plain);
        assert!(
            out.status.success(),
            "{plain:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for ranks in [2, 3] {
            let tag = format!("mpi{ranks}-{i}");
            let mut sharded = options.clone();
            sharded.extend(["--vocab-parallel", "mpi"]);
            let out = mpirun(&dir, ranks, &args(&sharded, &tag));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{ranks} ranks, {options:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(stdout.trim().lines().count(), 1, "rank 0 alone reports: {stdout}");
            assert_same_outputs(&dir, &base, &tag, &format!("{options:?} over {ranks} ranks"));
        }
    }
}

#[test]
fn a_bad_input_stops_every_rank_and_writes_nothing() {
    let dir = files("vocab-mpi", "bad");
    let bad: Vec<i64> = (0..common::vocab::ROWS as i64)
        .map(|n| if n == 4 { 99 } else { n % 7 })
        .collect();
    let header = format!(
        "{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}",
        bad.len()
    );
    common::npy_with_header(&dir.join("bad.npy"), &header, bytemuck::cast_slice(&bad));
    let argv: Vec<String> = [
        "compute",
        "--loss",
        "cross-entropy",
        "--input",
        "x.npy",
        "--target",
        "bad.npy",
        "--vocab-parallel",
        "mpi",
        "--out",
        "never.npy",
        "--grad-out",
        "never_grad.npy",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = mpirun(&dir, 3, &argv);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for rank in 0..3 {
        assert!(
            stderr.contains(&format!("rank {rank} of 3: target 99 at row 4")),
            "{stderr}"
        );
    }
    assert!(!dir.join("never.npy").exists() && !dir.join("never_grad.npy").exists());
}
