//! Losses with one value per element, over inputs of any shape: `F.mse_loss`,
//! `F.binary_cross_entropy`, `F.binary_cross_entropy_with_logits` and `F.kl_div`.
//!
//! `options.rs` the builder → `check.rs` validation into `spec.rs` (what every backend
//! sees) → `reference.rs` (f64) / `fast.rs` (f32 CPU) through `cpu.rs`, or `gpu.rs`
//! (beside `shaders/elementwise.wgsl`). This file wires them into the `Loss` trait.

mod check;
mod cpu;
mod fast;
mod gpu;
mod options;
mod reference;
mod spec;

use crate::api::buffers::{BatchAt, Outputs};
use crate::api::host::{Batch, ForwardBackward, Upstream};
use crate::api::reduction::LossValue;
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::io::Waiting;
use crate::gpu::reduce::encode_empty;
use crate::losses::{Backend, Loss};

pub use options::ElementwiseLoss;
use spec::Elements;

impl ElementwiseLoss {
    /// The result over no elements: empty, 0, or 0 over the count (NaN when it is 0).
    fn empty(&self, shape: &[usize]) -> LossValue {
        match self.spec(shape).divisor(shape, 0) {
            None => LossValue::Tensor {
                shape: shape.to_vec(),
                values: Vec::new(),
            },
            Some(d) => LossValue::Scalar((0.0 / d) as f32),
        }
    }

    /// Validates `batch` (and the upstream) and runs it on `backend`; a GPU readback waits
    /// as `waiting` says.
    async fn run(
        &self,
        backend: Backend<'_>,
        batch: &Batch<'_>,
        upstream: Option<Upstream<&[f32]>>,
        waiting: Waiting,
    ) -> Result<ForwardBackward> {
        let input = batch.input.to_f32();
        let data = Elements {
            input: &input,
            target: self.targets_of(batch)?,
            shape: &batch.shape,
        };
        if self.check(&data, upstream)? == 0 {
            return Ok(ForwardBackward::plain(self.empty(&batch.shape), Vec::new()));
        }
        let spec = self.spec(&batch.shape);
        match backend {
            Backend::Gpu(ctx) => gpu::run(&spec, ctx, &data, upstream, waiting).await,
            Backend::Cpu => Ok(cpu::fast(&spec, &data, upstream)),
            Backend::Reference => Ok(cpu::reference(&spec, &data, upstream)),
        }
    }
}

impl Loss for ElementwiseLoss {
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
        let (at, count) = self.check_batch_at(batch, outputs)?;
        if count == 0 {
            // An empty batch: the reduced loss PyTorch gives (0 over the divisor).
            return match (outputs.loss, self.spec(&batch.shape).divisor(&batch.shape, 0)) {
                (Some(at), Some(divisor)) => encode_empty(ctx, encoder, divisor as f32, at),
                _ => Ok(()),
            };
        }
        gpu::encode(&self.spec(&batch.shape), ctx, encoder, &at, outputs)
    }
}

#[cfg(test)]
mod reference_tests;
