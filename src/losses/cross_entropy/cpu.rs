//! Cross-entropy on the CPU, over host batches already validated: the f64 reference and the
//! fast f32 backend. Both give the loss and, with an upstream, the gradient; the reference
//! also gives the per-row outputs (lse, argmax, accuracy).

use crate::api::host::{ForwardBackward, Targets, Upstream};
use crate::api::reduction::{LossValue, Reduction};
use crate::cpu::{self, transpose_blocks, RowLosses};

use super::fast;
use super::reference::{reference_grad, reference_rows, RefTargets};
use super::spec::Spec;

/// The validated host data of one call.
pub(crate) struct HostRows<'a> {
    pub input: &'a [f32],
    pub rows: usize,
    pub classes: usize,
    pub targets: Targets<'a>,
}

/// Runs `backend` on `data` whose classes sit `inner` apart (`[N, C, d1, …]`, `inner =
/// d1·…·dk`): the positions gathered into rows (each `[C, inner]` block of the input and of
/// probability targets transposed), the gradient scattered back. Class-index targets, the
/// upstream and every per-position output are already in position order.
pub(crate) fn along_classes(
    spec: &Spec<'_>,
    data: &HostRows<'_>,
    inner: usize,
    upstream: Option<Upstream<&[f32]>>,
    backend: impl FnOnce(&Spec<'_>, &HostRows<'_>, Option<Upstream<&[f32]>>) -> ForwardBackward,
) -> ForwardBackward {
    if inner == 1 {
        return backend(spec, data, upstream);
    }
    let classes = data.classes;
    let input = transpose_blocks(data.input, classes, inner);
    let probabilities = match data.targets {
        Targets::F32(t) => Some(transpose_blocks(t, classes, inner)),
        _ => None,
    };
    let gathered = HostRows {
        input: &input,
        rows: data.rows,
        classes,
        targets: probabilities.as_deref().map_or(data.targets, Targets::F32),
    };
    let mut out = backend(spec, &gathered, upstream);
    out.grad = transpose_blocks(&out.grad, inner, classes);
    out
}

/// The f64 reference (rounded to f32 at the end).
pub(crate) fn reference(spec: &Spec<'_>, data: &HostRows<'_>, upstream: Option<Upstream<&[f32]>>) -> ForwardBackward {
    let HostRows {
        input,
        rows,
        classes,
        targets,
    } = *data;
    let targets64 = widen_targets(&targets);
    let losses = reference_rows(input, classes, targets64.as_ref(), spec);
    let mut out = ForwardBackward::plain(reduce_rows(spec, rows, &losses), Vec::new());
    let Some(upstream) = upstream else {
        return out;
    };
    let scale = row_scale(spec, &losses, upstream);
    let grad = reference_grad(input, classes, targets64.as_ref(), spec, &scale);
    out.grad = grad.iter().map(|&g| g as f32).collect();
    if spec.row_outputs {
        let lse: Vec<f32> = input
            .chunks_exact(classes.max(1))
            .map(|row| {
                let capped: Vec<f32> = row
                    .iter()
                    .map(|&x| spec.softcap.map_or(f64::from(x), |c| c * (f64::from(x) / c).tanh()) as f32)
                    .collect();
                cpu::logsumexp(&capped) as f32
            })
            .collect();
        let argmax: Vec<u32> = input.chunks_exact(classes.max(1)).map(cpu::argmax).collect();
        out.accuracy = targets
            .is_indices()
            .then(|| accuracy_of(&argmax, &targets.indices(), spec.ignore_index));
        out.lse = Some(lse);
        out.argmax = Some(argmax);
    }
    out
}

