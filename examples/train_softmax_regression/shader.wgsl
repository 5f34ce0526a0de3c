// The example's own kernels: logits = X·W + b, and one SGD step from ∂loss/∂logits.
// X is [N, D], W is [D, K] (row-major), b is [K], G = ∂loss/∂logits is [N, K].

struct Dims {
    samples: u32,   // N
    features: u32,  // D
    classes: u32,   // K
    learning_rate: f32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;        // D·K, then K biases
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;   // N·K (the loss reads it)
@group(0) @binding(4) var<storage, read> grad: array<f32>;           // N·K

// One invocation per (sample, class).
@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= dims.samples * dims.classes) {
        return;
    }
    let n = i / dims.classes;
    let k = i % dims.classes;
    var acc = w[dims.features * dims.classes + k];
    for (var d = 0u; d < dims.features; d++) {
        acc += x[n * dims.features + d] * w[d * dims.classes + k];
    }
    logits[i] = acc;
}

// One invocation per parameter: ∂L/∂W[d,k] = Σ_n X[n,d]·G[n,k], ∂L/∂b[k] = Σ_n G[n,k].
@compute @workgroup_size(64)
fn sgd_step(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = id.x;
    if (p >= (dims.features + 1u) * dims.classes) {
        return;
    }
    let d = p / dims.classes;
    let k = p % dims.classes;
    var g = 0.0;
    for (var n = 0u; n < dims.samples; n++) {
        var feature = 1.0;   // the bias row
        if (d < dims.features) {
            feature = x[n * dims.features + d];
        }
        g += feature * grad[n * dims.classes + k];
    }
    w[p] -= dims.learning_rate * g;
}
