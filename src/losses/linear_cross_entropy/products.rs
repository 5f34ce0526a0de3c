//! The matrix products of one tile of rows, over each vocabulary part of the output
//! layer (`gpu::matmul`): the tile's logits `h·Wᵀ + b` before the cross-entropy, and
//! after it, with the tile's logits overwritten by their gradient `G`, `∂h = G·W` (parts
//! added in order), `∂W += Gᵀ·h` and `∂b += Σ_rows G` (tiles added in order).

use crate::api::buffers::{BufferAt, InputAt};
use crate::api::kinds::InputFormat;
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::matmul::{encode_column_sums, encode_matmul, Product, View};

/// Classes `[first, first + len)` of the output layer: their rows of W, their bias and
/// where their gradients go (each at the part's first class).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part<'a> {
    pub first: usize,
    pub len: usize,
    pub w: InputAt<'a>,
    pub b: Option<InputAt<'a>>,
    pub grad_w: Option<BufferAt<'a>>,
    pub grad_b: Option<BufferAt<'a>>,
}

/// One tile: rows `[first, first + len)` of `h [N, D]`, whose `[len, V]` logits live in
/// `logits`.
pub(crate) struct Tile<'a> {
    pub h: InputAt<'a>,
    pub hidden: usize,
    pub classes: usize,
    pub first: usize,
    pub len: usize,
    pub logits: BufferAt<'a>,
}

impl<'a> Tile<'a> {
    /// The tile's rows of `h`, `[len, D]`.
    fn h_rows(&self) -> View<'a> {
        View::rows(self.h.at, self.h.format, self.hidden as u64).from(self.first as u64, 0)
    }

    /// The tile's logits (or G) of `part`'s classes, `[len, part.len]` with row stride V.
    fn logits_of(&self, part: &Part<'_>) -> View<'a> {
        View::rows(self.logits, InputFormat::F32, self.classes as u64).from(0, part.first as u64)
    }
}

/// `W`'s rows of a part, `[part.len, D]`.
fn w_rows<'a>(part: &Part<'a>, hidden: usize) -> View<'a> {
    View::rows(part.w.at, part.w.format, hidden as u64)
}

/// Records the tile's logits `h·Wᵀ + b`, part by part.
pub(crate) fn encode_logits(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    tile: &Tile<'_>,
    parts: &[Part<'_>],
) -> Result<()> {
    for part in parts {
        let product = Product {
            a: tile.h_rows(),
            b: w_rows(part, tile.hidden).t(),
            c: tile.logits_of(part),
            bias: part.b.map(|b| View::rows(b.at, b.format, part.len as u64)),
            m: tile.len as u64,
            n: part.len as u64,
            depth: tile.hidden as u64,
            accumulate: false,
        };
        encode_matmul(ctx, encoder, &product)?;
    }
    Ok(())
}

/// Where the backward products write: `∂h`'s `[N, D]` (or none), and whether the parts'
/// `∂W` and `∂b` add to what is there (every tile after a call's first, or a host group
/// after its first).
pub(crate) struct Backward<'a> {
    pub grad_h: Option<BufferAt<'a>>,
    pub accumulate: bool,
}

/// Records, from the tile's gradient `G`, `∂h` of its rows and its share of each part's
/// `∂W` and `∂b`.
pub(crate) fn encode_backward(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    tile: &Tile<'_>,
    parts: &[Part<'_>],
    out: &Backward<'_>,
) -> Result<()> {
    let (hidden, rows) = (tile.hidden as u64, tile.len as u64);
    for (index, part) in parts.iter().enumerate() {
        let g = tile.logits_of(part);
        let classes = part.len as u64;
        if let Some(grad_h) = out.grad_h {
            let product = Product {
                a: g,
                b: w_rows(part, tile.hidden),
                c: View::rows(grad_h, InputFormat::F32, hidden).from(tile.first as u64, 0),
                bias: None,
                m: rows,
                n: hidden,
                depth: classes,
                accumulate: index > 0,
            };
            encode_matmul(ctx, encoder, &product)?;
        }
        if let Some(grad_w) = part.grad_w {
            let product = Product {
                a: g.t(),
                b: tile.h_rows(),
                c: View::rows(grad_w, InputFormat::F32, hidden),
                bias: None,
                m: classes,
                n: hidden,
                depth: rows,
                accumulate: out.accumulate,
            };
            encode_matmul(ctx, encoder, &product)?;
        }
        if let Some(grad_b) = part.grad_b {
            encode_column_sums(ctx, encoder, (g, rows, classes), grad_b, out.accumulate)?;
        }
    }
    Ok(())
}
