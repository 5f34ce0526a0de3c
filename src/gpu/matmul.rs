//! The one matrix product (`shaders/matmul.wgsl`): `C [+]= op(A)·op(B) [+ bias]` over
//! strided views of any buffers, and column sums. A product whose operands do not fit one
//! binding (or whose grid would pass the per-dimension workgroup limit) is cut into blocks
//! of C and ranges of k that do; k ranges are added in ascending order (the first
//! overwrites unless the product accumulates), so results are deterministic for a device
//! and its limits.

use bytemuck::{Pod, Zeroable};

use crate::api::buffers::BufferAt;
use crate::api::kinds::InputFormat;
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::dispatch::{bind, KernelPass};
use crate::gpu::io::placeholder;
use crate::gpu::kernels::Kernel;
use crate::gpu::tiler::spans;
use crate::gpu::window::{items_per_binding, window_of, Window};

/// C tile side of one workgroup (`TILE` in WGSL).
pub(crate) const TILE: u64 = 64;

/// The most depth (k) one launch sums; a deeper product is added up in launches of this
/// much, in ascending order. lavapipe (llvmpipe 22.3) drops part of the sum when one
/// invocation runs its staged loop — two workgroup barriers a step — more than about 1,700
/// times (a 32,000-deep product came back with a wrong value in every element, 24,000 was
/// right; docs/NOTES.md), so 8,192 (512 steps) stays far below that.
const MAX_DEPTH: u64 = 8192;

/// A strided matrix view: element `(i, k)` at `at + (i·row + k·col)` elements.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    /// Element `(0, 0)`.
    pub at: BufferAt<'a>,
    /// The element type.
    pub format: InputFormat,
    /// Elements between neighbours along the first index.
    pub row: u64,
    /// Elements between neighbours along the second index.
    pub col: u64,
}

impl<'a> View<'a> {
    /// A row-major `[_, cols]` matrix at `at`.
    pub(crate) fn rows(at: BufferAt<'a>, format: InputFormat, cols: u64) -> Self {
        Self {
            at,
            format,
            row: cols,
            col: 1,
        }
    }

    /// The same matrix transposed.
    pub(crate) fn t(self) -> Self {
        Self {
            row: self.col,
            col: self.row,
            ..self
        }
    }

    /// The view from element `(i, k)` on.
    pub(crate) fn from(self, i: u64, k: u64) -> Self {
        let elements = i * self.row + k * self.col;
        Self {
            at: BufferAt {
                buffer: self.at.buffer,
                offset: self.at.offset + elements * self.format.bytes(),
            },
            ..self
        }
    }

    /// Elements from `(0, 0)` to `(rows - 1, cols - 1)` inclusive.
    fn span(&self, rows: u64, cols: u64) -> u64 {
        (rows.max(1) - 1) * self.row + (cols.max(1) - 1) * self.col + 1
    }

    /// The binding of its `rows × cols` corner.
    fn window(&self, ctx: &GpuContext, what: &'static str, rows: u64, cols: u64) -> Result<Window<'a>> {
        let bytes = self.format.bytes();
        window_of(
            ctx,
            what,
            self.at.buffer,
            self.at.offset,
            self.span(rows, cols) * bytes,
            bytes,
        )
    }
}

/// One product `C[i, j] (+)= Σ_k A(i, k)·B(k, j) (+ bias[j])`, `i < m`, `j < n`, `k < depth`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Product<'a> {
    pub a: View<'a>,
    pub b: View<'a>,
    /// C: f32 (its `col` must be 1).
    pub c: View<'a>,
    /// A bias added along j (its `row` is ignored; `col` 1).
    pub bias: Option<View<'a>>,
    pub m: u64,
    pub n: u64,
    pub depth: u64,
    /// Add to C's values instead of overwriting them.
    pub accumulate: bool,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    a_offset: u32,
    a_row: u32,
    a_depth: u32,
    b_offset: u32,
    b_depth: u32,
    b_col: u32,
    c_offset: u32,
    c_row: u32,
    bias_offset: u32,
}

