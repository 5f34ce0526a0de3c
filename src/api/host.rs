//! Host data of one call: the input (f32, f16 or bf16), the targets (by dtype, as in
//! PyTorch), their shape, the upstream gradient, and what a forward + backward returns.

use std::borrow::Cow;

use crate::api::kinds::InputFormat;
use crate::api::reduction::LossValue;

/// An input on the host, of any float format. f16 and bf16 are raw bits
/// ([`crate::half`] converts); every backend computes with their exact f32 values.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// 32-bit floats.
    F32(&'a [f32]),
    /// IEEE half-precision bits.
    F16(&'a [u16]),
    /// bfloat16 bits.
    Bf16(&'a [u16]),
}

impl<'a> Input<'a> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Input::F32(v) => v.len(),
            Input::F16(v) | Input::Bf16(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn format(&self) -> InputFormat {
        match self {
            Input::F32(_) => InputFormat::F32,
            Input::F16(_) => InputFormat::F16,
            Input::Bf16(_) => InputFormat::Bf16,
        }
    }

    /// The values as f32 (exact): borrowed for f32, converted for the halves.
    pub fn to_f32(&self) -> Cow<'a, [f32]> {
        match *self {
            Input::F32(v) => Cow::Borrowed(v),
            Input::F16(v) => Cow::Owned(v.iter().map(|&h| crate::half::f16_to_f32(h)).collect()),
            Input::Bf16(v) => Cow::Owned(v.iter().map(|&h| crate::half::bf16_to_f32(h)).collect()),
        }
    }

    /// The raw little-endian bytes, as uploaded.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        match *self {
            Input::F32(v) => bytemuck::cast_slice(v),
            Input::F16(v) | Input::Bf16(v) => bytemuck::cast_slice(v),
        }
    }

    /// Elements `[begin, end)`.
    pub(crate) fn slice(&self, begin: usize, end: usize) -> Self {
        match *self {
            Input::F32(v) => Input::F32(&v[begin..end]),
            Input::F16(v) => Input::F16(&v[begin..end]),
            Input::Bf16(v) => Input::Bf16(&v[begin..end]),
        }
    }
}

impl<'a> From<&'a [f32]> for Input<'a> {
    fn from(v: &'a [f32]) -> Self {
        Input::F32(v)
    }
}

impl<'a> From<&'a Vec<f32>> for Input<'a> {
    fn from(v: &'a Vec<f32>) -> Self {
        Input::F32(v)
    }
}

impl<'a, const N: usize> From<&'a [f32; N]> for Input<'a> {
    fn from(v: &'a [f32; N]) -> Self {
        Input::F32(v)
    }
}

/// Targets on the host, named by their dtype as in PyTorch; what they mean is the loss's:
/// class indices (`I64`, PyTorch's `long`, or `I32`) for cross-entropy and NLL, one per
/// row; `F32` with the input's shape for probability targets of cross-entropy and for the
/// elementwise losses; `None` for the softmax family.
#[derive(Debug, Clone, Copy, Default)]
pub enum Targets<'a> {
    /// No targets (softmax, log-softmax, entropy).
    #[default]
    None,
    /// 64-bit class indices.
    I64(&'a [i64]),
    /// 32-bit class indices.
    I32(&'a [i32]),
    /// f32 values with the input's shape: class probabilities, or an elementwise loss's target.
    F32(&'a [f32]),
}

impl<'a> Targets<'a> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Targets::None => 0,
            Targets::I64(t) => t.len(),
            Targets::I32(t) => t.len(),
            Targets::F32(t) => t.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether these are class indices.
    pub fn is_indices(&self) -> bool {
        matches!(self, Targets::I64(_) | Targets::I32(_))
    }

    /// Class index `row` widened to `i64` (`None` unless these are class indices).
    pub fn index(&self, row: usize) -> Option<i64> {
        match self {
            Targets::I64(t) => Some(t[row]),
            Targets::I32(t) => Some(i64::from(t[row])),
            _ => None,
        }
    }

    /// Every class index widened to `i64` (empty unless these are class indices).
    pub(crate) fn indices(&self) -> Vec<i64> {
        (0..self.len()).filter_map(|row| self.index(row)).collect()
    }

    /// The raw little-endian bytes, as uploaded.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        match *self {
            Targets::None => &[],
            Targets::I64(t) => bytemuck::cast_slice(t),
            Targets::I32(t) => bytemuck::cast_slice(t),
            Targets::F32(t) => bytemuck::cast_slice(t),
        }
    }

    /// Elements `[begin, end)`.
    pub(crate) fn slice(&self, begin: usize, end: usize) -> Self {
        match *self {
            Targets::None => Targets::None,
            Targets::I64(t) => Targets::I64(&t[begin..end]),
            Targets::I32(t) => Targets::I32(&t[begin..end]),
            Targets::F32(t) => Targets::F32(&t[begin..end]),
        }
    }
}

