// cross_entropy.wgsl — cross-entropy and NLL, forward, one team per row.
// Prepended at pipeline creation: prelude.wgsl and one team_*.wgsl (the strategy).
//
// Every variant is l_n = -Σ_c a_c·lp_c with lp = the row's log-probabilities:
//   class-index targets:  a_c = (1-ε)·w_y·[c = y] + (ε/C)·w_c      (row weight w_y; ignored rows 0)
//   probability targets:  a_c = w_c·t'_c,  t' = t·(1-ε) + ε/C      (row weight 1)
// From logits, lp_c = x_c - lse and l_n = A·(lse - shift) - Σ a_c (x_c - shift) with A = Σ a_c,
// all from one online pass (RowStats with per-element weight a_c). From probabilities,
// lp_c = log(p_c + δ); from log-probabilities (nll_loss), lp_c = x_c: a weighted row sum.

override TARGET_I64: bool = true;   // class-index targets are i64 (two u32 words each), else i32
override TARGET_PROBS: bool = false; // targets are f32 probabilities [N, C] instead of indices
override WEIGHTED: bool = false;    // the weight binding holds C class weights
override SMOOTHING: bool = false;   // label_smoothing > 0
override INPUT_KIND: u32 = 0u;      // 0: logits, 1: probabilities, 2: log-probabilities
override SOFTCAP: bool = false;     // logits: x -> cap·tanh(x / cap) before the softmax (Gemma 2)
override Z_LOSS: bool = false;      // logits: add z·lse² to each counted row (PaLM)
override ARGMAX: bool = false;      // logits: write each row's argmax
override FORMAT: u32 = 0u;          // the input's element type: 0 f32, 1 f16, 2 bf16

struct Params {
    rows: u32,            // rows in this dispatch
    classes: u32,
    logits_offset: u32,   // element offset of row 0 inside the logits binding
    targets_offset: u32,  // u32-word offset of row 0 inside the targets binding
    out_offset: u32,      // element offset of row 0 inside the row_loss binding
    row_base: u32,        // global index of row 0, for error reports
    ignore_lo: u32,       // ignore_index as i64, low and high words
    ignore_hi: u32,
    label_smoothing: f32,
    epsilon: f32,         // δ added to probabilities before the log (INPUT_KIND 1)
    softcap: f32,         // cap (SOFTCAP)
    z_loss: f32,          // z (Z_LOSS)
    lse_offset: u32,      // offset of row 0 inside the row_lse binding (in vec2s)
    status_offset: u32,   // index of the status word inside the status binding
    weight_offset: u32,   // offset of row 0 inside the row_weight binding
    argmax_offset: u32,   // offset of row 0 inside the row_argmax binding
}

// status[params.status_offset]: 0xffffffff - (global index of the first row whose target
// is out of range), kept with atomicMax so that a zero-cleared word means "none" (no host
// write needed). An array so that the word can sit at any offset of a caller's buffer.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<u32>;   // FORMAT elements
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> class_weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> row_weight: array<f32>;
@group(0) @binding(6) var<storage, read_write> status: array<atomic<u32>>;
@group(0) @binding(7) var<storage, read_write> row_lse: array<vec2<f32>>; // logits: (lse, A = Σ a_c) per row
@group(0) @binding(8) var<storage, read_write> row_argmax: array<u32>;  // ARGMAX: each row's argmax

// Element `at` of the input binding, as f32.
fn load_x(at: u32) -> f32 {
    return unpack_element(logits[element_word(at, FORMAT)], at, FORMAT);
}

// Logit `at` of the logits binding, soft-capped when SOFTCAP.
fn logit(at: u32) -> f32 {
    let x = load_x(at);
    if (SOFTCAP) {
        return params.softcap * tanh(x / params.softcap);
    }
    return x;
}

fn weight_of(class_index: u32) -> f32 {
    if (WEIGHTED) {
        return class_weight[class_index];
    }
    return 1.0;
}

