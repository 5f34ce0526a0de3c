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

/// A softmax-family input: any rank ≥ 1, taken along its last axis; or an error naming the
/// file.
pub fn last_axis_input(shape: &[usize], path: &Path) -> Result<(), String> {
    if shape.is_empty() {
        return Err(format!(
            "--input {} must have rank 1 or more (the classes last), got []",
            path.display()
        ));
    }
    Ok(())
}

/// A cross-entropy / NLL input's shape in PyTorch's forms: `[N, C]`, `[N, C, d1, …]` (class
/// axis 1), or unbatched `[C]` (one row; its class-index target and its `none` loss are 0-d).
pub struct ClassInput<'a> {
    pub classes: usize,
    /// The shape as read.
    pub shape: &'a [usize],
}

impl ClassInput<'_> {
    /// The shape of the class-index targets: the input's without its class axis (`[]`,
    /// `[N]`, `[N, d1, …]`).
    fn index_shape(&self) -> Vec<usize> {
        let mut shape = self.shape.to_vec();
        shape.remove(usize::from(shape.len() > 1));
        shape
    }
}

/// `[C]`, `[N, C]` or `[N, C, d1, …]` of a cross-entropy input, or an error naming the file.
pub fn class_input<'a>(shape: &'a [usize], path: &Path) -> Result<ClassInput<'a>, String> {
    match *shape {
        [classes] | [_, classes, ..] => Ok(ClassInput { classes, shape }),
        _ => Err(format!(
            "--input {} must be float32 [N, C, d1, …], [N, C] or [C] (unbatched), got {shape:?}",
            path.display()
        )),
    }
}

/// Cross-entropy / NLL targets: class indices (int64 or int32) shaped like the input without
/// its class axis (`[N]`, `[N, d1, …]`, or 0-d for an unbatched input), or float32
/// probabilities shaped like the input.
pub fn class_targets(path: &Path, input: &ClassInput<'_>) -> Result<TargetData, String> {
    let target = read(path, "--target")?;
    let (indices, probabilities) = (input.index_shape(), input.shape);
    match (target.data, target.shape.as_slice()) {
        (NpyData::I64(t), shape) if shape == indices.as_slice() => Ok(TargetData::I64(t)),
        (NpyData::I32(t), shape) if shape == indices.as_slice() => Ok(TargetData::I32(t)),
        (NpyData::F32(t), shape) if shape == probabilities => Ok(TargetData::F32(t)),
        (data, shape) => Err(format!(
            "--target {} must be int64 or int32 {indices:?} (class indices) or float32 {probabilities:?} (probabilities) for --input {probabilities:?}, got {} {shape:?}",
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
pub fn class_weight(path: &Path, input: &ClassInput<'_>) -> Result<Vec<f32>, String> {
    let weight = read(path, "--weight")?;
    let (classes, input_shape) = (input.classes, input.shape);
    match (weight.data, weight.shape.as_slice()) {
        (NpyData::F32(w), [c]) if *c == classes => Ok(w),
        (data, shape) => Err(format!(
            "--weight {} must be float32 [{classes}] (one per class of --input {input_shape:?}), got {} {shape:?}",
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
