//! The argument types of the command line (clap), and what each means to the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use wgpu_loss::{InputKind, Reduction, Strategy};

/// Loss functions on the GPU (WGSL through wgpu), checked against an f64 CPU reference.
#[derive(Debug, Parser)]
#[command(name = "wgpu-loss", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute a loss from NumPy .npy files.
    Compute(Box<ComputeArgs>),
    /// Time cross-entropy on generated data on GPU and CPU, checking one against the other.
    Bench(BenchArgs),
}

/// Which implementation computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The WGSL kernels through wgpu.
    Gpu,
    /// The fast CPU backend (multi-threaded f32, vectorisable exp and ln).
    Cpu,
    /// The f64 CPU reference.
    Reference,
}

/// The losses and row operations `compute` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LossName {
    /// Cross-entropy: input [N, C], [N, C, d1, …] (class axis 1) or unbatched [C]; target class indices [N] / [N, d1, …] (0-d for [C]; int) or probabilities shaped like the input (float32).
    CrossEntropy,
    /// Negative log-likelihood: input log-probabilities [N, C], [N, C, d1, …] or unbatched [C]; target class indices [N] / [N, d1, …] (0-d for [C]).
    Nll,
    /// Binary cross-entropy: input probabilities, target of the same shape, both in [0, 1].
    Bce,
    /// Binary cross-entropy on logits: input logits, target of the same shape.
    BceWithLogits,
    /// Mean squared error: input and target of the same shape.
    Mse,
    /// KL divergence: input log-probabilities, target probabilities (or log with --log-target).
    KlDiv,
    /// Softmax along the last axis of an input of any rank (PyTorch's dim=-1): output of the input's shape.
    Softmax,
    /// Log-softmax along the last axis of an input of any rank: output of the input's shape.
    LogSoftmax,
    /// Entropy of the softmax along the last axis (Categorical(logits=x).entropy()): output of the input's shape without its last axis.
    Entropy,
    /// Cross-entropy of the logits h·Wᵀ + b, never stored: --input h [N, D], --linear-weight W [V, D], optional --linear-bias b [V] (float32 or float16), --target [N] class indices.
    LinearCrossEntropy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReductionArg {
    None,
    Sum,
    Mean,
    Batchmean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputKindArg {
    Logits,
    Probs,
    LogProbs,
}

/// Arguments of `compute`.
#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// The loss.
    #[arg(long, value_enum)]
    pub loss: LossName,
    /// Input .npy (float32; float16 for cross-entropy, nll and the softmax family).
    #[arg(long)]
    pub input: PathBuf,
    /// Target .npy (int64/int32 class indices, or float32).
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// Weights .npy: float32, one per class (last axis).
    #[arg(long)]
    pub weight: Option<PathBuf>,
    /// Positive-example weights .npy for bce-with-logits: float32, one per class (last axis).
    #[arg(long)]
    pub pos_weight: Option<PathBuf>,
    /// Target value whose rows are ignored (cross-entropy, nll; default -100).
    #[arg(long, allow_hyphen_values = true)]
    pub ignore_index: Option<i64>,
    /// Label smoothing in [0, 1] (cross-entropy).
    #[arg(long, allow_hyphen_values = true)]
    pub label_smoothing: Option<f64>,
    /// How losses are reduced (default mean; batchmean for kl-div only).
    #[arg(long, value_enum)]
    pub reduction: Option<ReductionArg>,
    /// What the cross-entropy input holds (default logits).
    #[arg(long, value_enum)]
    pub input_kind: Option<InputKindArg>,
    /// Added to probabilities before the log, with --input-kind probs (default 1e-7).
    #[arg(long, allow_hyphen_values = true)]
    pub epsilon: Option<f64>,
    /// kl-div: the target holds log-probabilities.
    #[arg(long)]
    pub log_target: bool,
    /// softmax, log-softmax, entropy: the axis they run along (negative counts from the end; default -1).
    #[arg(long, allow_hyphen_values = true)]
    pub dim: Option<i64>,
    /// cross-entropy: add the z-loss S·lse² to each row that is not ignored.
    #[arg(long, allow_hyphen_values = true)]
    pub z_loss: Option<f64>,
    /// cross-entropy: soft-cap the logits, C·tanh(x / C), before the softmax.
    #[arg(long, allow_hyphen_values = true)]
    pub softcap: Option<f64>,
    /// Write ∂loss/∂input as float32 .npy in the input's shape (upstream gradient 1; all
    /// ones for reduction none). linear-cross-entropy: ∂loss/∂h [N, D].
    #[arg(long)]
    pub grad_out: Option<PathBuf>,
    /// linear-cross-entropy: the output layer's weight W [V, D] .npy (float32 or float16).
    #[arg(long)]
    pub linear_weight: Option<PathBuf>,
    /// linear-cross-entropy: the output layer's bias b [V] .npy (float32 or float16).
    #[arg(long)]
    pub linear_bias: Option<PathBuf>,
    /// linear-cross-entropy: write ∂loss/∂W [V, D] as float32 .npy.
    #[arg(long)]
    pub grad_linear_weight_out: Option<PathBuf>,
    /// linear-cross-entropy: write ∂loss/∂b [V] as float32 .npy (needs --linear-bias).
    #[arg(long)]
    pub grad_linear_bias_out: Option<PathBuf>,
    /// Where to compute: the WGSL kernels, the fast CPU backend, or the f64 reference.
    #[arg(long, value_enum, default_value = "gpu")]
    pub backend: BackendArg,
    /// Write the result as float32 .npy: [] for sum/mean/batchmean, else the result's shape.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// cross-entropy of logits [N, C] with class indices: split the vocabulary (the class
    /// axis) into K near-equal shards, computed in this process and merged on the host
    /// (the result equals the unsharded run's).
    #[arg(long)]
    pub vocab_shards: Option<usize>,
    /// cross-entropy of logits [N, C] with class indices, as one rank of `mpirun -np G
    /// wgpu-loss compute … --vocab-parallel mpi`: every rank reads the same files and takes
    /// its shard of the vocabulary; rank 0 alone writes --out and --grad-out (the whole
    /// gradient, gathered). Needs a build with `--features mpi`.
    #[arg(long, value_enum)]
    pub vocab_parallel: Option<VocabParallelArg>,
}

