//! Running the built binary from a test: with a time limit (a hang is a failure, not a stuck
//! suite), and the one-line refusal every bad input must get.

use std::path::Path;
use std::process::Command;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_wgpu-loss");

/// `compute --loss <loss> --input <input> [--target <target>] <extra>`.
pub fn compute<'a>(loss: &'a str, input: &'a str, target: Option<&'a str>, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["compute", "--loss", loss, "--input", input];
    if let Some(target) = target {
        args.extend(["--target", target]);
    }
    args.extend_from_slice(extra);
    args
}

/// Runs the binary in `dir`: its exit code and stderr.
pub fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = output(dir, args);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs the binary in `dir` (with a 60 s limit: a hang is a failure, not a stuck suite).
pub fn output(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("wgpu-loss {args:?} hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Fails with exit 1 and exactly one line on stderr that contains `want`.
#[track_caller]
pub fn refused(dir: &Path, args: &[&str], want: &str) {
    refused_with(1, dir, args, want);
}

/// Arguments the parser refuses: exit 2 (as clap's), exactly one line that contains `want`.
#[track_caller]
pub fn misused(dir: &Path, args: &[&str], want: &str) {
    refused_with(2, dir, args, want);
}

#[track_caller]
fn refused_with(exit: i32, dir: &Path, args: &[&str], want: &str) {
    let (code, stderr) = run(dir, args);
    assert_eq!(code, Some(exit), "{args:?} should fail with exit {exit}: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: one line on stderr, got {stderr:?}"
    );
    assert!(stderr.contains(want), "{args:?}: {stderr:?} should say {want:?}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
}
