// elementwise.wgsl — losses with one value per element: MSE, binary cross-entropy (on
// probabilities and on logits) and KL divergence. Weights broadcast over the last axis.
// Prepended: prelude.wgsl. Reductions to a scalar: with REDUCED each invocation writes the
// sum of its elements (in its fixed grid-stride order) instead of every element's value, and
// reduce.wgsl sums those partials: the per-element values are never written or read again.

override LOSS: u32 = 0u;            // 0: mse, 1: bce, 2: bce_with_logits, 3: kl_div
override WEIGHTED: bool = false;    // weight[last-axis index]
override POS_WEIGHTED: bool = false; // pos_weight[last-axis index] (bce_with_logits)
override LOG_TARGET: bool = false;  // kl_div: the target holds log-probabilities
override PER_ELEMENT_UPSTREAM: bool = false; // gradient of reduction none: upstream[i]
override FORMAT: u32 = 0u;          // the input's element type: 0 f32, 1 f16, 2 bf16
override REDUCED: bool = false;     // elementwise_loss: one partial sum per invocation

const GROUP_SIZE: u32 = 256u;

struct Params {
    count: u32,          // elements in this dispatch
    last_dim: u32,       // length of the last axis (weights broadcast over it)
    phase: u32,          // last-axis index of element 0 of this dispatch
    input_offset: u32,   // element offsets of element 0 inside each binding
    target_offset: u32,
    out_offset: u32,
    upstream_offset: u32, // gradient: element offset of element 0 in the upstream binding
    scale: f32,           // gradient of a reduced loss: upstream / divisor
    vec4_ok: u32,         // f32 input, input and target at offsets ≡ 0 mod 4 of their
                          // bindings: `input4` / `targets4` read them as whole vec4s
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;   // FORMAT elements
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> pos_weight: array<f32>;
@group(0) @binding(5) var<storage, read> upstream: array<f32>;
// The input and target bindings again, cut to whole 16-byte units (vec4_ok): llvmpipe
// loads storage per lane, so one vec4 load costs what one scalar load does.
@group(0) @binding(6) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> targets4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> out: array<f32>;

// Last-axis index of element `i` of this dispatch (an integer division: only when weights
// need it).
fn class_of(i: u32) -> u32 {
    if (WEIGHTED || POS_WEIGHTED) {
        return (params.phase + i) % params.last_dim;
    }
    return 0u;
}

// Elements [4j, 4j + 4) of this dispatch: (input, target) as vec4s (vec4_ok).
fn inputs4(j: u32) -> array<vec4<f32>, 2> {
    return array(input4[(params.input_offset >> 2u) + j], targets4[(params.target_offset >> 2u) + j]);
}

// Input element `i` of this dispatch, as f32.
fn input_at(i: u32) -> f32 {
    let at = params.input_offset + i;
    return unpack_element(input[element_word(at, FORMAT)], at, FORMAT);
}

// log(1 + x) without the cancellation of log(1 + x) for tiny x (Goldberg's trick).
fn log1p(x: f32) -> f32 {
    let u = 1.0 + x;
    // Branch-free (see log_exact); the quotient of the u = 1 lane is discarded.
    return select(log(u) * (x / (u - 1.0)), x, u == 1.0);
}

// xlogy(t, t) = t·log t, 0 at t = 0 (PyTorch's kl_div).
fn t_log_t(t: f32) -> f32 {
    return select(t * log_exact(t), 0.0, t == 0.0);
}

fn element_loss(x: f32, y: f32, class_index: u32) -> f32 {
    var w = 1.0;
    if (WEIGHTED) {
        w = weight[class_index];
    }
    switch LOSS {
        case 0u: {
            let d = x - y;
            return d * d;
        }
        case 1u: {
            // PyTorch clamps each log at -100, so p = 0 or 1 gives a finite loss.
            let log_p = max(log_exact(x), -100.0);
            let log_1mp = max(log1p(-x), -100.0);
            return -w * (y * log_p + (1.0 - y) * log_1mp);
        }
        case 2u: {
            // (1-y)·x + lw·(log(e^-m + e^(-x-m)) + m), m = max(-x, 0): stable for |x| ≫ 1.
            // One of e^-m, e^(-x-m) is e^0 = 1 and the other e^-|x|, so the sum is
            // 1 + e^-|x| exactly as PyTorch adds it, with one exp instead of two.
            let m = max(-x, 0.0);
            var lw = 1.0;
            if (POS_WEIGHTED) {
                lw = 1.0 + (pos_weight[class_index] - 1.0) * y;
            }
            return w * ((1.0 - y) * x + lw * (log(1.0 + exp(-abs(x))) + m));
        }
        default: {
            if (LOG_TARGET) {
                return exp(y) * (y - x);
            }
            return t_log_t(y) - y * x;
        }
    }
}

@compute @workgroup_size(GROUP_SIZE)
fn elementwise_loss(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) group_count: vec3<u32>,
) {
    let stride = group_count.x * group_count.y * GROUP_SIZE;
    let id = linear_group(group_id, group_count) * GROUP_SIZE + lane;
    var partial = 0.0;
    if (params.vec4_ok != 0u) {
        // Grid-stride over whole vec4s, then the last count % 4 elements one per invocation.
        for (var j = id; j < params.count / 4u; j += stride) {
            let v = inputs4(j);
            let i = 4u * j;
            let l = vec4(element_loss(v[0].x, v[1].x, class_of(i)), element_loss(v[0].y, v[1].y, class_of(i + 1u)),
                         element_loss(v[0].z, v[1].z, class_of(i + 2u)), element_loss(v[0].w, v[1].w, class_of(i + 3u)));
            if (REDUCED) {
                partial += (l.x + l.y) + (l.z + l.w);
            } else {
                let o = params.out_offset + i;
                out[o] = l.x;
                out[o + 1u] = l.y;
                out[o + 2u] = l.z;
                out[o + 3u] = l.w;
            }
        }
        let i = params.count / 4u * 4u + id;
        if (id < params.count % 4u) {
            partial += loss_at(i);
        }
    } else {
        // Grid-stride over elements; consecutive lanes take consecutive elements.
        for (var i = id; i < params.count; i += stride) {
            partial += loss_at(i);
        }
    }
    if (REDUCED) {
        out[params.out_offset + id] = partial;
    }
}

