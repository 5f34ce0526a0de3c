//! Where `compute` runs: the GPU context it made, or a CPU backend.

use wgpu_loss::{Backend, GpuContext};

use crate::cli::args::BackendArg;

/// Where `compute` runs: on the GPU context it made, or on a CPU backend.
pub enum Runner {
    Gpu(Box<GpuContext>),
    Cpu,
    Reference,
}

impl Runner {
    /// Makes the GPU context if `--backend gpu` asks for it.
    pub fn new(arg: BackendArg) -> Result<Self, String> {
        Self::of_process(arg, None)
    }

    /// [`Runner::new`] for one of several processes of this machine (`local_rank`: its
    /// GPU is the adapters' `local_rank mod k`-th).
    pub fn of_process(arg: BackendArg, local_rank: Option<usize>) -> Result<Self, String> {
        Ok(match arg {
            BackendArg::Gpu => Runner::Gpu(Box::new(match local_rank {
                Some(rank) => crate::cli::device::local_gpu_context(rank)?,
                None => crate::cli::device::gpu_context()?,
            })),
            BackendArg::Cpu => Runner::Cpu,
            BackendArg::Reference => Runner::Reference,
        })
    }

    /// The backend to run on.
    pub fn backend(&self) -> Backend<'_> {
        match self {
            Runner::Gpu(ctx) => Backend::Gpu(ctx),
            Runner::Cpu => Backend::Cpu,
            Runner::Reference => Backend::Reference,
        }
    }
}
