//! Host data the CLI owns (read from `.npy` files or generated), lent to the library as
//! [`wgpu_loss::Input`] and [`wgpu_loss::Targets`].

use wgpu_loss::{Input, Targets};

/// An input: f32 values, or IEEE half bits.
pub enum InputData {
    F32(Vec<f32>),
    F16(Vec<u16>),
}

impl InputData {
    /// The values as the library takes them.
    pub fn as_input(&self) -> Input<'_> {
        match self {
            InputData::F32(values) => Input::F32(values),
            InputData::F16(bits) => Input::F16(bits),
        }
    }
}

/// Targets by dtype, as the library takes them.
pub enum TargetData {
    /// No targets (the softmax family).
    None,
    /// int64 class indices.
    I64(Vec<i64>),
    /// int32 class indices.
    I32(Vec<i32>),
    /// float32 values: probabilities, or an elementwise loss's target.
    F32(Vec<f32>),
}

impl TargetData {
    /// The targets as the library takes them.
    pub fn as_targets(&self) -> Targets<'_> {
        match self {
            TargetData::None => Targets::None,
            TargetData::I64(t) => Targets::I64(t),
            TargetData::I32(t) => Targets::I32(t),
            TargetData::F32(t) => Targets::F32(t),
        }
    }

    /// Their raw little-endian bytes (as uploaded to a GPU buffer).
    pub fn bytes(&self) -> &[u8] {
        match self {
            TargetData::None => &[],
            TargetData::I64(t) => bytemuck::cast_slice(t),
            TargetData::I32(t) => bytemuck::cast_slice(t),
            TargetData::F32(t) => bytemuck::cast_slice(t),
        }
    }
}
