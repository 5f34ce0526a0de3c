//! The command line: argument types (`args`), the loss families as the CLI names them
//! (`family`), host data it owns (`data`), and the two subcommands.

mod args;
mod bench;
mod compute;
mod data;
mod device;
mod family;

pub use args::Cli;
use args::Command;

/// Runs the command; the error is the one line to print.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Compute(args) => compute::run(*args),
        Command::Bench(args) => bench::run(args),
    }
}
