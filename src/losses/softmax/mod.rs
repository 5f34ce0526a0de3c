//! The softmax family on `[N, C]` input: softmax, log-softmax (`[N, C]` out) and the
//! entropy of each row's softmax (`[N]` out), with their vector-Jacobian products.
//!
//! `spec.rs` (shapes and validation) → `reference.rs` (f64) / `fast.rs` (f32 CPU) through
//! `cpu.rs`, or `gpu.rs` (beside `shaders/softmax.wgsl`). This file wires them into the
//! `Loss` trait.

mod cpu;
mod fast;
mod gpu;
mod reference;
mod spec;

use crate::api::buffers::{BatchAt, Outputs};
use crate::api::host::{Batch, ForwardBackward, Upstream};
use crate::api::kinds::RowOutput as RowOp;
use crate::api::reduction::LossValue;
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::io::Waiting;
use crate::losses::{Backend, Loss};

use spec::RowsIn;

impl RowOp {
    /// The upstream in the output's shape (a scalar upstream is broadcast).
    fn check_upstream<'u>(
        self,
        (rows, classes): (usize, usize),
        input_shape: &[usize],
        upstream: Upstream<&'u [f32]>,
    ) -> Result<std::borrow::Cow<'u, [f32]>> {
        let expected = rows.saturating_mul(self.per_row(classes));
        match upstream {
            Upstream::Scalar(g) => Ok(std::borrow::Cow::Owned(vec![g; expected])),
            Upstream::Values(v) if v.len() == expected => Ok(std::borrow::Cow::Borrowed(v)),
            Upstream::Values(v) => Err(LossError::LengthMismatch {
                what: "upstream",
                shape: format!("{:?} (the output's shape)", self.output_shape(input_shape)),
                expected,
                actual: v.len(),
            }),
        }
    }

    /// Validates and runs on `backend`: the output and, with an upstream, the VJP; a GPU
    /// readback waits as `waiting` says.
    async fn run(
        self,
        backend: Backend<'_>,
        batch: &Batch<'_>,
        upstream: Option<Upstream<&[f32]>>,
        waiting: Waiting,
    ) -> Result<ForwardBackward> {
        let (rows, classes) = self.check_input(&batch.shape, batch.input.len())?;
        let upstream = upstream
            .map(|u| self.check_upstream((rows, classes), &batch.shape, u))
            .transpose()?;
        let data = RowsIn {
            input: batch.input,
            rows,
            classes,
            upstream: upstream.as_deref(),
        };
        let mut result = match backend {
            Backend::Gpu(ctx) => self.run_gpu(ctx, &data, waiting).await?,
            Backend::Cpu => cpu::fast(self, &data),
            Backend::Reference => cpu::reference(self, &data),
        };
        // Computed as [rows, C]; shaped as PyTorch's dim=-1 gives it.
        if let LossValue::Tensor { shape, .. } = &mut result.loss {
            *shape = self.output_shape(&batch.shape);
        }
        Ok(result)
    }
}

impl Loss for RowOp {
    fn name(&self) -> &'static str {
        self.op_name()
    }

    crate::losses::host_calls!();

    fn encode(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        batch: &BatchAt<'_>,
        outputs: &Outputs<'_>,
    ) -> Result<()> {
        self.encode_batch(ctx, encoder, batch, outputs)
    }
}

#[cfg(test)]
mod reference_tests;
