//! The one error type of the crate. Every message names the offending shape or value.

use thiserror::Error;

/// Everything that can go wrong in `wgpu-loss`: bad input (checked before anything is
/// dispatched), labels found out of range on the GPU, and device faults.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum LossError {
    /// No GPU adapter could be found.
    #[error(
        "no GPU adapter found ({detail}); on a machine without a GPU install Mesa's Vulkan \
         software driver: `sudo apt-get install -y mesa-vulkan-drivers libvulkan1`"
    )]
    NoAdapter {
        /// What was asked for and what was found.
        detail: String,
    },
    /// The adapter refused to create a device.
    #[error("the adapter `{adapter}` could not create a device: {reason}")]
    DeviceRequest {
        /// The adapter's name.
        adapter: String,
        /// wgpu's reason.
        reason: String,
    },
    /// The number of classes is zero.
    #[error("classes must be at least 1 (got C = 0 for logits of shape [{rows}, 0])")]
    ZeroClasses {
        /// Rows of the logits.
        rows: usize,
    },
    /// An input's shape is not one this loss takes.
    #[error("{what} has shape {shape:?}, but this loss takes {expected}")]
    BadShape {
        /// Which argument.
        what: &'static str,
        /// The shape given.
        shape: Vec<usize>,
        /// The shapes taken, written like `[N, C]`.
        expected: &'static str,
    },
    /// A `dim` outside the input's axes.
    #[error("dim {dim} is out of range for an input of shape {shape:?} (dims -{rank}..={}): it counts the axes from 0, or from the end when negative", *rank as i64 - 1)]
    BadDim {
        /// The dim given.
        dim: i64,
        /// The input's shape.
        shape: Vec<usize>,
        /// The input's rank.
        rank: usize,
    },
    /// A buffer's length disagrees with the shape it was given with.
    #[error("{what} has {actual} elements, but shape {shape} needs {expected}")]
    LengthMismatch {
        /// Which argument (`logits`, `targets`, `weight`).
        what: &'static str,
        /// The shape it should have, written like `[N, C]` with numbers.
        shape: String,
        /// Elements the shape needs.
        expected: usize,
        /// Elements it has.
        actual: usize,
    },
    /// A class-index target is outside `[0, C)` and is not `ignore_index`.
    #[error(
        "target {value} at row {row} is out of range: classes are [0, {classes}) and \
         ignore_index is {ignore_index}"
    )]
    TargetOutOfRange {
        /// The row of the first bad target.
        row: usize,
        /// Its value.
        value: i64,
        /// The number of classes.
        classes: usize,
        /// The `ignore_index` in force.
        ignore_index: i64,
    },
    /// `label_smoothing` is outside `[0, 1]` (or NaN).
    #[error("label_smoothing must be in [0, 1], got {0}")]
    LabelSmoothing(f64),
    /// A weight is negative, NaN or infinite.
    #[error("{what}[{index}] = {value} is not a finite, non-negative number")]
    BadWeight {
        /// Which weights (`weight`, `pos_weight`).
        what: &'static str,
        /// The class whose weight is bad.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// The epsilon added to probabilities is negative or not finite.
    #[error("epsilon must be finite (as an f32) and non-negative, got {0:?}")]
    BadEpsilon(f64),
    /// A value that must be a probability is outside `[0, 1]` (or NaN).
    #[error("{what}[{index}] = {value} is not a probability in [0, 1]")]
    NotAProbability {
        /// Which argument (`input`, `target`).
        what: &'static str,
        /// The flat index of the first bad element.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// An option's value is out of its range.
    #[error("{option} = {value:?} is out of range (it must be finite as an f32{})", if *option == "softcap" { " and positive" } else { "" })]
    BadOption {
        /// The option.
        option: &'static str,
        /// Its value.
        value: f64,
    },
    /// An option that this loss does not take.
    #[error("{loss} does not take {option}")]
    Unsupported {
        /// The loss.
        loss: &'static str,
        /// The option.
        option: &'static str,
    },
    /// The input is too large for this device in a way that chunking does not yet cover.
    #[error("{what} is too large for this device: {detail}")]
    TooLarge {
        /// Which argument.
        what: &'static str,
        /// The sizes involved.
        detail: String,
    },
    /// A GPU buffer given by the caller is too small or misaligned for the shape.
    #[error("buffer `{what}`: {detail}")]
    BadBuffer {
        /// Which argument.
        what: &'static str,
        /// What is wrong, with the sizes.
        detail: String,
    },
    /// A vocabulary shard that does not fit its call: its range, or records of another
    /// length (vocab-parallel cross-entropy).
    #[error("vocabulary shard: {detail}")]
    BadShard {
        /// What is wrong, with the sizes.
        detail: String,
    },
    /// A collective operation of a vocab-parallel merge failed (the engine's message).
    #[error("collective {operation} failed: {reason}")]
    Collective {
        /// The operation (`all-reduce MAX`, `all-reduce SUM`, …).
        operation: &'static str,
        /// The engine's message.
        reason: String,
    },
    /// The device reported a fault (out of memory, validation, lost device, mapping failure).
    #[error("GPU error during {during}: {reason}")]
    Device {
        /// The step that failed.
        during: &'static str,
        /// wgpu's message.
        reason: String,
    },
}

/// `Result` with [`LossError`].
pub type Result<T, E = LossError> = std::result::Result<T, E>;