/// Block sizes `(m, n, depth)` whose every binding fits the device and whose grid fits
/// its per-dimension limit: halves the dimension that contributes most to the largest
/// operand that does not fit (whole tiles of C where it can).
fn blocks(ctx: &GpuContext, p: &Product<'_>) -> Result<(u64, u64, u64)> {
    let per_dim = u64::from(ctx.limits.max_compute_workgroups_per_dimension) * TILE;
    let limit = |view: &View<'_>| items_per_binding(ctx, view.format.bytes()).min(u64::from(u32::MAX / 2));
    let (mut m, mut n, mut k) = (p.m.min(per_dim), p.n.min(per_dim), p.depth.min(MAX_DEPTH));
    let halve = |len: u64| {
        if len > TILE {
            (len / 2).next_multiple_of(TILE).min(len - 1)
        } else {
            len / 2
        }
    };
    loop {
        // (elements over the limit, stride-weighted extent along each of i, j, k)
        let over = [
            (
                p.a.span(m, k),
                limit(&p.a),
                [(m - 1) * p.a.row, 0, k.saturating_sub(1) * p.a.col],
            ),
            (
                p.b.span(k, n),
                limit(&p.b),
                [0, (n - 1) * p.b.col, k.saturating_sub(1) * p.b.row],
            ),
            (p.c.span(m, n), limit(&p.c), [(m - 1) * p.c.row, n - 1, 0]),
        ];
        let worst = over
            .iter()
            .filter(|(span, limit, _)| span > limit)
            .max_by_key(|(span, limit, _)| span - limit);
        let Some((span, _, extents)) = worst else {
            return Ok((m, n, k));
        };
        let axis = (0..3).max_by_key(|&a| extents[a]).unwrap_or(0);
        let dims = [&mut m, &mut n, &mut k];
        let len = &mut *dims[axis];
        if *len <= 1 {
            return Err(LossError::TooLarge {
                what: "matrix product",
                detail: format!(
                    "an operand row of {span} elements does not fit one binding of {} bytes",
                    ctx.max_binding_bytes()
                ),
            });
        }
        *len = halve(*len);
    }
}

/// Records `product` into `encoder`, cut into blocks whose bindings fit.
pub(crate) fn encode_matmul(ctx: &GpuContext, encoder: &mut wgpu::CommandEncoder, p: &Product<'_>) -> Result<()> {
    if p.m == 0 || p.n == 0 {
        return Ok(());
    }
    let (bm, bn, bk) = blocks(ctx, p)?;
    let first = kernel(p, false);
    let mut pass = KernelPass::begin(ctx, encoder, first)?;
    let spare = placeholder(ctx)?;
    let empty_depth = p.depth == 0;
    for (i0, m) in spans(p.m, bm) {
        for (j0, n) in spans(p.n, bn) {
            // An empty sum still writes C (0 + bias), once.
            let depths: Vec<(u64, u64)> = if empty_depth {
                vec![(0, 0)]
            } else {
                spans(p.depth, bk).collect()
            };
            for (k0, k) in depths {
                // Later depth ranges add to the first, which alone adds the bias.
                let accumulate = p.accumulate || k0 > 0;
                let block = Product {
                    a: p.a.from(i0, k0),
                    b: p.b.from(k0, j0),
                    c: p.c.from(i0, j0),
                    bias: p.bias.filter(|_| k0 == 0).map(|b| b.from(0, j0)),
                    m,
                    n,
                    depth: k,
                    accumulate,
                };
                pass.set_kernel(ctx, kernel(&block, accumulate))?;
                launch_block(ctx, &mut pass, &block, &spare)?;
            }
        }
    }
    Ok(())
}

/// The pipeline of `p` with `accumulate`.
fn kernel(p: &Product<'_>, accumulate: bool) -> Kernel {
    Kernel::Matmul {
        a: p.a.format,
        b: p.b.format,
        bias: p.bias.map(|b| b.format),
        accumulate,
        column_sums: false,
    }
}

