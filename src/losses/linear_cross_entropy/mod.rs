//! The fused linear cross-entropy: `F.cross_entropy(F.linear(h, W, b), y, …)` with its
//! gradients, the `[N, V]` logits never stored.
//!
//! `options.rs` the builder (a [`CrossEntropy`](crate::CrossEntropy) and a tile size) →
//! `check.rs` → `plan.rs` (rows per tile, every backend) → `reference.rs` (f64, whole) /
//! `fast.rs` (f32 CPU, tiles) or the GPU: `host.rs` (uploads, groups, readback) over
//! `gpu.rs` (the recording) and `products.rs` (its matrix products, `gpu::matmul`). The
//! cross-entropy of each tile is the cross-entropy family's own recording.

mod check;
mod data;
mod fast;
mod gpu;
mod host;
mod options;
mod plan;
mod products;
mod reference;
mod shard;

use crate::api::host::Upstream;
use crate::api::kinds::TargetWidth;
use crate::api::linear::{Grads, LinearBatch, LinearBatchAt, LinearForwardBackward, LinearOutputs, LinearShape};
use crate::api::reduction::LossValue;
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::io::Waiting;
use crate::losses::cross_entropy::spec::ShardView;
use crate::losses::{Backend, LossFuture};

use data::HostLinear;
pub use options::{LinearCrossEntropy, LinearMode, DEFAULT_TILE_BYTES};
use products::Part;
pub use shard::LinearShardBatch;

impl LinearCrossEntropy {
    /// Rows per tile on `ctx`: the plan's, and no more than one buffer holds.
    fn device_tile_rows(&self, ctx: &GpuContext, shape: LinearShape) -> Result<usize> {
        let per_tile = plan::tile_rows(shape, self.tile_bytes, self.mode);
        let row_bytes = shape.classes as u64 * 4;
        let max_buffer = ctx.max_buffer_bytes();
        let fit = usize::try_from(max_buffer / row_bytes).unwrap_or(usize::MAX);
        if fit == 0 || (self.mode == LinearMode::Unfused && fit < per_tile) {
            return Err(LossError::TooLarge {
                what: "logits",
                detail: format!(
                    "a tile of {} rows of {} f32 logits needs {} bytes; the device's largest buffer is {max_buffer} bytes",
                    per_tile.min(fit.max(1)),
                    shape.classes,
                    per_tile.min(fit.max(1)) as u64 * row_bytes
                ),
            });
        }
        Ok(per_tile.min(fit))
    }

    async fn run(
        &self,
        backend: Backend<'_>,
        batch: &LinearBatch<'_>,
        upstream: Option<Upstream<&[f32]>>,
        grads: Grads,
        waiting: Waiting,
    ) -> Result<LinearForwardBackward> {
        self.check_batch(batch, upstream)?;
        let spec = self.loss.spec();
        let targets = batch.targets.indices();
        if let (Backend::Gpu(ctx), true) = (backend, batch.shape.rows > 0) {
            // The GPU decodes f16 / bf16 itself: the host data goes up as it is.
            let call = host::HostCall {
                batch,
                targets: &targets,
                upstream,
                grads,
                per_tile: self.device_tile_rows(ctx, batch.shape)?,
                waiting,
                shard: None,
            };
            return host::forward_host(ctx, &spec, &call).await;
        }
        let (h, w) = (batch.h.to_f32(), batch.w.to_f32());
        let b = batch.b.map(|b| b.to_f32());
        let data = HostLinear {
            h: &h,
            w: &w,
            b: b.as_deref(),
            shape: batch.shape,
            targets: &targets,
        };
        match backend {
            Backend::Cpu => {
                let per_tile = plan::tile_rows(batch.shape, self.tile_bytes, self.mode);
                Ok(fast::fast(&spec, &data, upstream, grads, per_tile))
            }
            // No rows on a GPU: nothing to compute on a device; the reference's empty sums.
            Backend::Gpu(_) | Backend::Reference => Ok(reference::reference(&spec, &data, upstream, grads)),
        }
    }

    /// The loss of `batch` on `backend`.
    pub fn forward(&self, backend: Backend<'_>, batch: &LinearBatch<'_>) -> Result<LossValue> {
        Ok(pollster::block_on(self.run(backend, batch, None, Grads::NONE, Waiting::Block))?.loss)
    }

    /// The loss and the gradients `grads` asks for, with `upstream` (a scalar, or for
    /// reduction `none` one value per row).
    pub fn forward_backward(
        &self,
        backend: Backend<'_>,
        batch: &LinearBatch<'_>,
        upstream: Upstream<&[f32]>,
        grads: Grads,
    ) -> Result<LinearForwardBackward> {
        pollster::block_on(self.run(backend, batch, Some(upstream), grads, Waiting::Block))
    }

    /// [`LinearCrossEntropy::forward_backward`] on the GPU without blocking: the future
    /// completes when the app polls the device.
    pub fn forward_backward_async<'a>(
        &'a self,
        ctx: &'a GpuContext,
        batch: &'a LinearBatch<'a>,
        upstream: Upstream<&'a [f32]>,
        grads: Grads,
    ) -> LossFuture<'a, LinearForwardBackward> {
        Box::pin(self.run(Backend::Gpu(ctx), batch, Some(upstream), grads, Waiting::AppPolls))
    }

    /// Records the loss and the gradients `outputs` names into the app's `encoder`, over
    /// its buffers; submits nothing and copies nothing to the host. Gradients are
    /// overwritten (`grad_w` and `grad_b` need `COPY_DST` usage too, for an empty batch).
    /// Extra device memory: one tile of logits and O(N) per-row values. Targets are checked
    /// on the device: `outputs.status` names the first row out of range (a row out of
    /// range gives a NaN loss either way; without `status`, nothing says which).
    pub fn encode(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        batch: &LinearBatchAt<'_>,
        outputs: &LinearOutputs<'_>,
    ) -> Result<()> {
        let width = self.check_batch_at(batch)?;
        self.record(ctx, encoder, (batch, width), outputs, None)
    }

    /// Records `batch` (its targets `width` wide) into `encoder`: the whole call, or with
    /// `shard` one step of a vocabulary shard.
    fn record(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        (batch, width): (&LinearBatchAt<'_>, TargetWidth),
        outputs: &LinearOutputs<'_>,
        shard: Option<ShardView<'_>>,
    ) -> Result<()> {
        if outputs.grad_b.is_some() && batch.b.is_none() {
            return Err(LossError::Unsupported {
                loss: "linear cross-entropy",
                option: "grad_b without a bias",
            });
        }
        let targets = batch.targets.at().ok_or(LossError::Unsupported {
            loss: "linear cross-entropy",
            option: "a batch without targets",
        })?;
        let part = Part {
            first: 0,
            len: batch.shape.classes,
            w: batch.w,
            b: batch.b,
            grad_w: outputs.grad_w,
            grad_b: outputs.grad_b,
        };
        let rec = gpu::Recording {
            shape: batch.shape,
            h: batch.h,
            parts: vec![part],
            targets: (targets, width),
            per_tile: self.device_tile_rows(ctx, batch.shape)?,
            loss: outputs.loss,
            status: outputs.status,
            row_stats: outputs.row_stats,
            argmax: outputs.argmax,
            grad_h: outputs.grad_h,
            upstream: outputs.upstream,
            accumulate: false,
            shard,
        };
        gpu::encode(ctx, encoder, &self.loss.spec(), &rec)
    }
}
