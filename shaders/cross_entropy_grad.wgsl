// cross_entropy_grad.wgsl — pass 2 of fused cross-entropy / NLL: ∂loss/∂input, one
// invocation per element, reading the input once more and writing the gradient once
// (in place over the input when IN_PLACE). Prepended: prelude.wgsl.
//
// With l_n = -Σ_c a_c·lp_c (see cross_entropy.wgsl) and g_n the row's upstream scale:
//   logits:            ∂l/∂x_j = g_n·(A_n·p_j - a_j) [+ g_n·2z·lse_n·p_j], A_n = Σ a_c,
//                      times 1 - (x'_j/cap)² under the soft-cap x' = cap·tanh(x/cap);
//   probabilities:     ∂l/∂p_j = -g_n·a_j / (p_j + δ);
//   log-probabilities: ∂l/∂x_j = -g_n·a_j.
// Ignored rows get exactly 0; rows whose target is out of range get NaN (pass 1 flags them).

override TARGET_I64: bool = true;
override TARGET_PROBS: bool = false;
override WEIGHTED: bool = false;
override SMOOTHING: bool = false;
override INPUT_KIND: u32 = 0u;
override SOFTCAP: bool = false;
override Z_LOSS: bool = false;
override IN_PLACE: bool = false;         // read the input from `grad` and overwrite it
override PER_ROW_UPSTREAM: bool = false; // reduction none: g_n = upstream[n]

const GROUP_SIZE: u32 = 256u;

struct GradParams {
    count: u32,           // elements in this dispatch (whole rows)
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
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: GradParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
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
    @builtin(num_workgroups) group_count: vec3<u32>,
) {
    let stride = group_count.x * group_count.y * GROUP_SIZE;
    let classes = params.classes;
    let eps = params.label_smoothing;
    for (var i = linear_group(group_id, group_count) * GROUP_SIZE + lane; i < params.count; i += stride) {
        let row = i / classes;
        let c = i - row * classes;
        var x: f32;
        if (IN_PLACE) {
            x = grad[params.grad_offset + i];
        } else {
            x = input[params.input_offset + i];
        }
        // The row's upstream scale g_n (reduced losses: upstream / divisor, 1 for sum).
        var g: f32;
        if (PER_ROW_UPSTREAM) {
            g = row_upstream[params.upstream_offset + row];
        } else {
            g = params.upstream / reduced[1];
        }
        // a_c of this element (ignored rows have left the loop).
        var a: f32;
        if (TARGET_PROBS) {
            var t = bitcast<f32>(targets[params.targets_offset + i]);
            if (SMOOTHING) {
                t = t * (1.0 - eps) + eps / f32(classes);
            }
            a = weight_of(c) * t;
        } else {
            var lo: u32;
            var hi: u32;
            if (TARGET_I64) {
                lo = targets[params.targets_offset + 2u * row];
                hi = targets[params.targets_offset + 2u * row + 1u];
            } else {
                lo = targets[params.targets_offset + row];
                hi = select(0u, 0xffffffffu, (lo & 0x80000000u) != 0u);
            }
            if (lo == params.ignore_lo && hi == params.ignore_hi) {
                grad[params.grad_offset + i] = 0.0;
                continue;
            }
            if (hi != 0u || lo >= classes) {
                grad[params.grad_offset + i] = bitcast<f32>(0x7fc00000u);
                continue;
            }
            a = select(0.0, weight_of(lo), c == lo);
            if (SMOOTHING) {
                a = (1.0 - eps) * a + (eps / f32(classes)) * weight_of(c);
            }
        }
        var d: f32;
        if (INPUT_KIND == 0u) {
            var xc = x;
            if (SOFTCAP) {
                xc = params.softcap * tanh(x / params.softcap);
            }
            let stats = row_lse[params.row_offset + row];
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
        grad[params.grad_offset + i] = g * d;
    }
}
