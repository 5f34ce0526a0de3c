//! Elementwise losses on the CPU, over host data already validated: the f64 reference and
//! the fast f32 backend, each giving the loss and, with an upstream, the gradient.

use crate::api::host::{ForwardBackward, Upstream};
use crate::api::reduction::LossValue;
use crate::cpu::{self, simd::sum_fixed};

use super::spec::{ElementSpec, Elements};
use super::{fast, reference};

/// The f64 reference (rounded to f32 at the end).
pub(crate) fn reference(
    spec: &ElementSpec<'_>,
    data: &Elements<'_>,
    upstream: Option<Upstream<&[f32]>>,
) -> ForwardBackward {
    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let (input, target) = (widen(data.input), widen(data.target));
    let losses = reference::elementwise_losses(spec, &input, &target);
    let value = match spec.divisor(data.shape, losses.len()) {
        None => LossValue::Tensor {
            shape: data.shape.to_vec(),
            values: losses.iter().map(|&l| l as f32).collect(),
        },
        Some(d) => LossValue::Scalar((cpu::f32_sum(losses.iter().copied()) / d) as f32),
    };
    let grad = match upstream {
        None => Vec::new(),
        Some(upstream) => reference::elementwise_grad(spec, &input, &target)
            .iter()
            .enumerate()
            // The derivative before the upstream scale is an f32 value, as in PyTorch's
            // float32 backward (w·(p - y)/… past 3.4e38 is inf there too).
            .map(|(i, &g)| (f64::from(g as f32) * element_scale(spec, data, upstream, i)) as f32)
            .collect(),
    };
    ForwardBackward::plain(value, grad)
}

/// The fast CPU backend.
pub(crate) fn fast(spec: &ElementSpec<'_>, data: &Elements<'_>, upstream: Option<Upstream<&[f32]>>) -> ForwardBackward {
    let values = fast::elementwise(spec, false, data.input, data.target);
    let value = match spec.divisor(data.shape, values.len()) {
        None => LossValue::Tensor {
            shape: data.shape.to_vec(),
            values,
        },
        Some(d) => LossValue::Scalar((f64::from(sum_fixed(&values) as f32) / d) as f32),
    };
    let grad = match upstream {
        None => Vec::new(),
        Some(upstream) => {
            let mut grad = fast::elementwise(spec, true, data.input, data.target);
            for (i, g) in grad.iter_mut().enumerate() {
                *g *= element_scale(spec, data, upstream, i) as f32;
            }
            grad
        }
    };
    ForwardBackward::plain(value, grad)
}

/// g for element `i`: the upstream over the reduction's divisor, or the element's own.
fn element_scale(spec: &ElementSpec<'_>, data: &Elements<'_>, upstream: Upstream<&[f32]>, i: usize) -> f64 {
    match upstream {
        Upstream::Values(v) => f64::from(v[i]),
        Upstream::Scalar(g) => f64::from(g) / spec.divisor(data.shape, data.input.len()).unwrap_or(1.0),
    }
}
