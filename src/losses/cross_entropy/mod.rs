//! Cross-entropy and NLL (`F.cross_entropy`, `F.nll_loss`).
//!
//! `options.rs` the builder → `check.rs` validation into `spec.rs` (what every backend
//! sees) → `reference.rs` (f64) / `fast.rs` (f32 CPU) through `cpu.rs`, or the GPU:
//! `host.rs` (uploads, groups, readback) over `gpu.rs` (the recording: `rows.rs` pass 1
//! beside `shaders/cross_entropy.wgsl`, `grad.rs` pass 2 beside
//! `shaders/cross_entropy_grad.wgsl`). This file wires them into the `Loss` trait.

pub(crate) mod check;
pub(crate) mod cpu;
pub(crate) mod fast;
pub(crate) mod gpu;
mod grad;
pub(crate) mod host;
mod options;
pub(crate) mod reference;
mod rows;
pub(crate) mod shard;
pub(crate) mod spec;
mod windows;

use crate::api::buffers::{BatchAt, Outputs};
use crate::api::host::{Batch, ForwardBackward, Upstream};
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::io::Waiting;
use crate::losses::{Backend, Loss};

use cpu::HostRows;
pub use options::{CrossEntropy, DEFAULT_EPSILON};
pub use shard::ShardBatch;

impl CrossEntropy {
    /// Validates `batch` (and the upstream) and runs it on `backend`; a GPU readback waits
    /// as `waiting` says.
    async fn run(
        &self,
        backend: Backend<'_>,
        batch: &Batch<'_>,
        upstream: Option<Upstream<&[f32]>>,
        waiting: Waiting,
    ) -> Result<ForwardBackward> {
        let axis = self.check_batch(batch, upstream)?;
        let (rows, classes, inner) = (axis.rows, axis.classes, axis.inner);
        let spec = self.spec();
        let rows_of = |input| HostRows {
            input,
            rows,
            classes,
            targets: batch.targets,
        };
        let mut result = match backend {
            Backend::Gpu(ctx) => {
                let call = host::HostCall {
                    input: batch.input,
                    rows,
                    classes,
                    inner,
                    targets: batch.targets,
                    grad: upstream,
                    waiting,
                    shard: None,
                };
                host::forward_host(ctx, &spec, &call).await?
            }
            Backend::Cpu => cpu::along_classes(&spec, &rows_of(&batch.input.to_f32()), inner, upstream, cpu::fast),
            Backend::Reference => {
                cpu::along_classes(&spec, &rows_of(&batch.input.to_f32()), inner, upstream, cpu::reference)
            }
        };
        // `none` has the input's shape without its class axis: [N], [N, d1, …], or 0-d for
        // an unbatched [C].
        result.loss = result.loss.with_tensor_shape(axis.row_shape());
        Ok(result)
    }
}

impl Loss for CrossEntropy {
    fn name(&self) -> &'static str {
        self.loss_name()
    }

    crate::losses::host_calls!();

    fn encode(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        batch: &BatchAt<'_>,
        outputs: &Outputs<'_>,
    ) -> Result<()> {
        let inputs = self.check_batch_at(batch)?;
        if inputs.rows == 0 {
            return gpu::encode_empty(ctx, encoder, &self.spec(), &inputs, outputs);
        }
        gpu::encode(ctx, encoder, &self.spec(), &inputs, outputs)
    }
}

#[cfg(test)]
mod reference_tests;
