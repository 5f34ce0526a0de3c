//! The loss the arguments ask for, as a `Box<dyn Loss>`, with the targets it reads: the
//! family's loss at its defaults, then the options given, then the files they name.

use std::path::Path;

use wgpu_loss::{CrossEntropy, ElementwiseLoss, Loss, Reduction};

use super::inputs::{self, InputArray};
use crate::cli::args::ComputeArgs;
use crate::cli::data::TargetData;
use crate::cli::family::Family;

/// A loss ready to run, and its targets.
pub struct Prepared {
    pub loss: Box<dyn Loss>,
    pub targets: TargetData,
}

/// Builds the loss from `args` and reads its targets, checking both against `input`.
pub fn prepare(args: &ComputeArgs, input: &InputArray) -> Result<Prepared, String> {
    let reduction = args.reduction.map_or(Reduction::Mean, Reduction::from);
    // Options checked: a loss that takes --target has one.
    let target = args.target.as_deref().unwrap_or(Path::new(""));
    match args.loss.family() {
        Family::CrossEntropy(loss) => {
            let class_input = inputs::class_input(&input.shape, &args.input)?;
            let loss = cross_entropy(args, loss.reduction(reduction), &class_input)?;
            let targets = inputs::class_targets(target, &class_input)?;
            Ok(Prepared {
                loss: Box::new(loss),
                targets,
            })
        }
        Family::Elementwise(loss) => {
            let targets = inputs::same_shape_target(target, &input.shape, &args.input)?;
            let loss = elementwise(args, loss.reduction(reduction))?;
            Ok(Prepared {
                loss: Box::new(loss),
                targets,
            })
        }
        Family::RowOp(op) => {
            inputs::last_axis_input(&input.shape, &args.input)?;
            Ok(Prepared {
                loss: Box::new(op.along(args.dim.unwrap_or(-1))),
                targets: TargetData::None,
            })
        }
    }
}

/// The cross-entropy / NLL options, with the class weights read and checked against C.
pub(super) fn cross_entropy(
    args: &ComputeArgs,
    mut loss: CrossEntropy,
    input: &inputs::ClassInput<'_>,
) -> Result<CrossEntropy, String> {
    if let Some(kind) = args.input_kind {
        loss = loss.input_kind(kind.into());
    }
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
        loss = loss.weight(&inputs::class_weight(path, input)?);
    }
    Ok(loss)
}

/// The elementwise options, with the weights read.
fn elementwise(args: &ComputeArgs, loss: ElementwiseLoss) -> Result<ElementwiseLoss, String> {
    let mut loss = loss.log_target(args.log_target);
    if let Some(path) = &args.weight {
        loss = loss.weight(&inputs::last_axis_weight(path, "--weight")?);
    }
    if let Some(path) = &args.pos_weight {
        loss = loss.pos_weight(&inputs::last_axis_weight(path, "--pos-weight")?);
    }
    Ok(loss)
}
