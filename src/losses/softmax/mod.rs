//! The softmax family along one axis of an input of any rank: softmax, log-softmax (the
//! input's shape out) and the entropy of the softmax (the input's shape without the axis),
//! with their vector-Jacobian products. A position's elements are `inner` apart
//! (`DimAxis`): 1 along the last axis, the `[N, C]` rows every path was first written for.
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
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::io::Waiting;
use crate::losses::{Backend, Loss};

use crate::losses::validate::DimAxis;
use spec::RowsIn;

/// A softmax-family operation along one axis of its input (`dim`, negative counting from
/// the end), as `F.softmax(x, dim)`, `F.log_softmax(x, dim)`; entropy drops that axis.
/// `RowOp` itself is the operation along the last axis (`dim = -1`).
///
/// ```
/// # use wgpu_loss::{Backend, Batch, Loss, RowOp};
/// let x = [0.0_f32, 1.0, 2.0, 3.0, 4.0, 5.0];
/// // softmax over the 2 rows of a [2, 3] input, for each of its 3 columns
/// let p = RowOp::Softmax.along(0).forward(Backend::Cpu, &Batch::input(&x[..], [2, 3])).unwrap();
/// assert_eq!(p.shape(), vec![2, 3]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlongDim {
    /// The operation.
    pub op: RowOp,
    /// The axis, counted from 0, or from the end when negative.
    pub dim: i64,
}

impl RowOp {
    /// This operation along axis `dim` of the input (negative counts from the end).
    pub fn along(self, dim: i64) -> AlongDim {
        AlongDim { op: self, dim }
    }
}

impl AlongDim {
    /// The upstream in the output's shape (a scalar upstream is broadcast).
    fn check_upstream<'u>(
        self,
        axis: DimAxis,
        input_shape: &[usize],
        upstream: Upstream<&'u [f32]>,
    ) -> Result<std::borrow::Cow<'u, [f32]>> {
        let expected = axis.rows.saturating_mul(self.op.per_row(axis.classes));
        match upstream {
            Upstream::Scalar(g) => Ok(std::borrow::Cow::Owned(vec![g; expected])),
            Upstream::Values(v) if v.len() == expected => Ok(std::borrow::Cow::Borrowed(v)),
            Upstream::Values(v) => Err(LossError::LengthMismatch {
                what: "upstream",
                shape: format!(
                    "{:?} (the output's shape)",
                    self.op.output_shape(input_shape, axis.axis)
                ),
                expected,
                actual: v.len(),
            }),
        }
    }

    /// Validates and runs on `backend`: the output and, with an upstream, the VJP; a GPU
    /// readback waits as `waiting` says.
    async fn run(
        &self,
        backend: Backend<'_>,
        batch: &Batch<'_>,
        upstream: Option<Upstream<&[f32]>>,
        waiting: Waiting,
    ) -> Result<ForwardBackward> {
        let op = self.op;
        let axis = op.check_input(&batch.shape, batch.input.len(), self.dim)?;
        let upstream = upstream
            .map(|u| self.check_upstream(axis, &batch.shape, u))
            .transpose()?;
        let data = RowsIn {
            input: batch.input,
            rows: axis.rows,
            classes: axis.classes,
            inner: axis.inner,
            upstream: upstream.as_deref(),
        };
        let mut result = match backend {
            Backend::Gpu(ctx) => op.run_gpu(ctx, &data, waiting).await?,
            Backend::Cpu => cpu::fast(op, &data),
            Backend::Reference => cpu::reference(op, &data),
        };
        // Computed per position; shaped as PyTorch gives it.
        result.loss = result.loss.with_tensor_shape(op.output_shape(&batch.shape, axis.axis));
        Ok(result)
    }
}

impl Loss for AlongDim {
    fn name(&self) -> &'static str {
        self.op.op_name()
    }

    crate::losses::host_calls!();

    fn encode(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        batch: &BatchAt<'_>,
        outputs: &Outputs<'_>,
    ) -> Result<()> {
        self.op.encode_batch(ctx, encoder, batch, outputs, self.dim)
    }
}

impl Loss for RowOp {
    fn name(&self) -> &'static str {
        self.op_name()
    }

    fn compute(
        &self,
        backend: Backend<'_>,
        batch: &Batch<'_>,
        upstream: Option<Upstream<&[f32]>>,
    ) -> Result<ForwardBackward> {
        self.along(-1).compute(backend, batch, upstream)
    }

    fn compute_async<'a>(
        &'a self,
        ctx: &'a GpuContext,
        batch: &'a Batch<'a>,
        upstream: Option<Upstream<&'a [f32]>>,
    ) -> crate::losses::LossFuture<'a, ForwardBackward> {
        let along = self.along(-1);
        Box::pin(async move { along.run(Backend::Gpu(ctx), batch, upstream, Waiting::AppPolls).await })
    }

    fn encode(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        batch: &BatchAt<'_>,
        outputs: &Outputs<'_>,
    ) -> Result<()> {
        self.along(-1).encode(ctx, encoder, batch, outputs)
    }
}

#[cfg(test)]
mod reference_tests;
