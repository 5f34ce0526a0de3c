//! `mpirun -np G wgpu-loss compute … --vocab-parallel mpi` (G = 2, 3): every option gives
//! the unsharded run's outputs, rank 0 alone reports, a bad input stops every rank with
//! one error each and no file, and one rank failing alone — an error, or a panic — ends
//! the job (no rank left waiting in a collective) with no file. Built only with
//! `--features mpi` (`scripts/test_mpi.sh`, which `.ci/run` runs after installing MPI);
//! without `mpirun` it fails, it never skips.
#![cfg(feature = "mpi")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::vocab::{args, assert_same_outputs, files, option_sets};

/// `mpirun` with `contexts`, each `(ranks, environment, args)` of `wgpu-loss` (several:
/// MPMD, `a : b`, so that one rank can differ), in `dir`; the job killed after 120 s (a
/// hang fails the test).
fn mpirun_each(dir: &Path, contexts: &[(usize, &[&str], &[String])]) -> Output {
    let mut command = Command::new("mpirun");
    command
        .current_dir(dir)
        .args(["--allow-run-as-root", "--oversubscribe"]);
    for (i, (ranks, env, args)) in contexts.iter().enumerate() {
        if i > 0 {
            command.arg(":");
        }
        command.args(["-np", &ranks.to_string(), "env"]).args(*env);
        command.arg(common::cli::BIN).args(*args);
    }
    assert!(
        Command::new("mpirun").arg("--version").output().is_ok(),
        "mpirun is needed for the MPI tests (apt-get install openmpi-bin libopenmpi-dev)"
    );
    common::cli::limited(command, 120, &format!("mpirun {contexts:?}"))
}

/// `mpirun -np <ranks> wgpu-loss <args>` in `dir`.
fn mpirun(dir: &Path, ranks: usize, args: &[String]) -> Output {
    mpirun_each(dir, &[(ranks, &[], args)])
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
    let extra = [
        "--vocab-parallel",
        "mpi",
        "--out",
        "never.npy",
        "--grad-out",
        "never_grad.npy",
    ];
    let argv: Vec<String> = common::cli::compute("cross-entropy", "x.npy", Some("bad.npy"), &extra)
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

/// The arguments of a sharded run of the test files writing `never.npy` / `never_grad.npy`.
fn never_written(extra: &[&str]) -> Vec<String> {
    let mut argv = args(&["--vocab-parallel", "mpi"], "never");
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv
}

fn assert_nothing_written(dir: &Path) {
    for name in ["never.loss.npy", "never.grad.npy"] {
        assert!(!dir.join(name).exists(), "{name} was written by a failed job");
    }
}

/// Rank 1 alone cannot open its GPU (its `WGPU_ADAPTER_NAME` names no adapter): it reports
/// why, rank 0 reports that another rank failed, the job fails and writes nothing.
#[test]
fn one_rank_failing_stops_the_others() {
    let dir = files("vocab-mpi", "one-fails");
    let argv = never_written(&["--backend", "gpu"]);
    let out = mpirun_each(
        &dir,
        &[(1, &[], &argv), (1, &["WGPU_ADAPTER_NAME=no-such-adapter"], &argv)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rank 1 of 2: ") && stderr.contains("no-such-adapter"),
        "{stderr}"
    );
    assert!(stderr.contains("rank 0 of 2: another rank failed"), "{stderr}");
    assert_nothing_written(&dir);
}

/// Rank 1 alone panics after the others entered the job's collectives (the fail point
/// `WGPU_LOSS_TEST_PANIC`, in debug builds only: so is the test): the panic aborts the whole job, it does not leave rank 0
/// waiting, and nothing is written.
#[test]
#[cfg(debug_assertions)]
fn one_rank_panicking_ends_the_job() {
    let dir = files("vocab-mpi", "one-panics");
    let argv = never_written(&[]);
    let out = mpirun_each(&dir, &[(1, &[], &argv), (1, &["WGPU_LOSS_TEST_PANIC=partials"], &argv)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("a test's panic in this rank's partials step"),
        "{stderr}"
    );
    assert_nothing_written(&dir);
}
