//! Storage-buffer windows: a binding must start at a multiple of the device's
//! `min_storage_buffer_offset_alignment` and cover at most its largest binding, so a
//! range that starts anywhere is bound from the aligned offset below it and the kernel
//! is told how many elements to skip.

use crate::api::buffers::BufferAt;
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;

/// One binding of part of a buffer.
pub(crate) struct Window<'a> {
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of the binding (aligned).
    pub offset: u64,
    /// Bytes bound (a multiple of 4).
    pub size: u64,
    /// Elements (4-byte words unless made by `window_of`) between the binding's start and
    /// the first wanted element.
    pub word_shift: u32,
}

impl<'a> Window<'a> {
    /// The same binding cut to whole 16-byte units, for a kernel's `array<vec4<f32>>` view
    /// of it (element `i` of the window is component `i % 4` of vec4 `i / 4`); `None` when
    /// not one unit fits.
    pub(crate) fn vec4_view(&self) -> Option<Window<'a>> {
        let size = self.size / 16 * 16;
        (size > 0 && self.offset.is_multiple_of(16)).then_some(Window {
            buffer: self.buffer,
            offset: self.offset,
            size,
            word_shift: self.word_shift,
        })
    }

    pub(crate) fn binding(&self) -> wgpu::BindingResource<'a> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.size),
        })
    }
}

/// The binding that covers bytes `[start, start + len)` of `buffer`, with `word_shift`
/// counted in elements of `elem_bytes` (2 for f16/bf16) instead of 4-byte words.
pub(crate) fn window_of<'a>(
    ctx: &GpuContext,
    what: &'static str,
    buffer: &'a wgpu::Buffer,
    start: u64,
    len: u64,
    elem_bytes: u64,
) -> Result<Window<'a>> {
    if elem_bytes == 4 {
        return window(ctx, what, buffer, start, len);
    }
    if !start.is_multiple_of(elem_bytes) {
        return Err(LossError::BadBuffer {
            what,
            detail: format!("byte offset {start} is not a multiple of {elem_bytes}"),
        });
    }
    // Bind from the 4-byte word below and round the length up to whole words.
    let word_start = start - start % 4;
    let mut w = window(
        ctx,
        what,
        buffer,
        word_start,
        (start - word_start + len)
            .next_multiple_of(4)
            .min(buffer.size() - word_start),
    )?;
    w.word_shift = (w.word_shift * 4 + (start - word_start) as u32) / elem_bytes as u32;
    Ok(w)
}

/// The binding that covers bytes `[start, start + len)` of `buffer`.
pub(crate) fn window<'a>(
    ctx: &GpuContext,
    what: &'static str,
    buffer: &'a wgpu::Buffer,
    start: u64,
    len: u64,
) -> Result<Window<'a>> {
    if !start.is_multiple_of(4) {
        return Err(LossError::BadBuffer {
            what,
            detail: format!("byte offset {start} is not a multiple of 4"),
        });
    }
    let end = start.checked_add(len).filter(|&end| end <= buffer.size());
    if end.is_none() {
        return Err(LossError::BadBuffer {
            what,
            detail: format!(
                "needs bytes [{start}, {start} + {len}) but the buffer has {} bytes",
                buffer.size()
            ),
        });
    }
    let align = u64::from(ctx.limits.min_storage_buffer_offset_alignment);
    let offset = start - start % align;
    let size = (start - offset + len).max(4).min(buffer.size() - offset);
    let max = ctx.max_binding_bytes();
    if size > max {
        return Err(LossError::TooLarge {
            what,
            detail: format!("a binding of {size} bytes is needed; the device allows {max}"),
        });
    }
    Ok(Window {
        buffer,
        offset,
        size,
        word_shift: ((start - offset) / 4) as u32,
    })
}

/// The binding of items `[begin, begin + len)` of `item_bytes` each, counted from `at`
/// (rows of a per-row output, elements, partial records): the one way a piece's part of a
/// strided position is bound.
pub(crate) fn items<'a>(
    ctx: &GpuContext,
    what: &'static str,
    at: BufferAt<'a>,
    item_bytes: u64,
    (begin, len): (u64, u64),
) -> Result<Window<'a>> {
    window(ctx, what, at.buffer, at.offset + begin * item_bytes, len * item_bytes)
}

/// Splits `count` items of `item_bytes` each into runs whose bindings fit the device:
/// returns the largest run, leaving room for the alignment slack of a window.
pub(crate) fn items_per_binding(ctx: &GpuContext, item_bytes: u64) -> u64 {
    let align = u64::from(ctx.limits.min_storage_buffer_offset_alignment);
    ctx.max_binding_bytes().saturating_sub(align) / item_bytes.max(1)
}

/// f32 elements one binding holds, capped so that in-binding indices stay below 2^31.
pub(crate) fn binding_elements(ctx: &GpuContext) -> u64 {
    items_per_binding(ctx, 4).min(u64::from(u32::MAX / 2))
}

/// Bytes of `dims` multiplied, saturating: a size past `u64` can never fit a buffer, so
/// [`check_room`] refuses it with the shape's name instead of overflowing.
pub(crate) fn bytes_of(dims: &[u64]) -> u64 {
    dims.iter().fold(1, |acc, &d| acc.saturating_mul(d))
}

/// Fails unless `at` holds `bytes` bytes from a 4-aligned offset.
pub(crate) fn check_room(what: &'static str, at: BufferAt<'_>, bytes: u64, shape: &str) -> Result<()> {
    check_room_aligned(what, at, bytes, shape, 4)
}

/// Fails unless `at` holds `bytes` bytes from an offset that is a multiple of `align`.
pub(crate) fn check_room_aligned(
    what: &'static str,
    at: BufferAt<'_>,
    bytes: u64,
    shape: &str,
    align: u64,
) -> Result<()> {
    if !at.offset.is_multiple_of(align) || at.offset.checked_add(bytes).is_none_or(|end| end > at.buffer.size()) {
        return Err(LossError::BadBuffer {
            what,
            detail: format!(
                "{shape} needs {bytes} bytes at byte offset {} (a multiple of {align}), but the buffer has {} bytes",
                at.offset,
                at.buffer.size()
            ),
        });
    }
    Ok(())
}
