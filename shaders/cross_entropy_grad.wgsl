// cross_entropy_grad.wgsl — pass 2 of fused cross-entropy / NLL: ∂loss/∂input, reading
// the input once more and writing the gradient once (in place over the input when
// IN_PLACE). Prepended: prelude.wgsl and targets.wgsl (target decoding, smoothed
// probability targets, the soft-cap, the shared overrides). Workgroup y covers rows [y·R, y·R + R) with
// R = params.rows_per_group, a whole row at a time: the row's values are uniform loads,
// every element load and store is contiguous, and no index is divided. (Workgroups that
// each covered a 1024-column block were 1.5× slower on lavapipe: too many tiny groups.)
//
// With l_n = -Σ_c a_c·lp_c (see cross_entropy.wgsl) and g_n the row's upstream scale:
//   logits:            ∂l/∂x_j = g_n·(A_n·p_j - a_j) [+ g_n·2z·lse_n·p_j], A_n = Σ a_c,
//                      times 1 - (x'_j/cap)² under the soft-cap x' = cap·tanh(x/cap);
//   probabilities:     ∂l/∂p_j = -g_n·a_j / (p_j + δ);
//   log-probabilities: ∂l/∂x_j = -g_n·a_j.
// Ignored rows get exactly 0; rows whose target is out of range get NaN (pass 1 flags them).

override IN_PLACE: bool = false;         // read the input from `grad` and overwrite it
override PER_ROW_UPSTREAM: bool = false; // reduction none: g_n = upstream[n]

const GROUP_SIZE: u32 = 64u;

struct GradParams {
    rows: u32,            // rows in this dispatch
    rows_per_group: u32,  // R
    classes: u32,
    input_offset: u32,    // element offset of element 0 in the input (or grad, IN_PLACE) binding
    targets_offset: u32,  // u32-word offset of row 0 (indices) or element 0 (probabilities)
    row_offset: u32,      // word offset of row 0's pair in the row_lse binding
    grad_offset: u32,     // element offset of element 0 in the grad binding
    ignore_lo: u32,
    ignore_hi: u32,
    label_smoothing: f32,
    epsilon: f32,
    softcap: f32,
    z_loss: f32,
    upstream: f32,        // the scalar upstream gradient of a reduced loss
    scale_offset: u32,    // in `scale_source`: offset of row 0 (PER_ROW_UPSTREAM), else
                          // index of [loss, divisor]
    col_begin: u32,       // global column of each binding's first element (a row larger
                          // than a binding is dispatched a column range at a time)
    cols: u32,            // columns of each row in this dispatch
    cols_per_group: u32,  // columns one workgroup covers (workgroup x: the column block)
    vec4_ok: u32,         // plain f32, input and gradient offsets equal mod 4: `input4` and
                          // `grad4` view the bindings as vec4s (see grad_row)
    inner: u32,           // cross_entropy_grad_positions: elements between a position's classes
    quads: u32,           // ... with vec4_ok, inner a multiple of 4 and both bindings 16-byte
                          // aligned: one invocation per 4 neighbouring positions (grad_quad)
    row_stride: u32,      // elements between rows of the bindings: `classes`, or for a
                          // vocabulary shard its own class count (`classes` is then V)
    _pad3: u32,
    _pad4: u32,
}

@group(0) @binding(0) var<uniform> params: GradParams;
@group(0) @binding(1) var<storage, read> input: array<u32>;   // FORMAT elements
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> class_weight: array<f32>;
@group(0) @binding(4) var<storage, read> row_lse: array<f32>;   // (lse, A) per row, as words (any 4-byte offset)
// PER_ROW_UPSTREAM: the upstream per row; else the reduced [loss, divisor] (one binding for
// both keeps the layout within 8 storage bindings, wgpu's default limit).
@group(0) @binding(5) var<storage, read> scale_source: array<f32>;
// The input and gradient bindings again, cut to whole 16-byte units (vec4_ok).
@group(0) @binding(6) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> grad: array<f32>;
@group(0) @binding(8) var<storage, read_write> grad4: array<vec4<f32>>;

