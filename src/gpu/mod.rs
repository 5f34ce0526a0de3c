//! Shared GPU machinery, used by every loss family: the context and its limits, the plan,
//! binding windows, the kernel enum and pipeline cache, the buffer pool, uploads and
//! readback, and the fixed-order batch sum.

pub mod context;
pub mod dispatch;
pub mod driver;
pub mod io;
pub mod kernels;
pub mod layouts;
pub mod matmul;
pub mod pipelines;
pub mod plan;
pub mod pool;
pub mod reduce;
pub mod runs;
pub mod shaders;
pub mod small_rows;
pub mod strategy;
pub mod tiler;
pub mod window;

#[cfg(test)]
mod matmul_tests;
#[cfg(test)]
mod shader_tests;
