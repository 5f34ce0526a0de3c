//! The one tiler: splits work into pieces whose every binding fits the device — runs of
//! items ([`spans`]: elements, whole rows), and for the row kernels `rows` × `classes` in
//! whole rows or column ranges of a row larger than a binding ([`pieces`]).

use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::TargetLayout;
use crate::gpu::plan::{Plan, PARTIAL_BYTES};
use crate::gpu::window::items_per_binding;

/// `[begin, begin + len)` runs of at most `per_piece` (at least 1) of `total` items, in order.
pub(crate) fn spans(total: u64, per_piece: u64) -> impl Iterator<Item = (u64, u64)> {
    let per_piece = per_piece.max(1);
    (0..total.div_ceil(per_piece)).map(move |i| {
        let begin = i * per_piece;
        (begin, per_piece.min(total - begin))
    })
}

/// A piece of one dispatch: rows `[begin, begin + len)`, columns `[col_begin, col_begin +
/// cols)` of each (whole rows unless one row is larger than a binding; then `len` is 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub begin: u64,
    pub len: u64,
    pub col_begin: u64,
    pub cols: u64,
}

impl Piece {
    /// Elements from the piece's first to its last (rows are `classes` apart).
    pub(crate) fn span(&self, classes: u64) -> u64 {
        (self.len - 1) * classes + self.cols
    }

    /// The element index of the piece's first element.
    pub(crate) fn first(&self, classes: u64) -> u64 {
        self.begin * classes + self.col_begin
    }
}

