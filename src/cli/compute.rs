//! `wgpu-loss compute`: one loss from `.npy` inputs, printed and optionally saved.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use wgpu_loss::npy::{self, NpyArray, NpyData};
use wgpu_loss::{
    CrossEntropy, ElementwiseLoss, ForwardBackward, HalfInput, InputKind, LossValue, Reduction, RowOp, Targets,
    Upstream,
};

use super::Backend;

/// The losses and row operations `compute` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LossName {
    /// Cross-entropy: input [N, C]; target class indices [N] (int) or probabilities [N, C] (float32).
    CrossEntropy,
    /// Negative log-likelihood: input log-probabilities [N, C]; target class indices [N].
    Nll,
    /// Binary cross-entropy: input probabilities, target of the same shape, both in [0, 1].
    Bce,
    /// Binary cross-entropy on logits: input logits, target of the same shape.
    BceWithLogits,
    /// Mean squared error: input and target of the same shape.
    Mse,
    /// KL divergence: input log-probabilities, target probabilities (or log with --log-target).
    KlDiv,
    /// Softmax of each row of [N, C]: output [N, C].
    Softmax,
    /// Log-softmax of each row of [N, C]: output [N, C].
    LogSoftmax,
    /// Entropy of each row's softmax: output [N].
    Entropy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReductionArg {
    None,
    Sum,
    Mean,
    Batchmean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InputKindArg {
    Logits,
    Probs,
    LogProbs,
}

/// Arguments of `compute`.
#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// The loss.
    #[arg(long, value_enum)]
    loss: LossName,
    /// Input .npy (float32; float16 for cross-entropy, nll and the softmax family).
    #[arg(long)]
    input: PathBuf,
    /// Target .npy (int64/int32 class indices, or float32).
    #[arg(long)]
    target: Option<PathBuf>,
    /// Weights .npy: float32, one per class (last axis).
    #[arg(long)]
    weight: Option<PathBuf>,
    /// Positive-example weights .npy for bce-with-logits: float32, one per class (last axis).
    #[arg(long)]
    pos_weight: Option<PathBuf>,
    /// Target value whose rows are ignored (cross-entropy, nll; default -100).
    #[arg(long, allow_negative_numbers = true)]
    ignore_index: Option<i64>,
    /// Label smoothing in [0, 1] (cross-entropy).
    #[arg(long, allow_negative_numbers = true)]
    label_smoothing: Option<f64>,
    /// How losses are reduced (default mean; batchmean for kl-div only).
    #[arg(long, value_enum)]
    reduction: Option<ReductionArg>,
    /// What the cross-entropy input holds (default logits).
    #[arg(long, value_enum)]
    input_kind: Option<InputKindArg>,
    /// Added to probabilities before the log, with --input-kind probs (default 1e-7).
    #[arg(long, allow_negative_numbers = true)]
    epsilon: Option<f64>,
    /// kl-div: the target holds log-probabilities.
    #[arg(long)]
    log_target: bool,
    /// cross-entropy: add the z-loss S·lse² to each row that is not ignored.
    #[arg(long, allow_negative_numbers = true)]
    z_loss: Option<f64>,
    /// cross-entropy: soft-cap the logits, C·tanh(x / C), before the softmax.
    #[arg(long, allow_negative_numbers = true)]
    softcap: Option<f64>,
    /// Write ∂loss/∂input as float32 .npy in the input's shape (upstream gradient 1; all
    /// ones for reduction none).
    #[arg(long)]
    grad_out: Option<PathBuf>,
    /// Where to compute: the WGSL kernels, the fast CPU backend, or the f64 reference.
    #[arg(long, value_enum, default_value = "gpu")]
    backend: Backend,
    /// Write the result as float32 .npy: [] for sum/mean/batchmean, else the result's shape.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn read(path: &Path, flag: &str) -> Result<NpyArray, String> {
    npy::read(path).map_err(|e| format!("{flag}: {e}"))
}

