//! `compute --loss linear-cross-entropy`: h `[N, D]` (`--input`), W `[V, D]`
//! (`--linear-weight`), b `[V]` (`--linear-bias`), class indices `[N]` (`--target`), every
//! cross-entropy option; `--out` the loss, `--grad-out` ∂h, `--grad-linear-weight-out` ∂W,
//! `--grad-linear-bias-out` ∂b, written together or not at all.

use std::path::Path;

use wgpu_loss::npy::{self, NpyData};
use wgpu_loss::{Backend, Grads, LinearBatch, LinearCrossEntropy, Reduction, Upstream};

use super::build::cross_entropy;
use super::inputs::{class_input, class_targets, InputArray};
use super::outputs::{summary, write_with, Computed};
use crate::cli::args::ComputeArgs;
use crate::cli::data::InputData;

/// A float32 or float16 array, or an error naming the file.
fn float_array(path: &Path, flag: &str) -> Result<InputArray, String> {
    let array = npy::read(path).map_err(|e| format!("{flag}: {e}"))?;
    let data = match array.data {
        NpyData::F32(v) => InputData::F32(v),
        NpyData::F16(v) => InputData::F16(v),
        other => {
            return Err(format!(
                "{flag} {} must be float32 or float16, got {}",
                path.display(),
                other.dtype_name()
            ))
        }
    };
    Ok(InputArray {
        shape: array.shape,
        data,
    })
}

/// `[rows, hidden]` and `[classes]` from h and W, each checked against the other.
fn shapes(args: &ComputeArgs, h: &[usize], w: &[usize], b: Option<&[usize]>) -> Result<[usize; 3], String> {
    let w_path = args.linear_weight.as_deref().unwrap_or(Path::new(""));
    let &[rows, hidden] = h else {
        return Err(format!("--input {} must be h [N, D], got {h:?}", args.input.display()));
    };
    let [classes, w_hidden] = *w else {
        return Err(format!(
            "--linear-weight {} must be W [V, D], got {w:?}",
            w_path.display()
        ));
    };
    if w_hidden != hidden {
        return Err(format!(
            "--linear-weight {} has shape {w:?}, but --input {} has shape {h:?}: W must be [V, {hidden}]",
            w_path.display(),
            args.input.display()
        ));
    }
    if let Some(b) = b.filter(|b| *b != [classes]) {
        let b_path = args.linear_bias.as_deref().unwrap_or(Path::new(""));
        return Err(format!(
            "--linear-bias {} must be [{classes}] (V of W {w:?}), got {b:?}",
            b_path.display()
        ));
    }
    Ok([rows, hidden, classes])
}

/// The loss with the cross-entropy options given (the class weights checked against V).
fn loss(args: &ComputeArgs, classes: usize, rows: usize) -> Result<LinearCrossEntropy, String> {
    let ce = wgpu_loss::CrossEntropy::default().reduction(args.reduction.map_or(Reduction::Mean, Reduction::from));
    let logits = [rows, classes];
    Ok(LinearCrossEntropy::new(cross_entropy(
        args,
        ce,
        &class_input(&logits, &args.input)?,
    )?))
}

/// Runs `compute` for the linear cross-entropy (options already checked).
pub fn run(args: &ComputeArgs, backend: Backend<'_>) -> Result<(), String> {
    let h = float_array(&args.input, "--input")?;
    let w_path = args.linear_weight.as_deref().unwrap_or(Path::new(""));
    let w = float_array(w_path, "--linear-weight")?;
    let b = args
        .linear_bias
        .as_deref()
        .map(|p| float_array(p, "--linear-bias"))
        .transpose()?;
    let [rows, hidden, classes] = shapes(args, &h.shape, &w.shape, b.as_ref().map(|b| &b.shape[..]))?;
    let logits = [rows, classes];
    let target = args.target.as_deref().unwrap_or(Path::new(""));
    let targets = class_targets(target, &class_input(&logits, &args.input)?)?;
    if matches!(targets, crate::cli::data::TargetData::F32(_)) {
        return Err(format!(
            "--target {} must hold class indices (int64 or int32 [{rows}])",
            target.display()
        ));
    }
    let loss = loss(args, classes, rows)?;
    let mut batch = LinearBatch::new(
        h.data.as_input(),
        w.data.as_input(),
        [rows, hidden, classes],
        targets.as_targets(),
    );
    if let Some(b) = &b {
        batch = batch.bias(b.data.as_input());
    }
    let grads = Grads {
        h: args.grad_out.is_some(),
        w: args.grad_linear_weight_out.is_some(),
        b: args.grad_linear_bias_out.is_some(),
    };
    let ones = vec![1.0_f32; rows];
    let upstream = match loss.loss.reduction {
        Reduction::None => Upstream::Values(&ones[..]),
        _ => Upstream::Scalar(1.0),
    };
    let result = loss
        .forward_backward(backend, &batch, upstream, grads)
        .map_err(|e| e.to_string())?;
    let computed = Computed {
        loss: result.loss,
        grad: result.grad_h,
    };
    let mut more = Vec::new();
    if let (Some(path), Some(grad)) = (&args.grad_linear_weight_out, &result.grad_w) {
        more.push((
            "--grad-linear-weight-out",
            path.as_path(),
            vec![classes, hidden],
            &grad[..],
        ));
    }
    if let (Some(path), Some(grad)) = (&args.grad_linear_bias_out, &result.grad_b) {
        more.push(("--grad-linear-bias-out", path.as_path(), vec![classes], &grad[..]));
    }
    write_with(args, &h.shape, &computed, &more)?;
    println!("{}", summary(&computed.loss));
    Ok(())
}
