// reduce.wgsl — sums row losses and row weights to one scalar in a fixed order (no float
// atomics): each workgroup folds a block of BLOCK elements into one partial pair, passes
// repeat until one pair is left, then `finish` divides (mean) or copies (sum).

const GROUP_SIZE: u32 = 256u;
const ITEMS_PER_LANE: u32 = 8u;
const BLOCK: u32 = GROUP_SIZE * ITEMS_PER_LANE;

struct ReduceParams {
    count: u32,        // elements to reduce in this pass
    in_offset: u32,    // element offset of element 0 inside the input bindings
    mean: u32,         // finish: 1 = divide the sum by the weight sum, 0 = the sum itself
    _pad: u32,
}

@group(0) @binding(0) var<uniform> reduce_params: ReduceParams;
@group(0) @binding(1) var<storage, read> in_loss: array<f32>;
@group(0) @binding(2) var<storage, read> in_weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_weight: array<f32>;

var<workgroup> scratch: array<vec2<f32>, GROUP_SIZE>;

@compute @workgroup_size(GROUP_SIZE)
fn reduce_pairs(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) group_count: vec3<u32>,
) {
    let group = linear_group(group_id, group_count);
    let block_start = group * BLOCK;
    // Phase 1: each lane sums ITEMS_PER_LANE elements, strided by GROUP_SIZE, in order.
    var acc = vec2(0.0);
    for (var k = 0u; k < ITEMS_PER_LANE; k++) {
        let i = block_start + k * GROUP_SIZE + lane;
        if (i < reduce_params.count) {
            let at = reduce_params.in_offset + i;
            acc += vec2(in_loss[at], in_weight[at]);
        }
    }
    // Phase 2: a fixed-shape tree over the workgroup.
    scratch[lane] = acc;
    workgroupBarrier();
    for (var half = GROUP_SIZE / 2u; half > 0u; half = half / 2u) {
        if (lane < half) {
            scratch[lane] += scratch[lane + half];
        }
        workgroupBarrier();
    }
    if (lane == 0u && block_start < reduce_params.count) {
        out_loss[group] = scratch[0].x;
        out_weight[group] = scratch[0].y;
    }
}

// One invocation: out_loss[0] = sum, or sum / weight_sum for mean (0/0 = NaN as in PyTorch).
@compute @workgroup_size(1)
fn finish(@builtin(local_invocation_index) lane: u32) {
    let total = in_loss[reduce_params.in_offset];
    let weight = in_weight[reduce_params.in_offset];
    if (reduce_params.mean == 1u) {
        // WGSL leaves x / 0 to the implementation: spell out IEEE's answer.
        if (weight == 0.0) {
            let nan = bitcast<f32>(0x7fc00000u);
            let inf = bitcast<f32>(0x7f800000u);
            out_loss[0] = select(select(-inf, inf, total > 0.0), nan, total == 0.0 || total != total);
        } else {
            out_loss[0] = total / weight;
        }
    } else {
        out_loss[0] = total;
    }
}