// a_c without the target term of class-index targets (that one is gathered separately):
// w_c for class indices, w_c·t'_c for probability targets starting at word `row_t`.
fn coefficient(row_t: u32, class_index: u32) -> f32 {
    if (TARGET_PROBS) {
        var t = bitcast<f32>(targets[row_t + class_index]);
        if (SMOOTHING) {
            t = t * (1.0 - params.label_smoothing) + params.label_smoothing / f32(params.classes);
        }
        return weight_of(class_index) * t;
    }
    return weight_of(class_index);
}

fn coefficients4(row_t: u32, first: u32, stride: u32) -> vec4<f32> {
    if (WEIGHTED || TARGET_PROBS) {
        return vec4(coefficient(row_t, first), coefficient(row_t, first + stride),
                    coefficient(row_t, first + 2u * stride), coefficient(row_t, first + 3u * stride));
    }
    return vec4(1.0);
}

// A lane's share of a row: its RowStats and, with ARGMAX, its best (raw) logit.
struct RowScan {
    stats: RowStats,
    best: f32,
    best_index: u32,
}

fn scan_best(scan: ptr<function, RowScan>, row_start: u32, cols: vec4<u32>, valid: vec4<bool>) {
    for (var k = 0u; k < 4u; k++) {
        if (valid[k]) {
            let x = load_x(row_start + cols[k]);
            if (argmax_before(x, cols[k], (*scan).best, (*scan).best_index)) {
                (*scan).best = x;
                (*scan).best_index = cols[k];
            }
        }
    }
}

// Logits, phase 1: each lane folds its share of the row into RowStats. The team reads 4·width
// consecutive logits per step; lane l takes elements l, l+width, l+2·width, l+3·width,
// so every load of the team is contiguous.
fn row_stats(row_start: u32, row_t: u32, lane: u32, width: u32) -> RowScan {
    let classes = params.classes;
    let step = 4u * width;
    let full_end = classes - classes % step;
    var scan = RowScan(stats_empty(), negative_infinity(), 0xffffffffu);
    var s = stats_empty();
    var c = lane;
    for (; c < full_end; c += step) {
        let x = vec4(logit(row_start + c), logit(row_start + c + width),
                     logit(row_start + c + 2u * width), logit(row_start + c + 3u * width));
        s = stats_push4(s, x, coefficients4(row_t, c, width), vec4(true));
        if (ARGMAX) {
            scan_best(&scan, row_start, vec4(c, c + width, c + 2u * width, c + 3u * width), vec4(true));
        }
    }
    // The last, partial step: padding is x = -inf, a = 0 and masked out of Σ a·x.
    if (full_end < classes) {
        let cols = vec4(c, c + width, c + 2u * width, c + 3u * width);
        let valid = cols < vec4(classes);
        var x = vec4(negative_infinity());
        var a = vec4(0.0);
        for (var k = 0u; k < 4u; k++) {
            if (valid[k]) {
                x[k] = logit(row_start + cols[k]);
                a[k] = coefficient(row_t, cols[k]);
            }
        }
        s = stats_push4(s, x, a, valid);
        if (ARGMAX) {
            scan_best(&scan, row_start, cols, valid);
        }
    }
    scan.stats = s;
    return scan;
}

// lp for probabilities and log-probabilities.
fn log_prob(x: f32) -> f32 {
    if (INPUT_KIND == 1u) {
        return log(x + params.epsilon);
    }
    return x;
}

// Probabilities / log-probabilities: this lane's share of Σ_c a_c·lp_c.
fn row_weighted_log_probs(row_start: u32, row_t: u32, lane: u32, width: u32) -> f32 {
    var sum = 0.0;
    for (var c = lane; c < params.classes; c += width) {
        sum += coefficient(row_t, c) * log_prob(load_x(row_start + c));
    }
    return sum;
}

