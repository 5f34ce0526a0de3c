//! Which options each loss takes: any other given is an error, before any file is read.

use crate::cli::args::{spelled, ComputeArgs, InputKindArg, LossName, ReductionArg};

/// The options `loss` takes, as spelled on the command line.
fn takes(loss: LossName) -> &'static [&'static str] {
    use LossName::*;
    match loss {
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
            "--vocab-shards",
            "--vocab-parallel",
        ],
        Nll => &["--target", "--weight", "--ignore-index", "--reduction", "--grad-out"],
        Bce => &["--target", "--weight", "--reduction", "--grad-out"],
        BceWithLogits => &["--target", "--weight", "--pos-weight", "--reduction", "--grad-out"],
        Mse => &["--target", "--reduction", "--grad-out"],
        KlDiv => &["--target", "--reduction", "--log-target", "--grad-out"],
        Softmax | LogSoftmax | Entropy => &["--dim", "--grad-out"],
        LinearCrossEntropy => &[
            "--target",
            "--weight",
            "--ignore-index",
            "--label-smoothing",
            "--reduction",
            "--z-loss",
            "--softcap",
            "--grad-out",
            "--linear-weight",
            "--linear-bias",
            "--grad-linear-weight-out",
            "--grad-linear-bias-out",
        ],
    }
}

/// The options given, each with whether it is present.
fn given(args: &ComputeArgs) -> [(&'static str, bool); 19] {
    [
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
        ("--dim", args.dim.is_some()),
        ("--grad-out", args.grad_out.is_some()),
        ("--linear-weight", args.linear_weight.is_some()),
        ("--linear-bias", args.linear_bias.is_some()),
        ("--grad-linear-weight-out", args.grad_linear_weight_out.is_some()),
        ("--grad-linear-bias-out", args.grad_linear_bias_out.is_some()),
        ("--vocab-shards", args.vocab_shards.is_some()),
        ("--vocab-parallel", args.vocab_parallel.is_some()),
    ]
}

/// Fails on an option the loss does not take, or a missing one it needs.
pub fn check(args: &ComputeArgs) -> Result<(), String> {
    let takes = takes(args.loss);
    let name = spelled(args.loss);
    for (flag, present) in given(args) {
        if present && !takes.contains(&flag) {
            return Err(format!("--loss {name} does not take {flag}"));
        }
    }
    if args.reduction == Some(ReductionArg::Batchmean) && args.loss != LossName::KlDiv {
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
    if args.loss == LossName::LinearCrossEntropy && args.linear_weight.is_none() {
        return Err(format!("--loss {name} needs --linear-weight"));
    }
    if args.vocab_shards.is_some() && args.vocab_parallel.is_some() {
        return Err("--vocab-shards and --vocab-parallel are two ways to shard: give one".into());
    }
    if args.vocab_shards == Some(0) {
        return Err("--vocab-shards must be at least 1".into());
    }
    if args.grad_linear_bias_out.is_some() && args.linear_bias.is_none() {
        return Err("--grad-linear-bias-out needs --linear-bias".into());
    }
    Ok(())
}
