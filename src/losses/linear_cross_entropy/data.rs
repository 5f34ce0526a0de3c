//! A validated host call as the CPU backends take it.

use crate::api::linear::LinearShape;

/// f32 values (halves widened exactly) and class indices as i64.
pub(crate) struct HostLinear<'a> {
    pub h: &'a [f32],
    pub w: &'a [f32],
    pub b: Option<&'a [f32]>,
    pub shape: LinearShape,
    pub targets: &'a [i64],
}
