// reduce.wgsl — sums losses (and, for weighted means, their weights) to one scalar in a
// fixed order (no float atomics): each workgroup folds a block of BLOCK elements into one
// partial pair, passes repeat until one pair is left, then `finish` makes the result.

const GROUP_SIZE: u32 = 256u;
const ITEMS_PER_LANE: u32 = 8u;
const BLOCK: u32 = GROUP_SIZE * ITEMS_PER_LANE;

struct ReduceParams {
    count: u32,        // elements to reduce in this dispatch
    in_offset: u32,    // element offset of element 0 inside the input bindings
    out_offset: u32,   // index of this dispatch's first partial in the outputs
    has_weight: u32,   // 1: in_weight holds weights to sum too; 0: it is a placeholder
    mode: u32,         // finish: 0 = sum, 1 = sum / weight sum, 2 = sum / denominator
    denominator: f32,  // finish, mode 2
    _pad0: u32,
    _pad1: u32,
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
            var w = 0.0;
            if (reduce_params.has_weight == 1u) {
                w = in_weight[at];
            }
            acc += vec2(in_loss[at], w);
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
        out_loss[reduce_params.out_offset + group] = scratch[0].x;
        out_weight[reduce_params.out_offset + group] = scratch[0].y;
    }
}

// x / d with IEEE's answers for d = 0 spelled out (WGSL leaves them to the implementation):
// 0/0 (and NaN/0) = NaN, as PyTorch's mean of an all-ignored batch; ±x/0 = ±inf.
fn ieee_divide(x: f32, d: f32) -> f32 {
    if (d == 0.0) {
        let nan = bitcast<f32>(0x7fc00000u);
        let inf = bitcast<f32>(0x7f800000u);
        return select(select(-inf, inf, x > 0.0), nan, x == 0.0 || is_nan(x));
    }
    return x / d;
}

// One invocation: out_loss[0] = the sum, the weighted mean, or the sum over a count.
// (out_loss must hold 2 floats.)
@compute @workgroup_size(1)
fn finish(@builtin(local_invocation_index) lane: u32) {
    let total = in_loss[reduce_params.in_offset];
    let weight = in_weight[reduce_params.in_offset];
    // out_loss[1]: the divisor used, so that gradients can scale by upstream / divisor.
    // The result goes to out_loss[out_offset] (a caller's buffer at any offset).
    let at = reduce_params.out_offset;
    switch reduce_params.mode {
        case 1u: {
            out_loss[at] = ieee_divide(total, weight);
            out_loss[at + 1u] = weight;
        }
        case 2u: {
            out_loss[at] = ieee_divide(total, reduce_params.denominator);
            out_loss[at + 1u] = reduce_params.denominator;
        }
        default: {
            out_loss[at] = total;
            out_loss[at + 1u] = 1.0;
        }
    }
}