fn float32<'a>(array: &'a NpyArray, flag: &str, path: &Path) -> Result<&'a [f32], String> {
    match &array.data {
        NpyData::F32(values) => Ok(values),
        other => Err(format!(
            "{flag} {} must be float32, got {}",
            path.display(),
            other.dtype_name()
        )),
    }
}

/// `[N, C]` of a float32 input, or an error naming the file.
fn rows_classes(array: &NpyArray, path: &Path) -> Result<(usize, usize), String> {
    match array.shape.as_slice() {
        [rows, classes] => Ok((*rows, *classes)),
        shape => Err(format!(
            "--input {} must be float32 [N, C], got {shape:?}",
            path.display()
        )),
    }
}

/// Options each loss takes; any other given is an error.
fn check_options(args: &ComputeArgs) -> Result<(), String> {
    use LossName::*;
    let given = [
        ("--target", args.target.is_some()),
        ("--weight", args.weight.is_some()),
        ("--pos-weight", args.pos_weight.is_some()),
        ("--ignore-index", args.ignore_index.is_some()),
        ("--label-smoothing", args.label_smoothing.is_some()),
        ("--reduction", args.reduction.is_some()),
        ("--input-kind", args.input_kind.is_some()),
        ("--epsilon", args.epsilon.is_some()),
        ("--log-target", args.log_target),
        ("--z-loss", args.z_loss.is_some()),
        ("--softcap", args.softcap.is_some()),
        ("--grad-out", args.grad_out.is_some()),
    ];
    let takes: &[&str] = match args.loss {
        CrossEntropy => &[
            "--target",
            "--weight",
            "--ignore-index",
            "--label-smoothing",
            "--reduction",
            "--input-kind",
            "--epsilon",
            "--z-loss",
            "--softcap",
            "--grad-out",
        ],
        Nll => &["--target", "--weight", "--ignore-index", "--reduction", "--grad-out"],
        Bce => &["--target", "--weight", "--reduction", "--grad-out"],
        BceWithLogits => &["--target", "--weight", "--pos-weight", "--reduction", "--grad-out"],
        Mse => &["--target", "--reduction", "--grad-out"],
        KlDiv => &["--target", "--reduction", "--log-target", "--grad-out"],
        Softmax | LogSoftmax | Entropy => &["--grad-out"],
    };
    let name = args
        .loss
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    for (flag, present) in given {
        if present && !takes.contains(&flag) {
            return Err(format!("--loss {name} does not take {flag}"));
        }
    }
    if args.reduction == Some(ReductionArg::Batchmean) && args.loss != KlDiv {
        return Err(format!(
            "--loss {name} does not take --reduction batchmean (kl-div only)"
        ));
    }
    if args.epsilon.is_some() && args.input_kind != Some(InputKindArg::Probs) {
        return Err("--epsilon applies only with --input-kind probs".into());
    }
    if takes.contains(&"--target") && args.target.is_none() {
        return Err(format!("--loss {name} needs --target"));
    }
    Ok(())
}