fn weight_of(class_index: u32) -> f32 {
    if (WEIGHTED) {
        return class_weight[class_index];
    }
    return 1.0;
}

@compute @workgroup_size(GROUP_SIZE)
fn cross_entropy_grad(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
) {
    let first_row = group_id.y * params.rows_per_group;
    let last_row = min(first_row + params.rows_per_group, params.rows);
    let lo = params.col_begin + group_id.x * params.cols_per_group;
    let hi = min(lo + params.cols_per_group, params.col_begin + params.cols);
    for (var row = first_row; row < last_row; row++) {
        grad_row(row, lane, lo, hi);
    }
}

// What a row's gradient needs beyond the element: its upstream scale, its target, and
// (logits) its (lse, A).
struct RowGrad {
    g: f32,              // upstream scale: upstream / divisor (1 for sum), or the row's own
    target_class: u32,   // class-index targets: y (or none)
    w_y: f32,            // the target's class weight
    stats: vec2<f32>,    // logits: (lse, A)
    fill: bool,          // ignored (0) or poisoned (NaN) row: every element is `fill_value`
    fill_value: f32,
}

fn row_grad(row: u32) -> RowGrad {
    var r = RowGrad(0.0, 0xffffffffu, 0.0, vec2(0.0), false, 0.0);
    if (PER_ROW_UPSTREAM) {
        r.g = scale_source[params.scale_offset + row];
    } else {
        r.g = params.upstream / scale_source[params.scale_offset + 1u];
    }
    if (!TARGET_PROBS) {
        let t = target_words(row);
        if (target_ignored(t)) {
            r.fill = true;   // ignored rows: exactly 0
        } else if (!target_in_range(t)) {
            r.fill = true;   // out of range: NaN gradient (pass 1 reports it)
            r.fill_value = bitcast<f32>(0x7fc00000u);
        } else {
            r.target_class = t.x;
            r.w_y = weight_of(t.x);
        }
    }
    if (INPUT_KIND == 0u) {
        r.stats = vec2(row_lse[params.row_offset + 2u * row], row_lse[params.row_offset + 2u * row + 1u]);
    }
    return r;
}

// ∂l/∂x of element x in column c (binding index `at`) of a row.
fn element_grad(r: RowGrad, x: f32, c: u32, at: u32) -> f32 {
    if (r.fill) {
        return r.fill_value;
    }
    let eps = params.label_smoothing;
    // a_c of this element.
    var a: f32;
    if (TARGET_PROBS) {
        a = weight_of(c) * smoothed_probability(params.targets_offset + at);
    } else {
        a = select(0.0, r.w_y, c == r.target_class);
        if (SMOOTHING) {
            a = (1.0 - eps) * a + eps / f32(params.classes) * weight_of(c);
        }
    }
    var d: f32;
    if (INPUT_KIND == 0u) {
        let xc = soft_capped(x);
        let lse = r.stats.x;
        let p = exp(xc - lse);
        d = r.stats.y * p - a;
        if (Z_LOSS) {
            d += 2.0 * params.z_loss * lse * p;
        }
        if (SOFTCAP) {
            let q = xc / params.softcap;
            d *= 1.0 - q * q;
        }
    } else if (INPUT_KIND == 1u) {
        d = -a / (x + params.epsilon);
    } else {
        d = -a;
    }
    return r.g * d;
}

// Element `at` of the row's input (from the gradient binding when IN_PLACE).
fn load_input(at: u32) -> f32 {
    if (IN_PLACE) {
        return grad[params.grad_offset + at];
    }
    let i = params.input_offset + at;
    return unpack_element(input[element_word(i, FORMAT)], i, FORMAT);
}

// Elements [at, at + 4) of the input (16-byte aligned; from `grad4` when IN_PLACE).
fn load_input4(at: u32) -> vec4<f32> {
    if (IN_PLACE) {
        return grad4[(params.grad_offset + at) >> 2u];
    }
    return input4[(params.input_offset + at) >> 2u];
}