/// One launch over a block that fits.
fn launch_block<'a>(
    ctx: &GpuContext,
    pass: &mut KernelPass<'_>,
    p: &Product<'a>,
    spare: &'a wgpu::Buffer,
) -> Result<()> {
    // An empty sum reads neither operand: both bind the spare.
    let operand = |view: &View<'a>, what, rows, cols| -> Result<Option<Window<'a>>> {
        (p.depth > 0).then(|| view.window(ctx, what, rows, cols)).transpose()
    };
    let a = operand(&p.a, "matmul.a", p.m, p.depth)?;
    let b = operand(&p.b, "matmul.b", p.depth, p.n)?;
    let shift = |w: &Option<Window<'_>>| w.as_ref().map_or(0, |w| w.word_shift);
    let resource = |w: &Option<Window<'a>>| w.as_ref().map_or_else(|| spare.as_entire_binding(), Window::binding);
    let c = p.c.window(ctx, "matmul.c", p.m, p.n)?;
    let bias = p.bias.map(|v| v.window(ctx, "matmul.bias", 1, p.n)).transpose()?;
    let params = MatmulParams {
        m: p.m as u32,
        n: p.n as u32,
        k: p.depth as u32,
        a_offset: shift(&a),
        a_row: p.a.row as u32,
        a_depth: p.a.col as u32,
        b_offset: shift(&b),
        b_depth: p.b.row as u32,
        b_col: p.b.col as u32,
        c_offset: c.word_shift,
        c_row: p.c.row as u32,
        bias_offset: bias.as_ref().map_or(0, |w| w.word_shift),
    };
    let resources = vec![
        resource(&a),
        resource(&b),
        bias.as_ref().map_or_else(|| spare.as_entire_binding(), Window::binding),
        c.binding(),
    ];
    let kernel = kernel(p, p.accumulate);
    let group = bind(ctx, kernel, &params, resources)?;
    pass.launch_grid(&group, p.n.div_ceil(TILE), p.m.div_ceil(TILE))
}

/// Records `out[j] (+)= Σ_{i < rows} a(i, j)` for `j < cols` (f32 `out`): the product
/// `1[1, rows]·a` cut into blocks whose bindings fit as [`encode_matmul`] cuts it (row
/// ranges added in ascending order), each block one invocation per column summing its rows
/// in ascending order.
pub(crate) fn encode_column_sums(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    (a, rows, cols): (View<'_>, u64, u64),
    out: BufferAt<'_>,
    accumulate: bool,
) -> Result<()> {
    if cols == 0 {
        return Ok(());
    }
    let out = View::rows(out, InputFormat::F32, cols);
    // The ones are never bound: a view of one element stands for them in `blocks`.
    let ones = View { row: 0, col: 0, ..out };
    let product = Product {
        a: ones,
        b: a,
        c: out,
        bias: None,
        m: 1,
        n: cols,
        depth: rows,
        accumulate,
    };
    let (_, bn, bk) = blocks(ctx, &product)?;
    let kernel = |accumulate| Kernel::Matmul {
        a: a.format,
        b: InputFormat::F32,
        bias: None,
        accumulate,
        column_sums: true,
    };
    let mut pass = KernelPass::begin(ctx, encoder, kernel(accumulate))?;
    let spare = placeholder(ctx)?;
    for (j0, n) in spans(cols, bn) {
        for (i0, m) in spans(rows.max(1), bk) {
            let accumulate = accumulate || i0 > 0;
            pass.set_kernel(ctx, kernel(accumulate))?;
            let window = a.from(i0, j0).window(ctx, "column_sums.input", m.min(rows), n)?;
            let c = out.from(0, j0).window(ctx, "column_sums.out", 1, n)?;
            let params = MatmulParams {
                m: m.min(rows) as u32,
                n: n as u32,
                a_offset: window.word_shift,
                a_row: a.row as u32,
                a_depth: a.col as u32,
                c_offset: c.word_shift,
                ..MatmulParams::zeroed()
            };
            let resources = vec![
                window.binding(),
                spare.as_entire_binding(),
                spare.as_entire_binding(),
                c.binding(),
            ];
            pass.launch(&bind(ctx, kernel(accumulate), &params, resources)?, n.div_ceil(64))?;
        }
    }
    Ok(())
}
