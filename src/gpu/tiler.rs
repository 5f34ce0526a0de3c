//! The one tiler: splits work into pieces whose every binding fits the device — runs of
//! items ([`spans`]: elements, whole rows), and for the row kernels `rows` × `classes` in
//! whole rows or column ranges of a row larger than a binding ([`pieces`]).

use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::TargetLayout;
use crate::gpu::plan::{Plan, PARTIAL_BYTES};
use crate::gpu::window::{binding_elements, items_per_binding};

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
/// Rows are positions whose classes sit `inner` apart (1: contiguous rows; `d1·…·dk` for
/// `[N, C, d1, …]`): a piece is whole outer slices of `inner` positions, or part of one
/// slice (positions and a class range) when a slice is larger than a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub begin: u64,
    pub len: u64,
    pub col_begin: u64,
    pub cols: u64,
    pub inner: u64,
}

impl Piece {
    /// Elements from the piece's first to its last.
    pub(crate) fn span(&self, classes: u64) -> u64 {
        let whole =
            self.cols == classes && self.begin.is_multiple_of(self.inner) && self.len.is_multiple_of(self.inner);
        if whole {
            self.len * classes
        } else {
            (self.cols - 1) * self.inner + self.len
        }
    }

    /// The element index of the piece's first element.
    pub(crate) fn first(&self, classes: u64) -> u64 {
        let (slice, position) = (self.begin / self.inner, self.begin % self.inner);
        slice * classes * self.inner + self.col_begin * self.inner + position
    }
}

/// Per-position bytes of a piece's bindings (`partials`: each position's partial records
/// of a split plan): whole positions per binding for each, the fewest of them.
fn positions_per_binding(ctx: &GpuContext, classes: u64, layout: TargetLayout, plan: &Plan) -> u64 {
    let target_bytes = match layout {
        TargetLayout::Indices(width) => width.bytes(),
        TargetLayout::Probabilities => 4,
    };
    let partial_bytes = if plan.split() {
        classes.div_ceil(plan.block) * PARTIAL_BYTES
    } else {
        4
    };
    items_per_binding(ctx, 8)
        .min(items_per_binding(ctx, partial_bytes))
        .min(items_per_binding(ctx, target_bytes))
}

/// The most whole rows (whole outer slices of `inner` positions) one piece can hold with
/// every binding fitting: 0 when one row (slice) is larger than a binding.
pub(crate) fn whole_rows_per_piece(
    ctx: &GpuContext,
    (classes, inner): (u64, u64),
    layout: TargetLayout,
    plan: &Plan,
) -> u64 {
    let target_row_bytes = match layout {
        TargetLayout::Indices(width) => width.bytes(),
        TargetLayout::Probabilities => classes * 4,
    };
    let rows = items_per_binding(ctx, classes * 4)
        .min(items_per_binding(ctx, target_row_bytes))
        .min(positions_per_binding(ctx, classes, layout, plan))
        .min(u64::from(u32::MAX / 2) / classes.max(1));
    rows / inner.max(1) * inner.max(1)
}

/// Splits `rows` × `classes` (positions `inner` apart) into pieces whose every binding
/// (logits, targets, per-row outputs, split partials; pass 1 and pass 2) fits the device,
/// and whose in-binding indices stay below 2^31: whole rows (whole outer slices of `inner`
/// positions); with a split plan, a row larger than a binding in column ranges, or a
/// slice larger than a binding in runs of its positions and ranges of classes. Any other
/// plan refuses what does not fit.
pub(crate) fn pieces(
    ctx: &GpuContext,
    (rows, classes, inner): (u64, u64, u64),
    layout: TargetLayout,
    plan: &Plan,
) -> Result<Vec<Piece>> {
    let inner = inner.max(1);
    let row_bytes = classes * 4;
    if rows >= u64::from(u32::MAX) || classes >= u64::from(u32::MAX) {
        return Err(LossError::TooLarge {
            what: "logits",
            detail: format!(
                "[{rows}, {classes}]: rows and classes are each at most {} (indices are u32 on the GPU)",
                u32::MAX - 1
            ),
        });
    }
    let small = positions_per_binding(ctx, classes, layout, plan);
    let per_chunk = whole_rows_per_piece(ctx, (classes, inner), layout, plan);
    let whole = |(begin, len)| Piece {
        begin,
        len,
        col_begin: 0,
        cols: classes,
        inner,
    };
    let columns = binding_elements(ctx) / plan.block * plan.block;
    match (per_chunk > 0, inner > 1, plan.split() && small > 0 && columns > 0) {
        (true, _, _) => Ok(spans(rows, per_chunk).map(whole).collect()),
        (false, true, true) => Ok(slice_pieces(ctx, (rows, classes, inner), small, plan)),
        (false, false, true) => Ok(column_pieces(rows, classes, columns)),
        (false, strided, _) => Err(LossError::TooLarge {
            what: "logits",
            detail: if strided {
                format!(
                    "one slice of {classes} classes × {inner} positions is {} bytes, more than the device's largest storage binding ({} bytes)",
                    classes * inner * 4,
                    ctx.max_binding_bytes()
                )
            } else {
                format!(
                    "one row of {classes} classes is {row_bytes} bytes, more than the device's largest storage binding ({} bytes){}",
                    ctx.max_binding_bytes(),
                    if plan.split() { "" } else { " (only the split-row strategy cuts rows)" }
                )
            },
        }),
    }
}

