//! What `compute` leaves: the `--out` and `--grad-out` files (each written whole, through
//! a temporary file renamed into place) and the line it prints.

use std::path::Path;

use wgpu_loss::npy;
use wgpu_loss::LossValue;

use crate::cli::args::ComputeArgs;

/// The result of one call: the loss (or the row operation's output) and, if asked for,
/// `∂loss/∂input` with upstream 1.
pub struct Computed {
    pub loss: LossValue,
    pub grad: Option<Vec<f32>>,
}

/// Writes `--out` ([] for a scalar, else the result's shape) and `--grad-out` (the
/// input's shape), each only if asked for.
pub fn write(args: &ComputeArgs, input_shape: &[usize], result: &Computed) -> Result<(), String> {
    if let Some(path) = &args.out {
        save(path, "--out", &result.loss.shape(), result.loss.values())?;
    }
    if let (Some(path), Some(grad)) = (&args.grad_out, &result.grad) {
        save(path, "--grad-out", input_shape, grad)?;
    }
    Ok(())
}

fn save(path: &Path, flag: &str, shape: &[usize], values: &[f32]) -> Result<(), String> {
    npy::write_f32(path, shape, values).map_err(|e| format!("{flag}: {e}"))
}

/// The scalar, or a one-line summary of a tensor.
pub fn summary(value: &LossValue) -> String {
    match value {
        LossValue::Scalar(v) => format!("{v}"),
        LossValue::Tensor { shape, values } => {
            let shown: Vec<String> = values.iter().take(4).map(f32::to_string).collect();
            let more = if values.len() > 4 { ", ..." } else { "" };
            let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
            format!("{shape:?} values [{}{more}], sum {sum}", shown.join(", "))
        }
    }
}
