//! The CPU twins of `gpu::matmul`: `C [+]= A·B [+ bias]` over strided views of slices,
//! in f64 (the reference: one plain loop) and in f32 (the fast backend: both operands
//! packed so that every dot product reads contiguous memory, eight lanes of partial sums,
//! blocks of C in parallel). Each C element's sum has a fixed order: deterministic.

use rayon::prelude::*;

/// A strided matrix view: element `(i, k)` at `data[i·row + k·col]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a, T> {
    pub data: &'a [T],
    pub row: usize,
    pub col: usize,
}

impl<'a, T: Copy> MatRef<'a, T> {
    /// A row-major `[_, cols]` matrix.
    pub(crate) fn rows(data: &'a [T], cols: usize) -> Self {
        Self {
            data,
            row: cols,
            col: 1,
        }
    }

    /// The same matrix transposed.
    pub(crate) fn t(self) -> Self {
        Self {
            data: self.data,
            row: self.col,
            col: self.row,
        }
    }

    fn at(&self, i: usize, k: usize) -> T {
        self.data[i * self.row + k * self.col]
    }
}

/// What to do with C's old values and a bias.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Write<'a, T> {
    /// Add to C's values instead of overwriting them.
    pub accumulate: bool,
    /// A bias `[n]` added to every row.
    pub bias: Option<&'a [T]>,
}

/// `c[i·c_row + j] (+)= Σ_k a(i, k)·b(k, j) (+ bias[j])` for `i < m`, `j < n`, `k < depth`,
/// in f64: the reference, one plain loop per element (rows of C in parallel: each is
/// independent, so the result does not depend on the threads).
pub(crate) fn matmul64(
    (a, b): (MatRef<'_, f64>, MatRef<'_, f64>),
    (m, n, depth): (usize, usize, usize),
    (c, c_row): (&mut [f64], usize),
    into: Write<'_, f64>,
) {
    if m == 0 || n == 0 {
        return;
    }
    let c = &mut c[..(m - 1) * c_row + n];
    c.par_chunks_mut(c_row).enumerate().for_each(|(i, c_row_values)| {
        for (j, out) in c_row_values[..n].iter_mut().enumerate() {
            let mut sum = 0.0;
            for k in 0..depth {
                sum += a.at(i, k) * b.at(k, j);
            }
            let base = if into.accumulate { *out } else { 0.0 };
            *out = base + sum + into.bias.map_or(0.0, |bias| bias[j]);
        }
    });
}

/// `[rows, cols]` of `view`, contiguous: borrowed when it already is.
fn pack<'a>(view: MatRef<'a, f32>, rows: usize, cols: usize) -> std::borrow::Cow<'a, [f32]> {
    if view.col == 1 && view.row == cols {
        return std::borrow::Cow::Borrowed(&view.data[..rows * cols]);
    }
    let mut out = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        if view.col == 1 {
            out.extend_from_slice(&view.data[i * view.row..i * view.row + cols]);
        } else {
            out.extend((0..cols).map(|k| view.at(i, k)));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Lanes of partial sums in [`dot`].
const LANES: usize = 8;

/// `Σ x·y` with eight lanes of partial sums combined in a fixed tree (vectorised by the
/// compiler; the same order for every call).
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut lanes = [0.0_f32; LANES];
    let (xs, x_tail) = x.split_at(x.len() / LANES * LANES);
    let (ys, y_tail) = y.split_at(xs.len());
    for (xc, yc) in xs.chunks_exact(LANES).zip(ys.chunks_exact(LANES)) {
        for l in 0..LANES {
            lanes[l] += xc[l] * yc[l];
        }
    }
    let mut tail = 0.0;
    for (p, q) in x_tail.iter().zip(y_tail) {
        tail += p * q;
    }
    ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7])) + tail
}

/// Rows of C per parallel task, and columns of B per cache block.
const ROW_BLOCK: usize = 16;
const COL_BLOCK: usize = 128;

