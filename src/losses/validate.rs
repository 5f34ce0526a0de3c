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

/// A length mismatch found on the `[rows, C]` view, naming the shape the caller gave.
fn named_shape(e: LossError, shape: String) -> LossError {
    match e {
        LossError::LengthMismatch {
            what, expected, actual, ..
        } => LossError::LengthMismatch {
            what,
            shape,
            expected,
            actual,
        },
        e => e,
    }
}

/// An input of any rank ≥ 1 taken along one axis (the softmax family's `dim`): `C` the
/// axis's length, `inner` the product of the axes after it (the stride between a row's
/// elements; 1 for the last axis), `rows` the positions (the product of every other axis).
/// Position `r` is `(o, i) = (r / inner, r % inner)`; its element `c` sits at
/// `o·C·inner + c·inner + i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DimAxis {
    pub rows: usize,
    pub classes: usize,
    pub inner: usize,
    /// The axis, counted from 0.
    pub axis: usize,
}

impl DimAxis {
    /// The axis `dim` (negative counts from the end) of `shape` (`input_len` elements),
    /// each error naming the shape.
    pub(crate) fn of(shape: &[usize], input_len: usize, dim: i64) -> Result<Self> {
        let rank = shape.len();
        let axis = if dim < 0 { dim + rank as i64 } else { dim };
        if rank == 0 {
            return Err(LossError::BadShape {
                what: "input",
                shape: shape.to_vec(),
                expected: "[…, C, …] (rank 1 or more)",
            });
        }
        if !(0..rank as i64).contains(&axis) {
            return Err(LossError::BadDim {
                dim,
                shape: shape.to_vec(),
                rank,
            });
        }
        let axis = axis as usize;
        let overflow = || LossError::TooLarge {
            what: "input",
            detail: format!("{shape:?} overflows usize"),
        };
        let product = |dims: &[usize]| dims.iter().try_fold(1_usize, |acc, &d| acc.checked_mul(d));
        let inner = product(&shape[axis + 1..]).ok_or_else(overflow)?;
        let rows = product(&shape[..axis])
            .and_then(|outer| outer.checked_mul(inner))
            .ok_or_else(overflow)?;
        let (rows, classes) =
            rows_and_classes(&[rows, shape[axis]], input_len).map_err(|e| named_shape(e, format!("{shape:?}")))?;
        Ok(Self {
            rows,
            classes,
            inner: inner.max(1), // an empty axis after this one: no positions at all
            axis,
        })
    }
}

/// A cross-entropy input's shape in PyTorch's forms: `[N, C]`, `[N, C, d1, …, dk]` (class
/// axis 1: position `r = (n, s)` of `rows = N·d1·…·dk` has its classes `inner = d1·…·dk`
/// apart, as [`DimAxis`] along axis 1), or unbatched `[C]` (one row, whose class-index
/// target and `none` loss are 0-d).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClassAxis {
    pub rows: usize,
    pub classes: usize,
    /// Elements between a position's classes: `d1·…·dk`, 1 for `[N, C]` and `[C]`.
    pub inner: usize,
    pub unbatched: bool,
    /// The shape as the caller gave it.
    pub shape: Vec<usize>,
}

impl ClassAxis {
    /// The axis of `shape` (`input_len` elements): `[C]`, `[N, C]` or `[N, C, d1, …]`,
    /// C > 0, each error naming the shape.
    pub(crate) fn of(shape: &[usize], input_len: usize) -> Result<Self> {
        if shape.is_empty() {
            return Err(LossError::BadShape {
                what: "input",
                shape: Vec::new(),
                expected: "[N, C, d1, …], [N, C] or [C] (unbatched)",
            });
        }
        let unbatched = shape.len() == 1;
        let axis = DimAxis::of(shape, input_len, if unbatched { 0 } else { 1 })?;
        Ok(Self {
            rows: axis.rows,
            classes: axis.classes,
            inner: axis.inner,
            unbatched,
            shape: shape.to_vec(),
        })
    }

    /// The input's shape as the caller gave it: `[C]`, `[N, C]`, `[N, C, d1, …]`.
    pub(crate) fn input_shape(&self) -> String {
        format!("{:?}", self.shape)
    }

    /// The shape of the class-index targets and of a `none` loss: the input's without its
    /// class axis (`[]`, `[N]`, `[N, d1, …]`).
    pub(crate) fn row_shape(&self) -> Vec<usize> {
        let axis = usize::from(!self.unbatched);
        let mut shape = self.shape.clone();
        shape.remove(axis);
        shape
    }
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
