//! The ceilings a loss's speed is stated against, measured in the same run as the loss
//! (as GPU engineers do with a bandwidth-test kernel): the adapter's streaming-read rate
//! ([`gpu_read`]), its read+write rate ([`gpu_copy`]), and the host's read rate with every
//! thread ([`host_read`]). All in GB/s (10^9 bytes per second) of the bytes they touch.
//!
//! Where a loss stays below its ceiling, two more say why: the rate of the loss's loads
//! alone on its shape ([`gpu_rows_read`], [`gpu_loss_loads`]: a pattern the adapter cannot stream), and the
//! rate of exp and log on each side ([`gpu_exp_rate`], [`gpu_log_rate`], [`host_exp_rate`],
//! [`host_log_rate`]:
//! math the side computes slowly). A matrix product (the fused linear cross-entropy) is
//! stated against each side's multiply-add rate ([`gpu_fma_rate`], [`host_fma_rate`]), with the
//! rate of our matrix product alone beside it ([`gpu_matmul_rate`]).
//!
//! ```no_run
//! # fn main() -> wgpu_loss::Result<()> {
//! let ctx = wgpu_loss::GpuContext::new_blocking()?;
//! let read = wgpu_loss::ceiling::gpu_read(&ctx, 64 << 20)?;   // GB/s reading 64 MiB
//! let host = wgpu_loss::ceiling::host_read(64 << 20);         // GB/s, all threads
//! println!("device {read:.1} GB/s, host {host:.1} GB/s");
//! # Ok(()) }
//! ```

mod gpu;
mod host;

pub use gpu::{
    gpu_copy, gpu_exp_rate, gpu_fma_rate, gpu_log_rate, gpu_loss_loads, gpu_matmul_rate, gpu_read, gpu_rows_read,
};
pub use host::{host_exp_rate, host_fma_rate, host_log_rate, host_read};
