//! Validation shared by the families.

use crate::error::{LossError, Result};

/// `(N, C)` of an `[N, C]` input of `input_len` elements: the rank, C > 0, N·C without
/// overflow and the length, each an error naming the shape.
pub(crate) fn rows_and_classes(shape: &[usize], input_len: usize) -> Result<(usize, usize)> {
    let [rows, classes] = *shape else {
        return Err(LossError::BadShape {
            what: "input",
            shape: shape.to_vec(),
            expected: "[N, C]",
        });
    };
    if classes == 0 {
        return Err(LossError::ZeroClasses { rows });
    }
    let expected = rows.checked_mul(classes).ok_or_else(|| LossError::TooLarge {
        what: "input",
        detail: format!("[{rows}, {classes}] overflows usize"),
    })?;
    if input_len != expected {
        return Err(LossError::LengthMismatch {
            what: "input",
            shape: format!("[{rows}, {classes}]"),
            expected,
            actual: input_len,
        });
    }
    Ok((rows, classes))
}

/// Per-class (or per-last-axis) weights: one per class, finite and non-negative.
pub(crate) fn check_weights(what: &'static str, weight: &[f32], classes: usize, input_shape: &str) -> Result<()> {
    if weight.len() != classes {
        return Err(LossError::LengthMismatch {
            what,
            shape: format!("[{classes}] (one per class of the input {input_shape})"),
            expected: classes,
            actual: weight.len(),
        });
    }
    if let Some((index, &value)) = weight.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
        return Err(LossError::BadWeight { what, index, value });
    }
    Ok(())
}