/// The fast CPU backend: f32, vectorised exp, rows in parallel (rayon), deterministic.
/// Soft-cap and non-logit inputs use the reference per row (in parallel).
pub(crate) fn fast(spec: &Spec<'_>, data: &HostRows<'_>, upstream: Option<Upstream<&[f32]>>) -> ForwardBackward {
    let HostRows {
        input,
        rows,
        classes,
        targets,
    } = *data;
    if rows == 0 {
        let empty = RowLosses {
            loss: Vec::new(),
            weight: Vec::new(),
        };
        return ForwardBackward::plain(reduce_rows(spec, 0, &empty), Vec::new());
    }
    let indices = targets.indices();
    let fast_targets = match targets {
        Targets::F32(t) => fast::FastTargets::Probabilities(t),
        _ => fast::FastTargets::Indices(&indices),
    };
    match upstream {
        // The forward alone keeps no per-row record (at 4M rows that was 160 MB of fresh
        // pages, slower than the arithmetic): f32 row values, or the two sums.
        None => {
            let value = match spec.reduction {
                Reduction::None => LossValue::Tensor {
                    shape: vec![rows],
                    values: fast::row_values(input, classes, fast_targets, spec),
                },
                reduction => {
                    let (loss, weight) = fast::sums(input, classes, fast_targets, spec);
                    LossValue::Scalar(if reduction == Reduction::Sum {
                        loss
                    } else {
                        loss / weight
                    } as f32)
                }
            };
            ForwardBackward::plain(value, Vec::new())
        }
        Some(upstream) => {
            let (losses, grad) = fast::rows_and_grad(input, classes.max(1), fast_targets, spec, |l| {
                row_scale(spec, l, upstream)
            });
            ForwardBackward::plain(reduce_rows(spec, rows, &losses), grad)
        }
    }
}

/// Each row's upstream scale g_n: upstream, upstream / Σ weights (mean), or per row.
pub(crate) fn row_scale(spec: &Spec<'_>, losses: &RowLosses, upstream: Upstream<&[f32]>) -> Vec<f64> {
    let rows = losses.loss.len();
    match (upstream, spec.reduction) {
        (Upstream::Values(v), _) => v.iter().map(|&g| f64::from(g)).collect(),
        (Upstream::Scalar(g), Reduction::Mean) => {
            vec![f64::from(g) / losses.divisor_f32(); rows]
        }
        (Upstream::Scalar(g), _) => vec![f64::from(g); rows],
    }
}

pub(crate) fn reduce_rows(spec: &Spec<'_>, rows: usize, losses: &RowLosses) -> LossValue {
    match spec.reduction {
        Reduction::None => LossValue::Tensor {
            shape: vec![rows],
            values: losses.loss.iter().map(|&l| l as f32).collect(),
        },
        // Each sum rounded to f32 before the mean divides, as PyTorch's float32 kernels.
        Reduction::Sum => LossValue::Scalar(losses.sum_f32() as f32),
        _ => LossValue::Scalar((losses.sum_f32() / losses.divisor_f32()) as f32),
    }
}

/// The fraction of rows not ignored whose argmax equals the target (NaN if none counts).
pub(crate) fn accuracy_of(argmax: &[u32], targets: &[i64], ignore_index: i64) -> f32 {
    let counted: Vec<(u32, i64)> = argmax
        .iter()
        .zip(targets)
        .filter(|(_, &t)| t != ignore_index)
        .map(|(&a, &t)| (a, t))
        .collect();
    let hits = counted.iter().filter(|(a, t)| i64::from(*a) == *t).count();
    hits as f32 / counted.len() as f32
}

/// The targets as the reference takes them (indices as i64, probabilities as f64).
fn widen_targets(targets: &Targets<'_>) -> OwnedTargets {
    match targets {
        Targets::F32(t) => OwnedTargets::Probabilities(t.iter().map(|&v| f64::from(v)).collect()),
        _ => OwnedTargets::Indices(targets.indices()),
    }
}

/// Owned reference targets.
enum OwnedTargets {
    Indices(Vec<i64>),
    Probabilities(Vec<f64>),
}

impl OwnedTargets {
    fn as_ref(&self) -> RefTargets<'_> {
        match self {
            OwnedTargets::Indices(t) => RefTargets::Indices(t),
            OwnedTargets::Probabilities(t) => RefTargets::Probabilities(t),
        }
    }
}
