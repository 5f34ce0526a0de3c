//! How many rows one tile of logits holds, for every backend: as many as `tile_bytes`
//! allows (at least one), in whole 64-row matmul tiles when more than one, all N unfused.

use crate::api::linear::LinearShape;

use super::options::LinearMode;

/// Rows of the matmul's C tile (`gpu::matmul::TILE`): tiles of whole multiples of it keep
/// every workgroup busy.
const ROW_QUANTUM: usize = 64;

/// Rows per tile for `shape` with at most `tile_bytes` of f32 logits a tile.
pub(crate) fn tile_rows(shape: LinearShape, tile_bytes: u64, mode: LinearMode) -> usize {
    let rows = shape.rows.max(1);
    if mode == LinearMode::Unfused {
        return rows;
    }
    let row_bytes = (shape.classes as u64).saturating_mul(4).max(1);
    let fit = usize::try_from(tile_bytes / row_bytes).unwrap_or(usize::MAX).max(1);
    let quantised = if fit >= ROW_QUANTUM {
        fit / ROW_QUANTUM * ROW_QUANTUM
    } else {
        fit
    };
    quantised.min(rows)
}

/// The tiles of `rows` rows, `per_tile` at a time: `(first row, rows)` in order.
pub(crate) fn tiles(rows: usize, per_tile: usize) -> impl Iterator<Item = (usize, usize)> {
    let per_tile = per_tile.max(1);
    (0..rows)
        .step_by(per_tile)
        .map(move |begin| (begin, per_tile.min(rows - begin)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_hold_whole_matmul_tiles_within_the_budget() {
        let shape = LinearShape {
            rows: 1024,
            hidden: 128,
            classes: 32000,
        };
        // 8 MiB / 128000 bytes a row = 65 rows: one whole 64-row tile.
        assert_eq!(tile_rows(shape, 8 << 20, LinearMode::Fused), 64);
        assert_eq!(tile_rows(shape, 1, LinearMode::Fused), 1);
        assert_eq!(tile_rows(shape, 40 * 128_000, LinearMode::Fused), 40);
        assert_eq!(tile_rows(shape, u64::MAX, LinearMode::Fused), 1024);
        assert_eq!(tile_rows(shape, 1, LinearMode::Unfused), 1024);
        let covered: Vec<(usize, usize)> = tiles(130, 64).collect();
        assert_eq!(covered, vec![(0, 64), (64, 64), (128, 2)]);
        assert_eq!(tiles(0, 64).count(), 0);
    }
}
