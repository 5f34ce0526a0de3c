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

const GROUP_SIZE: u32 = 256u;

struct GradParams {
    rows: u32,            // rows in this dispatch
    rows_per_group: u32,  // R
    classes: u32,
    input_offset: u32,    // element offset of element 0 in the input (or grad, IN_PLACE) binding
    targets_offset: u32,  // u32-word offset of row 0 (indices) or element 0 (probabilities)
    row_offset: u32,      // offset of row 0 in the row_lse binding (in vec2s)
    grad_offset: u32,     // element offset of element 0 in the grad binding
    ignore_lo: u32,
    ignore_hi: u32,
    label_smoothing: f32,
    epsilon: f32,
    softcap: f32,
    z_loss: f32,
    upstream: f32,        // the scalar upstream gradient of a reduced loss
    upstream_offset: u32, // offset of row 0 in the row_upstream binding
    reduced_offset: u32,  // index of [loss, divisor] in the reduced binding
    col_begin: u32,       // global column of each binding's first element (a row larger
                          // than a binding is dispatched a column range at a time)
    cols: u32,            // columns of each row in this dispatch
    cols_per_group: u32,  // columns one workgroup covers (workgroup x: the column block)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: GradParams;
@group(0) @binding(1) var<storage, read> input: array<u32>;   // FORMAT elements
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> class_weight: array<f32>;
@group(0) @binding(4) var<storage, read> row_lse: array<vec2<f32>>;   // (lse, A) per row
@group(0) @binding(5) var<storage, read> row_upstream: array<f32>;    // PER_ROW_UPSTREAM
@group(0) @binding(6) var<storage, read> reduced: array<f32>;         // [loss, divisor]
@group(0) @binding(7) var<storage, read_write> grad: array<f32>;

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

// Phase per row: the row's values once, then its columns [lo, hi), GROUP_SIZE apart.
fn grad_row(row: u32, lane: u32, lo: u32, hi: u32) {
    let classes = params.classes;
    let eps = params.label_smoothing;
    let smoothing_scale = eps / f32(classes);
    // Binding index of the row's global column 0 (wraps when col_begin > 0).
    let row_start = row * classes - params.col_begin;
    // The row's values, the same for the whole workgroup.
    var g: f32;   // upstream scale: upstream / divisor (1 for sum), or the row's own
    if (PER_ROW_UPSTREAM) {
        g = row_upstream[params.upstream_offset + row];
    } else {
        g = params.upstream / reduced[params.reduced_offset + 1u];
    }
    var target_class = 0xffffffffu;   // class-index targets: y (or none)
    var poisoned = false;             // out of range: NaN gradient (pass 1 reports it)
    if (!TARGET_PROBS) {
        let t = target_words(row);
        if (target_ignored(t)) {
            g = 0.0;   // ignored rows: exactly 0 (d is finite there, see below)
        } else if (!target_in_range(t)) {
            poisoned = true;
        } else {
            target_class = t.x;
        }
    }
    let ignored = !TARGET_PROBS && !poisoned && target_class == 0xffffffffu;
    var w_y = 0.0;
    if (target_class != 0xffffffffu) {
        w_y = weight_of(target_class);
    }
    var stats = vec2(0.0);
    if (INPUT_KIND == 0u) {
        stats = row_lse[params.row_offset + row];
    }
    for (var c = lo + lane; c < hi; c += GROUP_SIZE) {
        let at = row_start + c;
        if (ignored || poisoned) {
            grad[params.grad_offset + at] = select(0.0, bitcast<f32>(0x7fc00000u), poisoned);
            continue;
        }
        var x: f32;
        if (IN_PLACE) {
            x = grad[params.grad_offset + at];
        } else {
            let i = params.input_offset + at;
            x = unpack_element(input[element_word(i, FORMAT)], i, FORMAT);
        }
        // a_c of this element.
        var a: f32;
        if (TARGET_PROBS) {
            a = weight_of(c) * smoothed_probability(params.targets_offset + at);
        } else {
            a = select(0.0, w_y, c == target_class);
            if (SMOOTHING) {
                a = (1.0 - eps) * a + smoothing_scale * weight_of(c);
            }
        }
        var d: f32;
        if (INPUT_KIND == 0u) {
            let xc = soft_capped(x);
            let lse = stats.x;
            let p = exp(xc - lse);
            d = stats.y * p - a;
            if (Z_LOSS) {
                d += 2.0 * params.z_loss * lse * p;
            }
            if (SOFTCAP) {
                let r = xc / params.softcap;
                d *= 1.0 - r * r;
            }
        } else if (INPUT_KIND == 1u) {
            d = -a / (x + params.epsilon);
        } else {
            d = -a;
        }
        grad[params.grad_offset + at] = g * d;
    }
}