/// Splits `rows` × `classes` into pieces whose every binding (logits, targets, per-row
/// outputs, split partials; pass 1 and pass 2) fits the device, and whose in-binding
/// indices stay below 2^31. Rows larger than a binding are cut into column ranges (whole
/// blocks of the split plan); any other plan refuses them. Strided positions (classes
/// `inner` apart, `[N, C, d1, …]`) come in pieces of whole outer slices of `inner`
/// positions: a piece's elements are then still `[begin·C, (begin + len)·C)`.
pub(crate) fn pieces(
    ctx: &GpuContext,
    (rows, classes, inner): (u64, u64, u64),
    layout: TargetLayout,
    plan: &Plan,
) -> Result<Vec<Piece>> {
    let row_bytes = classes * 4;
    let target_row_bytes = match layout {
        TargetLayout::Indices(width) => width.bytes(),
        TargetLayout::Probabilities => row_bytes,
    };
    let partial_row_bytes = if plan.split() {
        classes.div_ceil(plan.block) * PARTIAL_BYTES
    } else {
        4
    };
    if rows >= u64::from(u32::MAX) || classes >= u64::from(u32::MAX) {
        return Err(LossError::TooLarge {
            what: "logits",
            detail: format!(
                "[{rows}, {classes}]: rows and classes are each at most {} (indices are u32 on the GPU)",
                u32::MAX - 1
            ),
        });
    }
    let small = items_per_binding(ctx, 8)
        .min(items_per_binding(ctx, partial_row_bytes))
        .min(items_per_binding(ctx, target_row_bytes.min(8)));
    let per_chunk = items_per_binding(ctx, row_bytes)
        .min(items_per_binding(ctx, target_row_bytes))
        .min(small)
        .min(u64::from(u32::MAX / 2) / classes.max(1));
    let per_chunk = per_chunk / inner.max(1) * inner.max(1);
    if inner > 1 && per_chunk == 0 {
        return Err(LossError::TooLarge {
            what: "logits",
            detail: format!(
                "one slice of {classes} classes × {inner} positions is {} bytes, more than the device's largest storage binding ({} bytes)",
                classes * inner * 4,
                ctx.max_binding_bytes()
            ),
        });
    }
    if per_chunk > 0 {
        return Ok((0..rows)
            .step_by(per_chunk as usize)
            .map(|begin| Piece {
                begin,
                len: per_chunk.min(rows - begin),
                col_begin: 0,
                cols: classes,
            })
            .collect());
    }
    // One row is larger than a binding: column ranges of whole blocks, split plan only.
    let range = (items_per_binding(ctx, 4).min(u64::from(u32::MAX / 2)) / plan.block) * plan.block;
    if !plan.split() || small == 0 || range == 0 {
        return Err(LossError::TooLarge {
            what: "logits",
            detail: format!(
                "one row of {classes} classes is {row_bytes} bytes, more than the device's largest storage binding ({} bytes){}",
                ctx.max_binding_bytes(),
                if plan.split() { "" } else { " (only the split-row strategy cuts rows)" }
            ),
        });
    }
    Ok((0..rows)
        .flat_map(|row| {
            (0..classes).step_by(range as usize).map(move |col_begin| Piece {
                begin: row,
                len: 1,
                col_begin,
                cols: range.min(classes - col_begin),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kinds::TargetWidth;
    use crate::gpu::plan::Strategy;

    /// Every piece stays inside the device's bindings with u32 in-binding indices below
    /// 2^31, the pieces tile the array exactly, and byte offsets (u64) are exact, for arrays
    /// of 2^32 elements and more (nothing is allocated: only the index arithmetic runs).
    fn check_tiling(ctx: &GpuContext, rows: u64, classes: u64, plan: &Plan) {
        let tiles = pieces(ctx, (rows, classes, 1), TargetLayout::Indices(TargetWidth::I64), plan).expect("pieces");
        let binding = ctx.max_binding_bytes();
        let mut next = (0_u64, 0_u64); // (row, column) expected next
        for piece in &tiles {
            assert_eq!(
                (piece.begin, piece.col_begin),
                next,
                "{rows}x{classes}: gap or overlap at {piece:?}"
            );
            let span = piece.span(classes);
            assert!(span * 4 <= binding, "{piece:?}: {} bytes bound", span * 4);
            assert!(span < 1 << 31, "{piece:?}: in-binding index {span}");
            assert!(piece.begin + piece.len <= rows && piece.col_begin + piece.cols <= classes);
            // The last element's byte offset, computed in u64, is where it belongs.
            let last = (piece.begin + piece.len - 1) * classes + piece.col_begin + piece.cols - 1;
            assert_eq!(piece.first(classes) + span - 1, last);
            next = if piece.col_begin + piece.cols == classes {
                (piece.begin + piece.len, 0)
            } else {
                (piece.begin, piece.col_begin + piece.cols)
            };
        }
        assert_eq!(next, (rows, 0), "{rows}x{classes}: not covered");
    }

    #[test]
    fn pieces_tile_arrays_past_u32_indices() {
        let ctx = GpuContext::new_blocking().expect("GPU tests need a GPU adapter");
        // 2^34 elements in whole rows; a row of 2^31 + 5 classes (3 rows: > 2^32 elements)
        // in column ranges; and with a lowered binding limit, many more pieces.
        let whole = Plan::choose(&ctx, 1 << 22, 1 << 12, true);
        assert!(!whole.split());
        check_tiling(&ctx, 1 << 22, 1 << 12, &whole);
        let split = Plan::choose(&ctx, 3, (1 << 31) + 5, true);
        assert!(split.split(), "a row larger than a binding is split");
        check_tiling(&ctx, 3, (1 << 31) + 5, &split);
        let small = GpuContext::new_blocking().expect("adapter").with_binding_limit(1 << 16);
        check_tiling(&small, 1 << 20, 4099, &Plan::choose(&small, 1 << 20, 4099, true));
        let forced = GpuContext::new_blocking()
            .expect("adapter")
            .with_binding_limit(1 << 16)
            .with_strategy(Strategy::SplitRow);
        let classes = (1 << 22) + 3;
        check_tiling(&forced, 5, classes, &Plan::choose(&forced, 5, classes, true));
        // Shapes whose indices cannot be u32 are refused with the shape.
        let err = pieces(&ctx, (2, 1 << 33, 1), TargetLayout::Indices(TargetWidth::I64), &split).unwrap_err();
        assert!(err.to_string().contains("8589934592"), "{err}");
    }
}