/// Runs `compute`.
pub fn run(args: ComputeArgs) -> Result<(), String> {
    check_options(&args)?;
    let input_array = read(&args.input, "--input")?;
    // float16 input: the GPU reads the halves; the CPU reference takes them as f32.
    let (half_bits, widened): (Option<&[u16]>, Vec<f32>) = match &input_array.data {
        NpyData::F16(bits) => {
            let half_ok = matches!(
                args.loss,
                LossName::CrossEntropy | LossName::Nll | LossName::Softmax | LossName::LogSoftmax | LossName::Entropy
            );
            if !half_ok {
                return Err(format!(
                    "--input {} is float16, which only cross-entropy, nll, softmax, log-softmax and entropy take",
                    args.input.display()
                ));
            }
            (Some(bits), HalfInput::F16(bits).to_f32())
        }
        _ => (None, Vec::new()),
    };
    let input = match half_bits {
        Some(_) => &widened[..],
        None => float32(&input_array, "--input", &args.input)?,
    };
    let half = half_bits.map(HalfInput::F16);
    let reduction = match args.reduction.unwrap_or(ReductionArg::Mean) {
        ReductionArg::None => Reduction::None,
        ReductionArg::Sum => Reduction::Sum,
        ReductionArg::Mean => Reduction::Mean,
        ReductionArg::Batchmean => Reduction::BatchMean,
    };
    let gpu = match args.backend {
        Backend::Gpu => Some(super::gpu_context()?),
        Backend::Cpu | Backend::Reference => None,
    };
    let fast = args.backend == Backend::Cpu;
    let want_grad = args.grad_out.is_some();
    let mut grad: Vec<f32> = Vec::new();
    let value = match args.loss {
        LossName::CrossEntropy | LossName::Nll => {
            let (rows, classes) = rows_classes(&input_array, &args.input)?;
            let loss = cross_entropy(&args, reduction, classes, rows)?;
            let target_path = args.target.as_deref().unwrap_or(Path::new(""));
            let target = read(target_path, "--target")?;
            let targets = match (&target.data, target.shape.as_slice()) {
                (NpyData::I64(t), [n]) if *n == rows => Targets::I64(t),
                (NpyData::I32(t), [n]) if *n == rows => Targets::I32(t),
                (NpyData::F32(t), [n, c]) if (*n, *c) == (rows, classes) => Targets::Probabilities(t),
                (data, shape) => {
                    return Err(format!(
                        "--target {} must be int64 or int32 [{rows}] (class indices) or float32 [{rows}, {classes}] (probabilities) for --input [{rows}, {classes}], got {} {shape:?}",
                        target_path.display(),
                        data.dtype_name()
                    ))
                }
            };
            let up = Upstream::Scalar(1.0);
            match (&gpu, want_grad, half) {
                (Some(ctx), false, Some(h)) => loss.forward_half(ctx, h, rows, classes, targets),
                (Some(ctx), true, Some(h)) => loss
                    .forward_backward_half(ctx, h, rows, classes, targets, up)
                    .map(|r| keep_grad(&mut grad, r)),
                (Some(ctx), false, None) => loss.forward(ctx, input, rows, classes, targets),
                (None, false, _) if fast => loss.forward_cpu_fast(input, rows, classes, targets),
                (None, false, _) => loss.forward_cpu(input, rows, classes, targets),
                (Some(ctx), true, None) => loss
                    .forward_backward(ctx, input, rows, classes, targets, up)
                    .map(|r| keep_grad(&mut grad, r)),
                (None, true, _) if fast => loss
                    .forward_backward_cpu_fast(input, rows, classes, targets, up)
                    .map(|r| keep_grad(&mut grad, r)),
                (None, true, _) => loss
                    .forward_backward_cpu(input, rows, classes, targets, up)
                    .map(|r| keep_grad(&mut grad, r)),
            }
        }
        LossName::Bce | LossName::BceWithLogits | LossName::Mse | LossName::KlDiv => {
            let target_path = args.target.as_deref().unwrap_or(Path::new(""));
            let target_array = read(target_path, "--target")?;
            let target = float32(&target_array, "--target", target_path)?;
            if target_array.shape != input_array.shape {
                return Err(format!(
                    "--target {} has shape {:?}, but --input {} has shape {:?}",
                    target_path.display(),
                    target_array.shape,
                    args.input.display(),
                    input_array.shape
                ));
            }
            let mut loss = match args.loss {
                LossName::Bce => ElementwiseLoss::bce(),
                LossName::BceWithLogits => ElementwiseLoss::bce_with_logits(),
                LossName::Mse => ElementwiseLoss::mse(),
                _ => ElementwiseLoss::kl_div().log_target(args.log_target),
            }
            .reduction(reduction);
            if let Some(path) = &args.weight {
                loss = loss.weight(float32(&read(path, "--weight")?, "--weight", path)?);
            }
            if let Some(path) = &args.pos_weight {
                loss = loss.pos_weight(float32(&read(path, "--pos-weight")?, "--pos-weight", path)?);
            }
            let shape = &input_array.shape;
            let up = Upstream::Scalar(1.0);
            let with_grad = |(value, g): (LossValue, Vec<f32>)| {
                grad = g;
                value
            };
            match (&gpu, want_grad) {
                (Some(ctx), false) => loss.forward(ctx, input, target, shape),
                (None, false) if fast => loss.forward_cpu_fast(input, target, shape),
                (None, false) => loss.forward_cpu(input, target, shape),
                (Some(ctx), true) => loss.forward_backward(ctx, input, target, shape, up).map(with_grad),
                (None, true) if fast => loss.forward_backward_cpu_fast(input, target, shape, up).map(with_grad),
                (None, true) => loss.forward_backward_cpu(input, target, shape, up).map(with_grad),
            }
        }
        LossName::Softmax | LossName::LogSoftmax | LossName::Entropy => {
            let (rows, classes) = rows_classes(&input_array, &args.input)?;
            let op = match args.loss {
                LossName::Softmax => RowOp::Softmax,
                LossName::LogSoftmax => RowOp::LogSoftmax,
                _ => RowOp::Entropy,
            };
            if want_grad {
                // Upstream all ones, in the output's shape.
                let ones = vec![1.0; if op == RowOp::Entropy { rows } else { rows * classes }];
                grad = match &gpu {
                    Some(ctx) => op.backward(ctx, input, rows, classes, &ones),
                    None if fast => op.backward_cpu_fast(input, rows, classes, &ones),
                    None => op.backward_cpu(input, rows, classes, &ones),
                }
                .map_err(|e| e.to_string())?;
            }
            match (&gpu, half) {
                (Some(ctx), Some(h)) => op.forward_half(ctx, h, rows, classes),
                (Some(ctx), None) => op.forward(ctx, input, rows, classes),
                (None, _) if fast => op.forward_cpu_fast(input, rows, classes),
                (None, _) => op.forward_cpu(input, rows, classes),
            }
        }
    }
    .map_err(|e| e.to_string())?;
    if let Some(out) = &args.out {
        npy::write_f32(out, &value.shape(), value.values()).map_err(|e| format!("--out: {e}"))?;
    }
    if let Some(path) = &args.grad_out {
        npy::write_f32(path, &input_array.shape, &grad).map_err(|e| format!("--grad-out: {e}"))?;
    }
    println!("{}", summary(&value));
    Ok(())
}

