//! The windows of one piece of a cross-entropy recording: its input elements and its
//! targets (class indices per position, or probabilities laid out like the input), shared
//! by pass 1 (`rows.rs`) and pass 2 (`grad.rs`).

use crate::api::buffers::BufferAt;
use crate::api::kinds::InputFormat;
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::TargetLayout;
use crate::gpu::tiler::Piece;
use crate::gpu::window::{window, window_of, Window};

/// The window of one piece's targets.
pub(crate) fn target_window<'a>(
    ctx: &GpuContext,
    (at, layout): (BufferAt<'a>, TargetLayout),
    classes: u64,
    piece: &Piece,
) -> Result<Window<'a>> {
    match layout {
        TargetLayout::Indices(width) => window(
            ctx,
            "targets",
            at.buffer,
            at.offset + piece.begin * width.bytes(),
            piece.len * width.bytes(),
        ),
        TargetLayout::Probabilities => window(
            ctx,
            "targets",
            at.buffer,
            at.offset + piece.first(classes) * 4,
            piece.span(classes) * 4,
        ),
    }
}

/// The window of one piece's input elements.
pub(crate) fn input_window<'a>(
    ctx: &GpuContext,
    input: BufferAt<'a>,
    fmt: InputFormat,
    classes: u64,
    piece: &Piece,
) -> Result<Window<'a>> {
    let eb = fmt.bytes();
    window_of(
        ctx,
        "logits",
        input.buffer,
        input.offset + piece.first(classes) * eb,
        piece.span(classes) * eb,
        eb,
    )
}
