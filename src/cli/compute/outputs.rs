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

/// Checks the output paths before anything is computed: `--out` and `--grad-out` are two
/// different files, neither is one of the inputs, and neither names anything but a regular
/// file (a device, a FIFO, a folder) that the rename would replace.
pub fn check_paths(args: &ComputeArgs) -> Result<(), String> {
    let outputs = [
        ("--out", &args.out),
        ("--grad-out", &args.grad_out),
        ("--grad-linear-weight-out", &args.grad_linear_weight_out),
        ("--grad-linear-bias-out", &args.grad_linear_bias_out),
    ];
    let inputs = [
        ("--input", Some(&args.input)),
        ("--target", args.target.as_ref()),
        ("--weight", args.weight.as_ref()),
        ("--pos-weight", args.pos_weight.as_ref()),
        ("--linear-weight", args.linear_weight.as_ref()),
        ("--linear-bias", args.linear_bias.as_ref()),
    ];
    for (flag, path) in outputs.iter().filter_map(|(f, p)| p.as_ref().map(|p| (*f, p))) {
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            return Err(format!("{flag} {} exists and is not a regular file", path.display()));
        }
        for (other, other_path) in inputs.iter().filter_map(|(f, p)| p.map(|p| (*f, p))) {
            if same_file(path, other_path) {
                return Err(format!(
                    "{flag} {} is also {other}: it would be overwritten",
                    path.display()
                ));
            }
        }
    }
    let given: Vec<(&str, &std::path::PathBuf)> = outputs
        .iter()
        .filter_map(|(f, p)| p.as_ref().map(|p| (*f, p)))
        .collect();
    for (i, (flag, path)) in given.iter().enumerate() {
        if let Some((other, _)) = given[i + 1..].iter().find(|(_, p)| same_file(path, p)) {
            return Err(format!("{flag} and {other} are the same file ({})", path.display()));
        }
    }
    Ok(())
}

/// Whether two paths name the same file (through links and `..`), existing or not.
fn same_file(a: &Path, b: &Path) -> bool {
    let resolved = |p: &Path| {
        std::fs::canonicalize(p).ok().or_else(|| {
            let parent = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
        })
    };
    match (resolved(a), resolved(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Writes `--out` ([] for a scalar, else the result's shape) and `--grad-out` (the
/// input's shape), each only if asked for, together: both or neither.
pub fn write(args: &ComputeArgs, input_shape: &[usize], result: &Computed) -> Result<(), String> {
    write_with(args, input_shape, result, &[])
}

/// [`write`] with more files (flag, path, shape, values), all written together or none.
pub fn write_with(
    args: &ComputeArgs,
    input_shape: &[usize],
    result: &Computed,
    more: &[(&'static str, &Path, Vec<usize>, &[f32])],
) -> Result<(), String> {
    let out_shape = result.loss.shape();
    let mut files = Vec::new();
    if let Some(path) = &args.out {
        files.push((
            "--out",
            npy::NpyFile {
                path,
                shape: &out_shape,
                data: result.loss.values(),
            },
        ));
    }
    if let (Some(path), Some(grad)) = (&args.grad_out, &result.grad) {
        files.push((
            "--grad-out",
            npy::NpyFile {
                path,
                shape: input_shape,
                data: grad,
            },
        ));
    }
    for (flag, path, shape, data) in more {
        files.push((flag, npy::NpyFile { path, shape, data }));
    }
    let all: Vec<npy::NpyFile<'_>> = files.iter().map(|(_, f)| *f).collect();
    npy::write_all(&all).map_err(|e| {
        let flag = files
            .iter()
            .find(|(_, f)| e.to_string().starts_with(&f.path.display().to_string()))
            .map_or("--out", |(flag, _)| *flag);
        format!("{flag}: {e}")
    })
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
