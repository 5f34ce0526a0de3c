//! Reading the `.npy` files of `compute`: the input, the targets and the weights, each
//! checked for dtype and shape with an error that names the file.

use std::path::Path;

use wgpu_loss::npy::{self, NpyArray, NpyData};

use crate::cli::args::ComputeArgs;
use crate::cli::data::{InputData, TargetData};

/// The `--input` array: its shape and values (float32, or float16 where the loss takes it).
pub struct InputArray {
    pub shape: Vec<usize>,
    pub data: InputData,
}

fn read(path: &Path, flag: &str) -> Result<NpyArray, String> {
    npy::read(path).map_err(|e| format!("{flag}: {e}"))
}

fn float32(data: NpyData, flag: &str, path: &Path) -> Result<Vec<f32>, String> {
    match data {
        NpyData::F32(values) => Ok(values),
        other => Err(format!(
            "{flag} {} must be float32, got {}",
            path.display(),
            other.dtype_name()
        )),
    }
}

/// Reads `--input`: float32, or float16 for the losses that take it.
pub fn input(args: &ComputeArgs) -> Result<InputArray, String> {
    let array = read(&args.input, "--input")?;
    let data = match array.data {
        NpyData::F16(bits) if args.loss.takes_f16() => InputData::F16(bits),
        NpyData::F16(_) => {
            return Err(format!(
                "--input {} is float16, which only cross-entropy, nll, softmax, log-softmax and entropy take",
                args.input.display()
            ))
        }
        data => InputData::F32(float32(data, "--input", &args.input)?),
    };
    Ok(InputArray {
        shape: array.shape,
        data,
    })
}

/// `[N, C]` of the input, or an error naming the file.
pub fn rows_classes(shape: &[usize], path: &Path) -> Result<(usize, usize), String> {
    match shape {
        [rows, classes] => Ok((*rows, *classes)),
        shape => Err(format!(
            "--input {} must be float32 [N, C], got {shape:?}",
            path.display()
        )),
    }
}

/// Cross-entropy / NLL targets: class indices `[N]` (int64 or int32) or probabilities `[N, C]`.
pub fn class_targets(path: &Path, rows: usize, classes: usize) -> Result<TargetData, String> {
    let target = read(path, "--target")?;
    match (target.data, target.shape.as_slice()) {
        (NpyData::I64(t), [n]) if *n == rows => Ok(TargetData::I64(t)),
        (NpyData::I32(t), [n]) if *n == rows => Ok(TargetData::I32(t)),
        (NpyData::F32(t), [n, c]) if (*n, *c) == (rows, classes) => Ok(TargetData::F32(t)),
        (data, shape) => Err(format!(
            "--target {} must be int64 or int32 [{rows}] (class indices) or float32 [{rows}, {classes}] (probabilities) for --input [{rows}, {classes}], got {} {shape:?}",
            path.display(),
            data.dtype_name()
        )),
    }
}

/// An elementwise loss's target: float32 with the input's shape.
pub fn same_shape_target(path: &Path, input_shape: &[usize], input_path: &Path) -> Result<TargetData, String> {
    let array = read(path, "--target")?;
    let target = float32(array.data, "--target", path)?;
    if array.shape != input_shape {
        return Err(format!(
            "--target {} has shape {:?}, but --input {} has shape {:?}",
            path.display(),
            array.shape,
            input_path.display(),
            input_shape
        ));
    }
    Ok(TargetData::F32(target))
}

/// Cross-entropy's class weights: float32 `[C]`.
pub fn class_weight(path: &Path, rows: usize, classes: usize) -> Result<Vec<f32>, String> {
    let weight = read(path, "--weight")?;
    match (weight.data, weight.shape.as_slice()) {
        (NpyData::F32(w), [c]) if *c == classes => Ok(w),
        (data, shape) => Err(format!(
            "--weight {} must be float32 [{classes}] (one per class of --input [{rows}, {classes}]), got {} {shape:?}",
            path.display(),
            data.dtype_name()
        )),
    }
}

/// Weights over the last axis of an elementwise loss (`--weight`, `--pos-weight`):
/// float32, checked against the input by the library.
pub fn last_axis_weight(path: &Path, flag: &str) -> Result<Vec<f32>, String> {
    float32(read(path, flag)?.data, flag, path)
}
