//! The small enums of the public vocabulary: what an input holds, its element type, the
//! width of class-index targets, and which elementwise loss or row operation is meant.

/// The width of a class-index target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetWidth {
    /// `i32` targets, one `u32` word each.
    I32,
    /// `i64` targets, two `u32` words each (little-endian).
    I64,
}

impl TargetWidth {
    /// Bytes per target.
    pub fn bytes(self) -> u64 {
        match self {
            TargetWidth::I32 => 4,
            TargetWidth::I64 => 8,
        }
    }
}

/// What the input of cross-entropy holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InputKind {
    /// Unnormalised scores; the softmax is taken (`F.cross_entropy`).
    #[default]
    Logits,
    /// Probabilities `p`; the log is taken of `p + epsilon` (the seeds' `-Σ t log(y + 1e-7)`).
    Probabilities,
    /// Log-probabilities, used as they are (`F.nll_loss`).
    LogProbabilities,
}

/// The element type of an input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InputFormat {
    /// 32-bit floats.
    #[default]
    F32,
    /// IEEE half precision (decoded from its bits in WGSL: no `SHADER_F16` needed).
    F16,
    /// bfloat16 (the high half of an f32).
    Bf16,
}

impl InputFormat {
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            InputFormat::F32 => 4,
            InputFormat::F16 | InputFormat::Bf16 => 2,
        }
    }
}

/// The losses of `elementwise.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementwiseKind {
    /// `(x - y)²`.
    Mse,
    /// Binary cross-entropy on probabilities.
    Bce,
    /// Binary cross-entropy on logits.
    BceWithLogits,
    /// KL divergence, input log-probabilities.
    KlDiv,
}

/// What `softmax.wgsl` writes per row. As a `Loss` it runs along the input's last axis
/// (`dim = -1`); `RowOp::along(dim)` takes any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowOutput {
    /// `softmax(x)`: the input's shape.
    Softmax,
    /// `log_softmax(x)`: the input's shape.
    LogSoftmax,
    /// The entropy of `softmax(x)`: the input's shape without the axis.
    Entropy,
}
