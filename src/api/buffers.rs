//! Positions in GPU buffers: where a recorded call reads its inputs and writes its
//! outputs (the caller's buffers at byte offsets), and the status word it leaves.

use crate::api::host::Upstream;
use crate::api::kinds::InputFormat;

/// A position in a GPU buffer: the buffer and a byte offset into it.
#[derive(Debug, Clone, Copy)]
pub struct BufferAt<'a> {
    /// The buffer (needs `STORAGE` usage; `COPY_SRC` too for targets, to report a bad one).
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of the first element (a multiple of 4).
    pub offset: u64,
}

impl<'a> From<&'a wgpu::Buffer> for BufferAt<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Self {
        Self { buffer, offset: 0 }
    }
}

/// An input in a GPU buffer: its position and element type (f32 unless said).
#[derive(Debug, Clone, Copy)]
pub struct InputAt<'a> {
    /// Where the first element is (a byte offset that is a multiple of the element size).
    pub at: BufferAt<'a>,
    /// The element type.
    pub format: InputFormat,
}

impl<'a> InputAt<'a> {
    /// f16 elements at `at`.
    pub fn f16(at: impl Into<BufferAt<'a>>) -> Self {
        Self {
            at: at.into(),
            format: InputFormat::F16,
        }
    }

    /// bf16 elements at `at`.
    pub fn bf16(at: impl Into<BufferAt<'a>>) -> Self {
        Self {
            at: at.into(),
            format: InputFormat::Bf16,
        }
    }
}

impl<'a> From<BufferAt<'a>> for InputAt<'a> {
    fn from(at: BufferAt<'a>) -> Self {
        Self {
            at,
            format: InputFormat::F32,
        }
    }
}

impl<'a> From<&'a wgpu::Buffer> for InputAt<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Self {
        BufferAt::from(buffer).into()
    }
}

/// Targets in a GPU buffer, named by their dtype like [`crate::Targets`]: class indices
/// (`I64`: two little-endian words each, or `I32`), one per row, or `F32` values with the
/// input's shape. A buffer of class indices also needs `COPY_SRC` usage where a host call
/// reads a bad one back to report it.
#[derive(Debug, Clone, Copy, Default)]
pub enum TargetsAt<'a> {
    /// No targets (the softmax family).
    #[default]
    None,
    /// 64-bit class indices.
    I64(BufferAt<'a>),
    /// 32-bit class indices.
    I32(BufferAt<'a>),
    /// f32 values with the input's shape.
    F32(BufferAt<'a>),
}

impl<'a> TargetsAt<'a> {
    /// The position of the first target, if any.
    pub fn at(&self) -> Option<BufferAt<'a>> {
        match *self {
            TargetsAt::None => None,
            TargetsAt::I64(at) | TargetsAt::I32(at) | TargetsAt::F32(at) => Some(at),
        }
    }
}

/// The GPU data of one recorded call: the input, its shape, and the targets.
#[derive(Debug, Clone)]
pub struct BatchAt<'a> {
    /// The input.
    pub input: InputAt<'a>,
    /// The input's shape (as for [`crate::Batch`]).
    pub shape: Vec<usize>,
    /// The targets.
    pub targets: TargetsAt<'a>,
}

impl<'a> BatchAt<'a> {
    /// `input` of `shape` with `targets`.
    pub fn new(input: impl Into<InputAt<'a>>, shape: impl Into<Vec<usize>>, targets: TargetsAt<'a>) -> Self {
        Self {
            input: input.into(),
            shape: shape.into(),
            targets,
        }
    }
}

/// Where a recorded gradient goes.
#[derive(Debug, Clone, Copy)]
pub enum GradInto<'a> {
    /// Over the input itself (cross-entropy, f32 input): no second `[N, C]` buffer.
    InPlace,
    /// Into f32 values in the input's shape at this position.
    Buffer(BufferAt<'a>),
}

/// Where a recorded call writes. Every position is a caller's buffer (`STORAGE` usage) at
/// a byte offset that is a multiple of 4. Fields a loss does not produce must be `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outputs<'a> {
    /// The loss: for `sum` / `mean` / `batchmean` two f32, `[loss, divisor]` (the divisor
    /// is 1 for a sum, `Σ w[y]` or N for a cross-entropy mean, the element count or N for
    /// the elementwise losses); for `none` the row (or element) losses; for the softmax
    /// family its output. `None`: not written (a gradient alone).
    pub loss: Option<BufferAt<'a>>,
    /// Cross-entropy with class indices: one u32, decoded by [`Status`]. Cleared by the
    /// recording. Also needs `COPY_DST` usage.
    pub status: Option<BufferAt<'a>>,
    /// Cross-entropy with `row_outputs`: N pairs of f32, `(lse, Σ_c a_c)` per row.
    pub row_stats: Option<BufferAt<'a>>,
    /// Cross-entropy with `row_outputs`: N u32, each row's argmax.
    pub argmax: Option<BufferAt<'a>>,
    /// The gradient `∂L/∂input`: where, and with which upstream (per output element for
    /// `none` and the softmax family, in a GPU buffer).
    pub grad: Option<(GradInto<'a>, Upstream<BufferAt<'a>>)>,
}

impl<'a> Outputs<'a> {
    /// Only the loss, at `loss`.
    pub fn loss(loss: impl Into<BufferAt<'a>>) -> Self {
        Self {
            loss: Some(loss.into()),
            ..Self::default()
        }
    }
}

/// The status word a recorded cross-entropy leaves in [`Outputs::status`]: 0 when every
/// class-index target was in range or ignored, else `u32::MAX - row` of the first bad row
/// (whose loss and gradient are then NaN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

impl Status {
    /// Whether every target was in range or ignored.
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// The first row whose target was out of range.
    pub fn bad_row(self) -> Option<usize> {
        (self.0 != 0).then(|| (u32::MAX - self.0) as usize)
    }
}
