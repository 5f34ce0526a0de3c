// cross_entropy.wgsl — class-index cross-entropy, forward, one team per row.
// Prepended at pipeline creation: prelude.wgsl and one team_*.wgsl (the strategy).
//
// Per row n with target y: row_loss = (1-ε)·w[y]·(lse - x[y]) + (ε/C)·Σ_c w[c]·(lse - x[c]),
// row_weight = w[y]; ignored rows give 0 and 0. One read of the logits.

override TARGET_I64: bool = true;   // targets are i64 (two u32 words each), else i32
override WEIGHTED: bool = false;    // the weight binding holds C class weights
override SMOOTHING: bool = false;   // label_smoothing > 0: also accumulate Σ w·x

struct Params {
    rows: u32,            // rows in this dispatch
    classes: u32,
    logits_offset: u32,   // element offset of row 0 inside the logits binding
    targets_offset: u32,  // u32-word offset of row 0 inside the targets binding
    out_offset: u32,      // element offset of row 0 inside the row_loss/row_weight bindings
    row_base: u32,        // global index of row 0, for error reports
    ignore_lo: u32,       // ignore_index as i64, low and high words
    ignore_hi: u32,
    label_smoothing: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// status: 0xffffffff - (global index of the first row whose target is out of range),
// kept with atomicMax so that a zero-cleared buffer means "none" (no host write needed).
struct Status {
    first_bad_row: atomic<u32>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> class_weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> row_weight: array<f32>;
@group(0) @binding(6) var<storage, read_write> status: Status;

fn weight_of(class_index: u32) -> f32 {
    if (WEIGHTED) {
        return class_weight[class_index];
    }
    return 1.0;
}

fn weights4(first: u32, stride: u32) -> vec4<f32> {
    if (WEIGHTED) {
        return vec4(class_weight[first], class_weight[first + stride],
                    class_weight[first + 2u * stride], class_weight[first + 3u * stride]);
    }
    return vec4(1.0);
}

// Phase 1: each lane folds its share of the row into RowStats. The team reads 4·width
// consecutive logits per step; lane l takes elements l, l+width, l+2·width, l+3·width,
// so every load of the team is contiguous.
fn row_stats(row_start: u32, lane: u32, width: u32) -> RowStats {
    let classes = params.classes;
    let step = 4u * width;
    let full_end = classes - classes % step;
    var s = stats_empty();
    var c = lane;
    for (; c < full_end; c += step) {
        let x = vec4(logits[row_start + c], logits[row_start + c + width],
                     logits[row_start + c + 2u * width], logits[row_start + c + 3u * width]);
        s = stats_push4(s, x, weights4(c, width), vec4(true));
    }
    // The last, partial step: padding is x = -inf, w = 0 and masked out of Σ w·x.
    if (full_end < classes) {
        let cols = vec4(c, c + width, c + 2u * width, c + 3u * width);
        let valid = cols < vec4(classes);
        var x = vec4(negative_infinity());
        var w = vec4(0.0);
        for (var k = 0u; k < 4u; k++) {
            if (valid[k]) {
                x[k] = logits[row_start + cols[k]];
                w[k] = weight_of(cols[k]);
            }
        }
        s = stats_push4(s, x, w, valid);
    }
    return s;
}

@compute @workgroup_size(TEAM_GROUP_SIZE)
fn cross_entropy_rows(inv: TeamInvocation) {
    let lane = team_lane(inv);
    let width = team_width(inv);
    let teams = teams_in_group(inv);
    let first_team = linear_group(inv.group_id, inv.group_count) * teams + team_in_group(inv);
    let team_stride = inv.group_count.x * inv.group_count.y * teams;
    // Grid-stride over rows: correct whatever the actual subgroup size turns out to be.
    for (var row = first_team; row < params.rows; row += team_stride) {
        let row_start = params.logits_offset + row * params.classes;
        // Phase 2: the team merges its lanes' stats; every lane gets the row's total.
        let stats = team_reduce(row_stats(row_start, lane, width), inv);
        // Phase 3: lane 0 gathers the target logit and writes the row's loss and weight.
        if (lane == 0u) {
            var lo: u32;
            var hi: u32;
            if (TARGET_I64) {
                lo = targets[params.targets_offset + 2u * row];
                hi = targets[params.targets_offset + 2u * row + 1u];
            } else {
                lo = targets[params.targets_offset + row];
                hi = select(0u, 0xffffffffu, (lo & 0x80000000u) != 0u);  // sign-extend
            }
            var loss = 0.0;
            var weight = 0.0;
            let ignored = lo == params.ignore_lo && hi == params.ignore_hi;
            if (!ignored) {
                if (hi != 0u || lo >= params.classes) {
                    // Never read out of bounds: flag the row, poison its loss.
                    atomicMax(&status.first_bad_row, 0xffffffffu - (params.row_base + row));
                    loss = bitcast<f32>(0x7fc00000u);
                    weight = loss;
                } else {
                    let log_z = log(stats.exp_sum);            // lse - shift
                    let shift = stats_shift(stats.row_max);
                    weight = weight_of(lo);
                    let nll = log_z - (logits[row_start + lo] - shift);
                    if (SMOOTHING) {
                        let eps = params.label_smoothing;
                        let smoothing_sum = stats.w_sum * log_z - stats.wx_sum;  // Σ_c w_c (lse - x_c)
                        loss = (1.0 - eps) * weight * nll + (eps / f32(params.classes)) * smoothing_sum;
                    } else {
                        loss = weight * nll;
                    }
                }
            }
            row_loss[params.out_offset + row] = loss;
            row_weight[params.out_offset + row] = weight;
        }
    }
}
