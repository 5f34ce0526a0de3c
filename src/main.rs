//! `wgpu-loss`: compute a loss from `.npy` files (`compute`), or compare GPU and CPU on
//! generated data (`bench`). Errors end the program with one line on stderr and exit 1.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let runtime_dir = quiet_wayland_probe();
    let code = run();
    // The private runtime folder goes with the process (no litter in the temp folder).
    if let Some(dir) = runtime_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    code
}

/// Parses the arguments and runs the command: exit 0, 1 for an error, 2 for bad arguments.
fn run() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{err}");
                return ExitCode::SUCCESS;
            }
            // clap's own rendering spans several lines; the contract is one line: its first
            // paragraph joined (which names the flag, the value and the values allowed).
            let text = err.to_string();
            let first: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
            eprintln!(
                "{}",
                if first.is_empty() {
                    "error: bad arguments".into()
                } else {
                    first.join(" ")
                }
            );
            return ExitCode::from(2);
        }
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Mesa's Vulkan loader probes Wayland when the instance is created and, with no
/// XDG_RUNTIME_DIR, prints "error: XDG_RUNTIME_DIR is invalid or not set" to stderr,
/// which would break the one-line error contract. Point it at a private temp folder, which
/// is returned so that `main` removes it at exit.
fn quiet_wayland_probe() -> Option<std::path::PathBuf> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("wgpu-loss-xdg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    // Single-threaded here: nothing else reads the environment yet.
    std::env::set_var("XDG_RUNTIME_DIR", &dir);
    Some(dir)
}
