//! The command line: argument types and dispatch.

mod bench;
mod compute;

use clap::{Parser, Subcommand, ValueEnum};

/// Loss functions on the GPU (WGSL through wgpu), checked against an f64 CPU reference.
#[derive(Debug, Parser)]
#[command(name = "wgpu-loss", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compute a loss from NumPy .npy files.
    Compute(compute::ComputeArgs),
    /// Time cross-entropy on generated data on GPU and CPU, checking one against the other.
    Bench(bench::BenchArgs),
}

/// Which implementation computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The WGSL kernels through wgpu.
    Gpu,
    /// The fast CPU backend (multi-threaded f32, vectorisable exp and ln).
    Cpu,
    /// The f64 CPU reference.
    Reference,
}

/// Runs the command; the error is the one line to print.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Compute(args) => compute::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

/// Creates the GPU context, or explains why there is none.
fn gpu_context() -> Result<wgpu_loss::GpuContext, String> {
    wgpu_loss::GpuContext::new_blocking().map_err(|e| e.to_string())
}
