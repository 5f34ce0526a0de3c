// target_weights.wgsl — each row's weight in a cross-entropy mean from its class-index
// target alone: 0 when ignored, w[y] (1 unweighted) when in range, NaN when out of range
// (and the status word flags the row, as cross_entropy.wgsl does). The fused linear
// cross-entropy needs the mean's divisor Σ w before its first gradient tile, long before
// any row's logits exist. Prepended: prelude.wgsl, targets.wgsl (target decoding).

struct Params {
    rows: u32,            // rows in this dispatch
    classes: u32,
    targets_offset: u32,  // u32-word offset of row 0 inside the targets binding
    ignore_lo: u32,       // ignore_index as i64, low and high words
    ignore_hi: u32,
    weight_offset: u32,   // offset of row 0 inside the row_weight binding
    status_offset: u32,   // index of the status word inside the status binding
    row_base: u32,        // global index of row 0, for error reports
    label_smoothing: f32, // unused here (targets.wgsl names it)
    softcap: f32,         // unused here (targets.wgsl names it)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read> class_weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>>;

@compute @workgroup_size(64)
fn target_weights(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let row = linear_invocation(id, groups, 64u);
    if (row >= params.rows) {
        return;
    }
    let t = target_words(row);
    var weight = 0.0;
    if (!target_ignored(t)) {
        if (target_in_range(t)) {
            weight = 1.0;
            if (WEIGHTED) {
                weight = class_weight[t.x];
            }
        } else {
            atomicMax(&status[params.status_offset], 0xffffffffu - (params.row_base + row));
            weight = bitcast<f32>(0x7fc00000u);
        }
    }
    row_weight[params.weight_offset + row] = weight;
}
