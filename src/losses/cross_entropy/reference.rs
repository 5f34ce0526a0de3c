//! Cross-entropy / NLL in f64, with every option (weights, ignore_index, label smoothing,
//! input kinds, soft-cap, z-loss), and its gradient. Inputs are f32 (read in place) or f64
//! (so tests can take central finite differences with steps below f32's resolution).

use crate::api::kinds::InputKind;
use crate::cpu::RowLosses;

use super::spec::Spec;

/// An input element: f32 or f64, computed with in f64.
pub(crate) trait Real: Copy + Into<f64> {}
impl Real for f32 {}
impl Real for f64 {}

/// Targets of the reference.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RefTargets<'a> {
    /// One class index per row.
    Indices(&'a [i64]),
    /// Probabilities `[N, C]`.
    Probabilities(&'a [f64]),
}

/// One row's loss, its weight in the mean, and the coefficients a_c (see the GPU kernel:
/// `l = -Σ a_c lp_c`), with `None` for ignored rows.
struct RowTerms {
    loss: f64,
    weight: f64,
    coefficients: Option<Vec<f64>>,
}

impl Spec<'_> {
    fn class_weight(&self, c: usize) -> f64 {
        self.weight.map_or(1.0, |w| f64::from(w[c]))
    }

    pub(crate) fn capped(&self, x: f64) -> f64 {
        self.softcap.map_or(x, |cap| cap * (x / cap).tanh())
    }

    /// lp of a row (after the soft-cap for logits) and, for logits, its lse.
    fn log_probs<T: Real>(&self, row: &[T]) -> (Vec<f64>, f64) {
        match self.kind {
            InputKind::Logits => {
                let x: Vec<f64> = row.iter().map(|&v| self.capped(v.into())).collect();
                let lse = logsumexp64(&x);
                (x.iter().map(|v| v - lse).collect(), lse)
            }
            InputKind::Probabilities => (row.iter().map(|&p| (p.into() + self.epsilon).ln()).collect(), f64::NAN),
            InputKind::LogProbabilities => (row.iter().map(|&x| x.into()).collect(), f64::NAN),
        }
    }

    fn row_terms<T: Real>(&self, row: &[T], target: Result<i64, &[f64]>) -> RowTerms {
        let classes = row.len();
        let eps = self.label_smoothing;
        let coefficients: Vec<f64> = match target {
            Ok(y) if y == self.ignore_index => {
                return RowTerms {
                    loss: 0.0,
                    weight: 0.0,
                    coefficients: None,
                }
            }
            Ok(y) => (0..classes)
                .map(|c| {
                    let hit = if c == y as usize { self.class_weight(c) } else { 0.0 };
                    if eps > 0.0 {
                        (1.0 - eps) * hit + eps / classes as f64 * self.class_weight(c)
                    } else {
                        hit
                    }
                })
                .collect(),
            Err(t) => (0..classes)
                .map(|c| self.class_weight(c) * (t[c] * (1.0 - eps) + eps / classes as f64))
                .collect(),
        };
        let (logp, lse) = self.log_probs(row);
        // PyTorch gathers the target's term but sums the smoothing term and probability
        // targets over every class: there 0·(-inf) is NaN (a zero class weight on a -inf
        // log-probability too); a gathered form never forms it.
        let every_class = target.is_err() || eps > 0.0;
        let mut loss = 0.0;
        for (a, lp) in coefficients.iter().zip(&logp) {
            if *a != 0.0 || every_class {
                loss -= a * lp;
            }
        }
        if self.z_loss != 0.0 && self.kind == InputKind::Logits {
            loss += self.z_loss * lse * lse;
        }
        let weight = match target {
            Ok(y) => self.class_weight(y as usize),
            Err(_) => 1.0,
        };
        RowTerms {
            loss,
            weight,
            coefficients: Some(coefficients),
        }
    }

    fn rows<'t>(
        &self,
        classes: usize,
        targets: RefTargets<'t>,
        rows: usize,
    ) -> impl Iterator<Item = Result<i64, &'t [f64]>> {
        (0..rows).map(move |n| match targets {
            RefTargets::Indices(t) => Ok(t[n]),
            RefTargets::Probabilities(t) => Err(&t[n * classes..(n + 1) * classes]),
        })
    }
}

pub(crate) fn logsumexp64<T: Real>(x: &[T]) -> f64 {
    let mut max = f64::NEG_INFINITY;
    for &v in x {
        let v: f64 = v.into();
        if v.is_nan() {
            return f64::NAN;
        }
        max = max.max(v);
    }
    max + x.iter().map(|&v| (v.into() - max).exp()).sum::<f64>().ln()
}