/// The engines `--vocab-parallel` merges over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VocabParallelArg {
    /// MPI (the ranks of `mpirun`), through the system's MPI library.
    Mpi,
}

// `bench --backend`: which side to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    Gpu,
    Cpu,
    Both,
}

/// The losses `bench` can time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchLoss {
    CrossEntropy,
    Nll,
    Mse,
    Bce,
    BceWithLogits,
    KlDiv,
    Softmax,
    LogSoftmax,
    Entropy,
    /// Fused linear cross-entropy, forward + backward, fused against unfused in the same run.
    LinearCrossEntropy,
}

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Rows of one shape to run instead of the default set (needs --classes).
    #[arg(long, requires = "classes", allow_hyphen_values = true)]
    pub rows: Option<usize>,
    /// Classes of that shape (needs --rows).
    #[arg(long, requires = "rows", allow_hyphen_values = true)]
    pub classes: Option<usize>,
    /// linear-cross-entropy: hidden features D of h [N, D] and W [V, D] (with --rows N,
    /// --classes V; default 128).
    #[arg(long, allow_hyphen_values = true)]
    pub hidden: Option<usize>,
    /// linear-cross-entropy: the most bytes of logits one fused tile holds (default 8 MiB).
    #[arg(long)]
    pub tile_bytes: Option<u64>,
    /// One shape of any rank instead (comma-separated, e.g. 8,21,512,512): cross-entropy and
    /// nll take class axis 1 ([N, C, d1, …]), the others their last axis.
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with_all = ["rows", "classes"])]
    pub shape: Option<Vec<usize>>,
    /// Timed runs per shape and backend; the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Which side to time (the reference always runs once, to check the others).
    #[arg(long, value_enum, default_value = "both")]
    pub backend: Which,
    /// The loss (mean reduction; softmax, log-softmax and entropy write per-row outputs).
    #[arg(long, value_enum, default_value = "cross-entropy")]
    pub loss: BenchLoss,
    /// Write throughput against input size as an SVG chart, one line per backend and mode.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print one JSON array of result objects instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Time forward + backward (the gradient for upstream 1, or ones for the softmax
    /// family's outputs) instead of the forward alone: reads the input, writes the gradient.
    #[arg(long)]
    pub grad: bool,
    /// Force one row-kernel strategy instead of the plan's choice per shape.
    #[arg(long, value_enum, default_value = "auto")]
    pub strategy: StrategyArg,
}

/// `--strategy`: the plan's choice, or one forced (see `wgpu_loss::Strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// Chosen per shape and adapter.
    Auto,
    /// One invocation per row.
    Invocation,
    /// One subgroup per row.
    Subgroup,
    /// One workgroup per row.
    Workgroup,
    /// Several workgroups per row (cross-entropy / NLL).
    Split,
}

/// How a value is spelled on the command line (`cross-entropy`, `batchmean`, …).
pub fn spelled(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

impl From<ReductionArg> for Reduction {
    fn from(arg: ReductionArg) -> Self {
        match arg {
            ReductionArg::None => Reduction::None,
            ReductionArg::Sum => Reduction::Sum,
            ReductionArg::Mean => Reduction::Mean,
            ReductionArg::Batchmean => Reduction::BatchMean,
        }
    }
}

impl From<InputKindArg> for InputKind {
    fn from(arg: InputKindArg) -> Self {
        match arg {
            InputKindArg::Logits => InputKind::Logits,
            InputKindArg::Probs => InputKind::Probabilities,
            InputKindArg::LogProbs => InputKind::LogProbabilities,
        }
    }
}

impl StrategyArg {
    /// The strategy forced, or `None` for the plan's choice.
    pub fn forced(self) -> Option<Strategy> {
        match self {
            StrategyArg::Auto => None,
            StrategyArg::Invocation => Some(Strategy::InvocationPerRow),
            StrategyArg::Subgroup => Some(Strategy::SubgroupPerRow),
            StrategyArg::Workgroup => Some(Strategy::WorkgroupPerRow),
            StrategyArg::Split => Some(Strategy::SplitRow),
        }
    }
}

impl From<BenchLoss> for LossName {
    fn from(loss: BenchLoss) -> Self {
        match loss {
            BenchLoss::CrossEntropy => LossName::CrossEntropy,
            BenchLoss::Nll => LossName::Nll,
            BenchLoss::Mse => LossName::Mse,
            BenchLoss::Bce => LossName::Bce,
            BenchLoss::BceWithLogits => LossName::BceWithLogits,
            BenchLoss::KlDiv => LossName::KlDiv,
            BenchLoss::Softmax => LossName::Softmax,
            BenchLoss::LogSoftmax => LossName::LogSoftmax,
            BenchLoss::Entropy => LossName::Entropy,
            BenchLoss::LinearCrossEntropy => LossName::LinearCrossEntropy,
        }
    }
}