// Element `i`'s loss: written out (and 0 returned), or returned for the partial (REDUCED).
fn loss_at(i: u32) -> f32 {
    let value = element_loss(input_at(i), targets[params.target_offset + i], class_of(i));
    if (REDUCED) {
        return value;
    }
    out[params.out_offset + i] = value;
    return 0.0;
}

// ∂loss/∂input of one element, before the upstream scale (PyTorch's backward formulas).
fn element_grad(x: f32, y: f32, class_index: u32) -> f32 {
    var w = 1.0;
    if (WEIGHTED) {
        w = weight[class_index];
    }
    switch LOSS {
        case 0u: {
            return 2.0 * (x - y);
        }
        case 1u: {
            // binary_cross_entropy_backward: (p - y) / max((1 - p)·p, 1e-12)
            return w * (x - y) / max((1.0 - x) * x, 1e-12);
        }
        case 2u: {
            // σ(x)·lw - pos_weight·y, lw = 1 + (pos_weight - 1)·y
            let sigma = 1.0 / (1.0 + exp(-x));
            var pw = 1.0;
            if (POS_WEIGHTED) {
                pw = pos_weight[class_index];
            }
            return w * (sigma * (1.0 + (pw - 1.0) * y) - pw * y);
        }
        default: {
            if (LOG_TARGET) {
                return -exp(y);
            }
            return -y;
        }
    }
}

@compute @workgroup_size(GROUP_SIZE)
fn elementwise_grad(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) group_count: vec3<u32>,
) {
    let stride = group_count.x * group_count.y * GROUP_SIZE;
    let id = linear_group(group_id, group_count) * GROUP_SIZE + lane;
    if (params.vec4_ok != 0u) {
        for (var j = id; j < params.count / 4u; j += stride) {
            let v = inputs4(j);
            let i = 4u * j;
            grad_at(i, v[0].x, v[1].x);
            grad_at(i + 1u, v[0].y, v[1].y);
            grad_at(i + 2u, v[0].z, v[1].z);
            grad_at(i + 3u, v[0].w, v[1].w);
        }
        let i = params.count / 4u * 4u + id;
        if (id < params.count % 4u) {
            grad_at(i, input_at(i), targets[params.target_offset + i]);
        }
    } else {
        for (var i = id; i < params.count; i += stride) {
            grad_at(i, input_at(i), targets[params.target_offset + i]);
        }
    }
}

// Writes element `i`'s gradient, for input x and target y.
fn grad_at(i: u32, x: f32, y: f32) {
    var g = params.scale;
    if (PER_ELEMENT_UPSTREAM) {
        g = upstream[params.upstream_offset + i];
    }
    out[params.out_offset + i] = g * element_grad(x, y, class_of(i));
}
