// softmax.wgsl — softmax, log-softmax and the entropy of each row's softmax, one team per
// row. Prepended: prelude.wgsl and one team_*.wgsl. Phase 1 is the online (max, exp-sum)
// pass of RowStats; phase 2 reads the row again to write (or sum) the outputs.

override OUTPUT: u32 = 0u;   // 0: softmax [N, C], 1: log_softmax [N, C], 2: entropy [N]
override GRAD: bool = false; // write the vector-Jacobian product with `upstream` instead
override FORMAT: u32 = 0u;   // the input's element type: 0 f32, 1 f16, 2 bf16

struct Params {
    rows: u32,
    classes: u32,
    in_offset: u32,       // element offset of row 0 inside the input binding
    out_offset: u32,      // element offset of row 0's output inside the output binding
    upstream_offset: u32, // GRAD: offset of row 0's upstream ([N, C], or [N] for entropy)
    vec4_ok: u32,         // f32 input, in_offset ≡ out_offset mod 4, inner = 1: `logits4`
                          // and `out4` view the input and output bindings as vec4s (see vec4_span)
    inner: u32,           // elements between a position's classes (1: contiguous rows)
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<u32>;   // FORMAT elements

fn load_x(at: u32) -> f32 {
    return unpack_element(logits[element_word(at, FORMAT)], at, FORMAT);
}
@group(0) @binding(2) var<storage, read> upstream: array<f32>;
// The input binding again, cut to whole 16-byte units (vec4_ok).
@group(0) @binding(3) var<storage, read> logits4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// The output binding again, cut to whole 16-byte units (vec4_ok).
@group(0) @binding(5) var<storage, read_write> out4: array<vec4<f32>>;

// Element c of the position whose element 0 is at `start`: positions of a `dim` other
// than the last have their classes `inner` apart (position r = (o, i) starts at
// o·C·inner + i; see DimAxis), the last axis's are contiguous.
fn at(start: u32, c: u32) -> u32 {
    return start + c * params.inner;
}

// Offset of position `row`'s element 0 from the start of the tensor.
fn position_start(row: u32) -> u32 {
    return strided_start(row, params.classes, params.inner);
}

// The whole-vec4 columns [x, y) of the row starting at input index `row_start`: columns
// before x and from y on are read one by one (all of them without vec4_ok: x = y = 0).
fn row_span(row_start: u32) -> vec2<u32> {
    if (params.vec4_ok != 0u) {
        return vec4_span(row_start, 0u, params.classes);
    }
    return vec2(0u);
}

// Softmax or log-softmax of an element, from d = x - shift.
fn output_value(d: f32, log_z: f32, z: f32) -> f32 {
    if (OUTPUT == 0u) {
        return exp(d) / z;
    }
    return d - log_z;
}

fn row_stats(row_start: u32, lane: u32, width: u32) -> RowStats {
    var s = stats_empty();
    let step = 4u * width;
    let span = row_span(row_start);
    // The whole vec4s, then the columns before and after them, four lanes' worth at a time.
    for (var c = span.x + 4u * lane; c < span.y; c += step) {
        s = stats_push4(s, logits4[(row_start + c) >> 2u], vec4(0.0), vec4(true));
    }
    for (var c = lane; c < span.x; c += width) {
        s = stats_push4(s, vec4(load_x(at(row_start, c)), vec4(negative_infinity()).yzw), vec4(0.0),
                        vec4(true, false, false, false));
    }
    for (var c = span.y + lane; c < params.classes; c += step) {
        let cols = vec4(c, c + width, c + 2u * width, c + 3u * width);
        let valid = cols < vec4(params.classes);
        var x = vec4(negative_infinity());
        for (var k = 0u; k < 4u; k++) {
            if (valid[k]) {
                x[k] = load_x(at(row_start, cols[k]));
            }
        }
        s = stats_push4(s, x, vec4(0.0), valid);
    }
    return s;
}

// Entropy's Σ_c e^(x-shift)·(x-shift) over the team; masked (-inf) classes add 0.
fn entropy_sum(row_start: u32, lane: u32, width: u32, shift: f32, inv: TeamInvocation) -> f32 {
    var partial = 0.0;
    let span = row_span(row_start);
    for (var c = span.x + 4u * lane; c < span.y; c += 4u * width) {
        let d = logits4[(row_start + c) >> 2u] - vec4(shift);
        partial += (entropy_term(d.x) + entropy_term(d.y)) + (entropy_term(d.z) + entropy_term(d.w));
    }
    for (var c = lane; c < span.x; c += width) {
        partial += entropy_term(load_x(at(row_start, c)) - shift);
    }
    for (var c = span.y + lane; c < params.classes; c += width) {
        partial += entropy_term(load_x(at(row_start, c)) - shift);
    }
    return team_sum2(vec2(partial, 0.0), inv).x;
}

// e^d·d, 0 for a masked (-inf) class.
fn entropy_term(d: f32) -> f32 {
    return select(exp(d) * d, 0.0, d == negative_infinity());
}

// Phase 2-3 (GRAD): the vector-Jacobian product with the upstream u of this row.
//   softmax:     ∂_j = p_j·(u_j - Σ_c u_c p_c)
//   log_softmax: ∂_j = u_j - p_j·Σ_c u_c
//   entropy:     ∂_j = -u_n·p_j·(lp_j + H)   (0 for masked classes)
fn grad_row(row: u32, row_start: u32, lane: u32, width: u32, shift: f32, log_z: f32, z: f32, inv: TeamInvocation) {
    let classes = params.classes;
    let up_start = params.upstream_offset + position_start(row);
    let out_start = params.out_offset + position_start(row);
    var row_term = 0.0;   // Σ u p, Σ u, or H
    if (OUTPUT == 2u) {
        row_term = log_z - entropy_sum(row_start, lane, width, shift, inv) / z;
    } else {
        var partial = 0.0;
        for (var c = lane; c < classes; c += width) {
            let u = upstream[at(up_start, c)];
            if (OUTPUT == 0u) {
                partial += u * (exp(load_x(at(row_start, c)) - shift) / z);
            } else {
                partial += u;
            }
        }
        row_term = team_sum2(vec2(partial, 0.0), inv).x;
    }
    for (var c = lane; c < classes; c += width) {
        let d = load_x(at(row_start, c)) - shift;
        let p = exp(d) / z;
        var g: f32;
        switch OUTPUT {
            case 0u: { g = p * (upstream[at(up_start, c)] - row_term); }
            case 1u: { g = upstream[at(up_start, c)] - p * row_term; }
            default: {
                let u = upstream[params.upstream_offset + row];
                // A row whose H is NaN (all -inf, or +inf / NaN in it) has NaN gradients
                // throughout, masked classes included, as PyTorch's autograd gives.
                g = select(-u * p * ((d - log_z) + row_term), 0.0, d == negative_infinity());
                g = select(g, bitcast<f32>(0x7fc00000u), is_nan(row_term));
            }
        }
        out[at(out_start, c)] = g;
    }
}

@compute @workgroup_size(TEAM_GROUP_SIZE)
fn softmax_rows(inv: TeamInvocation) {
    let lane = team_lane(inv);
    let width = team_width(inv);
    let teams = teams_in_group(inv);
    let first_team = linear_group(inv.group_id, inv.group_count) * teams + team_in_group(inv);
    let team_stride = inv.group_count.x * inv.group_count.y * teams;
    for (var row = first_team; row < params.rows; row += team_stride) {
        let row_start = params.in_offset + position_start(row);
        // Phase 1: the row's max and Σ exp(x - shift), merged over the team.
        let stats = team_reduce(row_stats(row_start, lane, width), inv);
        let shift = stats_shift(stats.row_max);
        let log_z = log(stats.exp_sum);
        if (GRAD) {
            grad_row(row, row_start, lane, width, shift, log_z, stats.exp_sum, inv);
        } else if (OUTPUT == 2u) {
            // Phase 2 (entropy): H = log Z - Σ e^(x-shift)·(x-shift) / Z; masked (-inf)
            // classes add 0, as PyTorch's Categorical.entropy clamps them.
            let total = entropy_sum(row_start, lane, width, shift, inv);
            if (lane == 0u) {
                out[params.out_offset + row] = log_z - total / stats.exp_sum;
            }
        } else {
            // Phase 2 (softmax / log-softmax): one output per element, whole vec4s where
            // the row's input and output line up on 16 bytes (alike, by vec4_ok).
            let out_start = params.out_offset + position_start(row);
            let span = row_span(row_start);
            let z = stats.exp_sum;
            for (var c = span.x + 4u * lane; c < span.y; c += 4u * width) {
                let d = logits4[(row_start + c) >> 2u] - vec4(shift);
                out4[(out_start + c) >> 2u] = vec4(output_value(d.x, log_z, z), output_value(d.y, log_z, z),
                                                   output_value(d.z, log_z, z), output_value(d.w, log_z, z));
            }
            for (var c = lane; c < span.x; c += width) {
                out[at(out_start, c)] = output_value(load_x(at(row_start, c)) - shift, log_z, z);
            }
            for (var c = span.y + lane; c < params.classes; c += width) {
                out[at(out_start, c)] = output_value(load_x(at(row_start, c)) - shift, log_z, z);
            }
        }
    }
}