/// Row losses `l_n` and mean weights (0 for ignored rows), plus each row's lse (logits).
pub(crate) fn reference_rows<T: Real>(
    input: &[T],
    classes: usize,
    targets: RefTargets<'_>,
    opts: &Spec<'_>,
) -> RowLosses {
    let rows = input.len() / classes.max(1);
    let mut out = RowLosses {
        loss: Vec::with_capacity(rows),
        weight: Vec::with_capacity(rows),
    };
    let plain = opts.kind == InputKind::Logits && opts.softcap.is_none() && opts.label_smoothing == 0.0;
    for (row, target) in input.chunks_exact(classes).zip(opts.rows(classes, targets, rows)) {
        match target {
            // The common case without building a_c: -w_y (x_y - lse) (+ z lse²).
            Ok(y) if plain && y != opts.ignore_index => {
                let lse = logsumexp64(row);
                let w_y = opts.class_weight(y as usize);
                let x_y: f64 = row[y as usize].into();
                out.loss.push(-w_y * (x_y - lse) + opts.z_loss * lse * lse);
                out.weight.push(w_y);
            }
            _ => {
                let terms = opts.row_terms(row, target);
                out.loss.push(terms.loss);
                out.weight.push(terms.weight);
            }
        }
    }
    out
}

/// `∂(Σ_n g_n l_n)/∂input`: the gradient for per-row upstream scales `g_n` (for `sum`,
/// all g; for `mean`, g / Σ weights; for `none`, the upstream values).
pub(crate) fn reference_grad<T: Real>(
    input: &[T],
    classes: usize,
    targets: RefTargets<'_>,
    opts: &Spec<'_>,
    row_scale: &[f64],
) -> Vec<f64> {
    let rows = input.len() / classes.max(1);
    let mut grad = Vec::with_capacity(input.len());
    for ((row, target), &g) in input
        .chunks_exact(classes)
        .zip(opts.rows(classes, targets, rows))
        .zip(row_scale)
    {
        let Some(a) = opts.row_terms(row, target).coefficients else {
            grad.extend(std::iter::repeat_n(0.0, classes));
            continue;
        };
        match opts.kind {
            InputKind::Logits => {
                let x: Vec<f64> = row.iter().map(|&v| opts.capped(v.into())).collect();
                let lse = logsumexp64(&x);
                let a_sum: f64 = a.iter().sum();
                for c in 0..classes {
                    let p = (x[c] - lse).exp();
                    let mut d = a_sum * p - a[c] + 2.0 * opts.z_loss * lse * p;
                    if let Some(cap) = opts.softcap {
                        let r = x[c] / cap;
                        d *= 1.0 - r * r;
                    }
                    grad.push(g * d);
                }
            }
            InputKind::Probabilities => {
                grad.extend((0..classes).map(|c| -g * a[c] / (Into::<f64>::into(row[c]) + opts.epsilon)))
            }
            InputKind::LogProbabilities => grad.extend(a.iter().map(|ac| -g * ac)),
        }
    }
    grad
}

#[cfg(test)]
/// Class-index cross-entropy of `[rows, classes]` logits, as
/// `torch.nn.functional.cross_entropy(x, y, weight, ignore_index=..., label_smoothing=...,
/// reduction='none')`, plus the mean's denominators: [`reference_rows`] with those options.
/// Inputs must already be valid (targets in `[0, C)` or `ignore_index`).
pub(crate) fn cross_entropy_rows(
    logits: &[f32],
    classes: usize,
    targets: &[i64],
    weight: Option<&[f32]>,
    ignore_index: i64,
    label_smoothing: f64,
) -> RowLosses {
    let opts = Spec {
        weight,
        ignore_index,
        label_smoothing,
        ..Spec::default()
    };
    reference_rows(logits, classes, RefTargets::Indices(targets), &opts)
}

#[cfg(test)]
/// Cross-entropy of a row of probabilities (not logits) against a target distribution:
/// `-Σ t log(p + epsilon)`, the seeds' form (Keras `from_logits=False` uses 1e-7).
pub(crate) fn cross_entropy_of_probabilities(probabilities: &[f32], target: &[f32], epsilon: f64) -> f64 {
    let mut sum = 0.0;
    for (&p, &t) in probabilities.iter().zip(target) {
        sum += -f64::from(t) * (f64::from(p) + epsilon).ln();
    }
    sum
}