@compute @workgroup_size(TEAM_GROUP_SIZE)
fn cross_entropy_rows(inv: TeamInvocation) {
    let lane = team_lane(inv);
    let width = team_width(inv);
    let teams = teams_in_group(inv);
    let first_team = linear_group(inv.group_id, inv.group_count) * teams + team_in_group(inv);
    let team_stride = inv.group_count.x * inv.group_count.y * teams;
    let eps = params.label_smoothing;
    let smoothing_scale = eps / f32(params.classes);
    // Grid-stride over rows: correct whatever the actual subgroup size turns out to be.
    for (var row = first_team; row < params.rows; row += team_stride) {
        let row_start = params.logits_offset + row * params.classes;
        let row_t = params.targets_offset + row * params.classes;  // probability targets
        // Phase 2: the team combines its lanes; every lane gets the row's totals.
        var stats = stats_empty();
        var best_index = 0u;
        var weighted_sum = 0.0;   // Σ a_c·lp_c (probabilities / log-probabilities)
        if (INPUT_KIND == 0u) {
            let scan = row_stats(row_start, row_t, lane, width);
            stats = team_reduce(scan.stats, inv);
            if (ARGMAX) {
                best_index = team_argmax(scan.best, scan.best_index, inv);
            }
        } else if (TARGET_PROBS || SMOOTHING) {
            weighted_sum = team_sum2(vec2(row_weighted_log_probs(row_start, row_t, lane, width), 0.0), inv).x;
        }
        let log_z = log(stats.exp_sum);            // lse - shift
        let shift = stats_shift(stats.row_max);
        // Phase 3: lane 0 writes the row's loss and weight.
        if (lane == 0u) {
            var loss = 0.0;
            var weight = 1.0;
            var counted = TARGET_PROBS;   // not ignored (and in range)
            if (TARGET_PROBS) {
                if (INPUT_KIND == 0u) {
                    loss = stats.w_sum * log_z - stats.wx_sum;
                } else {
                    loss = -weighted_sum;
                }
            } else {
                var lo: u32;
                var hi: u32;
                if (TARGET_I64) {
                    lo = targets[params.targets_offset + 2u * row];
                    hi = targets[params.targets_offset + 2u * row + 1u];
                } else {
                    lo = targets[params.targets_offset + row];
                    hi = select(0u, 0xffffffffu, (lo & 0x80000000u) != 0u);  // sign-extend
                }
                weight = 0.0;
                let ignored = lo == params.ignore_lo && hi == params.ignore_hi;
                if (!ignored) {
                    if (hi != 0u || lo >= params.classes) {
                        // Never read out of bounds: flag the row, poison its loss.
                        atomicMax(&status[params.status_offset], 0xffffffffu - (params.row_base + row));
                        loss = bitcast<f32>(0x7fc00000u);
                        weight = loss;
                    } else {
                        counted = true;
                        weight = weight_of(lo);
                        var nll: f32;           // -lp_y
                        var smoothing_sum: f32; // -Σ_c w_c lp_c
                        if (INPUT_KIND == 0u) {
                            nll = log_z - (logit(row_start + lo) - shift);
                            smoothing_sum = stats.w_sum * log_z - stats.wx_sum;
                        } else {
                            nll = -log_prob(load_x(row_start + lo));
                            smoothing_sum = -weighted_sum;
                        }
                        if (SMOOTHING) {
                            loss = (1.0 - eps) * weight * nll + smoothing_scale * smoothing_sum;
                        } else {
                            loss = weight * nll;
                        }
                    }
                }
            }
            // z-loss on every row that is not ignored.
            let lse = log_z + shift;
            if (Z_LOSS && counted) {
                loss += params.z_loss * lse * lse;
            }
            row_loss[params.out_offset + row] = loss;
            row_weight[params.weight_offset + row] = weight;
            if (INPUT_KIND == 0u) {
                // A = Σ_c a_c: for class indices (1-ε)·w_y + ε/C·Σw, for probabilities Σ w·t'.
                var a_sum = stats.w_sum;
                if (!TARGET_PROBS) {
                    a_sum = select(0.0, (1.0 - eps) * weight + smoothing_scale * stats.w_sum, counted);
                    if (!SMOOTHING) {
                        a_sum = select(0.0, weight, counted);
                    }
                }
                row_lse[params.lse_offset + row] = vec2(lse, a_sum);
            }
            if (ARGMAX) {
                row_argmax[params.argmax_offset + row] = best_index;
            }
        }
    }
}