fn store_scalar(r: RowGrad, c: u32, at: u32) {
    grad[params.grad_offset + at] = element_grad(r, load_input(at), c, at);
}

// Phase per row: the row's values once, then its columns [lo, hi). Plain f32 with the
// input and gradient 16-byte aligned alike (`vec4_ok`): a scalar head up to the gradient's
// first 16-byte boundary, a body where lane l reads and writes elements [k, k + 4) as one
// vec4, k = body + 4l + j·4·GROUP_SIZE (llvmpipe loads and stores storage per lane, so a
// vec4 costs what a scalar does), and a scalar tail; otherwise GROUP_SIZE apart.
fn grad_row(row: u32, lane: u32, lo: u32, hi: u32) {
    let r = row_grad(row);
    // Binding index of the row's global column 0 (wraps when col_begin > 0).
    let row_start = row * params.row_stride - params.col_begin;
    var body = hi;
    var body_end = hi;
    if (params.vec4_ok != 0u) {
        let span = vec4_span(params.grad_offset + row_start + lo, lo, hi);
        body = span.x;
        body_end = span.y;
    }
    for (var c = lo + lane; c < body; c += GROUP_SIZE) {
        store_scalar(r, c, row_start + c);
    }
    for (var c = body + 4u * lane; c < body_end; c += 4u * GROUP_SIZE) {
        let at = row_start + c;
        let x = load_input4(at);
        grad4[(params.grad_offset + at) >> 2u] = vec4(
            element_grad(r, x.x, c, at), element_grad(r, x.y, c + 1u, at + 1u),
            element_grad(r, x.z, c + 2u, at + 2u), element_grad(r, x.w, c + 3u, at + 3u));
    }
    for (var c = body_end + lane; c < hi; c += GROUP_SIZE) {
        store_scalar(r, c, row_start + c);
    }
}

// One invocation per position over a grid-stride loop: tiny rows (inner = 1), and the
// strided positions of [N, C, d1, …] (a position's classes `inner` apart), where
// neighbouring invocations read and write neighbouring addresses for every class, what a
// GPU coalesces (no transpose). Classes
// [col_begin, col_begin + cols) of each (all of them unless a slice is larger than a
// binding: the bindings then start at class col_begin of the piece's first position).
@compute @workgroup_size(GROUP_SIZE)
fn cross_entropy_grad_positions(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) group_count: vec3<u32>,
) {
    let stride = group_count.x * group_count.y * GROUP_SIZE;
    let first = linear_group(group_id, group_count) * GROUP_SIZE + lane;
    if (params.quads != 0u) {
        for (var quad = first; quad < params.rows / 4u; quad += stride) {
            grad_quad(quad);
        }
        return;
    }
    for (var row = first; row < params.rows; row += stride) {
        let r = row_grad(row);
        // Wraps when col_begin > 0, as grad_row's row_start.
        let start = strided_start(row, params.row_stride, params.inner) - params.col_begin * params.inner;
        for (var c = params.col_begin; c < params.col_begin + params.cols; c++) {
            store_scalar(r, c, start + c * params.inner);
        }
    }
}

// Four neighbouring strided positions (row = 4·quad) whose classes sit a multiple of 4
// apart, with both bindings 16-byte aligned: one vec4 load and one vec4 store per class
// (llvmpipe loads and stores storage per lane; a GPU coalesces either form).
fn grad_quad(quad: u32) {
    let row = 4u * quad;
    let start = strided_start(row, params.classes, params.inner);
    let r0 = row_grad(row);
    let r1 = row_grad(row + 1u);
    let r2 = row_grad(row + 2u);
    let r3 = row_grad(row + 3u);
    for (var c = 0u; c < params.classes; c++) {
        let at = start + c * params.inner;
        let x = load_input4(at);
        grad4[(params.grad_offset + at) >> 2u] = vec4(
            element_grad(r0, x.x, c, at), element_grad(r1, x.y, c, at + 1u),
            element_grad(r2, x.z, c, at + 2u), element_grad(r3, x.w, c, at + 3u));
    }
}
