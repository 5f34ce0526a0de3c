//! Pass 2 of cross-entropy (`shaders/cross_entropy_grad.wgsl`): ∂loss/∂input from each
//! row's (lse, A) and the reduced [loss, divisor], reading the input once more and writing
//! the gradient once (in place over the input when asked).

use bytemuck::{Pod, Zeroable};

use crate::api::buffers::BufferAt;
use crate::api::host::Upstream;
use crate::api::kinds::InputKind;
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::dispatch::{bind, KernelPass};
use crate::gpu::io::placeholders;
use crate::gpu::kernels::{Kernel, Team};
use crate::gpu::plan::Plan;
use crate::gpu::tiler::Piece;
use crate::gpu::window::{items, window};

use super::spec::{Inputs, Spec};
use super::windows::{input_window, target_window};
use crate::api::kinds::InputFormat;

/// Elements a workgroup of the gradient kernel should cover at least: rows are grouped
/// until a group has this many (lavapipe pays per workgroup).
const GRAD_ELEMENTS_PER_GROUP: u64 = 4096;

/// Invocations per workgroup of the gradient kernels (GROUP_SIZE in WGSL): positions per
/// workgroup of `cross_entropy_grad_positions`.
const GROUP_SIZE: u32 = 64;

/// The uniform of `cross_entropy_grad` (the WGSL `GradParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GradParams {
    rows: u32,
    rows_per_group: u32,
    classes: u32,
    input_offset: u32,
    targets_offset: u32,
    row_offset: u32,
    grad_offset: u32,
    ignore_lo: u32,
    ignore_hi: u32,
    label_smoothing: f32,
    epsilon: f32,
    softcap: f32,
    z_loss: f32,
    upstream: f32,
    scale_offset: u32,
    col_begin: u32,
    cols: u32,
    cols_per_group: u32,
    vec4_ok: u32,
    inner: u32,
    quads: u32,
    row_stride: u32,
    _pad: [u32; 2],
}

/// The buffers and options of pass 2.
pub(crate) struct GradArgs<'a> {
    pub spec: &'a Spec<'a>,
    pub inputs: &'a Inputs<'a>,
    pub weight: &'a wgpu::Buffer,
    pub stats: BufferAt<'a>,
    pub reduced: BufferAt<'a>,
    pub grad: BufferAt<'a>,
    pub in_place: bool,
    pub upstream: Upstream<BufferAt<'a>>,
}

/// The values every launch of pass 2 shares.
struct Shared<'a> {
    args: &'a GradArgs<'a>,
    /// Placeholders (`gpu::io::placeholders`): read-only, read-write.
    placeholders: [&'a wgpu::Buffer; 2],
    rows_per_group: u64,
    cols_per_group: u64,
}

impl Shared<'_> {
    /// The parameters and bindings of one piece's launch.
    fn launch<'w>(&'w self, ctx: &GpuContext, piece: &Piece) -> Result<(GradParams, Vec<wgpu::BindingResource<'w>>)> {
        let (args, spec) = (self.args, self.args.spec);
        let classes = args.inputs.classes as u64;
        let (begin, len) = (piece.begin, piece.len);
        let [placeholder, placeholder_rw] = self.placeholders;
        let grad_at = args.grad.offset + piece.first(classes) * 4;
        let grad_w = window(ctx, "gradient", args.grad.buffer, grad_at, piece.span(classes) * 4)?;
        let input_w = if args.in_place {
            window(ctx, "input", placeholder, 0, 4)?
        } else {
            input_window(ctx, args.inputs.input, args.inputs.format, classes, piece)?
        };
        let targets_w = target_window(ctx, args.inputs.targets, classes, piece)?;
        let stats = args.stats;
        let rows_or_first = |per_row: bool| if per_row { (begin, len) } else { (0, 1) };
        let lse_w = items(
            ctx,
            "row stats",
            stats,
            8,
            rows_or_first(spec.kind == InputKind::Logits),
        )?;
        // The per-row upstream, or the reduced [loss, divisor] and the scalar upstream: one
        // binding.
        let (scale_w, upstream_scalar) = match args.upstream {
            Upstream::Values(at) => (items(ctx, "upstream", at, 4, (begin, len))?, 0.0),
            Upstream::Scalar(g) => (window(ctx, "reduced", args.reduced.buffer, args.reduced.offset, 8)?, g),
        };
        // The vec4 views: the input's (in place the kernel reads `grad4` instead), and the
        // gradient's; 16-byte placeholders where there is none, which the kernel never reads.
        let grad4 = grad_w.vec4_view();
        let input4 = input_w
            .vec4_view()
            .filter(|_| !args.in_place && args.inputs.format == InputFormat::F32);
        let vec4_ok =
            grad4.is_some() && (args.in_place || input4.is_some() && input_w.word_shift % 4 == grad_w.word_shift % 4);
        let ignore = spec.ignore_index as u64;
        let params = GradParams {
            rows: len as u32,
            rows_per_group: self.rows_per_group as u32,
            classes: args.inputs.total_classes() as u32,
            row_stride: classes as u32,
            input_offset: input_w.word_shift,
            targets_offset: targets_w.word_shift,
            row_offset: lse_w.word_shift,
            grad_offset: grad_w.word_shift,
            ignore_lo: ignore as u32,
            ignore_hi: (ignore >> 32) as u32,
            label_smoothing: spec.label_smoothing as f32,
            epsilon: spec.epsilon as f32,
            softcap: spec.softcap.unwrap_or(1.0) as f32,
            z_loss: spec.z_loss as f32,
            upstream: upstream_scalar,
            scale_offset: scale_w.word_shift,
            col_begin: (args.inputs.class_base() as u64 + piece.col_begin) as u32,
            cols: piece.cols as u32,
            cols_per_group: self.cols_per_group.min(piece.cols) as u32,
            vec4_ok: u32::from(vec4_ok),
            inner: args.inputs.inner as u32,
            quads: u32::from(self.quads(piece, vec4_ok, grad_w.word_shift)),
            _pad: [0; 2],
        };
        let resources = vec![
            input_w.binding(),
            targets_w.binding(),
            args.weight.as_entire_binding(),
            lse_w.binding(),
            scale_w.binding(),
            input4.map_or_else(|| placeholder.as_entire_binding(), |w| w.binding()),
            grad_w.binding(),
            grad4.map_or_else(|| placeholder_rw.as_entire_binding(), |w| w.binding()),
        ];
        Ok((params, resources))
    }
}