/// The cross-entropy / NLL options, with the class weights read and checked against C.
fn cross_entropy(
    args: &ComputeArgs,
    reduction: Reduction,
    classes: usize,
    rows: usize,
) -> Result<CrossEntropy, String> {
    let mut loss = match (args.loss, args.input_kind) {
        (LossName::Nll, _) | (_, Some(InputKindArg::LogProbs)) => CrossEntropy::nll(),
        (_, Some(InputKindArg::Probs)) => CrossEntropy::default().input_kind(InputKind::Probabilities),
        _ => CrossEntropy::default(),
    }
    .reduction(reduction);
    if let Some(i) = args.ignore_index {
        loss = loss.ignore_index(i);
    }
    if let Some(s) = args.label_smoothing {
        loss = loss.label_smoothing(s);
    }
    if let Some(e) = args.epsilon {
        loss = loss.epsilon(e);
    }
    if let Some(z) = args.z_loss {
        loss = loss.z_loss(z);
    }
    if let Some(cap) = args.softcap {
        loss = loss.softcap(cap);
    }
    if let Some(path) = &args.weight {
        let weight = read(path, "--weight")?;
        match (&weight.data, weight.shape.as_slice()) {
            (NpyData::F32(w), [c]) if *c == classes => loss = loss.weight(w),
            (data, shape) => {
                return Err(format!(
                    "--weight {} must be float32 [{classes}] (one per class of --input [{rows}, {classes}]), got {} {shape:?}",
                    path.display(),
                    data.dtype_name()
                ))
            }
        }
    }
    Ok(loss)
}

/// Keeps the gradient of a fused call and returns its loss.
fn keep_grad(grad: &mut Vec<f32>, result: ForwardBackward) -> LossValue {
    *grad = result.grad;
    result.loss
}

/// The scalar, or a one-line summary of a tensor.
fn summary(value: &LossValue) -> String {
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
