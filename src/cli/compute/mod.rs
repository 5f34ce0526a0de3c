//! `wgpu-loss compute`: one loss from `.npy` inputs, printed and optionally saved.
//!
//! The same steps for every loss: check which options it takes (`options`), read the input
//! (`inputs`), build the `Box<dyn Loss>` and read its targets (`build`), run `forward` or
//! `forward_backward` on the chosen backend, write the outputs (`outputs`).

mod build;
mod inputs;
mod linear;
mod options;
mod outputs;
mod runner;
mod vocab;

use wgpu_loss::{Backend, Batch, Loss, Upstream};

use super::args::ComputeArgs;
use outputs::Computed;
use runner::Runner;

/// Runs `compute`.
pub fn run(args: ComputeArgs) -> Result<(), String> {
    options::check(&args)?;
    outputs::check_paths(&args)?;
    if args.loss == super::args::LossName::LinearCrossEntropy {
        let runner = Runner::new(args.backend)?;
        return linear::run(&args, runner.backend());
    }
    if args.vocab_shards.is_some() || args.vocab_parallel.is_some() {
        return vocab::run(&args, &|local_rank| Runner::of_process(args.backend, local_rank));
    }
    let input = inputs::input(&args)?;
    let runner = Runner::new(args.backend)?;
    let prepared = build::prepare(&args, &input)?;
    let batch = Batch::new(
        input.data.as_input(),
        input.shape.clone(),
        prepared.targets.as_targets(),
    );
    let result =
        compute(&*prepared.loss, runner.backend(), &batch, args.grad_out.is_some()).map_err(|e| e.to_string())?;
    outputs::write(&args, &input.shape, &result)?;
    println!("{}", outputs::summary(&result.loss));
    Ok(())
}

/// The loss alone, or with its gradient for upstream 1 (all ones for reduction none and
/// the softmax family).
fn compute(loss: &dyn Loss, backend: Backend<'_>, batch: &Batch<'_>, with_grad: bool) -> wgpu_loss::Result<Computed> {
    if with_grad {
        let both = loss.forward_backward(backend, batch, Upstream::Scalar(1.0))?;
        Ok(Computed {
            loss: both.loss,
            grad: Some(both.grad),
        })
    } else {
        Ok(Computed {
            loss: loss.forward(backend, batch)?,
            grad: None,
        })
    }
}