/// A row larger than a binding: column ranges of `range` columns (whole blocks of the
/// split plan).
fn column_pieces(rows: u64, classes: u64, range: u64) -> Vec<Piece> {
    (0..rows)
        .flat_map(|row| {
            (0..classes).step_by(range as usize).map(move |col_begin| Piece {
                begin: row,
                len: 1,
                col_begin,
                cols: range.min(classes - col_begin),
                inner: 1,
            })
        })
        .collect()
}

/// An outer slice larger than a binding (`[N, C, d1, …]` with a large `C·d1·…·dk`): per
/// slice, runs of at most `len` positions, each in ranges of `plan.block` classes, so that
/// `(block - 1)·inner + len` elements fit one binding ([`Plan::strided_split`]).
fn slice_pieces(ctx: &GpuContext, (rows, classes, inner): (u64, u64, u64), small: u64, plan: &Plan) -> Vec<Piece> {
    let room = binding_elements(ctx).saturating_sub((plan.block - 1) * inner);
    let len = inner.min(room).min(small).max(1);
    let mut out = Vec::new();
    for slice in 0..rows / inner {
        for (position, run) in spans(inner, len) {
            for (col_begin, cols) in spans(classes, plan.block) {
                out.push(Piece {
                    begin: slice * inner + position,
                    len: run,
                    col_begin,
                    cols,
                    inner,
                });
            }
        }
    }
    out
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

    /// Strided pieces: every (position, class) of `[rows / inner, classes, inner]` is in
    /// exactly one piece, inside the piece's element window, whose bytes fit a binding.
    fn check_strided(ctx: &GpuContext, (rows, classes, inner): (u64, u64, u64), plan: &Plan) {
        let tiles = pieces(ctx, (rows, classes, inner), TargetLayout::Probabilities, plan).expect("pieces");
        let mut seen = vec![0_u8; (rows * classes) as usize];
        for piece in &tiles {
            let (first, span) = (piece.first(classes), piece.span(classes));
            assert!(
                span * 4 <= ctx.max_binding_bytes(),
                "{piece:?}: {} bytes bound",
                span * 4
            );
            for p in piece.begin..piece.begin + piece.len {
                for c in piece.col_begin..piece.col_begin + piece.cols {
                    let at = (p / inner) * classes * inner + c * inner + p % inner;
                    assert!((first..first + span).contains(&at), "{piece:?}: element {at} outside");
                    seen[at as usize] += 1;
                }
            }
        }
        assert!(
            seen.iter().all(|&n| n == 1),
            "{rows}x{classes} inner {inner}: not tiled once"
        );
    }

    #[test]
    fn strided_pieces_tile_slices_whole_or_split() {
        let base = GpuContext::new_blocking().expect("GPU tests need a GPU adapter");
        let small = GpuContext::from_device(base.device().clone(), base.queue().clone()).with_binding_limit(4096);
        // Whole slices; a slice of 2100 elements (class blocks beside runs of 7 positions);
        // a slice whose positions alone fill half a binding (one class per piece).
        check_strided(&small, (4 * 9, 10, 9), &Plan::invocation_per_row(&small));
        for (outer, classes, inner) in [(2, 300, 7), (1, 3, 1500), (3, 37, 41)] {
            let shape = (outer * inner, classes, inner);
            let plan = Plan::strided_split(&small, classes, inner);
            check_strided(&small, shape, &plan);
            let whole = Plan::invocation_per_row(&small);
            assert_eq!(
                whole_rows_per_piece(&small, (classes, inner), TargetLayout::Probabilities, &whole),
                0
            );
            assert!(pieces(&small, shape, TargetLayout::Probabilities, &whole).is_err());
        }
    }
}
