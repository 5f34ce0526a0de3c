//! The loss families — cross-entropy (and NLL), elementwise losses, the softmax family —
//! and the one API shape they share: the [`Loss`] trait, computed on a [`Backend`].

pub mod cross_entropy;
pub mod elementwise;
pub mod linear_cross_entropy;
pub mod softmax;
mod validate;

use std::future::Future;
use std::pin::Pin;

use crate::api::buffers::{BatchAt, Outputs};
use crate::api::host::{Batch, ForwardBackward, Upstream};
use crate::api::reduction::LossValue;
use crate::error::Result;
use crate::gpu::context::GpuContext;

/// The future of an async twin ([`Loss::forward_async`], [`Loss::forward_backward_async`]):
/// boxed, so that [`Loss`] can be used as `dyn Loss`.
pub type LossFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// `Loss::compute` and `Loss::compute_async` of a family, written once: each family has an
/// inherent `run(backend, batch, upstream, waiting)` future that does the work, which the
/// first blocks on and the second boxes for an app that polls the device itself.
macro_rules! host_calls {
    () => {
        fn compute(
            &self,
            backend: $crate::losses::Backend<'_>,
            batch: &$crate::api::host::Batch<'_>,
            upstream: Option<$crate::api::host::Upstream<&[f32]>>,
        ) -> $crate::error::Result<$crate::api::host::ForwardBackward> {
            pollster::block_on(self.run(backend, batch, upstream, $crate::gpu::io::Waiting::Block))
        }

        fn compute_async<'a>(
            &'a self,
            ctx: &'a $crate::gpu::context::GpuContext,
            batch: &'a $crate::api::host::Batch<'a>,
            upstream: Option<$crate::api::host::Upstream<&'a [f32]>>,
        ) -> $crate::losses::LossFuture<'a, $crate::api::host::ForwardBackward> {
            let gpu = $crate::losses::Backend::Gpu(ctx);
            Box::pin(self.run(gpu, batch, upstream, $crate::gpu::io::Waiting::AppPolls))
        }
    };
}
pub(crate) use host_calls;

/// Where a host call computes.
#[derive(Debug, Clone, Copy)]
pub enum Backend<'a> {
    /// The WGSL kernels on this context's device.
    Gpu(&'a GpuContext),
    /// The fast CPU backend: f32 with vectorised exp and ln, rows in parallel (rayon), sums
    /// in f64 in a fixed order (deterministic). Within the GPU's tolerances of the reference.
    Cpu,
    /// The f64 CPU reference (rounded to f32 at the end): obviously right and slow; every
    /// other backend is tested against it.
    Reference,
}

/// A loss (or the softmax family's operation) with its options, computed the same way
/// whatever the family: [`Loss::forward`] and [`Loss::forward_backward`] on host data and
/// a [`Backend`], their async twins on the GPU, and [`Loss::encode`] into an app's encoder
/// over its own buffers. The trait is dyn-compatible: `Box<dyn Loss>` holds any family.
///
/// ```
/// # fn main() -> Result<(), wgpu_loss::LossError> {
/// use wgpu_loss::{Backend, Batch, CrossEntropy, GpuContext, Loss};
/// let ctx = GpuContext::new_blocking()?;
/// let logits = [2.0_f32, 0.5, -1.0, 0.0, 3.0, 0.1]; // 2 rows × 3 classes
/// let batch = Batch::new(&logits, [2, 3], &[0_i64, 1]);
/// let loss = CrossEntropy::default().label_smoothing(0.1);
/// let gpu = loss.forward(Backend::Gpu(&ctx), &batch)?.scalar().unwrap();
/// let reference = loss.forward(Backend::Reference, &batch)?.scalar().unwrap();
/// assert!((gpu - reference).abs() < 1e-5);
/// # Ok(()) }
/// ```
pub trait Loss {
    /// The loss's name, as the CLI spells it (`cross-entropy`, `mse`, `softmax`, …).
    fn name(&self) -> &'static str;

    /// The loss and, with an upstream, `∂L/∂input` on `backend`: what [`Loss::forward`]
    /// and [`Loss::forward_backward`] run. Everything is validated before anything is
    /// dispatched.
    fn compute(
        &self,
        backend: Backend<'_>,
        batch: &Batch<'_>,
        upstream: Option<Upstream<&[f32]>>,
    ) -> Result<ForwardBackward>;

    /// [`Loss::compute`] on the GPU without blocking: the future completes when the app
    /// polls the device (e.g. `device.poll(PollType::Poll)` in its frame loop).
    fn compute_async<'a>(
        &'a self,
        ctx: &'a GpuContext,
        batch: &'a Batch<'a>,
        upstream: Option<Upstream<&'a [f32]>>,
    ) -> LossFuture<'a, ForwardBackward>;

    /// Records the loss (and, if `outputs.grad` says so, the gradient) into the caller's
    /// `encoder`, reading the caller's buffers and writing `outputs`; submits nothing and
    /// copies nothing to the host. Shapes, options and buffer sizes are validated first;
    /// class-index targets are checked on the GPU (see [`crate::Status`]).
    fn encode(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        batch: &BatchAt<'_>,
        outputs: &Outputs<'_>,
    ) -> Result<()>;

    /// The loss (for the softmax family: its output).
    fn forward(&self, backend: Backend<'_>, batch: &Batch<'_>) -> Result<LossValue> {
        Ok(self.compute(backend, batch, None)?.loss)
    }

    /// The loss and `∂L/∂input` in one call, with the per-row outputs where asked for.
    /// `upstream` is a scalar for a reduced loss, or one value per output element.
    fn forward_backward(
        &self,
        backend: Backend<'_>,
        batch: &Batch<'_>,
        upstream: Upstream<&[f32]>,
    ) -> Result<ForwardBackward> {
        self.compute(backend, batch, Some(upstream))
    }

    /// [`Loss::forward`] on the GPU without blocking (see [`Loss::compute_async`]).
    fn forward_async<'a>(&'a self, ctx: &'a GpuContext, batch: &'a Batch<'a>) -> LossFuture<'a, LossValue> {
        let run = self.compute_async(ctx, batch, None);
        Box::pin(async move { Ok(run.await?.loss) })
    }

    /// [`Loss::forward_backward`] on the GPU without blocking (see [`Loss::compute_async`]).
    fn forward_backward_async<'a>(
        &'a self,
        ctx: &'a GpuContext,
        batch: &'a Batch<'a>,
        upstream: Upstream<&'a [f32]>,
    ) -> LossFuture<'a, ForwardBackward> {
        self.compute_async(ctx, batch, Some(upstream))
    }
}
