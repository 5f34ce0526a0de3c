//! The data of a fused linear cross-entropy call (`F.cross_entropy(F.linear(h, W, b), y)`):
//! on the host ([`LinearBatch`]) or in GPU buffers ([`LinearBatchAt`], [`LinearOutputs`]),
//! which gradients are wanted ([`Grads`]), and what a host call returns
//! ([`LinearForwardBackward`]).

use crate::api::buffers::{BufferAt, InputAt, TargetsAt};
use crate::api::host::{Input, Targets, Upstream};
use crate::api::reduction::LossValue;

/// The sizes of one call: `N` rows (tokens) of `D` hidden features, `V` classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearShape {
    /// Rows N (tokens): `h` is `[N, D]`, targets `[N]`.
    pub rows: usize,
    /// Hidden features D: `W` is `[V, D]`.
    pub hidden: usize,
    /// Classes V (the vocabulary): the logits `h·Wᵀ + b` would be `[N, V]`.
    pub classes: usize,
}

impl From<[usize; 3]> for LinearShape {
    /// `[N, D, V]`.
    fn from([rows, hidden, classes]: [usize; 3]) -> Self {
        Self { rows, hidden, classes }
    }
}

/// The tensors of one call, on the host ([`LinearBatch`]: slices) or in the app's GPU
/// buffers ([`LinearBatchAt`]: positions, nothing copied): hidden states `h [N, D]`, the
/// output layer's weight `W [V, D]` and optional bias `b [V]` (any of f32 / f16 / bf16,
/// row-major as PyTorch stores them), and class-index targets `[N]` (`I64` or `I32`).
#[derive(Debug, Clone)]
pub struct LinearData<X, T> {
    /// Hidden states `[N, D]`.
    pub h: X,
    /// The weight `[V, D]` (`nn.Linear(D, V).weight`).
    pub w: X,
    /// The bias `[V]`, if any.
    pub b: Option<X>,
    /// The sizes.
    pub shape: LinearShape,
    /// Class indices `[N]`.
    pub targets: T,
}

/// The host data of one call (slices).
pub type LinearBatch<'a> = LinearData<Input<'a>, Targets<'a>>;

/// The GPU data of one recorded call: the tensors in the app's buffers at byte offsets.
pub type LinearBatchAt<'a> = LinearData<InputAt<'a>, TargetsAt<'a>>;

impl<X, T> LinearData<X, T> {
    /// `h [N, D]`, `w [V, D]` with `shape = [N, D, V]` and `targets [N]`, no bias.
    pub fn new(h: impl Into<X>, w: impl Into<X>, shape: impl Into<LinearShape>, targets: impl Into<T>) -> Self {
        Self {
            h: h.into(),
            w: w.into(),
            b: None,
            shape: shape.into(),
            targets: targets.into(),
        }
    }

    /// With the bias `b [V]`.
    pub fn bias(mut self, b: impl Into<X>) -> Self {
        self.b = Some(b.into());
        self
    }
}

/// Where a recorded call writes (the app's buffers, `STORAGE` usage, offsets multiples of
/// 4). Gradients are f32 and overwritten; a gradient left `None` is not computed.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinearOutputs<'a> {
    /// The loss: `[loss, divisor]` for `sum` / `mean`, the N row losses for `none`.
    pub loss: Option<BufferAt<'a>>,
    /// One u32 ([`crate::Status`]): the first row whose target is out of range. Needs
    /// `COPY_DST` usage too.
    pub status: Option<BufferAt<'a>>,
    /// With `row_outputs`: N pairs of f32, `(lse, Σ_c a_c)` per row.
    pub row_stats: Option<BufferAt<'a>>,
    /// With `row_outputs`: N u32, each row's argmax.
    pub argmax: Option<BufferAt<'a>>,
    /// `∂L/∂h [N, D]`.
    pub grad_h: Option<BufferAt<'a>>,
    /// `∂L/∂W [V, D]`.
    pub grad_w: Option<BufferAt<'a>>,
    /// `∂L/∂b [V]`.
    pub grad_b: Option<BufferAt<'a>>,
    /// The upstream of the gradients: a scalar, or for `none` one value per row (`[N]`).
    pub upstream: Upstream<BufferAt<'a>>,
}

/// Which gradients a host call computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grads {
    /// `∂L/∂h`.
    pub h: bool,
    /// `∂L/∂W`.
    pub w: bool,
    /// `∂L/∂b`.
    pub b: bool,
}

impl Grads {
    /// All three.
    pub const ALL: Grads = Grads {
        h: true,
        w: true,
        b: true,
    };
    /// None: the forward alone.
    pub const NONE: Grads = Grads {
        h: false,
        w: false,
        b: false,
    };

    /// Whether any gradient is wanted.
    pub fn any(self) -> bool {
        self.h || self.w || self.b
    }
}

/// The result of a host call: the loss and the gradients asked for (f32, row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearForwardBackward {
    /// The loss, as [`crate::CrossEntropy`] gives it for the logits `h·Wᵀ + b`.
    pub loss: LossValue,
    /// `∂L/∂h [N, D]`, if asked for.
    pub grad_h: Option<Vec<f32>>,
    /// `∂L/∂W [V, D]`, if asked for.
    pub grad_w: Option<Vec<f32>>,
    /// `∂L/∂b [V]`, if asked for (and there is a bias).
    pub grad_b: Option<Vec<f32>>,
    /// With `row_outputs`: each row's lse of the (soft-capped) logits.
    pub lse: Option<Vec<f32>>,
    /// With `row_outputs`: each row's argmax.
    pub argmax: Option<Vec<u32>>,
    /// With `row_outputs`: the fraction of rows not ignored whose argmax is the target.
    pub accuracy: Option<f32>,
}
