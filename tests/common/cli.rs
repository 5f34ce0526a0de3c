//! Running the built binary from a test: with a time limit (a hang is a failure, not a stuck
//! suite), and the one-line refusal every bad input must get.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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
pub fn output(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.current_dir(dir).args(args);
    limited(command, 60, &format!("wgpu-loss {args:?}"))
}

/// Runs `command` with its output captured, in a process group of its own: past
/// `seconds` it is stopped ([`stop`]) and the test fails. The pipes are drained while it
/// runs, so a chatty child never blocks on a full pipe.
pub fn limited(mut command: Command, seconds: u64, what: &str) -> Output {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let mut child = command
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(seconds) {
            stop(&mut child);
            panic!("{what} hung (stopped after {seconds} s)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    }
}

/// Ends a hung child: SIGTERM first (`mpirun` then ends its ranks, which Open MPI starts
/// in process groups of their own), SIGKILL to the child's group after 5 s, and to the
/// child alone where no `kill` command is found.
fn stop(child: &mut Child) {
    let signal = |signal: &str, target: String| {
        Command::new("kill")
            .args([signal, "--", &target])
            .status()
            .is_ok_and(|status| status.success())
    };
    signal("-TERM", child.id().to_string());
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The group's id is the child's pid (`process_group(0)`).
    if !signal("-KILL", format!("-{}", child.id())) {
        let _ = child.kill();
    }
    let _ = child.wait();
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