macro_rules! targets_from {
    ($t:ty, $variant:ident) => {
        impl<'a> From<&'a [$t]> for Targets<'a> {
            fn from(t: &'a [$t]) -> Self {
                Targets::$variant(t)
            }
        }
        impl<'a> From<&'a Vec<$t>> for Targets<'a> {
            fn from(t: &'a Vec<$t>) -> Self {
                Targets::$variant(t)
            }
        }
        impl<'a, const N: usize> From<&'a [$t; N]> for Targets<'a> {
            fn from(t: &'a [$t; N]) -> Self {
                Targets::$variant(t)
            }
        }
    };
}
targets_from!(i64, I64);
targets_from!(i32, I32);
targets_from!(f32, F32);

/// The host data of one call: the input, its shape, and the targets.
///
/// Shapes as PyTorch's: `[N, C]` for cross-entropy, NLL and the softmax family, any shape
/// for the elementwise losses (`weight` / `pos_weight` index its last axis).
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    /// The input (logits, probabilities, … as the loss says).
    pub input: Input<'a>,
    /// The input's shape.
    pub shape: Vec<usize>,
    /// The targets.
    pub targets: Targets<'a>,
}

impl<'a> Batch<'a> {
    /// `input` of `shape` with `targets`.
    pub fn new(input: impl Into<Input<'a>>, shape: impl Into<Vec<usize>>, targets: impl Into<Targets<'a>>) -> Self {
        Self {
            input: input.into(),
            shape: shape.into(),
            targets: targets.into(),
        }
    }

    /// `input` of `shape` with no targets (the softmax family).
    pub fn input(input: impl Into<Input<'a>>, shape: impl Into<Vec<usize>>) -> Self {
        Self::new(input, shape, Targets::None)
    }
}

/// The upstream gradient `∂L/∂loss` of a backward pass: a scalar (default 1) for any
/// reduction, or, for reduction `none` (and the softmax family), one value per output
/// element. `V` is `&[f32]` on the host and [`crate::BufferAt`] for recorded calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Upstream<V> {
    /// The same value for the loss (reduced) or for every output element.
    Scalar(f32),
    /// One value per output element, in the output's shape.
    Values(V),
}

impl<V> Default for Upstream<V> {
    fn default() -> Self {
        Upstream::Scalar(1.0)
    }
}

/// The result of a forward + backward call.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardBackward {
    /// The loss, as `forward` gives it (for the softmax family: its output).
    pub loss: LossValue,
    /// `∂L/∂input` in the input's shape.
    pub grad: Vec<f32>,
    /// Cross-entropy with `row_outputs`: each row's logsumexp (of the soft-capped logits).
    pub lse: Option<Vec<f32>>,
    /// Cross-entropy with `row_outputs`: each row's argmax (first index on ties, NaN wins).
    pub argmax: Option<Vec<u32>>,
    /// Cross-entropy with `row_outputs` and class indices: the fraction of rows not ignored
    /// whose argmax is the target (NaN when every row is ignored).
    pub accuracy: Option<f32>,
}

impl ForwardBackward {
    /// A result with the loss and gradient only.
    pub(crate) fn plain(loss: LossValue, grad: Vec<f32>) -> Self {
        Self {
            loss,
            grad,
            lse: None,
            argmax: None,
            accuracy: None,
        }
    }
}
