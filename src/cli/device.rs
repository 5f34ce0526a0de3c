//! The GPU the CLI runs on.

/// Creates the GPU context, or explains why there is none.
pub(crate) fn gpu_context() -> Result<wgpu_loss::GpuContext, String> {
    wgpu_loss::GpuContext::new_blocking().map_err(|e| e.to_string())
}