/// The f32 twin of [`matmul64`] (the fast backend).
pub(crate) fn matmul32(
    (a, b): (MatRef<'_, f32>, MatRef<'_, f32>),
    (m, n, depth): (usize, usize, usize),
    (c, c_row): (&mut [f32], usize),
    into: Write<'_, f32>,
) {
    if m == 0 || n == 0 {
        return;
    }
    if depth == 0 {
        // An empty sum: C's old value (or 0) plus the bias.
        matmul_empty(m, n, (c, c_row), into);
        return;
    }
    let a_packed = pack(a, m, depth);
    let b_packed = pack(b.t(), n, depth);
    let c = &mut c[..(m - 1) * c_row + n];
    c.par_chunks_mut(ROW_BLOCK * c_row)
        .zip(a_packed.par_chunks(ROW_BLOCK * depth.max(1)))
        .for_each(|(c_block, a_block)| {
            for j0 in (0..n).step_by(COL_BLOCK) {
                let j1 = (j0 + COL_BLOCK).min(n);
                for (r, c_row_values) in c_block.chunks_mut(c_row).enumerate() {
                    let a_row = &a_block[r * depth..(r + 1) * depth];
                    for j in j0..j1 {
                        let sum = dot(a_row, &b_packed[j * depth..(j + 1) * depth]);
                        let out = &mut c_row_values[j];
                        let base = if into.accumulate { *out } else { 0.0 };
                        *out = base + sum + into.bias.map_or(0.0, |bias| bias[j]);
                    }
                }
            }
        });
}

fn matmul_empty(m: usize, n: usize, (c, c_row): (&mut [f32], usize), into: Write<'_, f32>) {
    for i in 0..m {
        for (j, out) in c[i * c_row..i * c_row + n].iter_mut().enumerate() {
            let base = if into.accumulate { *out } else { 0.0 };
            *out = base + into.bias.map_or(0.0, |bias| bias[j]);
        }
    }
}

/// `out[j] (+)= Σ_{i < rows} a(i, j)`, rows in ascending order (f32, or f64 for the
/// reference).
pub(crate) fn column_sums<T: Copy + Default + std::ops::Add<Output = T> + Send + Sync>(
    a: MatRef<'_, T>,
    rows: usize,
    out: &mut [T],
    accumulate: bool,
) {
    out.par_iter_mut().enumerate().for_each(|(j, o)| {
        let mut sum = T::default();
        for i in 0..rows {
            sum = sum + a.at(i, j);
        }
        *o = if accumulate { *o + sum } else { sum };
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f32 path against the f64 loop on odd shapes, every transpose, with and
    /// without accumulation and bias.
    #[test]
    fn blocked_f32_agrees_with_the_f64_loop() {
        let mut seed = 7_u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        for &(m, n, depth) in &[(1, 1, 1), (17, 33, 9), (40, 129, 70), (3, 5, 0)] {
            let a: Vec<f32> = (0..m * depth).map(|_| next()).collect();
            let b: Vec<f32> = (0..depth * n).map(|_| next()).collect();
            let bias: Vec<f32> = (0..n).map(|_| next()).collect();
            let start: Vec<f32> = (0..m * n).map(|_| next()).collect();
            for (transpose_a, transpose_b, accumulate) in
                [(false, false, false), (true, true, true), (false, true, true)]
            {
                let (a_view, b_view) = (
                    if transpose_a {
                        MatRef::rows(&a, m).t()
                    } else {
                        MatRef::rows(&a, depth)
                    },
                    if transpose_b {
                        MatRef::rows(&b, depth).t()
                    } else {
                        MatRef::rows(&b, n)
                    },
                );
                let mut fast = start.clone();
                let into = Write {
                    accumulate,
                    bias: Some(&bias),
                };
                matmul32((a_view, b_view), (m, n, depth), (&mut fast, n), into);
                let a64: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
                let b64: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
                let bias64: Vec<f64> = bias.iter().map(|&v| f64::from(v)).collect();
                let mut slow: Vec<f64> = start.iter().map(|&v| f64::from(v)).collect();
                let into64 = Write {
                    accumulate,
                    bias: Some(&bias64[..]),
                };
                let a64_view = MatRef {
                    data: &a64[..],
                    row: a_view.row,
                    col: a_view.col,
                };
                let b64_view = MatRef {
                    data: &b64[..],
                    row: b_view.row,
                    col: b_view.col,
                };
                matmul64((a64_view, b64_view), (m, n, depth), (&mut slow, n), into64);
                for (x, y) in fast.iter().zip(&slow) {
                    assert!(
                        (f64::from(*x) - y).abs() <= 1e-5 * (1.0 + depth as f64),
                        "{m}×{n}×{depth}: {x} vs {y}"
                    );
                }
            }
        }
    }
}
