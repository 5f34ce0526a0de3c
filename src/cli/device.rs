//! The GPU the CLI runs on.

/// Creates the GPU context, or explains why there is none.
pub(crate) fn gpu_context() -> Result<wgpu_loss::GpuContext, String> {
    wgpu_loss::GpuContext::new_blocking().map_err(|e| e.to_string())
}

/// The GPU context of one process of several on this machine (an MPI rank's local rank):
/// the adapters of the default one's kind, round robin.
pub(crate) fn local_gpu_context(local_rank: usize) -> Result<wgpu_loss::GpuContext, String> {
    wgpu_loss::GpuContext::new_nth_blocking(local_rank).map_err(|e| e.to_string())
}
