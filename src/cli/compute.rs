//! `wgpu-loss compute`: one loss from `.npy` inputs, printed and optionally saved.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use wgpu_loss::npy::{self, NpyArray, NpyData};
use wgpu_loss::{CrossEntropy, LossValue, Reduction, Targets};

use super::Backend;

/// The losses `compute` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LossName {
    /// Cross-entropy of logits [N, C] against class indices [N].
    CrossEntropy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReductionArg {
    None,
    Sum,
    Mean,
}

impl From<ReductionArg> for Reduction {
    fn from(r: ReductionArg) -> Self {
        match r {
            ReductionArg::None => Reduction::None,
            ReductionArg::Sum => Reduction::Sum,
            ReductionArg::Mean => Reduction::Mean,
        }
    }
}

/// Arguments of `compute`.
#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// The loss.
    #[arg(long, value_enum)]
    loss: LossName,
    /// Input .npy: float32 logits [N, C].
    #[arg(long)]
    input: PathBuf,
    /// Target .npy: int64 or int32 class indices [N].
    #[arg(long)]
    target: PathBuf,
    /// Class weights .npy: float32 [C].
    #[arg(long)]
    weight: Option<PathBuf>,
    /// Target value whose rows are ignored.
    #[arg(long, default_value_t = -100, allow_negative_numbers = true)]
    ignore_index: i64,
    /// Label smoothing in [0, 1].
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    label_smoothing: f64,
    /// How row losses are reduced.
    #[arg(long, value_enum, default_value = "mean")]
    reduction: ReductionArg,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "gpu")]
    backend: Backend,
    /// Write the result as float32 .npy: shape [] for sum and mean, [N] for none.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn read(path: &PathBuf, what: &str) -> Result<NpyArray, String> {
    npy::read(path).map_err(|e| format!("{what}: {e}"))
}

/// Runs `compute`.
pub fn run(args: ComputeArgs) -> Result<(), String> {
    let LossName::CrossEntropy = args.loss;
    let input = read(&args.input, "--input")?;
    let target = read(&args.target, "--target")?;
    let (rows, classes) = match (input.shape.as_slice(), &input.data) {
        ([rows, classes], NpyData::F32(_)) => (*rows, *classes),
        (shape, data) => {
            return Err(format!(
                "--input {} must be float32 [N, C], got {} {shape:?}",
                args.input.display(),
                data.dtype_name()
            ))
        }
    };
    if target.shape != [rows] || matches!(target.data, NpyData::F32(_)) {
        return Err(format!(
            "--target {} must be int64 or int32 [{rows}] (one class index per row of --input [{rows}, {classes}]), got {} {:?}",
            args.target.display(),
            target.data.dtype_name(),
            target.shape
        ));
    }
    let mut loss = CrossEntropy::default()
        .ignore_index(args.ignore_index)
        .label_smoothing(args.label_smoothing)
        .reduction(args.reduction.into());
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
    let NpyData::F32(logits) = &input.data else {
        unreachable!("checked above")
    };
    let targets = match &target.data {
        NpyData::I64(t) => Targets::I64(t),
        NpyData::I32(t) => Targets::I32(t),
        NpyData::F32(_) => unreachable!("checked above"),
    };
    let value = match args.backend {
        Backend::Gpu => {
            let ctx = super::gpu_context()?;
            loss.forward(&ctx, logits, rows, classes, targets)
        }
        Backend::Cpu => loss.forward_cpu(logits, rows, classes, targets),
    }
    .map_err(|e| e.to_string())?;
    if let Some(out) = &args.out {
        npy::write_f32(out, &value.shape(), value.values()).map_err(|e| format!("--out: {e}"))?;
    }
    println!("{}", summary(&value));
    Ok(())
}

/// The scalar, or for `none` a one-line summary of the row losses.
fn summary(value: &LossValue) -> String {
    match value {
        LossValue::Scalar(v) => format!("{v}"),
        LossValue::PerRow(rows) => {
            let shown: Vec<String> = rows.iter().take(4).map(f32::to_string).collect();
            let more = if rows.len() > 4 { ", ..." } else { "" };
            let sum: f64 = rows.iter().map(|&v| f64::from(v)).sum();
            format!("{} row losses [{}{more}], sum {sum}", rows.len(), shown.join(", "))
        }
    }
}
