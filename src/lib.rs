//! # wgpu-loss
//!
//! Loss functions of machine learning, with exactly PyTorch's semantics, computed in WGSL
//! compute shaders through [`wgpu`], and checked against an f64 CPU reference.
//!
//! Every loss — [`CrossEntropy`] (and NLL), [`ElementwiseLoss`] (MSE, BCE, BCE with logits,
//! KL divergence) and [`RowOp`] (softmax, log-softmax, entropy) — implements one trait,
//! [`Loss`]: `forward` and `forward_backward` on host data ([`Batch`]) and a [`Backend`]
//! (the GPU, the fast CPU backend, or the f64 reference), their async twins, and `encode`
//! into an app's own command encoder over its own buffers ([`BatchAt`], [`Outputs`]).
//!
//! ```
//! # fn main() -> Result<(), wgpu_loss::LossError> {
//! use wgpu_loss::{Backend, Batch, CrossEntropy, GpuContext, Loss, Reduction};
//! let ctx = GpuContext::new_blocking()?; // or GpuContext::from_device(device, queue)
//! let logits = [2.0_f32, 0.5, -1.0, 0.0, 3.0, 0.1];
//! let targets = [0_i64, -100]; // the second row is ignored
//! let batch = Batch::new(&logits, [2, 3], &targets);
//! let loss = CrossEntropy::default()
//!     .weight(&[1.0, 2.0, 0.5])
//!     .label_smoothing(0.1)
//!     .reduction(Reduction::Mean);
//! let gpu = loss.forward(Backend::Gpu(&ctx), &batch)?;
//! // Row 0 alone counts: -log softmax(row 0)[0], smoothed; the CPU reference agrees.
//! let reference = loss.forward(Backend::Reference, &batch)?;
//! assert!((gpu.scalar().unwrap() - reference.scalar().unwrap()).abs() < 1e-5);
//! # Ok(()) }
//! ```
//!
//! Where things live (docs/ARCHITECTURE.md has the whole map): the shared vocabulary
//! (batches, buffers, targets, upstreams), the GPU machinery ([`GpuContext`] owns or wraps
//! a device and builds every pipeline once), the shared CPU math, and one folder per loss
//! family with its options, validation, f64 reference, fast CPU path and GPU encoder;
//! [`npy`] reads and writes NumPy files for the CLI, [`half`] converts f16 / bf16.

#![warn(missing_docs)]

mod api;
pub mod ceiling;
mod cpu;
mod error;
mod gpu;
pub mod half;
mod losses;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod npy;
#[cfg(test)]
mod testing;

pub use api::buffers::{BatchAt, BufferAt, GradInto, InputAt, Outputs, Status, TargetsAt};
pub use api::host::{Batch, ForwardBackward, Input, Targets, Upstream};
pub use api::kinds::{ElementwiseKind, InputFormat, InputKind, RowOutput as RowOp};
pub use api::linear::{
    Grads, LinearBatch, LinearBatchAt, LinearData, LinearForwardBackward, LinearOutputs, LinearShape,
};
pub use api::merge::{Collectives, VocabMerge};
pub use api::reduction::{LossValue, Reduction};
pub use api::shard::{MergedRecords, ShardRecords, VocabShard, RECORD_WORDS};
pub use error::{LossError, Result};
pub use gpu::context::GpuContext;
pub use gpu::io::{read, read_async, submit_and_read};
pub use gpu::strategy::Strategy;
pub use losses::cross_entropy::{CrossEntropy, ShardBatch, DEFAULT_EPSILON};
pub use losses::elementwise::ElementwiseLoss;
pub use losses::linear_cross_entropy::{LinearCrossEntropy, LinearMode, LinearShardBatch, DEFAULT_TILE_BYTES};
pub use losses::softmax::AlongDim;
pub use losses::{Backend, Loss, LossFuture};
/// The `wgpu` this crate is built against, so apps can name the same version.
pub use wgpu;
