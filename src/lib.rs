//! # wgpu-loss
//!
//! Loss functions of machine learning, with exactly PyTorch's semantics, computed in WGSL
//! compute shaders through [`wgpu`], and checked against an f64 CPU reference ([`cpu`]).
//!
//! ```
//! # fn main() -> Result<(), wgpu_loss::LossError> {
//! use wgpu_loss::{CrossEntropy, GpuContext, Reduction};
//! let ctx = GpuContext::new_blocking()?; // or GpuContext::from_device(device, queue)
//! let (rows, classes) = (2, 3);
//! let logits = [2.0_f32, 0.5, -1.0, 0.0, 3.0, 0.1];
//! let targets: Vec<i64> = vec![0, -100]; // the second row is ignored
//! let loss = CrossEntropy::default()
//!     .weight(&[1.0, 2.0, 0.5])
//!     .label_smoothing(0.1)
//!     .reduction(Reduction::Mean)
//!     .forward(&ctx, &logits, rows, classes, &targets)?;
//! // Row 0 alone counts: -log softmax(row 0)[0], smoothed; the CPU reference agrees.
//! let reference = CrossEntropy::default().weight(&[1.0, 2.0, 0.5]).label_smoothing(0.1)
//!     .forward_cpu(&logits, rows, classes, &targets)?;
//! assert!((loss.scalar().unwrap() - reference.scalar().unwrap()).abs() < 1e-5);
//! # Ok(()) }
//! ```
//!
//! Layout: [`GpuContext`] owns (or wraps) a device and builds every pipeline once;
//! [`CrossEntropy`] holds PyTorch's options and validates inputs before anything is
//! dispatched; [`kernels`] names the WGSL kernels under `shaders/`; [`cpu`] is the
//! reference; [`npy`] reads and writes NumPy files for the CLI.

#![warn(missing_docs)]

mod binding;
mod context;
pub mod cpu;
mod cpu_fast;
mod cross_entropy;
mod cross_entropy_gpu;
mod device_io;
pub use device_io::{read_f32, read_f32_async};
mod elementwise;
mod error;
pub mod half;
pub mod kernels;
pub mod npy;
mod plan;
mod pool;
mod reduce;
mod reduction;
mod softmax;

pub use context::GpuContext;
pub use cross_entropy::{CrossEntropy, ForwardBackward, Targets, Upstream, DEFAULT_EPSILON};
pub use cross_entropy_gpu::{BufferAt, CrossEntropyOutputs, GpuTargets, GpuUpstream, GradInto, HalfInput, InputAt};
pub use elementwise::{ElementUpstream, ElementwiseLoss, ElementwiseOutputs};
pub use error::{LossError, Result};
pub use kernels::{ElementwiseKind, InputFormat, InputKind, TargetWidth};
pub use plan::Strategy;
pub use reduction::{LossValue, Reduction};
pub use softmax::RowOp;
/// The `wgpu` this crate is built against, so apps can name the same version.
pub use wgpu;