impl Shared<'_> {
    /// Whether `grad_quad` takes a piece: one invocation per position, positions whose
    /// classes are a multiple of 4 apart, whole classes, and both bindings' vec4 views at
    /// 16-byte-aligned shifts (`vec4_ok` says they are equal mod 4; `shift` is the
    /// gradient's).
    fn quads(&self, piece: &Piece, vec4_ok: bool, shift: u32) -> bool {
        let inputs = self.args.inputs;
        vec4_ok
            && inputs.inner > 1
            && inputs.inner.is_multiple_of(4)
            && shift.is_multiple_of(4)
            && piece.cols == inputs.classes as u64
            && piece.len.is_multiple_of(4)
    }
}

/// Records the gradient over all pieces. Where the forward gives each row (position) one
/// invocation — tiny rows, and strided positions of `[N, C, d1, …]` — so does the gradient
/// (`cross_entropy_grad_positions`: 64 lanes sharing a row of 10 classes left most of them
/// idle and had every lane fetch every row's values, 12× slower at 4M×10 on lavapipe).
/// Otherwise a workgroup covers whole rows (at least `GRAD_ELEMENTS_PER_GROUP` elements),
/// or for a split plan one block of one row (`cross_entropy_grad`).
pub(crate) fn encode_grad(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    args: &GradArgs<'_>,
    pieces: &[Piece],
    plan: &Plan,
) -> Result<()> {
    let spec = args.spec;
    let classes = args.inputs.classes as u64;
    let [placeholder, placeholder_rw] = placeholders(ctx)?;
    let kernel = Kernel::CrossEntropyGrad {
        flags: spec.flags(args.inputs),
        in_place: args.in_place,
        per_row_upstream: matches!(args.upstream, Upstream::Values(_)),
        per_position: plan.team == Team::Invocation,
    };
    let (rows_per_group, cols_per_group) = if plan.split() {
        (1, plan.block)
    } else {
        (GRAD_ELEMENTS_PER_GROUP.div_ceil(classes).max(1), classes)
    };
    let shared = Shared {
        args,
        placeholders: [&placeholder, &placeholder_rw],
        rows_per_group,
        cols_per_group,
    };
    let mut pass = KernelPass::begin(ctx, encoder, kernel)?;
    for piece in pieces {
        let (params, resources) = shared.launch(ctx, piece)?;
        let bind_group = bind(ctx, kernel, &params, resources)?;
        if plan.team == Team::Invocation {
            let groups = piece.len.div_ceil(u64::from(GROUP_SIZE)).min(plan.max_groups);
            pass.launch(&bind_group, groups)?;
            continue;
        }
        let x = piece.cols.div_ceil(cols_per_group.min(piece.cols));
        let y = piece.len.div_ceil(rows_per_group);
        pass.launch_grid(&bind_group, x, y)?;
    }
    Ok(())
}
